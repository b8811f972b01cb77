// The optional ValidatingAdmissionPolicy (manifests/optional/validating-admission-policy): its CEL,
// read from the manifest, evaluated the way the API server does (variables in order, then each
// validation) with a JavaScript CEL evaluator, for Namespace CREATEs and UPDATEs by allowed and other
// users. A live API server (cel-go) is the final judge; this checks the logic and the syntax.
import { evaluate } from '@marcbachmann/cel-js';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { parse as parseYaml } from 'yaml';

interface Policy {
  kind: string;
  spec: {
    failurePolicy: string;
    matchConstraints: { resourceRules: { resources: string[]; operations: string[] }[] };
    variables: { name: string; expression: string }[];
    validations: { expression: string; messageExpression: string; reason: string }[];
  };
}

const DIR = 'manifests/optional/validating-admission-policy';
const policy = parseYaml(readFileSync(`${DIR}/policy.yaml`, 'utf8')) as Policy;

type Labels = Record<string, string>;
interface Attempt {
  labels?: Labels;
  oldLabels?: Labels | null;
  username?: string;
  groups?: string[];
}

/** Evaluate the policy for one request: undefined when admitted, the message when refused. */
function admit(attempt: Attempt, variableOverrides: Record<string, string> = {}): string | undefined {
  const namespace = (labels: Labels | undefined) => ({ metadata: { name: 'team-a', ...(labels ? { labels } : {}) } });
  const context: Record<string, unknown> = {
    object: namespace(attempt.labels),
    oldObject: attempt.oldLabels === undefined ? null : namespace(attempt.oldLabels ?? undefined),
    request: {
      userInfo: {
        ...(attempt.username ? { username: attempt.username } : {}),
        ...(attempt.groups ? { groups: attempt.groups } : {}),
      },
    },
  };
  const variables: Record<string, unknown> = {};
  for (const variable of policy.spec.variables) {
    variables[variable.name] = evaluate(variableOverrides[variable.name] ?? variable.expression, { ...context, variables });
  }
  for (const validation of policy.spec.validations) {
    if (evaluate(validation.expression, { ...context, variables }) !== true) {
      return evaluate(validation.messageExpression, { ...context, variables }) as string;
    }
  }
  return undefined;
}

const developer = { username: 'dev@example.com', groups: ['developers', 'system:authenticated'] };
const admin = { username: 'ops@example.com', groups: ['buildkite-ecr-injector:admins', 'system:authenticated'] };
const master = { username: 'kubernetes-admin', groups: ['system:masters'] };

void t.test('the policy matches Namespace CREATE and UPDATE and fails closed', (t) => {
  t.equal(policy.kind, 'ValidatingAdmissionPolicy');
  t.equal(policy.spec.failurePolicy, 'Fail');
  t.same(policy.spec.matchConstraints.resourceRules, [
    { apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE', 'UPDATE'], resources: ['namespaces'] },
  ]);
  t.end();
});

void t.test('anyone may create or edit Namespaces without touching the prefix', (t) => {
  t.equal(admit({ ...developer }), undefined, 'a Namespace without labels');
  t.equal(admit({ ...developer, labels: { team: 'a' } }), undefined, 'other labels on create');
  const opted = { 'buildkite-ecr-injector/inject': 'enabled', team: 'a' };
  t.equal(admit({ ...developer, oldLabels: opted, labels: { ...opted, team: 'b' } }), undefined, 'other labels changed, ours kept');
  t.equal(admit({ ...developer, oldLabels: opted, labels: opted }), undefined, 'an update that changes no label');
  t.equal(admit({ ...developer, labels: { 'buildkite-ecr-injector.example.com/inject': 'enabled', 'xbuildkite-ecr-injector/inject': 'x' } }), undefined, 'look-alike keys are not ours');
  t.end();
});

void t.test('only the allowed groups may set, change or remove the labels', (t) => {
  const refused = /^only members of buildkite-ecr-injector:admins, system:masters may set, change or remove buildkite-ecr-injector\/\* labels on Namespaces$/;
  const optIn = { 'buildkite-ecr-injector/inject': 'enabled' };
  const withRole = { ...optIn, 'buildkite-ecr-injector/service-account': 'deploy-bot' };

  t.match(admit({ ...developer, labels: optIn }), refused, 'a developer creating an opted-in Namespace');
  t.match(admit({ ...developer, oldLabels: {}, labels: optIn }), refused, 'a developer opting a Namespace in');
  t.match(admit({ ...developer, oldLabels: optIn, labels: withRole }), refused, 'a developer choosing a ServiceAccount');
  t.match(admit({ ...developer, oldLabels: withRole, labels: { ...withRole, 'buildkite-ecr-injector/service-account': 'admin-bot' } }), refused, 'a developer changing it');
  t.match(admit({ ...developer, oldLabels: withRole, labels: optIn }), refused, 'a developer removing it');
  t.match(admit({ username: 'anonymous', labels: optIn }), refused, 'a request with no groups at all');

  t.equal(admit({ ...admin, labels: withRole }), undefined, 'buildkite-ecr-injector:admins may create');
  t.equal(admit({ ...admin, oldLabels: withRole, labels: {} }), undefined, 'and remove');
  t.equal(admit({ ...master, oldLabels: optIn, labels: withRole }), undefined, 'system:masters may change');
  t.end();
});

void t.test('the edit points work: other groups, and named users', (t) => {
  const overrides = {
    allowedGroups: "['platform-team']",
    allowedUsers: "['system:serviceaccount:argocd:argocd-application-controller']",
  };
  const optIn = { 'buildkite-ecr-injector/inject': 'enabled' };
  t.equal(admit({ username: 'p', groups: ['platform-team'], labels: optIn }, overrides), undefined);
  t.equal(admit({ username: 'system:serviceaccount:argocd:argocd-application-controller', groups: ['system:serviceaccounts'], labels: optIn }, overrides), undefined);
  t.match(admit({ ...admin, labels: optIn }, overrides), /only members of platform-team/);
  t.end();
});
