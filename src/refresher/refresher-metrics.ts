// Owns the refresher's Prometheus metrics (prefix buildkite_ecr_injector_refresher_): reconciles by
// result, per namespace the seconds until the earliest token expiry and the last success, namespaces
// by state, AWS call latency, and whether this replica leads. Served by the shared /metrics listener
// (src/metrics.ts) on the refresher's own port.
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import { METRIC_PREFIX, createRegistry, type RegistryOptions } from '../metrics.js';
import type { PullSecretState } from '../webhook/pull-secret-status.js';
import type { AwsCallResult } from './ecr-tokens.js';

export const REFRESHER_PREFIX = `${METRIC_PREFIX}refresher_`;

/** What one reconcile of a namespace did. */
export type RefreshResult = 'written' | 'unchanged' | 'failed' | 'unmanaged' | 'removed';
const RESULTS: RefreshResult[] = ['written', 'unchanged', 'failed', 'unmanaged', 'removed'];
const STATES: PullSecretState[] = ['ready', 'failing', 'unmanaged'];

/** What the metrics read at every scrape: one entry per namespace that should have a pull Secret. */
export interface NamespaceReport {
  state: PullSecretState;
  expiresAt: Date | undefined;
  lastSuccess: Date | undefined;
}

export interface RefresherMetrics {
  readonly registry: Registry;
  countRefresh(result: RefreshResult): void;
  observeAwsCall(operation: string, result: AwsCallResult, seconds: number): void;
  setLeader(leading: boolean): void;
  /** Read the per-namespace reports (and the clock for "seconds until") at every scrape. */
  track(reports: () => ReadonlyMap<string, NamespaceReport>, now: () => number): void;
}

export function createRefresherMetrics(options: RegistryOptions = {}): RefresherMetrics {
  const registry = createRegistry(options);
  let reports: () => ReadonlyMap<string, NamespaceReport> = () => new Map();
  let now = () => Date.now();

  const refreshes = new Counter({
    name: `${REFRESHER_PREFIX}refreshes_total`,
    help: 'Namespace reconciles by result: written (Secret created or updated), unchanged, failed, unmanaged (a Secret of that name is not ours; left alone), removed (a managed Secret deleted).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of RESULTS) refreshes.inc({ result }, 0);
  new Gauge({
    name: `${REFRESHER_PREFIX}secret_expiry_seconds`,
    help: 'Seconds until the earliest token in the namespace pull Secret expires (negative once expired).',
    labelNames: ['namespace'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [namespace, report] of reports()) {
        if (report.expiresAt) this.set({ namespace }, Math.round((report.expiresAt.getTime() - now()) / 1000));
      }
    },
  });
  new Gauge({
    name: `${REFRESHER_PREFIX}last_success_timestamp_seconds`,
    help: 'Unix time the namespace pull Secret was last reconciled without error.',
    labelNames: ['namespace'] as const,
    registers: [registry],
    collect() {
      this.reset();
      for (const [namespace, report] of reports()) if (report.lastSuccess) this.set({ namespace }, report.lastSuccess.getTime() / 1000);
    },
  });
  new Gauge({
    name: `${REFRESHER_PREFIX}namespaces`,
    help: 'Namespaces that should have a pull Secret, by state: ready, failing (last attempt failed), unmanaged (a Secret of that name is not ours).',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const counts = new Map<string, number>(STATES.map((state) => [state, 0]));
      for (const report of reports().values()) counts.set(report.state, (counts.get(report.state) ?? 0) + 1);
      for (const [state, count] of counts) this.set({ state }, count);
    },
  });
  const aws = new Histogram({
    name: `${REFRESHER_PREFIX}aws_request_duration_seconds`,
    help: 'AWS calls (SDK retries included) by operation and result: success, throttled, error.',
    labelNames: ['operation', 'result'] as const,
    buckets: [0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
    registers: [registry],
  });
  const leader = new Gauge({ name: `${REFRESHER_PREFIX}leader`, help: '1 while this replica holds the refresher Lease, else 0.', registers: [registry] });
  leader.set(0);

  return {
    registry,
    countRefresh: (result) => refreshes.inc({ result }),
    observeAwsCall: (operation, result, seconds) => aws.observe({ operation, result }, seconds),
    setLeader: (leading) => leader.set(leading ? 1 : 0),
    track(next, clock) {
      reports = next;
      now = clock;
    },
  };
}
