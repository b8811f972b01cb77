// `mutate` as a user runs it (the built binary) with credential rules: the report names the rule
// that matched and says, for each rule before it, which field and value did not match, or which
// identity annotation the Pod lacked; a rules mistake in --config exits 1 with the field named.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { ROOT as root, runCli } from '../helpers/run-cli.js';

const fixture = join(root, 'test/fixtures/default-job/review.json');
const labels = 'buildkite-ecr-injector/inject=enabled,buildkite-ecr-injector/service-account=buildkite-agent';

const CONFIG = `
rules:
  - name: deploy-main
    match: {pipelines: payments-api, branches: "main release/*", steps: [deploy]}
    serviceAccount: payments-deployer
  - name: other-namespace
    match: {namespaces: [elsewhere]}
    serviceAccount: other
  - name: payments-any
    match: {pipelines: ["payments-*"]}
    serviceAccount: ci-readonly
`;

t.test('mutate explains the matched rule and why each earlier rule did not match', async (t) => {
  const config = join(t.testdir(), 'config.yaml');
  await writeFile(config, CONFIG);
  const result = await runCli(['mutate', fixture, '--namespace-labels', labels, '--config', config]);
  t.equal(result.code, 0, result.stderr);
  const report = parseYaml(result.stdout) as { decision: string; rule: string | null; rulesNotMatched: string[]; injected: unknown };
  t.equal(report.decision, 'injected');
  t.equal(report.rule, 'payments-any');
  t.same(report.rulesNotMatched, [
    'rule deploy-main: steps "test" does not match "deploy"',
    'rule other-namespace: namespaces "buildkite" does not match "elsewhere"',
  ]);
  t.same(report.injected, { serviceAccountName: 'ci-readonly' });
});

t.test('mutate: no rule matched, and a Pod without identity annotations', async (t) => {
  const dir = t.testdir();
  const config = join(dir, 'config.yaml');
  await writeFile(config, CONFIG);
  const pod = join(dir, 'pod.yaml');
  await writeFile(pod, 'kind: Pod\nmetadata: {namespace: buildkite, generateName: x-, labels: {buildkite.com/job-uuid: u}}\nspec: {containers: [{name: c}]}\n');
  const result = await runCli(['mutate', pod, '--namespace-labels', labels, '--config', config, '-o', 'json']);
  t.equal(result.code, 0, result.stderr);
  const report = JSON.parse(result.stdout) as { rule: string | null; rulesNotMatched: string[]; injected: unknown };
  t.equal(report.rule, null, 'no rule matched');
  t.same(report.rulesNotMatched, [
    'rule deploy-main: missing annotation buildkite.com/pipeline-slug',
    'rule other-namespace: namespaces "buildkite" does not match "elsewhere"',
    'rule payments-any: missing annotation buildkite.com/pipeline-slug',
  ]);
  t.same(report.injected, { serviceAccountName: 'buildkite-agent' }, 'the namespace label decides');
});

t.test('mutate: a bad rule in --config is one line naming the field, exit 1', async (t) => {
  const config = join(t.testdir(), 'config.yaml');
  await writeFile(config, 'rules:\n  - name: a\n  - name: a\n');
  const result = await runCli(['mutate', fixture, '--namespace-labels', labels, '--config', config]);
  t.equal(result.code, 1);
  t.match(result.stderr, /rules\.1\.name: a is used by an earlier rule/);
  t.notMatch(result.stderr, /\n\s+at /, 'no stack trace');
});
