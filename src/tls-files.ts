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
  let x509: X509Certificate;
  try {
    x509 = new X509Certificate(cert);
  } catch (error) {
    throw new CertificateError(`${certPath} is not a PEM certificate: ${(error as Error).message}`);
  }
  try {
    if (!x509.checkPrivateKey(createPrivateKey(key))) throw new Error('the key does not belong to the certificate');
    createSecureContext({ cert, key });
  } catch (error) {
    throw new CertificateError(`${keyPath} does not match ${certPath}: ${(error as Error).message}`);
  }
  return { cert, key, notAfter: new Date(x509.validTo) };
}

export type CertificateListener = (certificate: ServingCertificate) => void;

export class FileCertificateSource {
  #current: ServingCertificate;
  #watcher: FileWatcher | undefined;
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
    return source;
  }

  current(): ServingCertificate {
    return this.#current;
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
    } catch (error) {
      // Half-written files during a rotation land here; the next change event retries.
      this.log.warn({ err: (error as Error).message }, 'serving certificate reload failed; keeping the current one');
    }
  }

  close(): void {
    this.#watcher?.close();
  }
}
