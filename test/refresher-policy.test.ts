// The optional refresher policy (manifests/optional/refresher-policy): its CEL, read from the manifest,
// evaluated the way the API server does (match conditions, variables in order, then each validation)
// with a JavaScript CEL evaluator, for the refresher's own Secret and Namespace writes and for the
// writes it must never make. A live API server (cel-go) is the final judge; this checks the logic.
import { evaluate } from '@marcbachmann/cel-js';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

interface Policy {
  kind: string;
  spec: {
    failurePolicy: string;
    matchConstraints: { resourceRules: { resources: string[]; operations: string[] }[] };
    matchConditions: { name: string; expression: string }[];
    variables: { name: string; expression: string }[];
    validations: { expression: string; message: string }[];
  };
}

const policy = parseYaml(readFileSync('manifests/optional/refresher-policy/policy.yaml', 'utf8')) as Policy;
const REFRESHER = 'system:serviceaccount:buildkite-ecr-injector:buildkite-ecr-injector-refresher';
const STATUS = 'buildkite-ecr-injector/pull-secret-status';
const MANAGED = { 'app.kubernetes.io/managed-by': 'buildkite-ecr-injector' };

type Obj = Record<string, unknown> | null;
interface Attempt {
  resource: 'secrets' | 'namespaces';
  operation: 'CREATE' | 'UPDATE' | 'DELETE';
  object: Obj;
  oldObject: Obj;
  username?: string;
}

/** undefined when admitted (or not matched), else the message of the first failed validation. */
function admit(attempt: Attempt): string | undefined {
  const context: Record<string, unknown> = {
    object: attempt.object,
    oldObject: attempt.oldObject,
    request: { operation: attempt.operation, resource: { group: '', version: 'v1', resource: attempt.resource }, userInfo: { username: attempt.username ?? REFRESHER } },
  };
  if (!policy.spec.matchConditions.every((condition) => evaluate(condition.expression, context) === true)) return undefined;
  const variables: Record<string, unknown> = {};
  for (const variable of policy.spec.variables) variables[variable.name] = evaluate(variable.expression, { ...context, variables });
  for (const validation of policy.spec.validations) {
    if (evaluate(validation.expression, { ...context, variables }) !== true) return validation.message;
  }
  return undefined;
}

const secret = (labels: Record<string, string> | undefined, type = 'kubernetes.io/dockerconfigjson') => ({
  metadata: { name: 'ecr-credentials', namespace: 'team-a', ...(labels ? { labels } : {}) },
  type,
  data: { '.dockerconfigjson': 'e30=' },
});
const ns = (annotations: Record<string, string> | undefined, labels: Record<string, string> = { 'buildkite-ecr-injector/inject': 'enabled' }) => ({
  metadata: { name: 'team-a', labels, ...(annotations ? { annotations } : {}) },
  spec: { finalizers: ['kubernetes'] },
});

t.test('the policy matches Secret writes and Namespace updates, fails closed, and only for the refresher', (t) => {
  t.equal(policy.kind, 'ValidatingAdmissionPolicy');
  t.equal(policy.spec.failurePolicy, 'Fail');
  t.same(policy.spec.matchConstraints.resourceRules.map((r) => [r.resources, r.operations]), [[['secrets'], ['CREATE', 'UPDATE', 'DELETE']], [['namespaces'], ['UPDATE']]]);
  t.equal(admit({ resource: 'secrets', operation: 'CREATE', object: secret(undefined, 'Opaque'), oldObject: null, username: 'dev@example.com' }), undefined, 'other users are not affected');
  t.end();
});

t.test('the refresher may write its own pull Secrets and nothing else', (t) => {
  const refused = /^the refresher may only write Secrets of type kubernetes.io\/dockerconfigjson labelled/;
  t.equal(admit({ resource: 'secrets', operation: 'CREATE', object: secret(MANAGED), oldObject: null }), undefined, 'create a managed pull Secret');
  t.equal(admit({ resource: 'secrets', operation: 'UPDATE', object: secret(MANAGED), oldObject: secret(MANAGED) }), undefined, 'update one');
  t.equal(admit({ resource: 'secrets', operation: 'DELETE', object: null, oldObject: secret(MANAGED) }), undefined, 'delete one');
  t.match(admit({ resource: 'secrets', operation: 'CREATE', object: secret(MANAGED, 'Opaque'), oldObject: null }), refused, 'another type');
  t.match(admit({ resource: 'secrets', operation: 'CREATE', object: secret(undefined), oldObject: null }), refused, 'no label');
  t.match(admit({ resource: 'secrets', operation: 'CREATE', object: secret({ 'app.kubernetes.io/managed-by': 'someone-else' }), oldObject: null }), refused, 'another manager');
  t.match(admit({ resource: 'secrets', operation: 'UPDATE', object: secret(MANAGED), oldObject: secret(undefined) }), refused, 'taking over an unmanaged Secret by labelling it');
  t.match(admit({ resource: 'secrets', operation: 'DELETE', object: null, oldObject: secret(undefined) }), refused, 'deleting one it does not manage');
  t.match(admit({ resource: 'secrets', operation: 'DELETE', object: null, oldObject: secret(MANAGED, 'kubernetes.io/service-account-token') }), refused, 'a token Secret');
  t.end();
});

t.test('on Namespaces the refresher may change its status annotation only', (t) => {
  const refused = /^the refresher may only change the buildkite-ecr-injector\/pull-secret-status annotation/;
  const other = { 'example.com/owner': 'team-a' };
  t.equal(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ ...other, [STATUS]: '{}' }), oldObject: ns(other) }), undefined, 'add the status');
  t.equal(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ ...other, [STATUS]: '{"a":1}' }), oldObject: ns({ ...other, [STATUS]: '{}' }) }), undefined, 'change it');
  t.equal(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns(other), oldObject: ns({ ...other, [STATUS]: '{}' }) }), undefined, 'remove it');
  t.equal(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ [STATUS]: '{}' }), oldObject: ns(undefined) }), undefined, 'on a Namespace without annotations');
  t.match(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ ...other, 'example.com/owner': 'team-b' }), oldObject: ns(other) }), refused, 'another annotation changed');
  t.match(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ [STATUS]: '{}' }), oldObject: ns(other) }), refused, 'another annotation removed');
  t.match(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns({ 'buildkite-ecr-injector/ecr-registries': 'x' }), oldObject: ns(undefined) }), refused, 'the registries annotation added');
  t.match(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns(other, {}), oldObject: ns(other) }), refused, 'a label removed (an opt-out)');
  t.match(admit({ resource: 'namespaces', operation: 'UPDATE', object: ns(other, { 'buildkite-ecr-injector/inject': 'enabled', 'buildkite-ecr-injector/service-account': 'admin' }), oldObject: ns(other) }), refused, 'a label added');
  t.end();
});
