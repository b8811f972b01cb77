// Owns `serve`: turns flags and the downward-API environment (POD_NAMESPACE, POD_NAME) into the
// server's options, starts the HTTPS webhook, and drains it on SIGTERM/SIGINT (close-with-grace:
// signals are handled here and nowhere else).
import type { KubeConfig } from '@kubernetes/client-node';
import closeWithGrace from 'close-with-grace';
import { hostname } from 'node:os';
import type { TlsSettings } from '../certs/open.js';
import { DEFAULT_CONNECTION_LIMITS } from '../http/app.js';
import { DEFAULT_DRAIN_MS, startServer, type ServeOptions } from '../http/server.js';
import { checkCiphers, DEFAULT_TLS_POLICY, parseMinVersion, type TlsPolicy } from '../http/tls-policy.js';
import { createLogger, type Logger } from '../log.js';
import { parseConfig, withExcludedNamespace, type Config } from '../webhook/config.js';
import { integerFlag, UsageError, type Flags } from './flags.js';

export const serveUsage = `serve flags:
  --config FILE          YAML config (defaults built in), reloaded when it changes
  --port N               HTTPS port (default 8443)
  --host ADDR            listen address (default 0.0.0.0)
  --tls-mode MODE        files (--tls-cert/--tls-key), local (generate into --certs-dir), or
                         self-signed (CA + certificate kept in a Secret by an elected leader) (default files)
  --tls-cert FILE        PEM certificate, reloaded when it changes
  --tls-key FILE         PEM key, reloaded when it changes
  --certs-dir DIR        where --tls-mode local keeps its CA and certificate (default certs)
  --tls-secret NAME      self-signed: the Secret holding CA and certificate (default buildkite-ecr-injector-tls)
  --webhook-config NAME  self-signed: the MutatingWebhookConfiguration whose caBundle is kept (default buildkite-ecr-injector)
  --service NAME         self-signed: the Service the certificate is for (default buildkite-ecr-injector)
  --lease NAME           self-signed: the Lease for leader election (default buildkite-ecr-injector-leader)
                         self-signed mode needs POD_NAMESPACE (and POD_NAME as leader identity) from the downward API
  --namespaces FILE      YAML map of namespace -> labels, reloaded when it changes (local runs;
                         wins over --kubeconfig and in-cluster config for namespace labels when given)
  --kubeconfig FILE      Kubernetes API credentials: namespace labels (list + watch) and self-signed
                         certificates; in a Pod (KUBERNETES_SERVICE_HOST set) the in-cluster
                         ServiceAccount is used without this flag
  --metrics-port N       plain-HTTP Prometheus /metrics port (default 9090, 0 = off)
  --metrics-host ADDR    metrics listen address (default 0.0.0.0)
  --grace-period SECS    how long SIGTERM waits for in-flight requests (default 20); the first
                         min(5, SECS/2) seconds let open connections finish their requests
  --client-ca FILE       PEM CA bundle: only clients with a certificate it signed may connect
                         (the API server presents one via its AdmissionConfiguration); reloaded on change
  --tls-min-version V    TLSv1.2 or TLSv1.3 (default TLSv1.2)
  --tls-ciphers LIST     OpenSSL cipher list (default: TLS 1.3 suites and ECDHE AEAD suites for TLS 1.2)
  --max-connections N    open connections beyond N are closed at once (default 1000)
  --keep-alive-timeout SECS  idle time allowed between requests on one connection (default 95)
  --log-level LEVEL      pino level (default info)
`;

export async function serve(flags: Flags): Promise<void> {
  const log = createLogger({ level: flags['log-level'] ?? 'info' });
  // The webhook's own namespace (downward API) is always excluded, so it can never block itself.
  const ownNamespace = process.env.POD_NAMESPACE || undefined;
  const adjust = (loaded: Config): Config => withExcludedNamespace(loaded, ownNamespace);
  // A config file is followed on disk (startServer loads it first: an invalid one fails start-up).
  const config: ServeOptions['config'] = flags.config ? { file: flags.config, adjust } : adjust(parseConfig({}));
  const mode = flags['tls-mode'] ?? 'files';
  let tls: TlsSettings;
  if (mode === 'files') {
    if (!flags['tls-cert'] || !flags['tls-key']) throw new UsageError('--tls-mode files needs --tls-cert FILE and --tls-key FILE');
    tls = { mode, certPath: flags['tls-cert'], keyPath: flags['tls-key'] };
  } else if (mode === 'local') {
    tls = { mode, dir: flags['certs-dir'] ?? 'certs' };
  } else if (mode === 'self-signed') {
    tls = await selfSignedSettings(flags);
  } else {
    throw new UsageError(`--tls-mode must be files, local or self-signed, got ${mode}`);
  }
  const namespaces = await namespaceSettings(flags, log);
  const port = integerFlag(flags, 'port', 8443, 0, 65535);
  const metricsPort = integerFlag(flags, 'metrics-port', 9090, 0, 65535);
  const graceSeconds = integerFlag(flags, 'grace-period', 20, 1, 3600);
  const tlsPolicy: TlsPolicy = {
    minVersion: flags['tls-min-version'] === undefined ? DEFAULT_TLS_POLICY.minVersion : parseMinVersion(flags['tls-min-version']),
    ciphers: flags['tls-ciphers'] === undefined ? DEFAULT_TLS_POLICY.ciphers : checkCiphers(flags['tls-ciphers']),
  };
  const limits = {
    maxConnections: integerFlag(flags, 'max-connections', DEFAULT_CONNECTION_LIMITS.maxConnections, 1, 1_000_000),
    keepAliveTimeoutMs: integerFlag(flags, 'keep-alive-timeout', DEFAULT_CONNECTION_LIMITS.keepAliveTimeoutMs / 1000, 1, 3600) * 1000,
  };
  const server = await startServer({
    config,
    log,
    host: flags.host ?? '0.0.0.0',
    port,
    tls,
    namespaces,
    ...(metricsPort === 0 ? {} : { metrics: { host: flags['metrics-host'] ?? '0.0.0.0', port: metricsPort } }),
    tlsPolicy,
    ...(flags['client-ca'] ? { clientCaPath: flags['client-ca'] } : {}),
    limits,
    // Leave at least half the grace period for in-flight requests after the drain.
    drainMs: Math.min(DEFAULT_DRAIN_MS, (graceSeconds * 1000) / 2),
  });
  closeWithGrace({ delay: graceSeconds * 1000 }, async ({ signal, err }) => {
    if (err) log.error({ err }, 'fatal error; shutting down');
    log.info({ signal }, 'draining in-flight requests and shutting down');
    await server.close();
    log.info('stopped');
    log.flush();
  });
  if (tls.mode === 'local') {
    const exampleUrl = `https://localhost:${server.port}/mutate`;
    process.stderr.write(
      `\nbuildkite-ecr-injector is serving on ${exampleUrl}\nTry it:\n\n` +
        `  curl --cacert ${tls.dir}/ca.crt -H 'Content-Type: application/json' \\\n` +
        `    --data @examples/admission-review.json ${exampleUrl}\n\n`,
    );
  }
}

/**
 * The Kubernetes client config from --kubeconfig, or in-cluster in a Pod; undefined when neither
 * applies. The client library (some 70 MB of RSS) is loaded only when there is a cluster to talk to.
 */
async function clusterConfig(flags: Flags): Promise<KubeConfig | undefined> {
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  if (flags.kubeconfig === undefined && !inCluster) return undefined;
  const { loadKubeConfig } = await import('../kube/kube-config.js');
  try {
    return loadKubeConfig({ kubeconfigPath: flags.kubeconfig, inCluster });
  } catch (error) {
    throw new UsageError(`cannot load the Kubernetes client configuration: ${(error as Error).message}`);
  }
}

async function selfSignedSettings(flags: Flags): Promise<TlsSettings> {
  const namespace = process.env.POD_NAMESPACE;
  if (!namespace) throw new UsageError('--tls-mode self-signed needs POD_NAMESPACE (the downward API field metadata.namespace)');
  const kubeConfig = await clusterConfig(flags);
  if (!kubeConfig) throw new UsageError('--tls-mode self-signed needs the Kubernetes API: run in a Pod or pass --kubeconfig FILE');
  return {
    mode: 'self-signed',
    kubeConfig,
    namespace,
    secretName: flags['tls-secret'] ?? 'buildkite-ecr-injector-tls',
    webhookConfigName: flags['webhook-config'] ?? 'buildkite-ecr-injector',
    serviceName: flags.service ?? 'buildkite-ecr-injector',
    leaseName: flags.lease ?? 'buildkite-ecr-injector-leader',
    identity: process.env.POD_NAME || hostname(),
  };
}

/** --namespaces FILE wins (local runs, tests); else --kubeconfig FILE; else in-cluster config in a Pod. */
async function namespaceSettings(flags: Flags, log: Logger): Promise<ServeOptions['namespaces']> {
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  if (flags.namespaces) {
    if (flags.kubeconfig || inCluster) log.info({ file: flags.namespaces }, 'namespace labels come from --namespaces; the cluster is not read');
    return { file: flags.namespaces };
  }
  const kubeConfig = await clusterConfig(flags);
  if (kubeConfig === undefined) {
    throw new UsageError('serve needs --namespaces FILE (local runs) or --kubeconfig FILE, or must run in a Pod (in-cluster config)');
  }
  return { kubeConfig };
}
