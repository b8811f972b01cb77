// Unit tests for src/webhook/rules.ts: every pattern form, the schema's errors (each naming its
// field), the identity annotations and the build-URL fallback, and first-match evaluation with the
// reason each earlier rule did not match.
import t from 'tap';
import { parseConfig } from '../../src/webhook/config.js';
import { compilePatterns, describeMiss, evaluateRules, jobIdentity, pipelineFromBuildUrl, type JobIdentity } from '../../src/webhook/rules.js';

function matches(patterns: string[], value: string): boolean {
  return compilePatterns(patterns).test(value);
}

t.test('pattern forms: exact, *, * across slashes, ! alone and mixed', (t) => {
  t.ok(matches(['main'], 'main'));
  t.notOk(matches(['main'], 'main2'), 'exact is exact');
  t.notOk(matches(['main'], 'mai'), 'no prefix match');
  t.ok(matches(['release/*'], 'release/1.2'));
  t.ok(matches(['release/*'], 'release/'), '* matches the empty run');
  t.notOk(matches(['release/*'], 'hotfix/release/1'), 'anchored at the start');
  t.ok(matches(['*'], 'feature/a/b/c'), '* crosses slashes');
  t.ok(matches(['feature/*/done'], 'feature/x/y/done'), '* in the middle crosses slashes');
  t.ok(matches(['*-deploy'], 'payments-deploy'));
  t.notOk(matches(['*-deploy'], 'payments-deploy-2'));
  t.ok(matches(['v1.2'], 'v1.2'));
  t.notOk(matches(['v1.2'], 'v1x2'), 'a dot is literal, not a regex');
  t.notOk(matches(['a+b'], 'aab'), 'regex characters are literal');
  t.ok(matches(['a+b'], 'a+b'));
  t.ok(matches(['!main'], 'feature/x'), 'only ! patterns: everything not excluded');
  t.notOk(matches(['!main'], 'main'));
  t.notOk(matches(['!main', '!release/*'], 'release/2'));
  t.ok(matches(['*', '!main'], 'dev'), 'mixed: positive and not excluded');
  t.notOk(matches(['*', '!main'], 'main'), 'mixed: excluded wins');
  t.notOk(matches(['release/*', '!release/old-*'], 'release/old-1'));
  t.ok(matches(['release/*', '!release/old-*'], 'release/new'));
  t.notOk(matches(['release/*', '!release/old-*'], 'main'), 'mixed: needs a positive match');
  t.ok(matches(['a*b*c'], 'a-x-b-y-c'), 'several stars');
  t.ok(matches(['a*b*c'], 'abc'), 'stars match empty runs');
  t.notOk(matches(['a*b*c'], 'acb'), 'pieces in order');
  t.ok(matches(['*b*b*'], 'abab'));
  t.notOk(matches(['ab*ba'], 'aba'), 'head and tail may not overlap');
  t.ok(matches(['ab*ba'], 'abba'));
  t.ok(matches(['**'], ''), 'a double star is a star');
  t.notOk(matches(['x*y*z'], 'x-z-y'), 'the piece must sit before the tail');
  const long = 'a'.repeat(100_000);
  const started = process.hrtime.bigint();
  t.notOk(matches(['a*a*a*a*a*b'], long), 'no match on a long value');
  t.ok(Number(process.hrtime.bigint() - started) < 200e6, 'and no backtracking blow-up (well under 200 ms)');
  t.end();
});

t.test('schema: a list or a space-separated string, compiled once', (t) => {
  const config = parseConfig({
    rules: [
      { name: 'a', match: { branches: 'main  release/*\t!release/old' }, serviceAccount: 'deployer', awsSecret: 'none' },
      { name: 'b', match: { pipelines: ['app', 'web-*'] } },
      { name: 'c' },
    ],
  });
  const [a, b, c] = config.rules;
  t.same(a?.match.branches?.patterns, ['main', 'release/*', '!release/old'], 'string split on any whitespace');
  t.equal(a?.serviceAccount, 'deployer');
  t.equal(a?.awsSecret, null, 'none is null');
  t.equal(a?.pullSecret, undefined, 'unset stays undefined (falls through)');
  t.same(b?.match.pipelines?.patterns, ['app', 'web-*']);
  t.ok(b?.match.pipelines?.test('web-ui'));
  t.same(c?.match, {}, 'no match matches all');
  t.ok(Object.isFrozen(config.rules) && Object.isFrozen(a), 'frozen with the config');
  t.same(parseConfig({}).rules, [], 'default: no rules');
  t.end();
});

t.test('schema errors name the field', (t) => {
  const bad: [unknown, RegExp][] = [
    [[{ match: {} }], /rules\.0\.name: /],
    [[{ name: 'Payments_Deploy' }], /rules\.0\.name: must be a lowercase RFC 1123 name/],
    [[{ name: 'a' }, { name: 'a' }], /rules\.1\.name: a is used by an earlier rule/],
    [[{ name: 'a', match: { branches: '' } }], /rules\.0\.match\.branches: is empty/],
    [[{ name: 'a', match: { branches: '   ' } }], /rules\.0\.match\.branches: is empty/],
    [[{ name: 'a', match: { steps: [] } }], /rules\.0\.match\.steps: is empty/],
    [[{ name: 'a', match: { steps: ['deploy', ''] } }], /rules\.0\.match\.steps: holds an empty pattern/],
    [[{ name: 'a', match: { steps: 'deploy !' } }], /rules\.0\.match\.steps: holds an empty pattern/],
    [[{ name: 'a', match: { steps: ['a b'] } }], /rules\.0\.match\.steps: holds a list item with whitespace/],
    [[{ name: 'a', match: { steps: 3 } }], /rules\.0\.match\.steps: must be a list of patterns/],
    [[{ name: 'a', match: { labels: ['x'] } }], /rules\.0\.match: .*labels/],
    [[{ name: 'a', role: 'x' }], /rules\.0: .*role/],
    [[{ name: 'a', serviceAccount: 'Not OK' }], /rules\.0\.serviceAccount: /],
    [{ name: 'a' }, /rules: /],
  ];
  for (const [rules, message] of bad) {
    t.throws(() => parseConfig({ rules }, 'config file x.yaml'), { name: 'ConfigError', message }, `rejects ${JSON.stringify(rules)}`);
  }
  t.end();
});

t.test('identity: controller annotations only, the build-URL fallback, empty is missing', (t) => {
  t.same(
    jobIdentity('buildkite', {
      'buildkite.com/pipeline-slug': 'payments',
      'buildkite.com/build-branch': 'main',
      'buildkite.com/step-key': 'deploy',
      'tag.buildkite.com/pipeline': 'forged',
    }),
    { namespaces: 'buildkite', pipelines: 'payments', branches: 'main', steps: 'deploy' },
  );
  t.same(jobIdentity('ns', { 'buildkite.com/build-url': 'https://buildkite.com/acme/old-app/builds/7' }), {
    namespaces: 'ns',
    pipelines: 'old-app',
    branches: undefined,
    steps: undefined,
  });
  t.equal(jobIdentity('ns', { 'buildkite.com/pipeline-slug': 'slug', 'buildkite.com/build-url': 'https://buildkite.com/acme/other/builds/7' }).pipelines, 'slug', 'the slug wins');
  t.equal(jobIdentity('ns', { 'buildkite.com/pipeline-slug': '', 'buildkite.com/step-key': '' }).steps, undefined);
  t.equal(jobIdentity('ns', undefined).pipelines, undefined);
  for (const url of ['not a url', 'https://buildkite.com/acme/app', 'https://buildkite.com/acme/app/jobs/7', 'https://buildkite.com/acme/app/builds/7/extra', 'https://buildkite.com//app/builds/7']) {
    t.equal(pipelineFromBuildUrl(url), undefined, `no pipeline from ${url}`);
  }
  t.end();
});

t.test('evaluation: first match wins, misses say which field and value, or the missing annotation', (t) => {
  const { rules } = parseConfig({
    rules: [
      { name: 'deploy-main', match: { namespaces: ['buildkite'], pipelines: 'payments', branches: 'main', steps: 'deploy' }, serviceAccount: 'deployer' },
      { name: 'in-other-ns', match: { namespaces: 'other' } },
      { name: 'payments-any', match: { pipelines: ['payments'] }, serviceAccount: 'readonly' },
      { name: 'catch-all', serviceAccount: 'fallback' },
    ],
  });
  const identity: JobIdentity = { namespaces: 'buildkite', pipelines: 'payments', branches: 'feature/x', steps: 'deploy' };
  const result = evaluateRules(rules, identity);
  t.equal(result.rule?.name, 'payments-any');
  t.same(result.misses, [
    { rule: 'deploy-main', field: 'branches', value: 'feature/x' },
    { rule: 'in-other-ns', field: 'namespaces', value: 'buildkite' },
  ]);
  t.equal(describeMiss(result.misses[0]!, rules[0]), 'rule deploy-main: branches "feature/x" does not match "main"');
  t.equal(evaluateRules(rules, { ...identity, branches: 'main' }).rule?.name, 'deploy-main');

  const old = evaluateRules(rules, { namespaces: 'buildkite', pipelines: 'payments', branches: undefined, steps: undefined });
  t.equal(old.rule?.name, 'payments-any', 'a rule asking for a missing field does not match');
  t.same(old.misses[0], { rule: 'deploy-main', field: 'branches', missing: 'buildkite.com/build-branch' });
  t.equal(describeMiss(old.misses[0]!, rules[0]), 'rule deploy-main: missing annotation buildkite.com/build-branch');

  const none = evaluateRules(rules.slice(0, 3), { namespaces: 'buildkite', pipelines: undefined, branches: undefined, steps: undefined });
  t.equal(none.rule, undefined, 'no rule matched');
  t.equal(none.misses.length, 3, 'a miss for every rule');
  t.same(none.misses[2], { rule: 'payments-any', field: 'pipelines', missing: 'buildkite.com/pipeline-slug' });
  t.same(evaluateRules([], identity), { rule: undefined, misses: [] });
  t.end();
});
