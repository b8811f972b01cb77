// Owns leader election through a coordination.k8s.io/v1 Lease, the way client-go's leaderelection
// does it (client-node 1.4 ships no helper). Every candidate tries every `retryPeriodMs`:
//   - no Lease, or an empty holder      -> take it;
//   - held by us                        -> renew it (new renewTime);
//   - held by someone else              -> take it only once the record has not changed for a whole
//     leaseDuration *as measured on our own clock* since we first saw it that way. Comparing the
//     holder's renewTime with our clock would trust two clocks to agree; this trusts neither.
// Every write is a create (409 if someone was faster) or a PUT carrying the resourceVersion we read
// (409 if the Lease changed since), so two candidates can never both believe they won the same round.
// A leader that cannot renew for `renewDeadlineMs` (shorter than the lease duration) steps down
// before anyone else may take over. On stop the leader releases the Lease so a successor need not wait.
import { V1MicroTime, type CoordinationV1Api, type V1Lease } from '@kubernetes/client-node';
import { isApiStatus } from './api-status.js';
import type { Logger } from '../log.js';

export interface LeaderElectionOptions {
  api: CoordinationV1Api;
  namespace: string;
  name: string;
  /** This candidate's identity (the Pod name). */
  identity: string;
  log: Logger;
  leaseDurationMs?: number;
  renewDeadlineMs?: number;
  retryPeriodMs?: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  onStartedLeading?: () => void;
  onStoppedLeading?: () => void;
}

type Attempt = 'leading' | 'held-by-other' | 'failed';

/** The parts of the record whose change proves the holder is alive. */
function recordKey(lease: V1Lease): string {
  const spec = lease.spec ?? {};
  return JSON.stringify([spec.holderIdentity ?? '', String(spec.renewTime ?? ''), spec.leaseTransitions ?? 0, lease.metadata?.resourceVersion]);
}

export class LeaderElector {
  readonly #options: Required<Omit<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading'>> &
    Pick<LeaderElectionOptions, 'onStartedLeading' | 'onStoppedLeading'>;
  #leading = false;
  #lastRenewed = 0;
  #observedKey: string | undefined;
  #observedAt = 0;
  #timer: NodeJS.Timeout | undefined;
  #stopped = true;
  #inFlight: Promise<boolean> | undefined;

  constructor(options: LeaderElectionOptions) {
    this.#options = {
      leaseDurationMs: 15_000,
      renewDeadlineMs: 10_000,
      retryPeriodMs: 2_000,
      now: Date.now,
      ...options,
    };
    const { leaseDurationMs, renewDeadlineMs, retryPeriodMs } = this.#options;
    if (!(retryPeriodMs < renewDeadlineMs && renewDeadlineMs < leaseDurationMs)) {
      throw new Error('leader election needs retryPeriod < renewDeadline < leaseDuration');
    }
  }

  isLeader(): boolean {
    return this.#leading;
  }

  /** Start trying (and, once leading, renewing) every retry period. */
  start(): void {
    if (!this.#stopped) return;
    this.#stopped = false;
    const loop = async () => {
      await this.tryAcquireOrRenew();
      if (!this.#stopped) this.#timer = setTimeout(() => void loop(), this.#options.retryPeriodMs);
    };
    void loop();
  }

  /** One round: acquire or renew. Returns whether this candidate leads afterwards. */
  async tryAcquireOrRenew(): Promise<boolean> {
    // Rounds never overlap: a test calling this while the loop runs waits for the loop's round.
    while (this.#inFlight) await this.#inFlight.catch(() => undefined);
    const round = this.#round();
    this.#inFlight = round;
    try {
      return await round;
    } finally {
      this.#inFlight = undefined;
    }
  }

  async #round(): Promise<boolean> {
    const attempt = await this.#attempt().catch((error: unknown) => {
      this.#options.log.warn({ lease: this.#options.name, err: (error as Error).message }, 'leader election round failed');
      return 'failed' as const;
    });
    const now = this.#options.now();
    if (attempt === 'leading') {
      this.#lastRenewed = now;
      this.#setLeading(true);
    } else if (this.#leading && (attempt === 'held-by-other' || now - this.#lastRenewed >= this.#options.renewDeadlineMs)) {
      this.#setLeading(false);
    }
    return this.#leading;
  }

  async #attempt(): Promise<Attempt> {
    const { api, namespace, name, identity } = this.#options;
    const now = this.#options.now();
    let lease: V1Lease;
    try {
      lease = await api.readNamespacedLease({ name, namespace });
    } catch (error) {
      if (!isApiStatus(error, 404)) throw error;
      try {
        await api.createNamespacedLease({ namespace, body: this.#leaseBody(undefined, now) });
        return 'leading';
      } catch (createError) {
        if (isApiStatus(createError, 409)) return 'failed'; // another candidate created it first
        throw createError;
      }
    }

    const holder = lease.spec?.holderIdentity ?? '';
    const key = recordKey(lease);
    if (key !== this.#observedKey) {
      this.#observedKey = key;
      this.#observedAt = now;
    }
    if (holder !== '' && holder !== identity) {
      const durationMs = (lease.spec?.leaseDurationSeconds ?? this.#options.leaseDurationMs / 1000) * 1000;
      if (now - this.#observedAt < durationMs) return 'held-by-other';
    }
    try {
      const updated = await api.replaceNamespacedLease({ name, namespace, body: this.#leaseBody(lease, now) });
      this.#observedKey = recordKey(updated);
      this.#observedAt = now;
      return 'leading';
    } catch (error) {
      if (isApiStatus(error, 409)) return 'failed'; // the Lease changed since we read it: re-read next round
      throw error;
    }
  }

  #leaseBody(current: V1Lease | undefined, now: number): V1Lease {
    const { identity, namespace, name, leaseDurationMs } = this.#options;
    const spec = current?.spec ?? {};
    const taking = spec.holderIdentity !== identity;
    return {
      apiVersion: 'coordination.k8s.io/v1',
      kind: 'Lease',
      metadata: current?.metadata ? { ...current.metadata, name, namespace } : { name, namespace },
      spec: {
        ...spec,
        holderIdentity: identity,
        leaseDurationSeconds: Math.ceil(leaseDurationMs / 1000),
        // client-node serialises V1MicroTime with the microseconds the API server insists on.
        acquireTime: taking || !spec.acquireTime ? new V1MicroTime(now) : new V1MicroTime(new Date(spec.acquireTime).getTime()),
        renewTime: new V1MicroTime(now),
        leaseTransitions: (spec.leaseTransitions ?? 0) + (taking && current ? 1 : 0),
      },
    };
  }

  #setLeading(leading: boolean): void {
    if (leading === this.#leading) return;
    this.#leading = leading;
    this.#options.log.info({ lease: this.#options.name, identity: this.#options.identity }, leading ? 'became leader' : 'stopped leading');
    if (leading) this.#options.onStartedLeading?.();
    else this.#options.onStoppedLeading?.();
  }

  /** Stop the loop; a leader releases the Lease (empty holder) so another candidate takes over at once. */
  async stop(): Promise<void> {
    this.#stopped = true;
    if (this.#timer) clearTimeout(this.#timer);
    while (this.#inFlight) await this.#inFlight.catch(() => undefined);
    if (!this.#leading) return;
    this.#setLeading(false);
    const { api, namespace, name, identity, log } = this.#options;
    try {
      const lease = await api.readNamespacedLease({ name, namespace });
      if (lease.spec?.holderIdentity !== identity) return;
      const now = this.#options.now();
      await api.replaceNamespacedLease({
        name,
        namespace,
        body: { ...lease, spec: { ...lease.spec, holderIdentity: undefined, leaseDurationSeconds: 1, renewTime: new V1MicroTime(now) } },
      });
    } catch (error) {
      log.warn({ lease: name, err: (error as Error).message }, 'could not release the lease; the next leader waits for it to expire');
    }
  }
}
