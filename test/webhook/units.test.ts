// Unit tests for the pure pieces the fixture walk does not reach: config validation messages, the
// patch guard, request kinds the policy must refuse, a hostile injected-annotation, and fail-open.
import t from 'tap';
import { readFileSync } from 'node:fs';
import { describeEnvelopeProblem, formatWarning, reviewAdmission, type AdmissionRequest } from '../../src/webhook/admission.js';
import { ConfigError, parseConfig, withExcludedNamespace } from '../../src/webhook/config.js';
import { parseInjectedAnnotation } from '../../src/webhook/mutate.js';
import { parseLabelList, parseNamespacesDocument } from '../../src/files/namespaces-file.js';
import { createPatchGuard, PatchGuardError } from '../../src/webhook/patch.js';

const review = JSON.parse(readFileSync(new URL('../fixtures/default-job/review.json', import.meta.url), 'utf8')) as { request: AdmissionRequest };
const enabled = { 'buildkite-ecr-injector/inject': 'enabled', 'buildkite-ecr-injector/pull-secret': 'ecr-credentials' };

t.test('config: defaults, and errors that name the field and the fix', (t) => {
  const config = parseConfig({});
  t.equal(config.labelPrefix, 'buildkite-ecr-injector');
  t.equal(config.jobPodLabel, 'buildkite.com/job-uuid');
  t.same(config.excludedNamespaces, ['kube-system', 'kube-public', 'kube-node-lease']);
  t.same(config.targetContainers, ['command', 'checkout']);
  t.equal(config.serviceAccountPolicy, 'ifDefault');
  t.ok(Object.isFrozen(config) && Object.isFrozen(config.defaults), 'frozen');
  t.same(parseConfig({ defaults: { awsSecret: 'none' } }).defaults.awsSecret, null, '"none" means off');

  const bad: [unknown, RegExp][] = [
    [{ serviceAccountPolicy: 'sometimes' }, /serviceAccountPolicy: .*ifDefault.*always.*never/],
    [{ defaults: { serviceAccount: 'Build_Bot' } }, /defaults\.serviceAccount: .*RFC 1123/],
    [{ labelPrefix: 'Not A Prefix' }, /labelPrefix: must be a DNS subdomain/],
    [{ targetContainers: [] }, /targetContainers: must name at least one/],
    [{ maxRequestBytes: 10 }, /maxRequestBytes/],
    [{ unknownKey: 1 }, /unknownKey|Unrecognized key/],
    [[1, 2], /top level/],
  ];
  for (const [document, message] of bad) {
    t.throws(() => parseConfig(document, 'config file x.yaml'), { name: 'ConfigError', message }, `rejects ${JSON.stringify(document)}`);
  }
  t.ok(new ConfigError('x') instanceof Error);
  t.same(withExcludedNamespace(config, 'buildkite-ecr-injector').excludedNamespaces.at(-1), 'buildkite-ecr-injector');
  t.equal(withExcludedNamespace(config, undefined), config);
  t.end();
});

t.test('patch guard: only the paths the webhook may write', (t) => {
  const guard = createPatchGuard('buildkite-ecr-injector');
  const allowed = [
    { op: 'replace', path: '/spec/serviceAccountName', value: 'x' },
    { op: 'add', path: '/spec/imagePullSecrets/3', value: { name: 'x' } },
    { op: 'add', path: '/spec/initContainers/0/envFrom', value: [] },
    { op: 'add', path: '/metadata/annotations/buildkite-ecr-injector~1injected', value: '{}' },
    { op: 'add', path: '/metadata/annotations', value: { 'buildkite-ecr-injector/injected': '{}' } },
  ] as const;
  t.doesNotThrow(() => guard.check([...allowed]));
  const refused = [
    { op: 'add', path: '/spec/containers/0/env', value: [] },
    { op: 'remove', path: '/spec/imagePullSecrets/0' },
    { op: 'add', path: '/metadata/labels/x', value: 'y' },
    { op: 'add', path: '/metadata/annotations', value: { other: 'y' } },
    { op: 'add', path: '/metadata/annotations/other~1key', value: 'y' },
    { op: 'replace', path: '/spec/containers/0/image', value: 'evil' },
  ] as const;
  for (const operation of refused) t.throws(() => guard.check([operation]), PatchGuardError, `${operation.op} ${operation.path}`);
  t.end();
});

t.test('an internal error (here: the guard refusing) admits the Pod unchanged', (t) => {
  const failing = { check: () => { throw new PatchGuardError('patch path /spec/x is outside the paths this webhook may write'); } };
  const outcome = reviewAdmission(review.request, enabled, { config: parseConfig({}), guard: failing });
  t.equal(outcome.response.allowed, true);
  t.notOk('patch' in outcome.response);
  t.equal(outcome.audit.decision, 'skipped');
  t.equal(outcome.audit.reason, 'internal-error');
  t.match(outcome.error?.message, /outside the paths/);
  t.end();
});

t.test('requests that are not a v1 Pod CREATE are left alone', (t) => {
  const config = parseConfig({});
  const variants: [Partial<AdmissionRequest>, string][] = [
    [{ kind: { group: 'apps', version: 'v1', kind: 'Deployment' } }, 'not-a-pod'],
    [{ kind: { group: '', version: 'v1', kind: 'Pod' }, subResource: 'ephemeralcontainers' }, 'not-a-pod'],
    [{ operation: 'DELETE', object: null }, 'operation-not-create'],
    [{ namespace: '' }, 'namespace-unknown'],
    [{ object: { spec: { containers: [] } } }, 'malformed-pod'],
  ];
  for (const [change, reason] of variants) {
    const outcome = reviewAdmission({ ...review.request, ...change }, enabled, { config });
    t.equal(outcome.audit.reason, reason, JSON.stringify(change));
    t.same(outcome.operations, []);
  }
  t.end();
});

t.test('a hostile injected-annotation from a previous writer is read safely', (t) => {
  t.same(parseInjectedAnnotation('not json'), {});
  t.same(parseInjectedAnnotation('[1]'), {});
  t.same(parseInjectedAnnotation('{"envFrom":{"secret":"a","containers":"x"},"imagePullSecrets":[1]}'), {});
  t.same(parseInjectedAnnotation('{"serviceAccountName":"a","imagePullSecrets":["b"]}'), { serviceAccountName: 'a', imagePullSecrets: ['b'] });
  t.end();
});

t.test('envelope checks and warnings', (t) => {
  t.equal(describeEnvelopeProblem({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: 'u' } }), undefined);
  t.match(describeEnvelopeProblem({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: 'u', dryRun: 'yes' } }), /dryRun/);
  t.match(describeEnvelopeProblem({ kind: 'AdmissionReview', apiVersion: 'admission.k8s.io/v1', request: { uid: 'u', userInfo: 'me' } }), /userInfo/);
  const long = formatWarning('x'.repeat(300));
  t.equal(long.length, 120);
  t.ok(long.endsWith('…'));
  t.end();
});

t.test('namespaces documents and label lists', (t) => {
  const parsed = parseNamespacesDocument({ a: { 'k/x': 'v' }, b: null }, 'test');
  t.same(parsed.get('a'), { 'k/x': 'v' });
  t.same(parsed.get('b'), {});
  t.throws(() => parseNamespacesDocument({ a: { k: 1 } }, 'test'), /label k of namespace a must be a string/);
  t.throws(() => parseNamespacesDocument(['a'], 'test'), /must be a map/);
  t.same(parseLabelList('a=1, b/c=enabled,'), { a: '1', 'b/c': 'enabled' });
  t.throws(() => parseLabelList('novalue'), /must be key=value/);
  t.end();
});
