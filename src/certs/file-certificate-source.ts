// Owns a serving certificate read from PEM files (cert-manager, `certs`, local runs): load, check the
// pair, and reload when the files change so a rotation needs no restart. A bad pair on disk never
// replaces a good one in memory.
import { watchFiles, type FileWatcher } from '../files/watch-files.js';
import type { Logger } from '../log.js';
import { DAY_MS, isNearExpiry, readCertificatePair, type CertificateListener, type CertificateSource, type ServingCertificate } from './certificate-source.js';

const EXPIRY_CHECK_INTERVAL_MS = 6 * 60 * 60 * 1000;

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
