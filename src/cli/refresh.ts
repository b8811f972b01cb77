// Owns `refresh`: the ECR pull-Secret refresher as its own process (its own Deployment and
// ServiceAccount, so the webhook never holds Secret write access). Turns flags and the downward-API
// environment (POD_NAMESPACE for the Lease, POD_NAME as leader identity) into the refresher's
// options, and on SIGTERM/SIGINT stops writing and releases the Lease within --grace-period.
import closeWithGrace from 'close-with-grace';
import { hostname } from 'node:os';
import { loadConfig } from '../files/config-file.js';
import { createLogger } from '../log.js';
import { withExcludedNamespace } from '../webhook/config.js';
import { integerFlag, UsageError, type Flags } from './flags.js';

export const refreshUsage = `refresh flags:
  --config FILE          YAML config: pullSecrets.registries, refreshBefore, labelPrefix, excludedNamespaces, defaults
  --kubeconfig FILE      Kubernetes API credentials; in a Pod the in-cluster ServiceAccount is used without it
  --lease NAME           the Lease in POD_NAMESPACE for leader election (default buildkite-ecr-injector-refresher)
                         needs POD_NAMESPACE (and POD_NAME as leader identity) from the downward API
  --metrics-port N       plain-HTTP Prometheus /metrics port (default 9090, 0 = off)
  --metrics-host ADDR    metrics and probes listen address (default 0.0.0.0)
  --health-port N        plain-HTTP /healthz and /readyz port (default 8081, 0 = off)
  --grace-period SECS    how long SIGTERM waits for reconciles in flight and the Lease release (default 10)
  --log-level LEVEL      pino level (default info)
  AWS credentials: the SDK's default chain (IRSA, EKS Pod Identity, static keys); AWS_ENDPOINT_URL_ECR,
  AWS_ENDPOINT_URL_STS and AWS_ENDPOINT_URL are honoured
`;

export async function refresh(flags: Flags): Promise<void> {
  const log = createLogger({ level: flags['log-level'] ?? 'info' });
  const namespace = process.env.POD_NAMESPACE;
  if (!namespace) throw new UsageError('refresh needs POD_NAMESPACE (the downward API field metadata.namespace): the namespace of its Lease');
  // Excluded as the webhook excludes it: the two share a namespace in the manifests.
  const config = withExcludedNamespace(await loadConfig(flags.config), namespace);
  const metricsPort = integerFlag(flags, 'metrics-port', 9090, 0, 65535);
  const healthPort = integerFlag(flags, 'health-port', 8081, 0, 65535);
  const graceSeconds = integerFlag(flags, 'grace-period', 10, 1, 3600);
  // Loaded here, not at the top, so other commands (and --help) never load the Kubernetes client.
  const { loadKubeConfig } = await import('../kube/kube-config.js');
  let kubeConfig;
  try {
    kubeConfig = loadKubeConfig({ kubeconfigPath: flags.kubeconfig, inCluster: Boolean(process.env.KUBERNETES_SERVICE_HOST) });
  } catch (error) {
    throw new UsageError(`cannot load the Kubernetes client configuration: ${(error as Error).message}`);
  }
  if (!kubeConfig) throw new UsageError('refresh needs the Kubernetes API: run in a Pod or pass --kubeconfig FILE');
  if (config.pullSecrets.registries.length === 0) {
    log.warn('pullSecrets.registries is empty: only namespaces with the ecr-registries annotation get a pull Secret');
  }
  const host = flags['metrics-host'] ?? '0.0.0.0';
  // Loaded here, not at the top: the AWS SDK is heavy, and no other command needs it.
  const { startRefresher } = await import('../refresher/refresher.js');
  const refresher = await startRefresher({
    kubeConfig,
    config,
    log,
    namespace,
    leaseName: flags.lease ?? 'buildkite-ecr-injector-refresher',
    identity: process.env.POD_NAME || hostname(),
    ...(metricsPort === 0 ? {} : { metrics: { host, port: metricsPort } }),
    ...(healthPort === 0 ? {} : { health: { host, port: healthPort } }),
  });
  closeWithGrace({ delay: graceSeconds * 1000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'fatal error; shutting down');
    log.info({ signal }, 'stopping the refresher and releasing the Lease');
    await refresher.close();
    log.flush();
  });
}
