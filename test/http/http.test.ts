// The webhook over a real HTTPS listener with real TLS: the admission protocol, every bad-input case
// (each a 4xx JSON answer that says what is wrong), fail-open on internal errors, the audit line, and
// certificate and namespace-file changes on disk picked up without a restart.
import { readFile, rename, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { Writable } from 'node:stream';
import t, { type Test } from 'tap';
import { certificatePaths, generateCertificates, writeCertificates, type CertificateSet } from '../../src/certs/generate.js';
import { parseConfig, type Config } from '../../src/webhook/config.js';
import { createLogger } from '../../src/log.js';
import type { NamespaceLabelSource } from '../../src/webhook/namespace-labels.js';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { httpsRequest, until } from '../helpers/https-client.js';

const review = JSON.parse(await readFile(new URL('../fixtures/default-job/review.json', import.meta.url), 'utf8')) as { apiVersion: string; kind: string; request: Record<string, unknown> & { uid: string } };
const reviewText = JSON.stringify(review);

const NAMESPACES_YAML = `buildkite:
  buildkite-ecr-injector/inject: enabled
  buildkite-ecr-injector/service-account: buildkite-agent
  buildkite-ecr-injector/aws-secret: aws-credentials
  buildkite-ecr-injector/pull-secret: ecr-credentials
`;

/** Collects pino's JSON lines in memory. */
class LogCapture extends Writable {
  readonly lines: Record<string, unknown>[] = [];
  readonly raw: string[] = [];
  override _write(chunk: Buffer, _encoding: string, done: () => void): void {
    for (const line of chunk.toString('utf8').split('\n').filter(Boolean)) {
      this.raw.push(line);
      this.lines.push(JSON.parse(line) as Record<string, unknown>);
    }
    done();
  }
}

interface Harness {
  server: RunningServer;
  certs: CertificateSet;
  dir: string;
  logs: LogCapture;
  port: number;
}

async function startHarness(t: Test, options: { config?: Config; source?: NamespaceLabelSource } = {}): Promise<Harness> {
  const dir = t.testdir({ 'namespaces.yaml': NAMESPACES_YAML });
  const certs = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const paths = await writeCertificates(join(dir, 'tls'), certs);
  const logs = new LogCapture();
  const server = await startServer({
    config: options.config ?? parseConfig({ maxRequestBytes: 256 * 1024 }),
    log: createLogger({ destination: logs }),
    host: '127.0.0.1',
    port: 0,
    tls: { mode: 'files', certPath: paths.cert, keyPath: paths.key },
    namespaces: options.source ? { source: options.source } : { file: join(dir, 'namespaces.yaml') },
    watchIntervalMs: 50,
  });
  t.teardown(() => server.close());
  return { server, certs, dir, logs, port: server.port };
}


t.test('admission protocol over HTTPS', async (t) => {
  const h = await startHarness(t);

  t.test('a job Pod in an opted-in namespace gets a JSONPatch, in the version it was asked in', async (t) => {
    const res = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: reviewText });
    t.equal(res.status, 200);
    t.match(res.headers['content-type'], /application\/json/);
    const body = res.json as { apiVersion: string; kind: string; response: Record<string, unknown> };
    t.equal(body.apiVersion, 'admission.k8s.io/v1');
    t.equal(body.kind, 'AdmissionReview');
    t.equal(body.response.uid, review.request.uid);
    t.equal(body.response.allowed, true);
    t.equal(body.response.patchType, 'JSONPatch');
    const operations = JSON.parse(Buffer.from(body.response.patch as string, 'base64').toString()) as { path: string }[];
    t.same(operations.map((o) => o.path).sort(), [
      '/metadata/annotations/buildkite-ecr-injector~1injected',
      '/spec/containers/0/envFrom',
      '/spec/containers/2/envFrom',
      '/spec/imagePullSecrets',
      '/spec/serviceAccount',
      '/spec/serviceAccountName',
    ]);
    t.same(body.response.auditAnnotations && Object.keys(body.response.auditAnnotations).sort(), ['decision', 'injected', 'reason']);

    const beta = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: JSON.stringify({ ...review, apiVersion: 'admission.k8s.io/v1beta1' }) });
    t.equal((beta.json as { apiVersion: string }).apiVersion, 'admission.k8s.io/v1beta1', 'answered in v1beta1');
  });

  t.test('one audit line per request with names, never values', async (t) => {
    const before = h.logs.lines.length;
    await httpsRequest({ port: h.port, ca: h.certs.caCert, body: reviewText });
    await until(() => h.logs.lines.slice(before).some((l) => l.msg === 'admission'), 'the audit line');
    const audit = h.logs.lines.slice(before).find((l) => l.msg === 'admission')!;
    t.match(audit, {
      uid: review.request.uid,
      namespace: 'buildkite',
      pod: 'buildkite-01a213e8-69a6-746b-b826-bea016f1dbd1-',
      jobUuid: '01a213e8-69a6-746b-b826-bea016f1dbd1',
      pipeline: 'payments-api',
      branch: 'main',
      stepKey: 'test',
      buildUrl: 'https://buildkite.com/acme/payments-api/builds/4821',
      user: 'system:serviceaccount:kube-system:job-controller',
      operation: 'CREATE',
      dryRun: false,
      decision: 'injected',
      reason: 'injected',
      injected: { serviceAccountName: 'buildkite-agent', envFrom: { secret: 'aws-credentials', containers: ['container-0', 'checkout'] } },
    });
    t.type(audit.durationMs, 'number');
    const everything = h.logs.raw.join('\n');
    t.notMatch(everything, 'make test', 'the step command (an env value) never reaches the log');
    t.notMatch(everything, 'BUILDKITE_AGENT_ACQUIRE_JOB', 'env names of the Pod are not logged either');
  });

  t.test('bad input gets a 4xx JSON answer naming the problem', async (t) => {
    const cases: { name: string; method?: string; body?: string | Buffer; headers?: Record<string, string>; status: number; message: RegExp }[] = [
      { name: 'wrong method', method: 'GET', status: 405, message: /GET is not allowed on \/mutate; use POST/ },
      { name: 'wrong content type', body: reviewText, headers: { 'content-type': 'text/plain' }, status: 415, message: /Unsupported Media Type/i },
      { name: 'malformed JSON', body: '{"kind": "AdmissionReview", ', status: 400, message: /^malformed JSON: / },
      { name: 'empty body', body: '', status: 400, message: /request body is empty/ },
      { name: 'body too large', body: JSON.stringify({ ...review, padding: 'x'.repeat(300 * 1024) }), status: 413, message: /too large/i },
      { name: 'not an object', body: '[1,2,3]', status: 400, message: /body is not a JSON object/ },
      { name: 'not an AdmissionReview', body: JSON.stringify({ kind: 'Pod', apiVersion: 'v1' }), status: 400, message: /kind must be "AdmissionReview"/ },
      { name: 'unsupported version', body: JSON.stringify({ ...review, apiVersion: 'admission.k8s.io/v2' }), status: 400, message: /apiVersion must be one of/ },
      { name: 'no request', body: JSON.stringify({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1' }), status: 400, message: /request is missing/ },
      { name: 'no uid', body: JSON.stringify({ ...review, request: { ...review.request, uid: '' } }), status: 400, message: /request.uid/ },
      { name: 'namespace of the wrong type', body: JSON.stringify({ ...review, request: { ...review.request, namespace: 7 } }), status: 400, message: /request.namespace is not a string/ },
      { name: 'prototype poisoning', body: '{"kind":"AdmissionReview","__proto__":{"x":1}}', status: 400, message: /malformed JSON: .*forbidden prototype property/ },
      { name: 'unknown path', method: 'POST', body: reviewText, status: 404, message: /no route/, headers: {} },
    ];
    for (const c of cases) {
      const res = await httpsRequest({
        port: h.port,
        ca: h.certs.caCert,
        method: c.method ?? 'POST',
        path: c.name === 'unknown path' ? '/mutate-pods' : '/mutate',
        ...(c.body !== undefined ? { body: c.body } : {}),
        ...(c.headers ? { headers: c.headers } : {}),
      });
      t.equal(res.status, c.status, `${c.name}: status ${c.status}`);
      const body = res.json as { statusCode?: number; message?: string } | undefined;
      t.equal(body?.statusCode, c.status, `${c.name}: JSON error body`);
      t.match(body?.message ?? '', c.message, `${c.name}: says what is wrong`);
      t.notMatch(res.text, /at .*\.(ts|js):\d+/, `${c.name}: no stack trace`);
    }
    const health = await httpsRequest({ port: h.port, ca: h.certs.caCert, method: 'GET', path: '/healthz' });
    t.equal(health.status, 200, 'the server is still healthy after all of that');
  });

  t.test('a Pod the webhook cannot read is admitted unchanged, with a reason', async (t) => {
    const broken = { ...review, request: { ...review.request, object: { metadata: {}, spec: { containers: 'nope' } } } };
    const res = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: JSON.stringify(broken) });
    t.equal(res.status, 200);
    const response = (res.json as { response: Record<string, unknown> }).response;
    t.equal(response.allowed, true);
    t.notOk('patch' in response);
    t.same(response.auditAnnotations, { decision: 'skipped', reason: 'malformed-pod' });
  });

  t.test('health and readiness', async (t) => {
    const ready = await httpsRequest({ port: h.port, ca: h.certs.caCert, method: 'GET', path: '/readyz' });
    t.equal(ready.status, 200);
    t.same(ready.json, { status: 'ready', namespaces: 'synced' });
  });
});

t.test('TLS 1.2 is the minimum', async (t) => {
  const h = await startHarness(t);
  const { connect } = await import('node:tls');
  const error = await new Promise<Error | undefined>((resolve) => {
    const socket = connect({ host: '127.0.0.1', port: h.port, ca: h.certs.caCert, servername: 'localhost', maxVersion: 'TLSv1.1', minVersion: 'TLSv1' });
    socket.on('secureConnect', () => {
      socket.destroy();
      resolve(undefined);
    });
    socket.on('error', resolve);
  });
  t.ok(error, `a TLS 1.1 client is refused (${error?.message ?? 'connected!'})`);
});

t.test('an internal error admits the Pod unchanged (fail open) and is logged', async (t) => {
  const failing: NamespaceLabelSource = {
    get: () => {
      throw new Error('label cache exploded');
    },
    isSynced: () => true,
    state: () => 'synced',
    close: () => Promise.resolve(),
  };
  const h = await startHarness(t, { source: failing });
  const res = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: reviewText });
  t.equal(res.status, 200);
  const response = (res.json as { response: Record<string, unknown> }).response;
  t.equal(response.uid, review.request.uid);
  t.equal(response.allowed, true);
  t.notOk('patch' in response, 'no patch');
  await until(() => h.logs.lines.some((l) => l.msg === 'namespace lookup failed'), 'the error log line');
  t.pass('the failure is logged');
});

t.test('certificate files replaced on disk are served without a restart', async (t) => {
  const h = await startHarness(t);
  const first = await httpsRequest({ port: h.port, ca: h.certs.caCert, method: 'GET', path: '/healthz' });
  t.equal(first.status, 200);

  const next = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const paths = certificatePaths(join(h.dir, 'tls'));
  // Replace each file atomically, as cert-manager's Secret volume does (a rename, never a partial write).
  await writeFile(`${paths.key}.new`, next.key);
  await writeFile(`${paths.cert}.new`, next.cert);
  await rename(`${paths.key}.new`, paths.key);
  await rename(`${paths.cert}.new`, paths.cert);

  await until(async () => {
    try {
      const res = await httpsRequest({ port: h.port, ca: next.caCert, method: 'GET', path: '/healthz' });
      return res.status === 200;
    } catch {
      return false;
    }
  }, 'a handshake with the new certificate');
  const res = await httpsRequest({ port: h.port, ca: next.caCert, body: reviewText });
  t.equal(res.status, 200, 'admissions are served with the new certificate');
  await t.rejects(httpsRequest({ port: h.port, ca: h.certs.caCert, method: 'GET', path: '/healthz' }), 'the old CA no longer verifies');

  // A broken pair on disk never replaces the good one in memory.
  await writeFile(paths.cert, h.certs.cert);
  await until(() => h.logs.lines.some((l) => l.msg === 'serving certificate reload failed; keeping the current one'), 'the rejected reload');
  const still = await httpsRequest({ port: h.port, ca: next.caCert, method: 'GET', path: '/healthz' });
  t.equal(still.status, 200, 'still serving the last good certificate');
});

t.test('a namespaces file edited on disk applies to the next Pod', async (t) => {
  const h = await startHarness(t);
  await writeFile(join(h.dir, 'namespaces.yaml'), 'buildkite:\n  buildkite-ecr-injector/inject: disabled\n');
  await until(async () => {
    const res = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: reviewText });
    const response = (res.json as { response: { auditAnnotations?: Record<string, string> } }).response;
    return response.auditAnnotations?.reason === 'namespace-not-opted-in';
  }, 'the opt-out to apply');
  t.pass('the next Pod saw the new labels');
  await writeFile(join(h.dir, 'namespaces.yaml'), 'buildkite: [not, a, map]\n');
  await until(() => h.logs.lines.some((l) => l.msg === 'namespaces file reload failed; keeping the last good labels'), 'the rejected edit');
  const res = await httpsRequest({ port: h.port, ca: h.certs.caCert, body: reviewText });
  t.equal((res.json as { response: { auditAnnotations: Record<string, string> } }).response.auditAnnotations.reason, 'namespace-not-opted-in', 'last good labels kept');
});
