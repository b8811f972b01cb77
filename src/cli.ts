#!/usr/bin/env node
// The `buildkite-ecr-injector` command: parses flags (node:util parseArgs) and runs one of `serve`,
// `mutate` or `certs`. The only place that reads process.argv/env, exits, or handles signals.
import type { KubeConfig } from '@kubernetes/client-node';
import closeWithGrace from 'close-with-grace';
import { readFile } from 'node:fs/promises';
import { parseArgs, type ParseArgsConfig } from 'node:util';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { reviewAdmission, type AdmissionRequest } from './admission.js';
import { DEFAULT_CONNECTION_LIMITS } from './app.js';
import { caBundleOf, generateCertificates, writeCertificates } from './certs.js';
import { ClientCaError } from './client-ca.js';
import { ConfigError, loadConfig, withExcludedNamespace } from './config.js';
import { loadKubeConfig } from './kube-config.js';
import { createLogger, type Logger } from './log.js';
import { NamespaceFileError, parseLabelList, readNamespacesFile } from './namespaces.js';
import { isPlainObject, type Labels } from './pod.js';
import { DEFAULT_DRAIN_MS, startServer, type ServeOptions, type TlsSettings } from './server.js';
import { checkCiphers, DEFAULT_TLS_POLICY, parseMinVersion, TlsPolicyError, type TlsPolicy } from './tls-policy.js';
import { hostname } from 'node:os';

const USAGE = `Usage: buildkite-ecr-injector <command> [flags]

Commands:
  serve    run the HTTPS admission webhook
  mutate   decide offline, exactly as the webhook would, for one Pod
  certs    write a CA and a serving certificate, print the caBundle

serve flags:
  --config FILE          YAML config (defaults built in)
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

mutate flags:
  mutate POD_FILE|-      a Pod (or an AdmissionReview) as YAML or JSON
  --namespace-labels K=V,...   the namespace's labels, or
  --namespaces FILE --namespace NAME
  --config FILE
  --output yaml|json     (default yaml)

certs flags:
  --out DIR              folder to write ca.crt, ca.key, tls.crt, tls.key (default certs)
  --dns NAME,...         DNS SANs (default localhost)
  --ip ADDR,...          IP SANs
  --days N               serving certificate lifetime (default 365)
`;

class UsageError extends Error {
  override name = 'UsageError';
}

const OPTIONS = {
  config: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'tls-mode': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'certs-dir': { type: 'string' },
  'tls-secret': { type: 'string' },
  'webhook-config': { type: 'string' },
  service: { type: 'string' },
  lease: { type: 'string' },
  kubeconfig: { type: 'string' },
  namespaces: { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  namespace: { type: 'string' },
  'namespace-labels': { type: 'string' },
  'grace-period': { type: 'string' },
  'client-ca': { type: 'string' },
  'tls-min-version': { type: 'string' },
  'tls-ciphers': { type: 'string' },
  'max-connections': { type: 'string' },
  'keep-alive-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  output: { type: 'string', short: 'o' },
  out: { type: 'string' },
  dns: { type: 'string' },
  ip: { type: 'string' },
  days: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

type Flags = ReturnType<typeof parseFlags>['values'];

function parseFlags(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

function integerFlag(
  flags: Flags,
  name: 'port' | 'metrics-port' | 'grace-period' | 'days' | 'max-connections' | 'keep-alive-timeout',
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
  return value;
}

function listFlag(value: string | undefined): string[] {
  return (value ?? '').split(',').map((part) => part.trim()).filter(Boolean);
}

async function serve(flags: Flags): Promise<void> {
  const log = createLogger({ level: flags['log-level'] ?? 'info' });
  // The webhook's own namespace (downward API) is always excluded, so it can never block itself.
  const config = withExcludedNamespace(await loadConfig(flags.config), process.env.POD_NAMESPACE || undefined);
  const mode = flags['tls-mode'] ?? 'files';
  let tls: TlsSettings;
  if (mode === 'files') {
    if (!flags['tls-cert'] || !flags['tls-key']) throw new UsageError('--tls-mode files needs --tls-cert FILE and --tls-key FILE');
    tls = { mode, certPath: flags['tls-cert'], keyPath: flags['tls-key'] };
  } else if (mode === 'local') {
    tls = { mode, dir: flags['certs-dir'] ?? 'certs' };
  } else if (mode === 'self-signed') {
    tls = selfSignedSettings(flags);
  } else {
    throw new UsageError(`--tls-mode must be files, local or self-signed, got ${mode}`);
  }
  const namespaces = namespaceSettings(flags, log);
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

/** The Kubernetes client config from --kubeconfig, or in-cluster in a Pod; undefined when neither applies. */
function clusterConfig(flags: Flags): KubeConfig | undefined {
  try {
    return loadKubeConfig({ kubeconfigPath: flags.kubeconfig, inCluster: Boolean(process.env.KUBERNETES_SERVICE_HOST) });
  } catch (error) {
    throw new UsageError(`cannot load the Kubernetes client configuration: ${(error as Error).message}`);
  }
}

function selfSignedSettings(flags: Flags): TlsSettings {
  const namespace = process.env.POD_NAMESPACE;
  if (!namespace) throw new UsageError('--tls-mode self-signed needs POD_NAMESPACE (the downward API field metadata.namespace)');
  const kubeConfig = clusterConfig(flags);
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
function namespaceSettings(flags: Flags, log: Logger): ServeOptions['namespaces'] {
  const inCluster = Boolean(process.env.KUBERNETES_SERVICE_HOST);
  if (flags.namespaces) {
    if (flags.kubeconfig || inCluster) log.info({ file: flags.namespaces }, 'namespace labels come from --namespaces; the cluster is not read');
    return { file: flags.namespaces };
  }
  const kubeConfig = clusterConfig(flags);
  if (kubeConfig === undefined) {
    throw new UsageError('serve needs --namespaces FILE (local runs) or --kubeconfig FILE, or must run in a Pod (in-cluster config)');
  }
  return { kubeConfig };
}

async function readDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text); // YAML is a superset of JSON
  } catch (error) {
    throw new UsageError(`${path} is neither YAML nor JSON: ${(error as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

async function mutate(flags: Flags, positionals: string[]): Promise<void> {
  const input = positionals[0];
  if (input === undefined) throw new UsageError('mutate needs a Pod file (or - for standard input)');
  const config = await loadConfig(flags.config);
  const document = await readDocument(input);
  if (!isPlainObject(document)) throw new UsageError(`${input} does not hold a Pod or an AdmissionReview`);
  let request: AdmissionRequest;
  if (document.kind === 'AdmissionReview' && isPlainObject(document.request)) {
    request = document.request as AdmissionRequest;
  } else {
    const metadata = isPlainObject(document.metadata) ? document.metadata : {};
    request = {
      uid: 'offline',
      kind: { group: '', version: 'v1', kind: typeof document.kind === 'string' ? document.kind : 'Pod' },
      operation: 'CREATE',
      namespace: flags.namespace ?? (typeof metadata.namespace === 'string' ? metadata.namespace : undefined),
      object: document,
    };
  }
  const namespaceName = flags.namespace ?? request.namespace;
  let labels: Labels | undefined;
  if (flags['namespace-labels'] !== undefined) {
    labels = parseLabelList(flags['namespace-labels']);
  } else if (flags.namespaces) {
    if (!namespaceName) throw new UsageError('--namespaces needs --namespace NAME (the Pod names none)');
    labels = (await readNamespacesFile(flags.namespaces)).get(namespaceName);
  } else {
    throw new UsageError('mutate needs --namespace-labels k=v,... or --namespaces FILE --namespace NAME');
  }
  if (namespaceName !== undefined) request = { ...request, namespace: namespaceName };
  const outcome = reviewAdmission(request, labels, { config });
  const report = {
    decision: outcome.audit.decision,
    reason: outcome.audit.reason,
    ...(outcome.audit.detail ? { detail: outcome.audit.detail } : {}),
    ...(outcome.audit.injected ? { injected: outcome.audit.injected } : {}),
    warnings: outcome.response.warnings ?? [],
    patch: outcome.operations,
    pod: outcome.pod,
  };
  const output = flags.output ?? 'yaml';
  if (output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (output === 'yaml') process.stdout.write(toYaml(report, { lineWidth: 0 }));
  else throw new UsageError(`--output must be yaml or json, got ${output}`);
}

async function certs(flags: Flags): Promise<void> {
  const dir = flags.out ?? 'certs';
  const dnsNames = flags.dns === undefined ? ['localhost'] : listFlag(flags.dns);
  const set = await generateCertificates({ dnsNames, ipAddresses: listFlag(flags.ip), validityDays: integerFlag(flags, 'days', 365, 1, 3650) });
  const paths = await writeCertificates(dir, set);
  process.stderr.write(`wrote ${paths.caCert}, ${paths.caKey}, ${paths.cert}, ${paths.key}\ncaBundle:\n`);
  process.stdout.write(`${caBundleOf(set.caCert)}\n`);
}

async function main(argv: string[]): Promise<void> {
  const [command, ...rest] = argv;
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    process.stdout.write(USAGE);
    return;
  }
  const { values: flags, positionals } = parseFlags(rest);
  if (flags.help) {
    process.stdout.write(USAGE);
    return;
  }
  switch (command) {
    case 'serve':
      return serve(flags);
    case 'mutate':
      return mutate(flags, positionals);
    case 'certs':
      return certs(flags);
    default:
      throw new UsageError(`unknown command ${command}`);
  }
}

main(process.argv.slice(2)).catch((error: unknown) => {
  const known =
    error instanceof UsageError ||
    error instanceof ConfigError ||
    error instanceof NamespaceFileError ||
    error instanceof TlsPolicyError ||
    error instanceof ClientCaError;
  const message = error instanceof Error ? error.message : String(error);
  process.stderr.write(`buildkite-ecr-injector: ${message}\n${error instanceof UsageError ? "run 'buildkite-ecr-injector --help' for usage\n" : ''}`);
  if (!known && error instanceof Error && error.stack) process.stderr.write(`${error.stack}\n`);
  process.exitCode = error instanceof UsageError ? 64 : 1;
});
