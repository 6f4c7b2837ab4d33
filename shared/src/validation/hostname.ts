import { domainToASCII, domainToUnicode } from 'node:url';
import { z } from 'zod';

/**
 * Hostnames, validated and normalised in one place. A hostname ends up in an nginx `server_name`,
 * in WordPress's `home`/`siteurl`, in a certificate request and in URLs, so what comes out of here
 * is the strictest common form: lowercase ASCII (IDNA labels as punycode), RFC 1123 labels of 1 to
 * 63 letters, digits and inner hyphens, at most 253 characters, no trailing dot. Nothing that nginx
 * (or a shell, or a URL parser) could read as syntax survives: only `[a-z0-9.-]`.
 *
 * What goes in may be Unicode (`bücher.example` becomes `xn--bcher-kva.example`), uppercase, or end
 * with one dot (the DNS root); anything else is refused rather than repaired. In particular the
 * WHATWG host parser behind `domainToASCII` silently drops tabs and zero-width characters, cuts
 * at `/` and decodes `%41`: those inputs are refused before it sees them.
 */

export const MAX_HOSTNAME_LENGTH = 253;
export const MAX_LABEL_LENGTH = 63;
/** A generous bound on what is even looked at (Unicode input is longer than its punycode). */
const MAX_INPUT_LENGTH = 1024;

const LABEL = /^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$/;
/** ASCII that may appear in the input: letters, digits, dot, hyphen. Non-ASCII goes to IDNA. */
const ASCII_ALLOWED = /^[A-Za-z0-9.-]$/;
/** Control, format (zero-width), unassigned and private-use code points, and every kind of space. */
const INVISIBLE_OR_SPACE = /[\p{C}\p{Z}]/u;

export type HostnameResult = { ok: true; hostname: string } | { ok: false; reason: string };

export interface HostnameOptions {
  /** Accept a single label such as `localhost` (node base domains); custom domains need two or more. */
  allowSingleLabel?: boolean;
}

/** Normalises a hostname or says, in one sentence, why it is not one. */
export function normalizeHostname(input: string, options: HostnameOptions = {}): HostnameResult {
  const fail = (reason: string): HostnameResult => ({ ok: false, reason });
  if (typeof input !== 'string' || input.length === 0) return fail('must not be empty');
  if (input.length > MAX_INPUT_LENGTH) return fail(`must be at most ${MAX_HOSTNAME_LENGTH} characters`);
  if (input.startsWith('.')) return fail('must not start with a dot');
  if (input.startsWith('~')) return fail('must not start with ~ (it is not a pattern)');
  if (input.includes('*')) return fail('must not contain a wildcard');
  for (const char of input) {
    if (INVISIBLE_OR_SPACE.test(char)) return fail('must not contain spaces or invisible characters');
    if ((char.codePointAt(0) as number) < 0x80 && !ASCII_ALLOWED.test(char)) {
      return fail(`must not contain ${JSON.stringify(char)}: only letters, digits, dots and hyphens`);
    }
  }
  // One trailing dot names the DNS root; it is dropped so `a.example.` and `a.example` are one name.
  const withoutRoot = input.endsWith('.') ? input.slice(0, -1) : input;
  if (withoutRoot.length === 0 || withoutRoot.endsWith('.')) return fail('must not end with an empty label');
  if (withoutRoot.split('.').some((label) => label.length === 0))
    return fail('must not contain empty labels');

  const ascii = domainToASCII(withoutRoot.toLowerCase());
  if (ascii === '') return fail('is not a valid internationalised domain name');
  if (!/^[a-z0-9.-]+$/.test(ascii)) return fail('must contain only letters, digits, dots and hyphens');
  // A punycode label that does not decode (Node then returns it unchanged), or does not encode
  // back to itself, is not a real IDN label.
  const punycodeOk = ascii
    .split('.')
    .filter((label) => label.startsWith('xn--'))
    .every((label) => {
      const unicode = domainToUnicode(label);
      return unicode !== label && domainToASCII(unicode) === label;
    });
  if (!punycodeOk) return fail('has an invalid punycode label');
  if (ascii.length > MAX_HOSTNAME_LENGTH) return fail(`must be at most ${MAX_HOSTNAME_LENGTH} characters`);
  const labels = ascii.split('.');
  for (const label of labels) {
    if (label.length > MAX_LABEL_LENGTH) return fail(`labels must be at most ${MAX_LABEL_LENGTH} characters`);
    if (!LABEL.test(label)) {
      return fail('labels must be letters, digits and inner hyphens, not starting or ending with a hyphen');
    }
  }
  if (!options.allowSingleLabel && labels.length < 2) return fail('must have at least two labels');
  if (/^[0-9]+$/.test(labels.at(-1) as string)) return fail('must be a name, not an IP address');
  return { ok: true, hostname: ascii };
}

function hostnameSchema(options: HostnameOptions, description: string) {
  return z
    .string()
    .max(MAX_INPUT_LENGTH)
    .transform((value, ctx) => {
      const result = normalizeHostname(value, options);
      if (result.ok) return result.hostname;
      ctx.addIssue({ code: 'custom', message: `hostname ${result.reason}` });
      return z.NEVER;
    })
    .meta({ description });
}

/** A custom domain: two or more labels; normalised to lowercase punycode. */
export const Hostname = hostnameSchema(
  {},
  'A hostname such as `www.example.com` or `bücher.example` (stored lowercase, IDNA labels as punycode, no trailing dot). No wildcards, no IP addresses.',
);

/** A node's base domain: default hostnames are `<site>--<env>.<base domain>`; `localhost` is allowed. */
export const BaseDomain = hostnameSchema(
  { allowSingleLabel: true },
  'The domain under which the node’s environments get their default hostnames (`<site>--<env>.<base domain>`).',
).refine((value) => value.length <= 200, 'base domain must be at most 200 characters');

/** True when `hostname` is `domain` itself or a name under it. */
export function isWithinDomain(hostname: string, domain: string): boolean {
  return hostname === domain || hostname.endsWith(`.${domain}`);
}
