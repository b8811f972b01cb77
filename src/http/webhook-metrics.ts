// Owns the webhook's Prometheus metrics: admissions (consuming the core's outcome types), namespace
// label lookups and the label source's state, and the certificate hooks the certs/ code reports to.
// Served by the shared /metrics listener (src/metrics.ts).
import { Counter, Gauge, Histogram, type Registry } from 'prom-client';
import type { CertificateMetrics } from '../certs/cert-metrics.js';
import type { ConfigLoadResult } from '../files/config-file.js';
import { METRIC_PREFIX, createRegistry, type RegistryOptions } from '../metrics.js';
import type { AdmissionOutcome } from '../webhook/admission.js';
import type { NamespaceLabelSource } from '../webhook/namespace-labels.js';
import type { LookupResult } from './app.js';

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
  /** The config file was read: at start, by an applied reload, or refused (the last good config stays). */
  configLoaded(result: ConfigLoadResult, at: Date): void;
  /** Report this source's state and last sync time at every scrape. */
  trackNamespaceSource(source: NamespaceLabelSource): void;
}

export function createMetrics(options: RegistryOptions = {}): Metrics {
  const registry = createRegistry(options);
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
  const pullSecretWarnings = new Counter({
    name: `${METRIC_PREFIX}pull_secret_warnings_total`,
    help: 'Admissions that warned: the pull Secret the Pod gets is reported expired, failing or unmanaged by the refresher.',
    labelNames: ['problem'] as const,
    registers: [registry],
  });
  for (const problem of ['expired', 'failing', 'unmanaged']) pullSecretWarnings.inc({ problem }, 0);
  // Bounded: rule names come from the config file (rule="" when no rule matched).
  const byRule = new Counter({
    name: `${METRIC_PREFIX}admissions_by_rule_total`,
    help: 'Admissions the credential rules were evaluated for, by the rule that matched (rule="" for none) and decision.',
    labelNames: ['rule', 'decision'] as const,
    registers: [registry],
  });
  const reloads = new Counter({
    name: `${METRIC_PREFIX}config_reloads_total`,
    help: 'Config file reloads after a change on disk: result="applied", or "failed" (invalid; the last good config stays).',
    labelNames: ['result'] as const,
    registers: [registry],
  });
  for (const result of ['applied', 'failed']) reloads.inc({ result }, 0);
  const lastGoodConfig = new Gauge({
    name: `${METRIC_PREFIX}config_last_reload_success_timestamp_seconds`,
    help: 'Unix time the config in force was read (at start or by the last applied reload).',
    registers: [registry],
  });
  const configStale = new Gauge({
    name: `${METRIC_PREFIX}config_reload_failing`,
    help: '1 while the config file on disk is invalid and the last good config is in force, else 0.',
    registers: [registry],
  });
  configStale.set(0);
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

  // One child per (decision, reason), looked up by a string: inc({...}) hashes a label object on
  // every admission.
  const admissionChildren = new Map<string, ReturnType<typeof admissions.labels>>();
  const admissionSeries = (decision: string, reason: string): ReturnType<typeof admissions.labels> => {
    const key = `${decision} ${reason}`;
    let child = admissionChildren.get(key);
    if (child === undefined) {
      child = admissions.labels(decision, reason);
      admissionChildren.set(key, child);
    }
    return child;
  };

  return {
    registry,
    observeAdmission(outcome, durationSeconds) {
      admissionSeries(outcome.audit.decision, outcome.audit.reason).inc();
      duration.observe(durationSeconds);
      if (outcome.error) errors.inc();
      if (outcome.audit.pullSecretProblem) pullSecretWarnings.inc({ problem: outcome.audit.pullSecretProblem });
      if (outcome.audit.rule !== undefined) byRule.inc({ rule: outcome.audit.rule ?? '', decision: outcome.audit.decision });
    },
    observeLookup(result) {
      lookups.inc({ result });
    },
    informerRestarted() {
      restarts.inc();
    },
    configLoaded(result, at) {
      if (result !== 'initial') reloads.inc({ result });
      if (result === 'failed') {
        configStale.set(1);
      } else {
        configStale.set(0);
        lastGoodConfig.set(at.getTime() / 1000);
      }
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
