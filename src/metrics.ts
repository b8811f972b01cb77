// Owns the Prometheus metrics: one prom-client Registry per webhook (never the global one, so tests
// can build several), the metric definitions, and a tiny plain-HTTP server that exposes them on
// their own port, away from the HTTPS admission port.
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';
import type { AdmissionOutcome } from './admission.js';
import type { CertificateMetrics } from './cert-metrics.js';
import type { Logger } from './log.js';
import type { NamespaceLabelSource } from './namespaces.js';

export const METRIC_PREFIX = 'buildkite_ecr_injector_';

/** How a namespace's labels were found for one admission (the `result` label of lookups). */
export type LookupResult = 'hit' | 'miss' | 'fetched' | 'not-found' | 'failed';
const LOOKUP_RESULTS: LookupResult[] = ['hit', 'miss', 'fetched', 'not-found', 'failed'];

/** Every state a label source reports; the state gauge has one series per state, 1 for the current. */
const SOURCE_STATES = ['loading', 'synced', 'reconnecting', 'stale', 'stopped'];

// Admissions take tens of microseconds when the cache answers; the slow path is bounded by ~1 s.
const DURATION_BUCKETS = [0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5];

export interface Metrics extends CertificateMetrics {
  readonly registry: Registry;
  observeAdmission(outcome: AdmissionOutcome, durationSeconds: number): void;
  observeLookup(result: LookupResult): void;
  informerRestarted(): void;
  /** Report this source's state and last sync time at every scrape. */
  trackNamespaceSource(source: NamespaceLabelSource): void;
}

export interface MetricsOptions {
  /** prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

export function createMetrics(options: MetricsOptions = {}): Metrics {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  let source: NamespaceLabelSource | undefined;

  const admissions = new Counter({
    name: `${METRIC_PREFIX}admissions_total`,
    help: 'Admission requests answered, by decision (injected, unchanged, skipped) and reason.',
    labelNames: ['decision', 'reason'] as const,
    registers: [registry],
  });
  const duration = new Histogram({
    name: `${METRIC_PREFIX}admission_duration_seconds`,
    help: 'Time from receiving an AdmissionReview to having its answer, in seconds.',
    buckets: DURATION_BUCKETS,
    registers: [registry],
  });
  const errors = new Counter({
    name: `${METRIC_PREFIX}admission_errors_total`,
    help: 'Admissions where an unexpected error was caught; the Pod was admitted unchanged.',
    registers: [registry],
  });
  const lookups = new Counter({
    name: `${METRIC_PREFIX}namespace_lookups_total`,
    help: 'Namespace label lookups by result: hit (cache), miss (not cached, not read), fetched, not-found or failed (direct read).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of LOOKUP_RESULTS) lookups.inc({ result }, 0);
  const restarts = new Counter({
    name: `${METRIC_PREFIX}informer_restarts_total`,
    help: 'Times the namespace informer was restarted after an error.',
    registers: [registry],
  });
  new Gauge({
    name: `${METRIC_PREFIX}namespace_source_state`,
    help: 'State of the namespace label source: 1 for the current state, 0 for the others.',
    labelNames: ['state'] as const,
    registers: [registry],
    collect() {
      const current = source?.state();
      for (const state of new Set([...SOURCE_STATES, ...(current ? [current] : [])])) this.set({ state }, state === current ? 1 : 0);
    },
  });
  new Gauge({
    name: `${METRIC_PREFIX}namespace_source_last_sync_timestamp_seconds`,
    help: 'Unix time the namespace labels were last known to match the source (0 before the first sync).',
    registers: [registry],
    collect() {
      this.set((source?.lastSyncedAt?.()?.getTime() ?? 0) / 1000);
    },
  });
  const certificateNotAfter = new Gauge({
    name: `${METRIC_PREFIX}certificate_not_after_timestamp_seconds`,
    help: 'Unix time a certificate expires: kind="serving" (what this replica serves) or kind="ca" (the signing CA, self-signed mode).',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  const rotations = new Counter({
    name: `${METRIC_PREFIX}certificate_rotations_total`,
    help: 'Certificates replaced by the leader (renewal, CA rollover, or a new one after loss), by kind.',
    labelNames: ['kind'] as const,
    registers: [registry],
  });
  for (const kind of ['serving', 'ca']) rotations.inc({ kind }, 0);
  const caBundlePatches = new Counter({
    name: `${METRIC_PREFIX}ca_bundle_patches_total`,
    help: 'Times the leader wrote a new caBundle into the MutatingWebhookConfiguration.',
    registers: [registry],
  });
  const leader = new Gauge({
    name: `${METRIC_PREFIX}certificate_leader`,
    help: '1 while this replica holds the certificate Lease (self-signed mode), else 0.',
    registers: [registry],
  });
  leader.set(0);

  return {
    registry,
    observeAdmission(outcome, durationSeconds) {
      admissions.inc({ decision: outcome.audit.decision, reason: outcome.audit.reason });
      duration.observe(durationSeconds);
      if (outcome.error) errors.inc();
    },
    observeLookup(result) {
      lookups.inc({ result });
    },
    informerRestarted() {
      restarts.inc();
    },
    trackNamespaceSource(next) {
      source = next;
    },
    setCertificateNotAfter(kind, notAfter) {
      certificateNotAfter.set({ kind }, notAfter.getTime() / 1000);
    },
    countRotation(kind) {
      rotations.inc({ kind });
    },
    countCaBundlePatch() {
      caBundlePatches.inc();
    },
    setLeader(isLeader) {
      leader.set(isLeader ? 1 : 0);
    },
  };
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serve `GET /metrics` over plain HTTP (Prometheus scrapes it; it carries no secrets). */
export async function startMetricsServer(metrics: Metrics, host: string, port: number, log: Logger): Promise<MetricsServer> {
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n');
      return;
    }
    metrics.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': metrics.registry.contentType }).end(text),
      (error: unknown) => {
        log.error({ err: (error as Error).message }, 'collecting metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapes are short; an idle keep-alive connection must not hold shutdown.
  server.keepAliveTimeout = 5_000;
  server.listen(port, host);
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  log.info({ host, port: bound }, 'metrics listening');
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
