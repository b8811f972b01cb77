// Owns a serving certificate read from PEM files (cert-manager, `certs`, local runs): load, check the
// pair, and reload when the files change so a rotation needs no restart. A bad pair on disk never
// replaces a good one in memory.
import { X509Certificate, createPrivateKey } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { createSecureContext } from 'node:tls';
import type { Logger } from './log.js';
import { watchFiles, type FileWatcher } from './watch-files.js';

export interface ServingCertificate {
  cert: string;
  key: string;
  notAfter: Date;
  notBefore?: Date;
}

const EXPIRY_CHECK_INTERVAL_MS = 6 * 60 * 60 * 1000;

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

const DAY_MS = 24 * 60 * 60 * 1000;

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

export class FileCertificateSource implements CertificateSource {
  #current: ServingCertificate;
  #watcher: FileWatcher | undefined;
  #expiryTimer: NodeJS.Timeout | undefined;
  readonly #listeners: CertificateListener[] = [];

  private constructor(
    readonly certPath: string,
    readonly keyPath: string,
    private readonly log: Logger,
    initial: ServingCertificate,
  ) {
    this.#current = initial;
  }

  static async open(certPath: string, keyPath: string, log: Logger, watchIntervalMs?: number): Promise<FileCertificateSource> {
    const source = new FileCertificateSource(certPath, keyPath, log, await readCertificatePair(certPath, keyPath));
    source.#watcher = watchFiles([certPath, keyPath], () => void source.reload(), watchIntervalMs);
    log.info({ certPath, notAfter: source.#current.notAfter.toISOString() }, 'serving certificate loaded');
    source.warnIfNearExpiry();
    // Files mode depends on someone else renewing: re-check every few hours so the warning repeats.
    source.#expiryTimer = setInterval(() => source.warnIfNearExpiry(), EXPIRY_CHECK_INTERVAL_MS).unref();
    return source;
  }

  current(): ServingCertificate {
    return this.#current;
  }

  /** Log a warning when the served certificate is close to expiry; true when it did. */
  warnIfNearExpiry(now = new Date()): boolean {
    const certificate = this.#current;
    if (!isNearExpiry(certificate, now)) return false;
    const daysLeft = Math.floor((certificate.notAfter.getTime() - now.getTime()) / DAY_MS);
    this.log.warn(
      { certPath: this.certPath, notAfter: certificate.notAfter.toISOString(), daysLeft },
      daysLeft < 0 ? 'serving certificate has expired and was not renewed' : 'serving certificate expires soon and has not been renewed',
    );
    return true;
  }

  onChange(listener: CertificateListener): void {
    this.#listeners.push(listener);
  }

  async reload(): Promise<void> {
    try {
      const next = await readCertificatePair(this.certPath, this.keyPath);
      if (next.cert === this.#current.cert && next.key === this.#current.key) return;
      this.#current = next;
      this.log.info({ certPath: this.certPath, notAfter: next.notAfter.toISOString() }, 'serving certificate reloaded');
      for (const listener of this.#listeners) listener(next);
      this.warnIfNearExpiry();
    } catch (error) {
      // Half-written files during a rotation land here; the next change event retries.
      this.log.warn({ err: (error as Error).message }, 'serving certificate reload failed; keeping the current one');
    }
  }

  close(): void {
    if (this.#expiryTimer) clearInterval(this.#expiryTimer);
    this.#watcher?.close();
  }
}
