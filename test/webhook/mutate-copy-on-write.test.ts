// mutatePod copies only what it writes and shares the rest with its input. These tests hold it to
// that: the input is deep-frozen (any write into a shared object throws), and the patch diffed from
// the shared result equals the patch diffed from an independent deep copy of it.
import t from 'tap';
import fastJsonPatch from 'fast-json-patch';
import { parseConfig } from '../../src/webhook/config.js';
import { mutatePod } from '../../src/webhook/mutate.js';
import type { Pod } from '../../src/webhook/pod.js';
import type { InjectionPlan } from '../../src/webhook/policy.js';
import { diffPods } from '../helpers/full-diff.js';

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object') {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

function jobPod(): Pod {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: {
      generateName: 'buildkite-0190c0de-',
      namespace: 'buildkite',
      labels: { 'buildkite.com/job-uuid': '0190c0de' },
      annotations: { 'buildkite.com/pipeline-slug': 'app' },
      managedFields: [{ manager: 'kube-controller-manager', fieldsV1: { 'f:spec': { 'f:containers': {} } } }],
    },
    spec: {
      serviceAccountName: 'default',
      serviceAccount: 'default',
      initContainers: [
        { name: 'copy-agent', image: 'agent' },
        { name: 'sidecar-0', image: 'redis', restartPolicy: 'Always' },
      ],
      containers: [
        { name: 'container-0', image: 'ci', env: [{ name: 'BUILDKITE_COMMAND', value: 'make test' }] },
        { name: 'agent', image: 'agent', env: [{ name: 'BUILDKITE_AGENT_TOKEN', value: 'not-a-real-token' }] },
        { name: 'checkout', image: 'agent', envFrom: [{ configMapRef: { name: 'git' } }] },
      ],
      volumes: [{ name: 'workspace', emptyDir: {} }],
    },
  };
}

const allThree: InjectionPlan = { serviceAccount: 'buildkite-agent', awsSecret: 'aws-credentials', pullSecret: 'ecr-credentials' };

const cases: { name: string; pod: () => Pod; targets?: string[] }[] = [
  { name: 'a job Pod', pod: jobPod },
  {
    name: 'a Pod without annotations or pull secrets',
    pod: () => {
      const pod = jobPod();
      delete pod.metadata.annotations;
      return pod;
    },
  },
  {
    name: 'a Pod that already has a pull secret and one of the envFrom refs',
    pod: () => {
      const pod = jobPod();
      pod.spec.imagePullSecrets = [{ name: 'other' }];
      const checkout = pod.spec.containers[2];
      if (checkout) checkout.envFrom = [{ secretRef: { name: 'aws-credentials' } }];
      return pod;
    },
  },
  { name: 'sidecars and init containers as targets', pod: jobPod, targets: ['sidecar', 'init', 'agent'] },
];

for (const { name, pod: makePod, targets } of cases) {
  void t.test(name, (t) => {
    const config = parseConfig(targets ? { targetContainers: targets } : {});
    const original = deepFreeze(makePod());
    const before = JSON.stringify(original);
    const mutation = mutatePod(original, allThree, config);
    t.equal(JSON.stringify(original), before, 'the input is unchanged (and frozen, so nothing tried)');

    const operations = diffPods(original, mutation.pod);
    t.ok(operations.length > 0, 'something was injected');
    const independent = JSON.parse(JSON.stringify(mutation.pod)) as Pod;
    t.same(operations, diffPods(makePod(), independent), 'same patch as a diff between unshared copies');
    const patched = fastJsonPatch.applyPatch(makePod(), operations, true, false).newDocument;
    t.same(patched, independent, 'applying the patch to the original gives the mutated Pod');

    const again = mutatePod(deepFreeze(mutation.pod), allThree, config);
    t.same(diffPods(mutation.pod, again.pod), [], 'mutating the result again changes nothing');
    t.end();
  });
}
