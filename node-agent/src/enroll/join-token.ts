// The join token an operator gets from `POST /api/nodes` and hands to `wpcp-agent enroll`:
//
//   wpcp1.<secret>.<cahash>
//
// - `wpcp1`: the format version;
// - `<secret>`: 32 random bytes as unpadded base64url (43 characters), the one-time credential the
//   control plane checks (it stores only a hash of it);
// - `<cahash>`: lowercase hex SHA-256 of the DER SubjectPublicKeyInfo of the control plane's CA
//   certificate (kubeadm's discovery-token-ca-cert-hash), which lets the agent authenticate the
//   server before it trusts anything the server says.
//
// The whole token is a secret: it is never logged and never echoed in an error message.

const TOKEN_PATTERN = /^wpcp1\.([A-Za-z0-9_-]{43})\.([0-9a-f]{64})$/;

export interface JoinToken {
  /** The token exactly as given; sent to the control plane. */
  readonly token: string;
  /** `sha256:<hex>`, the form caCertificateHash() returns. */
  readonly caHash: string;
}

export class JoinTokenError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'JoinTokenError';
  }
}

/** Parse and check a join token. Surrounding whitespace (a token pasted from a file) is ignored. */
export function parseJoinToken(input: string): JoinToken {
  const token = input.trim();
  const match = TOKEN_PATTERN.exec(token);
  if (!match) {
    const parts = token.split('.');
    let reason = 'expected wpcp1.<secret>.<cahash>';
    if (parts.length === 3 && parts[0] === 'wpcp1') {
      if (!/^[A-Za-z0-9_-]{43}$/.test(parts[1] ?? '')) reason = 'the secret must be 43 base64url characters';
      else reason = 'the CA hash must be 64 lowercase hexadecimal characters';
    } else if (parts[0] !== 'wpcp1') {
      reason = 'it must start with "wpcp1."';
    }
    throw new JoinTokenError(`malformed join token (${reason}); copy it again from the control plane`);
  }
  return { token, caHash: `sha256:${match[2]}` };
}
