// Owns a running webhook: the certificate source, the namespace label source, the Fastify app and its
// HTTPS listener, wired together and closable as one, with a graceful drain on close. Signals stay in
// the CLI (src/cli/serve.ts).
import type { Server as HttpsServer } from 'node:https';
import { Server as NetServer, type AddressInfo } from 'node:net';
import type { KubeConfig } from '@kubernetes/client-node';
import type { FastifyInstance } from 'fastify';
import { fanOutCertificateMetrics, type CertificateMetrics } from '../certs/cert-metrics.js';
import type { CertificateSource, ServingCertificate } from '../certs/certificate-source.js';
import { generateCertificates } from '../certs/generate.js';
import { openCertificateSource, type TlsSettings } from '../certs/open.js';
import { FileConfigSource } from '../files/config-file.js';
import { FileNamespaceSource } from '../files/namespaces-file.js';
import type { InformerSourceOptions } from '../kube/namespace-informer.js';
import type { Logger } from '../log.js';
import { startMetricsServer, type MetricsServer } from '../metrics.js';
import type { Config } from '../webhook/config.js';
import type { NamespaceLabelSource } from '../webhook/namespace-labels.js';
import { annotationKeys } from '../webhook/pull-secret-status.js';
import { buildApp, type ConnectionLimits } from './app.js';
import { FileClientCaSource } from './client-ca.js';
import { DEFAULT_TLS_POLICY, secureContextOptions, serverTlsOptions, type TlsPolicy } from './tls-policy.js';
import { createMetrics, type Metrics } from './webhook-metrics.js';

export type { TlsSettings };

export interface ServeOptions {
  /** A fixed config, or a config file followed on disk (`adjust` applies to every version read). */
  config: Config | { file: string; adjust?: (config: Config) => Config };
  log: Logger;
  host: string;
  port: number;
  tls: TlsSettings;
  /** Where namespace labels come from: a YAML file, the cluster (an informer), or a ready-made source. */
  namespaces:
    | { file: string }
    | { kubeConfig: KubeConfig; informer?: Omit<InformerSourceOptions, 'kubeConfig' | 'log' | 'onRestart'> }
    | { source: NamespaceLabelSource };
  /** Plain-HTTP Prometheus endpoint (port 0 picks a free one); omitted = off. */
  metrics?: { host: string; port: number };
  watchIntervalMs?: number;
  /** Certificate metrics hook (not-after, rotations, caBundle patches, leader status). */
  certificateMetrics?: CertificateMetrics;
  /** TLS version and ciphers (default: TLS 1.2+, AEAD suites with forward secrecy). */
  tlsPolicy?: TlsPolicy;
  /** A PEM CA bundle: when given, clients must present a certificate it signed (reloaded on change). */
  clientCaPath?: string;
  limits?: Partial<ConnectionLimits>;
  /**
   * On close, how long open connections may go on sending requests (each answered, each answer
   * closing its connection) before idle ones are closed. Default 5 s.
   */
  drainMs?: number;
}

export const DEFAULT_DRAIN_MS = 5_000;

export interface RunningServer {
  app: FastifyInstance;
  port: number;
  certificates: CertificateSource;
  namespaces: NamespaceLabelSource;
  metrics: Metrics;
  /** The bound metrics port, when the metrics endpoint is on. */
  metricsPort?: number;
  close(): Promise<void>;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { log } = options;
  const metrics = createMetrics();
  // First, so an invalid config file fails start-up before anything else is opened.
  const configFile = 'file' in options.config ? options.config : undefined;
  const configSource = configFile
    ? await FileConfigSource.open(configFile.file, log, {
        ...(configFile.adjust ? { adjust: configFile.adjust } : {}),
        ...(options.watchIntervalMs ? { watchIntervalMs: options.watchIntervalMs } : {}),
        onLoad: (result, at) => metrics.configLoaded(result, at),
      })
    : undefined;
  const config = configSource?.current() ?? (options.config as Config);
  if (!configSource) metrics.configLoaded('initial', new Date());
  const certificateMetrics = fanOutCertificateMetrics(metrics, options.certificateMetrics);
  let certificates: CertificateSource;
  try {
    certificates = await openCertificateSource(options.tls, log, certificateMetrics, options.watchIntervalMs);
  } catch (error) {
    configSource?.close();
    throw error;
  }
  let namespaces: NamespaceLabelSource;
  let clientCa: FileClientCaSource | undefined;
  try {
    clientCa = options.clientCaPath === undefined ? undefined : await FileClientCaSource.open(options.clientCaPath, log, options.watchIntervalMs);
    namespaces = await openNamespaces(options, config, metrics);
  } catch (error) {
    clientCa?.close();
    configSource?.close();
    await certificates.close();
    throw error;
  }
  metrics.trackNamespaceSource(namespaces);
  const policy = options.tlsPolicy ?? DEFAULT_TLS_POLICY;
  let draining = false;
  // Self-signed mode may start before the leader has written the Secret: listen with a throwaway
  // pair so probes get answers, and stay unready until the real certificate arrives.
  const initial = certificates.current() ?? (await generateCertificates({ dnsNames: ['localhost'], validityDays: 1 }));
  if (certificates.current()) certificateMetrics.setCertificateNotAfter('serving', certificates.current()!.notAfter);
  const app = buildApp({
    config,
    ...(configSource ? { currentConfig: () => configSource.current() } : {}),
    namespaces,
    log,
    https: serverTlsOptions(policy, initial, clientCa?.current()),
    isReady: () => (certificates.current()?.notAfter.getTime() ?? 0) > Date.now(),
    onAdmission: (outcome, seconds) => metrics.observeAdmission(outcome, seconds),
    onNamespaceLookup: (result) => metrics.observeLookup(result),
    isDraining: () => draining,
    servingCertificate: () => certificates.current()?.cert,
    ...(options.limits ? { limits: options.limits } : {}),
  });
  const server = app.server as unknown as HttpsServer;
  let serving: { cert: string; key: string } = initial;
  const renewSecureContext = (): void => {
    // New handshakes use the new pair or client CA; connections already open keep theirs.
    server.setSecureContext(secureContextOptions(policy, serving, clientCa?.current()));
  };
  const serve = (certificate: ServingCertificate) => {
    serving = certificate;
    renewSecureContext();
    certificateMetrics.setCertificateNotAfter('serving', certificate.notAfter);
  };
  certificates.onChange(serve);
  clientCa?.onChange(renewSecureContext);
  // A certificate that arrived while the app was being built (self-signed mode) was not seen by the listener.
  const arrived = certificates.current();
  if (arrived && arrived.cert !== initial.cert) serve(arrived);
  let metricsServer: MetricsServer | undefined;
  app.addHook('onClose', async () => {
    await certificates.close();
    clientCa?.close();
    configSource?.close();
    await namespaces.close();
    await metricsServer?.close();
  });
  try {
    if (options.metrics) {
      metricsServer = await startMetricsServer(metrics, options.metrics.host, options.metrics.port, log);
    }
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    throw error;
  }
  const port = (app.server.address() as AddressInfo).port;
  log.info(
    { host: options.host, port, tls: options.tls.mode, minVersion: policy.minVersion, clientCertificates: clientCa !== undefined },
    'webhook listening',
  );
  let closing: Promise<void> | undefined;
  const close = async (): Promise<void> => {
    draining = true;
    await drain(server, options.drainMs ?? DEFAULT_DRAIN_MS, log);
    await app.close();
  };
  return { app, port, certificates, namespaces, metrics, metricsPort: metricsServer?.port, close: () => (closing ??= close()) };
}

async function openNamespaces(options: ServeOptions, config: Config, metrics: Metrics): Promise<NamespaceLabelSource> {
  const { namespaces, log } = options;
  if ('file' in namespaces) return FileNamespaceSource.open(namespaces.file, log, options.watchIntervalMs);
  if ('source' in namespaces) return namespaces.source;
  // Loaded only here: @kubernetes/client-node costs some 70 MB of RSS, which file and in-memory
  // label sources (local runs, the bench) need not pay.
  const { InformerNamespaceSource } = await import('../kube/namespace-informer.js');
  // Start-up does not wait for the first list: /readyz says "not ready" until it is in (so the
  // Service sends nothing here before), and an admission that comes anyway takes the slow path.
  return InformerNamespaceSource.start({
    ...namespaces.informer,
    kubeConfig: namespaces.kubeConfig,
    log,
    onRestart: () => metrics.informerRestarted(),
    // The refresher's report, read per admission to warn about a stale pull Secret.
    keepAnnotations: [annotationKeys(config.labelPrefix).pullSecretStatus],
  });
}

/**
 * Stop accepting connections (new ones are refused), then let open connections finish: every request
 * on them is still answered, and each answer closes its connection (see isDraining in app.ts). Only
 * after `drainMs`, or once no connection is left, does app.close() close the idle rest. Closing idle
 * keep-alive connections at once (what http.Server.close does) races with a client that is writing
 * its next request onto one: that request would fail without ever reaching us.
 */
async function drain(server: HttpsServer, drainMs: number, log: Logger): Promise<void> {
  // net.Server's close stops the listener only; http.Server's own close would also drop idle sockets.
  NetServer.prototype.close.call(server);
  const deadline = Date.now() + drainMs;
  let open = await countConnections(server);
  log.info({ openConnections: open, drainMs }, 'stopped accepting connections; draining');
  while (open > 0 && Date.now() < deadline) {
    await new Promise((resolve) => setTimeout(resolve, 50));
    open = await countConnections(server);
  }
  if (open > 0) log.info({ openConnections: open }, 'drain period over; closing idle connections');
}

function countConnections(server: HttpsServer): Promise<number> {
  return new Promise((resolve) => server.getConnections((error, count) => resolve(error ? 0 : count)));
}
