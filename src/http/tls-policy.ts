// Owns "who may talk to us" at the TLS layer: the lowest protocol version, the cipher list, HTTP/1.1
// only (no HTTP/2), and, when a client CA is configured, verification of the API server's client
// certificate. Turns those settings into the options Node's TLS server takes, at start and on reload.
import { createSecureContext, type SecureContextOptions, type TlsOptions } from 'node:tls';

export const TLS_MIN_VERSIONS = ['TLSv1.2', 'TLSv1.3'] as const;
export type TlsMinVersion = (typeof TLS_MIN_VERSIONS)[number];

/**
 * TLS 1.3 suites, then TLS 1.2 suites with forward secrecy and AEAD only (Mozilla's "intermediate"
 * list, without DHE). Node's default list also allows CBC and DHE suites for TLS 1.2. Go's
 * crypto/tls, which the API server uses, supports every suite here, for ECDSA and RSA certificates.
 */
export const DEFAULT_CIPHERS = [
  'TLS_AES_128_GCM_SHA256',
  'TLS_AES_256_GCM_SHA384',
  'TLS_CHACHA20_POLY1305_SHA256',
  'ECDHE-ECDSA-AES128-GCM-SHA256',
  'ECDHE-RSA-AES128-GCM-SHA256',
  'ECDHE-ECDSA-AES256-GCM-SHA384',
  'ECDHE-RSA-AES256-GCM-SHA384',
  'ECDHE-ECDSA-CHACHA20-POLY1305',
  'ECDHE-RSA-CHACHA20-POLY1305',
].join(':');

export interface TlsPolicy {
  minVersion: TlsMinVersion;
  /** An OpenSSL cipher list (TLS 1.3 suite names may be mixed in). */
  ciphers: string;
}

export const DEFAULT_TLS_POLICY: TlsPolicy = Object.freeze({ minVersion: 'TLSv1.2', ciphers: DEFAULT_CIPHERS });

export class TlsPolicyError extends Error {
  override name = 'TlsPolicyError';
}

export function parseMinVersion(text: string): TlsMinVersion {
  const found = TLS_MIN_VERSIONS.find((version) => version.toLowerCase() === text.trim().toLowerCase());
  if (found === undefined) throw new TlsPolicyError(`TLS minimum version must be one of ${TLS_MIN_VERSIONS.join(', ')}, got ${text}`);
  return found;
}

/** Check that OpenSSL accepts a cipher list, so a typo stops start-up instead of every handshake. */
export function checkCiphers(ciphers: string): string {
  const trimmed = ciphers.trim();
  if (trimmed === '') throw new TlsPolicyError('the cipher list is empty');
  try {
    createSecureContext({ ciphers: trimmed });
  } catch (error) {
    throw new TlsPolicyError(`OpenSSL rejects the cipher list "${trimmed}": ${(error as Error).message}`);
  }
  return trimmed;
}

export interface ServingPair {
  cert: string;
  key: string;
}

/** What a secure context is made of; also what `server.setSecureContext` takes on a reload. */
export function secureContextOptions(policy: TlsPolicy, serving: ServingPair, clientCa: string | undefined): SecureContextOptions {
  return {
    cert: serving.cert,
    key: serving.key,
    minVersion: policy.minVersion,
    ciphers: policy.ciphers,
    honorCipherOrder: true,
    ...(clientCa === undefined ? {} : { ca: clientCa }),
  };
}

/**
 * Options for the HTTPS server. Client verification is fixed when the server is created
 * (`requestCert`/`rejectUnauthorized`); the CA bundle itself can be swapped by a reload.
 */
export function serverTlsOptions(policy: TlsPolicy, serving: ServingPair, clientCa: string | undefined): TlsOptions {
  return {
    ...secureContextOptions(policy, serving, clientCa),
    // The API server speaks HTTP/1.1 to webhooks happily; offering only it keeps HTTP/2's larger
    // attack surface (rapid reset, stream floods) closed.
    ALPNProtocols: ['http/1.1'],
    ...(clientCa === undefined ? {} : { requestCert: true, rejectUnauthorized: true }),
  };
}
