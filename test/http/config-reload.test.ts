// The config file is followed on disk, over real HTTPS: laid out as a mounted ConfigMap (config.yaml
// -> ..data/config.yaml, ..data -> a timestamped folder), replaced by the kubelet's atomic `..data`
// symlink swap. A valid new file applies to the next request; an invalid one is refused with a log
// line naming the field and a metric, and the last good config (its rules) stays in force.
import { mkdirSync, readFileSync, renameSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import t from 'tap';
import { startServer } from '../../src/http/server.js';
import { until } from '../helpers/https-client.js';
import { requestOnce, startTestWebhook, type TestWebhook } from '../helpers/tls-webhook.js';
import { captureLog } from '../helpers/log-capture.js';

const review = readFileSync(new URL('../fixtures/default-job/review.json', import.meta.url), 'utf8');

const RULES_A = `
serviceAccountPolicy: always
rules:
  - name: payments-main
    match: {pipelines: [payments-api], branches: main}
    serviceAccount: payments-deployer
`;
const RULES_B = `
rules:
  - name: payments-readonly
    match: {pipelines: "payments-*"}
    serviceAccount: ci-readonly
`;

let generation = 0;

/** Write a new version the way the kubelet does: a fresh folder, then one rename of `..data`. */
function publish(dir: string, text: string): void {
  generation += 1;
  const version = `..2026_12_03_${generation}`;
  mkdirSync(join(dir, version));
  writeFileSync(join(dir, version, 'config.yaml'), text);
  symlinkSync(version, join(dir, '..data_tmp'));
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'));
}

function configMapDir(root: string, text: string): string {
  const dir = join(root, 'config-volume');
  mkdirSync(dir);
  publish(dir, text);
  symlinkSync('..data/config.yaml', join(dir, 'config.yaml'));
  return dir;
}

async function admit(webhook: TestWebhook): Promise<{ rule?: unknown; injected?: string; patch?: { path: string; value: unknown }[] }> {
  const answer = await requestOnce(webhook.port, { ca: webhook.ca, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json' }, body: review });
  const body = JSON.parse(answer.body) as { response: { auditAnnotations?: { rule?: string; injected?: string }; patch?: string } };
  const patch = body.response.patch === undefined ? undefined : (JSON.parse(Buffer.from(body.response.patch, 'base64').toString('utf8')) as { path: string; value: unknown }[]);
  return { ...body.response.auditAnnotations, ...(patch ? { patch } : {}) };
}

async function metric(webhook: TestWebhook, name: string): Promise<string> {
  const text = await webhook.server.metrics.registry.metrics();
  return text.split('\n').filter((line) => line.startsWith(name)).join('\n');
}

t.test('a ConfigMap ..data swap: valid applies to the next request, invalid is refused and the last good stays', async (t) => {
  const root = t.testdir();
  const dir = configMapDir(root, RULES_A);
  const webhook = await startTestWebhook(t, { dir: root, config: { file: join(dir, 'config.yaml') }, watchIntervalMs: 50 });

  const first = await admit(webhook);
  t.equal(first.rule, 'payments-main', 'the rule from the file at start');
  t.match(first.injected, /payments-deployer/);
  const annotation = first.patch?.find((operation) => operation.path === '/metadata/annotations/buildkite-ecr-injector~1injected');
  t.match(annotation?.value, /^\{"rule":"payments-main","serviceAccountName":"payments-deployer"/, "the rule in the Pod's injected annotation");
  const auditLine = webhook.captured.records().find((line) => line.msg === 'admission');
  t.equal(auditLine?.rule, 'payments-main', 'the rule in the audit line');
  t.match(await metric(webhook, 'buildkite_ecr_injector_admissions_by_rule_total'), /rule="payments-main",decision="injected"\} 1/);

  publish(dir, RULES_B);
  await until(async () => (await admit(webhook)).rule === 'payments-readonly', 'the new rules in force', 10_000);
  t.match(await metric(webhook, 'buildkite_ecr_injector_config_reloads_total'), /result="applied"\} [1-9]/);

  publish(dir, `${RULES_B}\n  - name: Bad_Name\n`);
  await until(() => webhook.captured.records().some((line) => line.msg?.toString().includes('reload refused')), 'the refusal logged', 10_000);
  const refusal = webhook.captured.records().find((line) => line.msg?.toString().includes('reload refused'));
  t.match(refusal?.err, /rules\.1\.name: must be a lowercase RFC 1123 name/, 'the log line names the field');
  t.equal(refusal?.level, 50, 'logged as an error');
  t.match(await metric(webhook, 'buildkite_ecr_injector_config_reloads_total'), /result="failed"\} 1/);
  t.match(await metric(webhook, 'buildkite_ecr_injector_config_reload_failing'), / 1$/m);
  t.equal((await admit(webhook)).rule, 'payments-readonly', 'the last good config stays in force');

  publish(dir, RULES_A);
  await until(async () => (await admit(webhook)).rule === 'payments-main', 'a fixed file applies again', 10_000);
  t.match(await metric(webhook, 'buildkite_ecr_injector_config_reload_failing'), / 0$/m);
});

t.test('restart-only keys keep their running values on reload, and the log says which', async (t) => {
  const root = t.testdir();
  const dir = configMapDir(root, 'maxRequestBytes: 1048576\n');
  const webhook = await startTestWebhook(t, { dir: root, config: { file: join(dir, 'config.yaml') }, watchIntervalMs: 50 });
  publish(dir, `maxRequestBytes: 2097152\n${RULES_B}`);
  await until(async () => (await admit(webhook)).rule === 'payments-readonly', 'the rules applied', 10_000);
  const warning = webhook.captured.records().find((line) => line.msg?.toString().includes('only after a restart'));
  t.same(warning?.keys, ['maxRequestBytes'], 'names the key that needs a restart');
});

t.test('start-up with an invalid config file fails with the field named', async (t) => {
  const root = t.testdir();
  const dir = configMapDir(root, 'rules:\n  - name: a\n    match: {branches: ""}\n');
  const captured = captureLog();
  await t.rejects(
    startServer({
      config: { file: join(dir, 'config.yaml') },
      log: captured.log,
      host: '127.0.0.1',
      port: 0,
      tls: { mode: 'files', certPath: join(root, 'no-cert.pem'), keyPath: join(root, 'no-key.pem') },
      namespaces: { file: join(root, 'none.yaml') },
    }),
    { name: 'ConfigError', message: /rules\.0\.match\.branches: is empty/ },
  );
});
