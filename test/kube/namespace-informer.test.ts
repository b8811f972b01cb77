// The namespace informer source against a local Kubernetes API (real list/watch protocol), behind the
// real HTTPS webhook listener: first sync from the captured list, label changes and new namespaces,
// the de-duplicated slow-path read and its timeout, an API outage with recovery through 410 Gone, a
// watch that hangs, readiness, and the Prometheus endpoint's output.
import { KubeConfig } from '@kubernetes/client-node';
import { spawn } from 'node:child_process';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import t, { type Test } from 'tap';
import { generateCertificates, writeCertificates } from '../../src/certs/generate.js';
import { parseConfig } from '../../src/webhook/config.js';
import { createLogger } from '../../src/log.js';
import { InformerNamespaceSource, type InformerSourceOptions } from '../../src/kube/namespace-informer.js';
import { startServer } from '../../src/http/server.js';
import { FakeKubeApi, type KubeObject } from '../helpers/fake-kube-api.js';
import { startServeProcess } from '../helpers/serve-process.js';
import { httpsRequest, until } from '../helpers/https-client.js';
import { freePort, getText } from '../helpers/plain-http.js';

const NAMESPACES = '/api/v1/namespaces';
const INJECT = 'buildkite-ecr-injector/inject';
const SERVICE_ACCOUNT = 'buildkite-ecr-injector/service-account';

const captured = JSON.parse(await readFile(new URL('../fixtures/k8s-api/namespaces-list.json', import.meta.url), 'utf8')) as { items: KubeObject[] };
const review = JSON.parse(await readFile(new URL('../fixtures/default-job/review.json', import.meta.url), 'utf8')) as {
  apiVersion: string;
  kind: string;
  request: { uid: string; namespace: string; object: { metadata: { namespace?: string } } };
};

// One certificate for the whole file: key generation is the slowest step here.
const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
const tlsPaths = await writeCertificates(join(t.testdir(), 'tls'), certs);

class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) this.lines.push(JSON.parse(line) as Record<string, unknown>);
    done();
  }
}

interface Answer {
  decision: string;
  reason: string;
  warnings: string[];
  operations: { op: string; path: string; value?: unknown }[];
}

function namespaceObject(name: string, labels: Record<string, string>): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels } }, spec: { finalizers: ['kubernetes'] }, status: { phase: 'Active' } };
}

function relabel(api: FakeKubeApi, name: string, labels: Record<string, string>): void {
  const current = api.get(NAMESPACES, name)!;
  current.metadata.labels = { ...current.metadata.labels, ...labels };
  api.put(NAMESPACES, current);
}

let uidCounter = 0;

async function startCluster(t: Test, informer: Partial<InformerSourceOptions> = {}) {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, captured.items);
  await api.start();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const logs = new LogCapture();
  const server = await startServer({
    config: parseConfig({}),
    log: createLogger({ destination: logs, level: 'debug' }),
    host: '127.0.0.1',
    port: 0,
    tls: { mode: 'files', certPath: tlsPaths.cert, keyPath: tlsPaths.key },
    namespaces: { kubeConfig, informer: { backoffInitialMs: 50, backoffMaxMs: 250, ...informer } },
    metrics: { host: '127.0.0.1', port: 0 },
  });
  t.teardown(async () => {
    await server.close();
    await api.stop();
  });
  const source = server.namespaces as InformerNamespaceSource;
  t.ok(source instanceof InformerNamespaceSource, 'a kubeconfig selects the informer source');

  async function admit(namespace: string): Promise<Answer> {
    const body = structuredClone(review);
    body.request.uid = `test-${++uidCounter}`;
    body.request.namespace = namespace;
    body.request.object.metadata.namespace = namespace;
    const res = await httpsRequest({ port: server.port, ca: certs.caCert, body: JSON.stringify(body) });
    const response = (res.json as { response: { uid: string; patch?: string; warnings?: string[]; auditAnnotations: Record<string, string> } }).response;
    if (res.status !== 200 || response.uid !== body.request.uid) throw new Error(`unexpected answer ${res.status}: ${res.text}`);
    return {
      decision: response.auditAnnotations.decision!,
      reason: response.auditAnnotations.reason!,
      warnings: response.warnings ?? [],
      operations: response.patch ? (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as Answer['operations']) : [],
    };
  }

  async function scrape(): Promise<ParsedFamily[]> {
    const res = await getText(server.metricsPort!, '/metrics');
    if (res.status !== 200) throw new Error(`metrics answered ${res.status}`);
    return parsePrometheusTextFormat(res.text);
  }

  const readyz = () => httpsRequest({ port: server.port, ca: certs.caCert, path: '/readyz', method: 'GET' });
  /** Requests other than watches: lists and reads. */
  const calls = () => api.requests.filter((r) => !r.watch);
  return { api, server, source, logs, admit, scrape, readyz, calls };
}

function serviceAccountOf(answer: Answer): unknown {
  return answer.operations.find((o) => o.path === '/spec/serviceAccountName')?.value;
}

/** One sample's value; labels must match exactly those given. */
function sample(families: ParsedFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const family = families.find((f) => f.name === name);
  const found = family?.metrics.find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
  return found?.value === undefined ? undefined : Number(found.value);
}

t.test('first sync from the captured list; admissions read the cache only; a label change applies to the next Pod', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  t.equal(c.source.state(), 'synced');
  for (const item of captured.items) {
    t.same(c.source.get(item.metadata.name), item.metadata.labels ?? {}, `labels of ${item.metadata.name}`);
  }
  t.ok(Object.isFrozen(c.source.get('buildkite')), 'cached labels are frozen');
  const ready = await c.readyz();
  t.equal(ready.status, 200);
  t.same(ready.json, { status: 'ready', namespaces: 'synced' });

  const callsBefore = c.calls().length;
  t.same((await c.admit('buildkite')).reason, 'nothing-to-inject', 'opted in, nothing asked for yet');
  t.same((await c.admit('demo-plain')).reason, 'namespace-not-opted-in');
  t.same((await c.admit('kube-system')).reason, 'namespace-excluded');

  relabel(c.api, 'buildkite', { [SERVICE_ACCOUNT]: 'ci-bot' });
  await until(() => c.source.get('buildkite')?.[SERVICE_ACCOUNT] === 'ci-bot', 'the label change over the watch');
  const after = await c.admit('buildkite');
  t.equal(after.decision, 'injected');
  t.equal(serviceAccountOf(after), 'ci-bot', 'the next Pod gets the new ServiceAccount');

  relabel(c.api, 'buildkite', { [INJECT]: 'disabled' });
  await until(() => c.source.get('buildkite')?.[INJECT] === 'disabled', 'the opt-out over the watch');
  t.equal((await c.admit('buildkite')).reason, 'namespace-not-opted-in', 'and opting out applies to the next Pod too');

  t.equal(c.calls().length, callsBefore, 'no list or read request was made on the admission path');
  t.same(
    c.calls().map((r) => r.path),
    [NAMESPACES],
    'the only non-watch request of the whole run is the first list',
  );
});

t.test('a new namespace: through the watch, and through the slow path when the watch has not told us yet', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');

  c.api.put(NAMESPACES, namespaceObject('team-new', { [INJECT]: 'enabled', [SERVICE_ACCOUNT]: 'new-bot' }));
  await until(() => c.source.get('team-new') !== undefined, 'the ADDED event');
  const viaWatch = await c.admit('team-new');
  t.equal(serviceAccountOf(viaWatch), 'new-bot');
  t.notOk(c.calls().some((r) => r.path === `${NAMESPACES}/team-new`), 'no direct read for a namespace the watch delivered');

  // seed() stores without a watch event: the API server has it, the informer has not heard of it.
  c.api.seed(NAMESPACES, [namespaceObject('team-late', { [INJECT]: 'enabled', [SERVICE_ACCOUNT]: 'late-bot' })]);
  t.equal(c.source.get('team-late'), undefined, 'not in the cache');
  const viaRead = await c.admit('team-late');
  t.equal(viaRead.decision, 'injected');
  t.equal(serviceAccountOf(viaRead), 'late-bot', 'the direct read found its labels');
  t.same(c.source.get('team-late'), { 'kubernetes.io/metadata.name': 'team-late', [INJECT]: 'enabled', [SERVICE_ACCOUNT]: 'late-bot' }, 'and cached them');
  t.equal(serviceAccountOf(await c.admit('team-late')), 'late-bot');
  t.equal(c.calls().filter((r) => r.path === `${NAMESPACES}/team-late`).length, 1, 'one read, then the cache answers');

  // A Pod that cannot be injected anyway never costs a read, even in an unknown namespace.
  const plainPod = structuredClone(review);
  const unknownBefore = c.calls().length;
  plainPod.request.namespace = 'nobody-knows';
  delete (plainPod.request.object as { metadata: { labels?: unknown } }).metadata.labels;
  const res = await httpsRequest({ port: c.server.port, ca: certs.caCert, body: JSON.stringify(plainPod) });
  t.equal((res.json as { response: { auditAnnotations: { reason: string } } }).response.auditAnnotations.reason, 'not-a-job-pod');
  t.equal(c.calls().length, unknownBefore, 'no read for a Pod without the job label');

  // A namespace the API server does not have either (404): unknown, with a warning, nothing cached.
  const missing = await c.admit('no-such-namespace');
  t.equal(missing.reason, 'namespace-unknown');
  t.equal(missing.warnings.length, 1);
  t.equal(c.source.get('no-such-namespace'), undefined);

  const families = await c.scrape();
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'fetched' }), 1);
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'hit' }), 2);
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'miss' }), 1);
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'not-found' }), 1);
});

t.test('concurrent slow-path reads of one namespace make one API call', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  c.api.seed(NAMESPACES, [namespaceObject('team-burst', { [INJECT]: 'enabled', [SERVICE_ACCOUNT]: 'burst-bot' })]);

  // Hold the API so every caller arrives while the first read is still in flight.
  const release = c.api.hold();
  const reads = Array.from({ length: 5 }, () => c.source.fetch('team-burst'));
  await until(() => c.calls().some((r) => r.path === `${NAMESPACES}/team-burst`), 'the read to reach the API');
  release();
  const results = await Promise.all(reads);
  for (const labels of results) t.equal(labels?.[SERVICE_ACCOUNT], 'burst-bot');
  t.equal(c.calls().filter((r) => r.path === `${NAMESPACES}/team-burst`).length, 1, 'five callers, one read');

  // And through the webhook: a burst of Pods in another new namespace.
  c.api.seed(NAMESPACES, [namespaceObject('team-burst-2', { [INJECT]: 'enabled', [SERVICE_ACCOUNT]: 'burst-bot' })]);
  const answers = await Promise.all(Array.from({ length: 5 }, () => c.admit('team-burst-2')));
  t.same(answers.map(serviceAccountOf), Array(5).fill('burst-bot'));
  t.equal(c.calls().filter((r) => r.path === `${NAMESPACES}/team-burst-2`).length, 1, 'five Pods, one read');
});

t.test('a stalled API: the slow path gives up after its timeout and the Pod is admitted unchanged', async (t) => {
  const c = await startCluster(t, { fetchTimeoutMs: 1000 });
  await until(() => c.source.isSynced(), 'the first list');
  c.api.stall(true);
  const started = Date.now();
  const answer = await c.admit('ghost');
  const elapsed = Date.now() - started;
  t.equal(answer.decision, 'skipped');
  t.equal(answer.reason, 'namespace-unknown');
  t.equal(answer.operations.length, 0);
  t.match(answer.warnings, [/namespace ghost is not known/], 'the client is told why');
  t.ok(elapsed >= 900 && elapsed < 5000, `answered after the 1 s read budget, not hung (${elapsed} ms)`);
  t.ok(
    c.logs.lines.some((l) => l.msg === 'namespace lookup failed; Pod admitted unchanged' && /timed out after 1000 ms/.test(String(l.err))),
    'a warning log line says the read timed out',
  );
  const families = await c.scrape();
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'failed' }), 1);
  t.equal(sample(families, 'buildkite_ecr_injector_admissions_total', { decision: 'skipped', reason: 'namespace-unknown' }), 1);
  c.api.stall(false);
});

t.test('an API outage: last known labels keep serving; after recovery a 410 forces a re-list that brings the change', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  relabel(c.api, 'buildkite', { [SERVICE_ACCOUNT]: 'ci-bot' });
  await until(() => c.source.get('buildkite')?.[SERVICE_ACCOUNT] === 'ci-bot', 'the first label');

  await c.api.stop();
  await until(() => c.source.state() === 'reconnecting', 'the informer to notice the outage');
  const during = await c.admit('buildkite');
  t.equal(serviceAccountOf(during), 'ci-bot', 'admissions are answered from the last known labels');
  const ready = await c.readyz();
  t.equal(ready.status, 200, 'still ready while serving last known labels');
  t.same(ready.json, { status: 'ready', namespaces: 'reconnecting' });
  await until(() => c.source.restarts() >= 2, 'restarts with backoff while the API is away');

  // Changed while we could not see it; and the history we would resume from is gone.
  relabel(c.api, 'buildkite', { [SERVICE_ACCOUNT]: 'ci-bot-2' });
  c.api.expireHistory();
  const listsBefore = c.calls().filter((r) => r.path === NAMESPACES).length;
  await c.api.start();
  await until(() => c.source.get('buildkite')?.[SERVICE_ACCOUNT] === 'ci-bot-2', 'the change made during the outage');
  t.equal(c.source.state(), 'synced');
  t.ok(c.calls().filter((r) => r.path === NAMESPACES).length > listsBefore, 'it re-listed');
  t.ok(
    c.api.requests.some((r) => r.watch && r.query.get('resourceVersion') !== '' && r.query.get('resourceVersion') !== null),
    'it first tried to resume the watch from where it was',
  );
  t.equal(serviceAccountOf(await c.admit('buildkite')), 'ci-bot-2', 'the next Pod gets the new label');

  const families = await c.scrape();
  t.ok((sample(families, 'buildkite_ecr_injector_informer_restarts_total') ?? 0) >= 2, 'restarts are counted');
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_source_state', { state: 'synced' }), 1);
  t.equal(sample(families, 'buildkite_ecr_injector_namespace_source_state', { state: 'reconnecting' }), 0);
});

t.test('a namespace deleted while the watch was away is forgotten by the re-list', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  await c.api.stop();
  c.api.remove(NAMESPACES, 'team-b');
  c.api.expireHistory();
  await c.api.start();
  await until(() => c.source.get('team-b') === undefined, 'team-b to go');
  t.same(c.source.get('buildkite'), captured.items[0]!.metadata.labels, 'the others stay');
});

t.test('not ready before the first successful list; failed lists are retried', async (t) => {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, captured.items);
  api.failNext(3, 500);
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const source = InformerNamespaceSource.start({ kubeConfig, log: createLogger({ destination: new LogCapture() }), backoffInitialMs: 50, backoffMaxMs: 100 });
  t.teardown(() => source.close());
  t.equal(source.isSynced(), false);
  t.equal(source.state(), 'loading');
  await until(() => source.isSynced(), 'a list after three failures');
  t.ok(source.restarts() >= 3, `restarted ${source.restarts()} times`);
  t.equal(source.get('buildkite')?.[INJECT], 'enabled');
  await source.close();
  t.equal(source.state(), 'stopped');
});

t.test('readiness over HTTPS follows the first sync', async (t) => {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, captured.items);
  api.stall(true);
  await api.start();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const server = await startServer({
    config: parseConfig({}),
    log: createLogger({ destination: new LogCapture() }),
    host: '127.0.0.1',
    port: 0,
    tls: { mode: 'files', certPath: tlsPaths.cert, keyPath: tlsPaths.key },
    namespaces: { kubeConfig, informer: { listTimeoutMs: 300, backoffInitialMs: 50, backoffMaxMs: 100 } },
  });
  t.teardown(async () => {
    await server.close();
    await api.stop();
  });
  t.equal(server.metricsPort, undefined, 'no metrics listener unless asked');
  const before = await httpsRequest({ port: server.port, ca: certs.caCert, path: '/readyz', method: 'GET' });
  t.equal(before.status, 503, 'not ready while the first list hangs');
  t.same(before.json, { status: 'not ready', namespaces: 'loading' });
  await until(() => (server.namespaces as InformerNamespaceSource).restarts() >= 1, 'the hung list to time out and be retried');
  api.stall(false);
  await until(async () => (await httpsRequest({ port: server.port, ca: certs.caCert, path: '/readyz', method: 'GET' })).status === 200, 'ready after the list');
});

t.test('a watch that hangs is abandoned and the informer recovers', async (t) => {
  const c = await startCluster(t, { watchTimeoutSeconds: 1, watchGraceMs: 200 });
  await until(() => c.source.isSynced(), 'the first list');
  c.api.stall(true);
  const before = c.api.requests.length;
  c.api.dropWatches();
  // The informer watches again; that request hangs before its headers. A stalled request is never
  // answered, so another request can only follow if the informer gives up on the hung one.
  await until(() => c.api.requests.length >= before + 1, 'the informer to watch again');
  t.ok(c.api.requests.at(-1)?.watch, 'the hung request is a watch');
  await until(() => c.api.requests.length >= before + 2, 'the hung watch to be abandoned and retried');
  c.api.stall(false);
  relabel(c.api, 'buildkite', { [SERVICE_ACCOUNT]: 'after-hang' });
  await until(() => c.source.get('buildkite')?.[SERVICE_ACCOUNT] === 'after-hang', 'the label change after recovery');
  t.equal(c.source.state(), 'synced');
  t.ok(c.source.restarts() >= 1);
});

t.test('the metrics endpoint: names, labels and values move with admissions', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  const first = await c.scrape();
  const names = new Set(first.map((f) => f.name));
  for (const name of [
    'buildkite_ecr_injector_admissions_total',
    'buildkite_ecr_injector_admission_duration_seconds',
    'buildkite_ecr_injector_admission_errors_total',
    'buildkite_ecr_injector_namespace_source_state',
    'buildkite_ecr_injector_namespace_source_last_sync_timestamp_seconds',
    'buildkite_ecr_injector_informer_restarts_total',
    'buildkite_ecr_injector_namespace_lookups_total',
    'buildkite_ecr_injector_certificate_not_after_timestamp_seconds',
    'process_cpu_seconds_total',
    'nodejs_eventloop_lag_seconds',
  ]) {
    t.ok(names.has(name), `exposes ${name}`);
  }
  t.equal(first.find((f) => f.name === 'buildkite_ecr_injector_admission_duration_seconds')?.type, 'HISTOGRAM');
  const buckets = first.find((f) => f.name === 'buildkite_ecr_injector_admission_duration_seconds')!.metrics[0]!.buckets!;
  t.ok(Object.keys(buckets).some((le) => Number(le) < 0.001), 'sub-millisecond buckets');
  t.equal(sample(first, 'buildkite_ecr_injector_namespace_source_state', { state: 'synced' }), 1);
  t.equal(sample(first, 'buildkite_ecr_injector_namespace_source_state', { state: 'loading' }), 0);
  const lastSync = sample(first, 'buildkite_ecr_injector_namespace_source_last_sync_timestamp_seconds')!;
  t.ok(Math.abs(lastSync - Date.now() / 1000) < 60, 'last sync is a recent Unix time in seconds');
  t.equal(
    sample(first, 'buildkite_ecr_injector_certificate_not_after_timestamp_seconds', { kind: 'serving' }),
    Math.floor(c.server.certificates.current()!.notAfter.getTime() / 1000),
    'certificate expiry in Unix seconds',
  );
  t.equal(sample(first, 'buildkite_ecr_injector_admission_errors_total'), 0);
  t.equal(first.find((f) => f.name === 'buildkite_ecr_injector_admission_duration_seconds')!.metrics[0]!.count, '0');

  relabel(c.api, 'buildkite', { [SERVICE_ACCOUNT]: 'ci-bot' });
  await until(() => c.source.get('buildkite')?.[SERVICE_ACCOUNT] === 'ci-bot', 'the label');
  await c.admit('buildkite');
  await c.admit('buildkite');
  await c.admit('demo-plain');
  const second = await c.scrape();
  t.equal(sample(second, 'buildkite_ecr_injector_admissions_total', { decision: 'injected', reason: 'injected' }), 2);
  t.equal(sample(second, 'buildkite_ecr_injector_admissions_total', { decision: 'skipped', reason: 'namespace-not-opted-in' }), 1);
  t.equal(sample(second, 'buildkite_ecr_injector_namespace_lookups_total', { result: 'hit' }), 3);
  const histogram = second.find((f) => f.name === 'buildkite_ecr_injector_admission_duration_seconds')!.metrics[0]!;
  t.equal(histogram.count, '3');
  t.equal(histogram.buckets!['+Inf'], '3');

  const notFound = (await getText(c.server.metricsPort!, '/')).status;
  t.equal(notFound, 404, 'only /metrics is served there');
});

t.test('serve --kubeconfig: the CLI reads labels from the cluster and serves metrics', async (t) => {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, captured.items);
  relabelSeeded(api);
  await api.start();
  t.teardown(() => api.stop());
  const dir = t.testdir();
  await writeFile(join(dir, 'kubeconfig'), api.kubeconfig());
  const metricsPort = await freePort();
  const env = { ...process.env };
  delete env.KUBERNETES_SERVICE_HOST; // the flag, not the environment, selects the cluster here
  const server = await startServeProcess(
    t,
    ['--tls-cert', tlsPaths.cert, '--tls-key', tlsPaths.key, '--kubeconfig', join(dir, 'kubeconfig'), '--port', '0', '--host', '127.0.0.1', '--metrics-host', '127.0.0.1', '--metrics-port', String(metricsPort)],
    env,
  );
  const port = server.port;
  await until(async () => (await httpsRequest({ port, ca: certs.caCert, path: '/readyz', method: 'GET' })).status === 200, 'ready after the first list');
  const body = structuredClone(review);
  const res = await httpsRequest({ port, ca: certs.caCert, body: JSON.stringify(body) });
  const response = (res.json as { response: { auditAnnotations: Record<string, string> } }).response;
  t.equal(response.auditAnnotations.decision, 'injected', 'labels came from the cluster');
  const metrics = parsePrometheusTextFormat((await getText(metricsPort, '/metrics')).text);
  t.equal(sample(metrics, 'buildkite_ecr_injector_admissions_total', { decision: 'injected', reason: 'injected' }), 1);
  t.notOk(api.requests.some((r) => r.path === `${NAMESPACES}/buildkite`), 'answered from the informer cache');
  server.child.kill('SIGTERM');
  t.equal((await server.exited).code, 0, 'drains and exits 0');
});

/** Give the captured buildkite namespace something to inject before the CLI starts. */
function relabelSeeded(api: FakeKubeApi): void {
  const buildkite = api.get(NAMESPACES, 'buildkite')!;
  buildkite.metadata.labels = { ...buildkite.metadata.labels, [SERVICE_ACCOUNT]: 'ci-bot' };
  api.seed(NAMESPACES, [buildkite]);
}

t.test('closing while the first list is in flight leaves nothing running (the process can exit)', async (t) => {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, captured.items);
  await api.start();
  t.teardown(() => api.stop());
  const release = api.hold();
  // A child process on the built code: it exits by itself only if no watch or timer is left behind.
  const module = new URL('../../dist/kube/namespace-informer.js', import.meta.url).href;
  const logModule = new URL('../../dist/log.js', import.meta.url).href;
  const script = `
    const { KubeConfig } = await import('@kubernetes/client-node');
    const { InformerNamespaceSource } = await import(${JSON.stringify(module)});
    const { createLogger } = await import(${JSON.stringify(logModule)});
    const kubeConfig = new KubeConfig();
    kubeConfig.loadFromString(process.argv[1]);
    const source = InformerNamespaceSource.start({ kubeConfig, log: createLogger({ level: 'silent' }) });
    process.stdin.once('data', async () => {
      await source.close();
      process.stdout.write('closed\\n');
      process.stdin.destroy();
    });`;
  const child = spawn(process.execPath, ['--input-type=module', '-e', script, api.kubeconfig()], { cwd: new URL('../..', import.meta.url).pathname });
  let stdout = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.pipe(process.stderr);
  let exitCode: number | null | undefined;
  child.on('exit', (code) => (exitCode = code));
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  // Generous bounds: they catch a hang, and a loaded 2-core machine needs seconds to start a child
  // that loads the Kubernetes client.
  await until(() => api.requests.some((r) => r.path === NAMESPACES && !r.watch), 'the first list to reach the API', 60_000);
  child.stdin.write('close\n');
  await until(() => stdout.includes('closed'), 'the source to close');
  release(); // the list now completes after close(): the ListWatch would go on to watch
  await until(() => exitCode !== undefined, 'the child to exit by itself', 30_000);
  t.equal(exitCode, 0);
  t.equal(api.openWatchCount(), 0, 'no watch left open');
});

t.test('a large cluster is listed in pages of 500 and every namespace is known', async (t) => {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, Array.from({ length: 1234 }, (_, i) => namespaceObject(`ns-${i}`, { [INJECT]: i % 2 ? 'enabled' : 'disabled' })));
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const source = InformerNamespaceSource.start({ kubeConfig, log: createLogger({ destination: new LogCapture() }) });
  t.teardown(() => source.close());
  await until(() => source.isSynced(), 'the paged list');
  const lists = api.requests.filter((r) => r.path === NAMESPACES && !r.watch);
  t.same(lists.map((r) => r.query.get('limit')), ['500', '500', '500']);
  t.same(lists.map((r) => r.query.get('continue') !== null), [false, true, true], 'pages 2 and 3 continue the first');
  t.equal(source.get('ns-0')?.[INJECT], 'disabled');
  t.equal(source.get('ns-1233')?.[INJECT], 'enabled');
  api.put(NAMESPACES, namespaceObject('ns-late', { [INJECT]: 'enabled' }));
  await until(() => source.get('ns-late') !== undefined, 'a watch from the list snapshot');
});

t.test('the refresher status annotation: kept alone of all annotations, and a stale pull Secret warns', async (t) => {
  const c = await startCluster(t);
  await until(() => c.source.isSynced(), 'the first list');
  const STATUS = 'buildkite-ecr-injector/pull-secret-status';
  const status = (state: string, expiresAt: string) =>
    JSON.stringify({ secret: 'ecr-credentials', registries: ['123456789012.dkr.ecr.us-east-1.amazonaws.com'], state, expiresAt, refreshedAt: '2026-01-01T00:00:00.000Z' });
  const buildkite = c.api.get(NAMESPACES, 'buildkite')!;
  buildkite.metadata.labels = { ...buildkite.metadata.labels, 'buildkite-ecr-injector/pull-secret': 'ecr-credentials' };
  buildkite.metadata.annotations = { ...buildkite.metadata.annotations, 'example.com/big': 'x'.repeat(10_000), [STATUS]: status('ready', '2099-01-01T00:00:00.000Z') };
  c.api.put(NAMESPACES, buildkite);
  await until(() => c.source.annotations('buildkite') !== undefined, 'the annotation over the watch');
  t.same(c.source.annotations('buildkite'), { [STATUS]: status('ready', '2099-01-01T00:00:00.000Z') }, 'only the status annotation is kept');
  t.equal(c.source.annotations('demo-plain'), undefined, 'a namespace without it keeps no annotations');
  t.same((await c.admit('buildkite')).warnings, [], 'a fresh pull Secret: no warning');

  buildkite.metadata.annotations[STATUS] = status('failing', '2020-01-01T00:00:00.000Z');
  c.api.put(NAMESPACES, buildkite);
  await until(() => c.source.annotations('buildkite')?.[STATUS]?.includes('failing') === true, 'the new status');
  const answer = await c.admit('buildkite');
  t.equal(answer.decision, 'injected', 'the Pod still gets its pull Secret');
  t.match(answer.warnings, [/^buildkite-ecr-injector: pull Secret ecr-credentials expired at 2020-01-01T00:00:00.000Z/]);
  const audit = c.logs.lines.filter((line) => line.msg === 'admission').at(-1);
  t.equal(audit?.pullSecretProblem, 'expired', 'the audit line says so');
  t.equal(sample(await c.scrape(), 'buildkite_ecr_injector_pull_secret_warnings_total', { problem: 'expired' }), 1);
  t.equal(sample(await c.scrape(), 'buildkite_ecr_injector_pull_secret_warnings_total', { problem: 'unmanaged' }), 0);

  delete buildkite.metadata.annotations[STATUS];
  c.api.put(NAMESPACES, buildkite);
  await until(() => c.source.annotations('buildkite') === undefined, 'the annotation removed');
  t.same((await c.admit('buildkite')).warnings, [], 'no report: no warning');
});
