// The built `buildkite-ecr-injector` binary as a user runs it: `mutate` offline, `certs`, `serve` with
// a real HTTPS listener and a real SIGTERM, and start-up refusing a bad config with the field named.
import { execFile } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { readFile, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { httpsRequest } from '../helpers/https-client.js';
import { ROOT as root, runCli } from '../helpers/run-cli.js';
import { startServeProcess } from '../helpers/serve-process.js';

const run = promisify(execFile);
const fixture = join(root, 'test/fixtures/default-job/review.json');

t.test('mutate: an AdmissionReview file and namespace labels give the decision, patch and Pod', async (t) => {
  const labels = 'buildkite-ecr-injector/inject=enabled,buildkite-ecr-injector/pull-secret=ecr-credentials';
  const result = await runCli(['mutate', fixture, '--namespace-labels', labels]);
  t.equal(result.code, 0, result.stderr);
  const report = parseYaml(result.stdout) as { decision: string; reason: string; patch: { path: string }[]; pod: { spec: { imagePullSecrets: unknown } } };
  t.equal(report.decision, 'injected');
  t.equal(report.reason, 'injected');
  t.same(report.patch.map((o) => o.path).sort(), ['/metadata/annotations/buildkite-ecr-injector~1injected', '/spec/imagePullSecrets']);
  t.same(report.pod.spec.imagePullSecrets, [{ name: 'ecr-credentials' }]);
});

t.test('mutate: a bare Pod from stdin, labels from a namespaces file, JSON output', async (t) => {
  const pod = (JSON.parse(await readFile(fixture, 'utf8')) as { request: { object: unknown } }).request.object;
  const result = await runCli(
    ['mutate', '-', '--namespaces', 'examples/namespaces.yaml', '--namespace', 'not-opted-in', '-o', 'json'],
    JSON.stringify(pod),
  );
  t.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as { decision: string; reason: string; detail: string; patch: unknown[] };
  t.equal(report.decision, 'skipped');
  t.equal(report.reason, 'namespace-not-opted-in');
  t.match(report.detail, /has no buildkite-ecr-injector\/inject=enabled label/);
  t.same(report.patch, []);
});

t.test('mutate: usage errors exit 64 and say what is missing', async (t) => {
  const noLabels = await runCli(['mutate', fixture]);
  t.equal(noLabels.code, 64);
  t.match(noLabels.stderr, /mutate needs --namespace-labels/);
  const unknown = await runCli(['frobnicate']);
  t.equal(unknown.code, 64);
  t.match(unknown.stderr, /unknown command frobnicate/);
  const help = await runCli(['--help']);
  t.equal(help.code, 0);
  t.match(help.stdout, /serve\s+run the HTTPS admission webhook/);
});

t.test('certs: a CA and a SHA-256 serving certificate with the SANs asked for', async (t) => {
  const dir = t.testdir();
  const result = await runCli(['certs', '--out', dir, '--dns', 'buildkite-ecr-injector.buildkite-ecr-injector.svc,localhost', '--ip', '127.0.0.1', '--days', '30']);
  t.equal(result.code, 0, result.stderr);
  const caPem = Buffer.from(result.stdout.trim(), 'base64').toString('utf8');
  t.equal(caPem, await readFile(join(dir, 'ca.crt'), 'utf8'), 'stdout is the base64 CA bundle');
  const ca = new X509Certificate(caPem);
  const serving = new X509Certificate(await readFile(join(dir, 'tls.crt'), 'utf8'));
  t.ok(ca.ca, 'the CA is a CA');
  t.ok(serving.verify(ca.publicKey), 'the serving certificate is signed by the CA');
  t.match(serving.subjectAltName, /DNS:buildkite-ecr-injector\.buildkite-ecr-injector\.svc/);
  t.match(serving.subjectAltName, /IP Address:127\.0\.0\.1/);
  const days = (Date.parse(serving.validTo) - Date.now()) / 86_400_000;
  t.ok(days > 29 && days <= 30, `valid for 30 days (${days.toFixed(2)})`);
  const openssl = await run('openssl', ['x509', '-noout', '-text', '-in', join(dir, 'tls.crt')]).catch(() => undefined);
  if (openssl) t.match(openssl.stdout, /Signature Algorithm: ecdsa-with-SHA256/, 'signed with SHA-256');
});

t.test('serve: refuses a bad config naming the field', async (t) => {
  const dir = t.testdir({ 'config.yaml': 'serviceAccountPolicy: sometimes\n' });
  const result = await runCli(['serve', '--config', join(dir, 'config.yaml'), '--tls-mode', 'local', '--certs-dir', join(dir, 'certs'), '--namespaces', 'examples/namespaces.yaml']);
  t.equal(result.code, 1);
  t.match(result.stderr, /invalid config file .*config\.yaml:\n\s+serviceAccountPolicy: /);
  const noTls = await runCli(['serve', '--namespaces', 'examples/namespaces.yaml']);
  t.equal(noTls.code, 64);
  t.match(noTls.stderr, /--tls-mode files needs --tls-cert FILE and --tls-key FILE/);
});

t.test('serve: local mode generates certificates, answers, and drains on SIGTERM with exit 0', async (t) => {
  const dir = t.testdir();
  await writeFile(join(dir, 'namespaces.yaml'), await readFile(join(root, 'examples/namespaces.yaml')));
  const server = await startServeProcess(t, ['--tls-mode', 'local', '--certs-dir', join(dir, 'certs'), '--namespaces', join(dir, 'namespaces.yaml'), '--port', '0', '--host', '127.0.0.1', '--metrics-port', '0']);
  const port = server.port;
  t.match(server.stderr(), /curl --cacert .*ca\.crt/, 'prints a ready-to-paste curl');
  const ca = await readFile(join(dir, 'certs/ca.crt'), 'utf8');
  const res = await httpsRequest({ port, ca, body: await readFile(fixture, 'utf8') });
  t.equal(res.status, 200);
  t.equal((res.json as { response: { patchType: string } }).response.patchType, 'JSONPatch');

  server.child.kill('SIGTERM');
  const { code, signal } = await server.exited;
  t.equal(code, 0, `exit code 0 (signal ${signal})`);
  t.match(server.stdout(), /"msg":"stopped"/);
});
