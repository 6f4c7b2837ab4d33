/**
 * The agent PKI, imported as `@wpcp/shared/pki`: the control plane's CA signs one client
 * certificate per node (and the gRPC server's certificate); agents make their own ECDSA P-256 keys
 * and send only CSRs. PEM in, PEM out; keys are PKCS#8 PEM, which Node's tls and grpc-js read.
 */
export { caCertificateHash } from './ca-certificate-hash.ts';
export {
  type CertificateAuthority,
  type CreateCertificateAuthorityOptions,
  createCertificateAuthority,
} from './certificate-authority.ts';
export { type CertificateInfo, certificateInfo } from './certificate-info.ts';
export { InvalidCsrError } from './errors.ts';
export {
  type CreateKeyPairAndCsrOptions,
  createKeyPairAndCsr,
  type KeyPairAndCsr,
} from './key-pair-and-csr.ts';
export { type SignCsrOptions, signCsr } from './sign-csr.ts';
