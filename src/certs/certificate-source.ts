// Owns what a serving certificate is, wherever it comes from: a checked PEM pair with its dates, the
// CertificateSource interface the HTTPS server reads it through (files, or the self-signed mode's
// Secret), and when a certificate nobody renewed deserves a warning.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';

export interface ServingCertificate {
  cert: string;
  key: string;
  notAfter: Date;
  notBefore?: Date;
}

export class CertificateError extends Error {
  override name = 'CertificateError';
}

/** Read and check a certificate/key pair: both parse, and the key belongs to the certificate. */
export async function readCertificatePair(certPath: string, keyPath: string): Promise<ServingCertificate> {
  let cert: string;
  let key: string;
  try {
    [cert, key] = await Promise.all([readFile(certPath, 'utf8'), readFile(keyPath, 'utf8')]);
  } catch (error) {
    throw new CertificateError(`cannot read TLS files: ${(error as Error).message}`);
  }
  return checkCertificatePair(cert, key, { certLabel: certPath, keyLabel: keyPath });
}

/** Check a PEM pair held in memory (a Secret's `tls.crt`/`tls.key`): both parse and belong together. */
export function checkCertificatePair(cert: string, key: string, labels = { certLabel: 'tls.crt', keyLabel: 'tls.key' }): ServingCertificate {
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new CertificateError(`${labels.certLabel} is not a PEM certificate: ${(error as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
    createSecureContext({ cert, key });
  } catch (error) {
    throw new CertificateError(`${labels.keyLabel} does not match ${labels.certLabel}: ${(error as Error).message}`);
  }
  return { cert, key, notAfter: new Date(x509.validTo), notBefore: new Date(x509.validFrom) };
}

/** Where the webhook publishes its public serving chain (`doctor` reads it through the Service proxy). */
export const CERTIFICATE_PATH = '/certificate';

// A PEM block of a certificate: what may be shown to anyone (never a key that shares the file).
const CERTIFICATE_BLOCK = /-----BEGIN CERTIFICATE-----\r?\n[A-Za-z0-9+/=\r\n]+?-----END CERTIFICATE-----/g;

/** The certificate blocks of a PEM text (leaf first, as served), without anything else it holds. */
export function certificateBlocks(pem: string): string[] {
  return pem.match(CERTIFICATE_BLOCK) ?? [];
}

export const DAY_MS = 24 * 60 * 60 * 1000;

/**
 * How long before expiry a certificate nobody renewed deserves a warning: 30 days, or a quarter of
 * its lifetime for short-lived ones. cert-manager renews at a third of the lifetime left by default,
 * so a quarter only fires when that renewal has not reached us.
 */
export function expiryWarningMs(certificate: Pick<ServingCertificate, 'notBefore' | 'notAfter'>): number {
  const lifetime = certificate.notBefore ? certificate.notAfter.getTime() - certificate.notBefore.getTime() : Infinity;
  return Math.min(30 * DAY_MS, lifetime / 4);
}

/** True when `certificate` expires within its warning window (or already has). */
export function isNearExpiry(certificate: Pick<ServingCertificate, 'notBefore' | 'notAfter'>, now: Date): boolean {
  return certificate.notAfter.getTime() - now.getTime() <= expiryWarningMs(certificate);
}

/** Anything that hands out the serving certificate: files on disk, or a Kubernetes Secret. */
export interface CertificateSource {
  /** The certificate being served, or undefined before the first valid one arrived. */
  current(): ServingCertificate | undefined;
  onChange(listener: CertificateListener): void;
  close(): void | Promise<void>;
}

export type CertificateListener = (certificate: ServingCertificate) => void;
