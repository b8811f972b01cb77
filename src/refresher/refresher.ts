// Owns a running refresher: leader election on a Lease (only the leader watches and writes; a
// standby waits), the reconciler while leading, ECR tokens, metrics and the probe endpoints, closable
// as one (close stops writing first, then releases the Lease so a standby takes over at once).
// Signals stay in the CLI (src/cli/refresh.ts).
import { CoordinationV1Api, type KubeConfig } from '@kubernetes/client-node';
import { LeaderElector, type LeaderElectionOptions } from '../kube/leader-election.js';
import type { Logger } from '../log.js';
import { startMetricsServer, startPlainHttpServer, type MetricsServer } from '../metrics.js';
import type { Config } from '../webhook/config.js';
import type { Clock } from './clock.js';
import { EcrTokens, type EcrTokensOptions } from './ecr-tokens.js';
import { Reconciler, type ReconcilerOptions } from './reconciler.js';
import { createRefresherMetrics, type RefresherMetrics } from './refresher-metrics.js';

export interface RefresherOptions {
  kubeConfig: KubeConfig;
  config: Config;
  log: Logger;
  /** Where the Lease lives (the refresher's own namespace, POD_NAMESPACE). */
  namespace: string;
  leaseName: string;
  /** Leader identity (POD_NAME). */
  identity: string;
  /** Plain-HTTP /metrics (port 0 picks a free one); omitted = off. */
  metrics?: { host: string; port: number };
  /** Plain-HTTP /healthz and /readyz; omitted = off. */
  health?: { host: string; port: number };
  clock?: Clock;
  tokens?: Pick<EcrTokensOptions, 'maxAttempts' | 'failureBackoffInitialMs' | 'failureBackoffMaxMs'>;
  reconciler?: Pick<ReconcilerOptions, 'backoffInitialMs' | 'backoffMaxMs' | 'resyncIntervalMs' | 'workers' | 'informer'>;
  leaderElection?: Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs'>;
}

export interface RunningRefresher {
  metrics: RefresherMetrics;
  metricsPort?: number;
  healthPort?: number;
  isLeader(): boolean;
  /** Leading and through the first full pass, or a standby. */
  isReady(): boolean;
  close(): Promise<void>;
}

export async function startRefresher(options: RefresherOptions): Promise<RunningRefresher> {
  const { log, config } = options;
  const metrics = createRefresherMetrics();
  const clock = options.clock;
  const tokens = new EcrTokens({
    log,
    refreshBeforeMs: config.pullSecrets.refreshBeforeMs,
    ...(clock ? { now: () => clock.now() } : {}),
    ...options.tokens,
    onCall: (operation, result, seconds) => metrics.observeAwsCall(operation, result, seconds),
  });
  let reconciler: Reconciler | undefined;
  let closed = false;
  // The reconciler goes on a chain, so a quick lose-and-win never runs two at once.
  let transition: Promise<void> = Promise.resolve();
  const elector = new LeaderElector({
    api: options.kubeConfig.makeApiClient(CoordinationV1Api),
    namespace: options.namespace,
    name: options.leaseName,
    identity: options.identity,
    log,
    ...options.leaderElection,
    onStartedLeading: () => {
      metrics.setLeader(true);
      transition = transition.then(() => {
        if (closed || !elector.isLeader()) return;
        reconciler = Reconciler.start({
          kubeConfig: options.kubeConfig,
          config,
          log,
          tokens,
          metrics,
          isLeader: () => elector.isLeader() && !closed,
          ...(clock ? { clock } : {}),
          ...options.reconciler,
        });
      });
    },
    onStoppedLeading: () => {
      metrics.setLeader(false);
      const stopping = reconciler;
      reconciler = undefined;
      transition = transition.then(() => stopping?.close());
    },
  });
  // A standby has nothing to be ready for, and must be ready for a rollout to proceed past it.
  const isReady = () => !closed && (!elector.isLeader() || reconciler?.isSynced() === true);

  let metricsServer: MetricsServer | undefined;
  let healthServer: MetricsServer | undefined;
  try {
    if (options.metrics) metricsServer = await startMetricsServer(metrics, options.metrics.host, options.metrics.port, log);
    if (options.health) {
      const json = (status: number, body: object) => ({ status, contentType: 'application/json', body: JSON.stringify(body) });
      healthServer = await startPlainHttpServer(
        {
          '/healthz': () => json(200, { status: 'ok' }),
          '/readyz': () => {
            const ready = isReady();
            return json(ready ? 200 : 503, { status: ready ? 'ready' : 'not ready', leader: elector.isLeader() });
          },
        },
        options.health.host,
        options.health.port,
        log,
        'health',
      );
    }
  } catch (error) {
    await metricsServer?.close();
    tokens.close();
    throw error;
  }
  elector.start();
  log.info({ lease: options.leaseName, namespace: options.namespace, identity: options.identity, registries: config.pullSecrets.registries.length }, 'refresher started');

  let closing: Promise<void> | undefined;
  const close = async () => {
    closed = true;
    // Stop writing before giving up the Lease: a successor must never overlap with our last writes.
    const stopping = reconciler;
    reconciler = undefined;
    await transition;
    await stopping?.close();
    await elector.stop();
    tokens.close();
    await metricsServer?.close();
    await healthServer?.close();
    log.info('refresher stopped');
  };
  return {
    metrics,
    ...(metricsServer ? { metricsPort: metricsServer.port } : {}),
    ...(healthServer ? { healthPort: healthServer.port } : {}),
    isLeader: () => elector.isLeader(),
    isReady,
    close: () => (closing ??= close()),
  };
}
