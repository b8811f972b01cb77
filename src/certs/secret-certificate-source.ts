// Owns the serving certificate as every replica sees it in self-signed mode: `tls.crt`/`tls.key` of
// the TLS Secret, re-read on every watch event and resync. Like the file source, a missing, broken or
// expired pair never replaces a good one in memory: a deleted Secret leaves the replica serving what
// it has until the leader writes a new one. It also remembers the last CA state it saw, so a new
// leader can put back a Secret that was deleted without changing the CA.
import type { TlsState } from './cert-authority.js';
import type { CertificateMetrics } from './cert-metrics.js';
import { TlsSecretStore } from './cert-secret.js';
import { coalesce } from '../kube/coalesce.js';
import type { Logger } from '../log.js';
import { checkCertificatePair, type CertificateListener, type CertificateSource, type ServingCertificate } from './certificate-source.js';
import { X509Certificate } from 'node:crypto';

export class SecretCertificateSource implements CertificateSource {
  #current: ServingCertificate | undefined;
  #lastState: TlsState | undefined;
  #missingLogged = false;
  readonly #listeners: CertificateListener[] = [];
  readonly refresh: () => Promise<void>;

  constructor(
    private readonly store: TlsSecretStore,
    private readonly log: Logger,
    private readonly metrics: CertificateMetrics,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.refresh = coalesce(() => this.#refresh());
  }

  current(): ServingCertificate | undefined {
    return this.#current;
  }

  /** The CA state of the last Secret this replica read, for restoring a deleted Secret. */
  lastState(): TlsState | undefined {
    return this.#lastState;
  }

  onChange(listener: CertificateListener): void {
    this.#listeners.push(listener);
  }

  async #refresh(): Promise<void> {
    let stored;
    try {
      stored = await this.store.read();
    } catch (error) {
      this.log.warn({ secret: this.store.name, err: (error as Error).message }, 'cannot read the TLS Secret; keeping the current certificate');
      return;
    }
    if (!stored) {
      if (!this.#missingLogged) this.log.warn({ secret: this.store.name }, 'TLS Secret not found; keeping the current certificate until the leader writes one');
      this.#missingLogged = true;
      return;
    }
    this.#missingLogged = false;
    if (stored.state.ca) this.#lastState = stored.state;
    this.#recordCaNotAfter(stored.state);
    const serving = stored.state.serving;
    if (!serving || (serving.cert === this.#current?.cert && serving.key === this.#current.key)) return;
    let next: ServingCertificate;
    try {
      next = checkCertificatePair(serving.cert, serving.key);
    } catch (error) {
      this.log.warn({ secret: this.store.name, err: (error as Error).message }, 'TLS Secret holds an unusable pair; keeping the current certificate');
      return;
    }
    if (next.notAfter.getTime() <= this.now().getTime()) {
      this.log.warn({ secret: this.store.name, notAfter: next.notAfter.toISOString() }, 'TLS Secret holds an expired certificate; keeping the current one');
      return;
    }
    this.#current = next;
    this.log.info({ secret: this.store.name, notAfter: next.notAfter.toISOString() }, 'serving certificate loaded from the Secret');
    for (const listener of this.#listeners) listener(next);
  }

  #recordCaNotAfter(state: TlsState): void {
    if (!state.ca) return;
    try {
      this.metrics.setCertificateNotAfter('ca', new Date(new X509Certificate(state.ca.cert).validTo));
    } catch {
      // A broken CA is the leader's to replace; nothing to record.
    }
  }

  close(): void {
    this.#listeners.length = 0;
  }
}
