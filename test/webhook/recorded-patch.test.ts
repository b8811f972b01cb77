// The recorded patch (mutate.ts writes, patch.ts PatchRecorder records) against the full diff it
// replaced, property-based (fast-check): thousands of generated job Pods and namespace label sets,
// with missing, null and empty lists and maps, names and annotation keys that need ~0/~1 escaping,
// earlier injections (well-formed or not) and every serviceAccountPolicy. For each: the patch applied
// to the original equals the mutated Pod, it is exactly the patch fast-json-patch's compare() gives
// (so it has the same effect), every path passes the guard, and the original is never written.
//
// RECORDED_PATCH_SEED (a number) and RECORDED_PATCH_RUNS override the fixed seed and run count.
import fc from 'fast-check';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { deepStrictEqual, doesNotThrow, equal } from 'node:assert/strict';
import t from 'tap';
import { reviewAdmission, type AdmissionRequest } from '../../src/webhook/admission.js';
import { parseConfig, type Config } from '../../src/webhook/config.js';
import { createPatchGuard, pointer } from '../../src/webhook/patch.js';
import type { Labels } from '../../src/webhook/pod.js';
import { diffPods } from '../helpers/full-diff.js';

const SEED = Number(process.env.RECORDED_PATCH_SEED ?? 1_410_2026);
const RUNS = Number(process.env.RECORDED_PATCH_RUNS ?? 4_000);
const AWKWARD = ['a~b', 'x/y', '~1~0', '/', '~', 'we~ird/name'];

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

/** A field that is absent (undefined, dropped by fc.record's requiredKeys: []), null, or a value. */
const maybe = <T>(value: fc.Arbitrary<T>): fc.Arbitrary<T | null> => fc.oneof(fc.constant(null), value);

const extra = fc.jsonValue({ maxDepth: 2 }) as fc.Arbitrary<Json>;
const secretNames = fc.constantFrom('aws-keys', 'ecr-pull', 'other-secret');

const envFromList = fc.array(
  fc.oneof(
    secretNames.map((name) => ({ secretRef: { name } })),
    fc.constant({ configMapRef: { name: 'settings' } }),
    fc.constant({ secretRef: { name: 'aws-keys', optional: true }, prefix: 'AWS_' }),
  ),
  { maxLength: 3 },
);

const container = fc.record(
  {
    name: fc.constantFrom('container-0', 'checkout', 'agent', 'sidecar-0', 'build', ...AWKWARD),
    image: fc.constant('ci:latest'),
    env: maybe(fc.array(fc.constantFrom({ name: 'BUILDKITE_COMMAND', value: 'make' }, { name: 'A~B/C', value: 'x' }), { maxLength: 2 })),
    envFrom: maybe(envFromList),
    restartPolicy: fc.constantFrom('Always', 'OnFailure'),
    resources: extra,
  },
  { requiredKeys: ['name'] },
);

const previousInjection = fc.oneof(
  fc.constant('{"serviceAccountName":"ci-sa"}'),
  fc.constant('{"envFrom":{"secret":"aws-keys","containers":["checkout"]},"imagePullSecrets":["ecr-pull"]}'),
  fc.constant('{"imagePullSecrets":["other-secret"]}'),
  fc.constant('not json'),
  fc.constant('[1,2]'),
  fc.constant('{"envFrom":{"secret":7}}'),
);

interface Case {
  config: Config;
  labels: Labels;
  pod: { [key: string]: unknown };
}

const testCase: fc.Arbitrary<Case> = fc
  .record({
    prefix: fc.constantFrom('buildkite-ecr-injector', 'ci.example.com'),
    policy: fc.constantFrom('ifDefault', 'always', 'never'),
    targets: fc.subarray(['command', 'checkout', 'agent', 'sidecar', 'init', 'build', ...AWKWARD], { minLength: 1 }),
    defaults: fc.record({ serviceAccount: maybe(fc.constant('buildkite-agent')), awsSecret: maybe(fc.constant('aws-keys')), pullSecret: maybe(fc.constant('ecr-pull')) }),
    namespace: fc.record(
      { serviceAccount: fc.constantFrom('ci-sa', 'default', 'none'), awsSecret: fc.constantFrom('aws-keys', 'other-secret', 'none'), pullSecret: fc.constantFrom('ecr-pull', 'none') },
      { requiredKeys: [] },
    ),
    annotations: maybe(fc.dictionary(fc.constantFrom('buildkite.com/pipeline-slug', 'note', ...AWKWARD), fc.string({ maxLength: 8 }), { maxKeys: 3 })),
    previous: fc.option(previousInjection, { nil: undefined }),
    spec: fc.record(
      {
        // Strings or absent: a null here is a malformed Pod (pod.ts), skipped before any patch.
        serviceAccountName: fc.constantFrom('', 'default', 'ci-sa', 'buildkite-agent', 'custom'),
        serviceAccount: fc.constantFrom('default', 'ci-sa', 'custom'),
        imagePullSecrets: maybe(fc.array(secretNames.map((name) => ({ name })), { maxLength: 3 })),
        initContainers: maybe(fc.array(container, { maxLength: 3 })),
        volumes: extra,
      },
      { requiredKeys: [] },
    ),
    containers: fc.array(container, { minLength: 0, maxLength: 4 }),
    status: extra,
  })
  .map(({ prefix, policy, targets, defaults, namespace, annotations, previous, spec, containers, status }) => {
    const config = parseConfig({ labelPrefix: prefix, serviceAccountPolicy: policy, targetContainers: targets, defaults });
    const labels: Record<string, string> = { [`${prefix}/inject`]: 'enabled' };
    for (const [field, value] of Object.entries(namespace)) {
      const key = { serviceAccount: 'service-account', awsSecret: 'aws-secret', pullSecret: 'pull-secret' }[field];
      if (value !== undefined && key !== undefined) labels[`${prefix}/${key}`] = value;
    }
    let podAnnotations: Record<string, string> | null | undefined = annotations ?? (previous === undefined ? null : {});
    if (previous !== undefined) podAnnotations = { ...podAnnotations, [`${prefix}/injected`]: previous };
    const metadata: Record<string, unknown> = { generateName: 'buildkite-0190-', labels: { 'buildkite.com/job-uuid': '0190', 'a/b~c': 'x' } };
    // null vs absent: the generator gives null, a coin decides which absences stay absent.
    if (podAnnotations !== null || containers.length % 2 === 0) metadata.annotations = podAnnotations;
    // Through JSON, as a request body arrives (and fc.record's objects have no prototype).
    const pod = JSON.parse(JSON.stringify({ apiVersion: 'v1', kind: 'Pod', metadata, spec: { ...spec, containers }, status })) as Case['pod'];
    return { config, labels, pod };
  });

function request(pod: unknown): AdmissionRequest {
  return { uid: 'u', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace: 'buildkite', object: pod };
}

const byPath = (operations: readonly Operation[]): Operation[] => [...operations].sort((a, b) => a.path.localeCompare(b.path));
const apply = (document: unknown, operations: readonly Operation[]): unknown =>
  fastJsonPatch.applyPatch(structuredClone(document), operations as Operation[], true, false).newDocument;

void t.test('pointer escapes each token with RFC 6901 (~ to ~0, / to ~1) and keeps indices', (t) => {
  t.equal(pointer(['metadata', 'annotations', 'buildkite-ecr-injector/injected']), '/metadata/annotations/buildkite-ecr-injector~1injected');
  t.equal(pointer(['spec', 'containers', 0, 'envFrom', 2]), '/spec/containers/0/envFrom/2');
  t.equal(pointer(['a~b', '~1', '/']), '/a~0b/~01/~1');
  t.equal(pointer([]), '');
  t.end();
});

void t.test('generated Pods: the recorded patch is the full diff, applies to the mutated Pod, and passes the guard', (t) => {
  const decisions = new Map<string, number>();
  let operations = 0;
  fc.assert(
    fc.property(testCase, ({ config, labels, pod }) => {
      const original = deepFreeze(structuredClone(pod));
      const outcome = reviewAdmission(request(original), labels, { config });
      equal(outcome.error, undefined, `no internal error: ${outcome.error?.message}`);
      decisions.set(outcome.audit.decision, (decisions.get(outcome.audit.decision) ?? 0) + 1);
      operations += outcome.operations.length;
      deepStrictEqual(original, pod, 'the original is not written');
      deepStrictEqual(apply(original, outcome.operations), outcome.pod, 'patch applied to the original equals the mutated Pod');
      const full = diffPods(original, outcome.pod as object);
      deepStrictEqual(byPath(outcome.operations), byPath(full), 'exactly what compare() produces');
      deepStrictEqual(apply(original, full), apply(original, outcome.operations), 'the same effect as compare()');
      doesNotThrow(() => createPatchGuard(config.labelPrefix).check(outcome.operations), 'every path passes the guard');
      if (outcome.operations.length > 0) {
        const again = reviewAdmission(request(deepFreeze(outcome.pod)), labels, { config });
        deepStrictEqual(again.operations, [], 'a second pass over the result changes nothing');
      }
    }),
    { seed: SEED, numRuns: RUNS },
  );
  // The generator must reach the interesting cases, or the property proves little.
  t.ok((decisions.get('injected') ?? 0) > RUNS / 3, `most runs inject (${JSON.stringify(Object.fromEntries(decisions))})`);
  t.ok((decisions.get('unchanged') ?? 0) > 0, 'some runs find everything already present');
  t.ok(operations > RUNS, `${operations} operations checked`);
  t.end();
});

void t.test('generated Pods: deciding without building the mutated Pod (the HTTP route) gives the same answer and patch', (t) => {
  let injected = 0;
  fc.assert(
    fc.property(testCase, ({ config, labels, pod }) => {
      const original = deepFreeze(structuredClone(pod));
      const built = reviewAdmission(request(original), labels, { config });
      const planned = reviewAdmission(request(original), labels, { config, podResult: false });
      deepStrictEqual(planned.operations, built.operations, 'the same operations, in the same order');
      deepStrictEqual(planned.response, built.response, 'the same response');
      deepStrictEqual(planned.audit, built.audit, 'the same audit record');
      if (built.operations.length > 0) {
        injected += 1;
        equal(planned.pod, undefined, 'no mutated Pod');
      }
    }),
    { seed: SEED, numRuns: RUNS },
  );
  t.ok(injected > RUNS / 3, `${injected} injections compared`);
  t.end();
});
