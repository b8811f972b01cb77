// Owns the checks of one namespace, by what the webhook would inject into a job Pod there (the
// core's own resolvePolicy on a sample job Pod): its labels, the ServiceAccount and its IAM role, the
// AWS Secret's key names, static keys shadowing the role, and the pull Secret (type, registries,
// each ECR token's expiry from its own payload, who manages it, the refresher's report), then the
// credential rules that can apply here (rule-checks.ts). Secret
// values are decoded only to read a token's expiry; no value ever reaches a message.
import type { V1MutatingWebhookConfiguration, V1Namespace } from '@kubernetes/client-node';
import { DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE, readDockerConfig, tokenExpiry } from '../refresher/docker-config.js';
import { desiredPullSecret } from '../refresher/desired.js';
import { isManaged, MANAGED_BY, MANAGED_BY_LABEL } from '../refresher/pull-secrets.js';
import { isKubernetesName, type Config } from '../webhook/config.js';
import { roleArnPartition } from '../webhook/ecr-registry.js';
import { labelKeys, resolvePolicy, type InjectionPlan } from '../webhook/policy.js';
import { annotationKeys, assessPullSecret, parsePullSecretStatus } from '../webhook/pull-secret-status.js';
import type { ClusterApi } from './cluster-api.js';
import { selects } from './label-selector.js';
import { describeCredentials, readOrFail, scopeChecks, type Check, type ScopeChecks } from './report.js';
import { checkRules, rulesFor, type RuleCheckContext } from './rule-checks.js';
import { AWS_KEYS, keyNames, missingAwsKeys } from './secret-keys.js';

export const ROLE_ARN_ANNOTATION = 'eks.amazonaws.com/role-arn';
const HOUR_MS = 3_600_000;

export interface NamespaceContext {
  api: ClusterApi;
  config: Config;
  /** Our webhook configuration, when found: its namespaceSelector must admit the namespace. */
  configuration: V1MutatingWebhookConfiguration | undefined;
  /** The refresher's Deployment, when it runs: a pull Secret without its report is then worth a warning. */
  refresher: { namespace: string; name: string } | undefined;
  now: Date;
}

type Checks = ScopeChecks;

/** What the webhook would inject into a job Pod created in the namespace now, or why nothing. */
export function planFor(namespace: V1Namespace, config: Config): ReturnType<typeof resolvePolicy> {
  const name = namespace.metadata?.name ?? '';
  return resolvePolicy(
    {
      operation: 'CREATE',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      subResource: undefined,
      namespace: name,
      pod: { metadata: { name: 'doctor-sample', namespace: name, labels: { [config.jobPodLabel]: 'doctor' } }, spec: { containers: [] } },
      namespaceLabels: namespace.metadata?.labels ?? {},
    },
    config,
  );
}

export async function checkNamespace(namespace: V1Namespace, context: NamespaceContext): Promise<Check[]> {
  const name = namespace.metadata?.name ?? '';
  const out = scopeChecks(`namespace/${name}`);
  const { config } = context;
  const keys = labelKeys(config.labelPrefix);
  const labels = namespace.metadata?.labels ?? {};
  checkLabels(name, labels, config, out);
  const webhook = context.configuration?.webhooks?.[0];
  if (webhook && labels[keys.inject] === 'enabled' && !selects(webhook.namespaceSelector, labels)) {
    out.fail('webhook-selects-namespace', `the webhook's namespaceSelector does not admit this namespace: the API server never calls the webhook for its Pods`, `kubectl get mutatingwebhookconfiguration ${context.configuration?.metadata?.name} -o yaml: compare namespaceSelector with kubectl get namespace ${name} --show-labels`);
  }
  const policy = planFor(namespace, config);
  // The sample job Pod carries no pipeline, branch or step: rules that ask for one do not match it.
  const ruled = rulesFor(name, config.rules).some((rule) => rule.serviceAccount || rule.awsSecret || rule.pullSecret);
  const unmatched = ruled ? 'job Pods that no rule matches' : 'job Pods';
  if (policy.action === 'skip') {
    const fix = policy.reason === 'namespace-not-opted-in' ? `kubectl label namespace ${name} ${keys.inject}=enabled` : policy.reason === 'nothing-to-inject' ? `kubectl label namespace ${name} ${keys.serviceAccount}=NAME (or ${keys.awsSecret}, ${keys.pullSecret})` : '';
    if (policy.reason !== 'nothing-to-inject') {
      out.fail('injection', `job Pods here get nothing (${policy.reason}): ${policy.detail}`, fix);
      return out.checks;
    }
    // Nothing from labels and defaults is fine when rules give the jobs that need it their credentials.
    if (ruled) out.ok('injection', `${unmatched} get nothing (${policy.detail}); the rules below decide for the rest`);
    else out.fail('injection', `job Pods here get nothing (${policy.reason}): ${policy.detail}`, fix);
    await checkRules(name, ruleContext(namespace, context, { serviceAccount: null, awsSecret: null, pullSecret: null }), out);
    return sortById(out.checks);
  }
  const who = policy.plan.rule ? `job Pods get (rule ${policy.plan.rule}, which matches every job here)` : `${unmatched} get`;
  out.ok('injection', `${who} ${describeCredentials({ ...policy.plan, pullSecrets: policy.plan.pullSecret ? [policy.plan.pullSecret] : [] })}`);
  const reads: Promise<void>[] = [];
  if (policy.plan.serviceAccount) reads.push(checkServiceAccount(name, policy.plan, context, out));
  if (policy.plan.awsSecret) reads.push(checkAwsSecret(name, policy.plan.awsSecret, context, out));
  if (policy.plan.pullSecret) reads.push(checkPullSecret(namespace, policy.plan.pullSecret, context, out));
  reads.push(checkRules(name, ruleContext(namespace, context, policy.plan), out));
  await Promise.all(reads);
  if (policy.plan.serviceAccount && policy.plan.awsSecret) {
    out.warn('credentials-shadowing', `static keys in Secret ${policy.plan.awsSecret} shadow the IAM role of ServiceAccount ${policy.plan.serviceAccount}: AWS SDKs read environment keys first`, `keep one: kubectl label namespace ${name} ${keys.awsSecret}=none, or ${keys.serviceAccount}=none`);
  }
  return sortById(out.checks);
}

function ruleContext(namespace: V1Namespace, context: NamespaceContext, checked: RuleCheckContext['checked']): RuleCheckContext {
  const desired = desiredPullSecret(namespace.metadata?.name ?? '', namespace.metadata?.labels, namespace.metadata?.annotations, context.config);
  return { api: context.api, config: context.config, now: context.now, ownPullSecret: desired.kind === 'none' ? null : desired.secret, checked };
}

/** Every label under the prefix is one the webhook reads, with a value it accepts. */
function checkLabels(namespace: string, labels: Readonly<Record<string, string>>, config: Config, out: Checks): void {
  const keys = labelKeys(config.labelPrefix);
  const known = new Set([keys.inject, keys.serviceAccount, keys.awsSecret, keys.pullSecret]);
  const problems: string[] = [];
  const fixes: string[] = [];
  for (const [key, value] of Object.entries(labels)) {
    if (!key.startsWith(`${config.labelPrefix}/`)) continue;
    if (!known.has(key)) {
      problems.push(`${key} is not a label the webhook reads (it reads ${[...known].join(', ')})`);
      fixes.push(`kubectl label namespace ${namespace} ${key}-`);
    } else if (key === keys.inject ? !['enabled', 'disabled'].includes(value) : value !== 'none' && !isKubernetesName(value)) {
      problems.push(`${key}=${value} is not valid (${key === keys.inject ? 'enabled or disabled' : 'a lowercase RFC 1123 name or none'})`);
      fixes.push(`kubectl label --overwrite namespace ${namespace} ${key}=${key === keys.inject ? 'enabled' : 'NAME'}`);
    }
  }
  if (config.excludedNamespaces.includes(namespace)) {
    problems.push(`the namespace is in excludedNamespaces of the config: never mutated`);
  }
  if (problems.length === 0) out.ok('labels', `every ${config.labelPrefix}/* label is valid`);
  else out.fail('labels', problems.join('; '), fixes.join('; '));
}

async function checkServiceAccount(namespace: string, plan: InjectionPlan, context: NamespaceContext, out: Checks): Promise<void> {
  const name = plan.serviceAccount!;
  const account = await readOrFail(out, 'service-account', `ServiceAccount ${name}`, () => context.api.serviceAccount(namespace, name));
  if (account === null) return;
  if (!account) {
    out.fail('service-account', `ServiceAccount ${name} does not exist: the API server rejects every job Pod it is set on`, `kubectl -n ${namespace} create serviceaccount ${name} && kubectl -n ${namespace} annotate serviceaccount ${name} ${ROLE_ARN_ANNOTATION}=arn:aws:iam::ACCOUNT:role/ROLE`);
    return;
  }
  const arn = account.metadata?.annotations?.[ROLE_ARN_ANNOTATION];
  if (arn !== undefined && roleArnPartition(arn) !== undefined) {
    out.ok('service-account', `ServiceAccount ${name} exists with ${ROLE_ARN_ANNOTATION} ${arn} (IRSA)`);
  } else if (arn !== undefined) {
    out.fail('service-account', `ServiceAccount ${name} has ${ROLE_ARN_ANNOTATION}=${arn}, which is not an IAM role ARN`, `kubectl -n ${namespace} annotate --overwrite serviceaccount ${name} ${ROLE_ARN_ANNOTATION}=arn:aws:iam::ACCOUNT:role/ROLE`);
  } else {
    out.warn(
      'service-account',
      `ServiceAccount ${name} exists without ${ROLE_ARN_ANNOTATION}: fine with EKS Pod Identity, whose associations Kubernetes cannot show`,
      `aws eks list-pod-identity-associations --cluster-name CLUSTER --namespace ${namespace} --service-account ${name} (empty: annotate it with ${ROLE_ARN_ANNOTATION} or create an association)`,
    );
  }
}

async function checkAwsSecret(namespace: string, name: string, context: NamespaceContext, out: Checks): Promise<void> {
  const secret = await readOrFail(out, 'aws-secret', `Secret ${name}`, () => context.api.secret(namespace, name));
  if (secret === null) return;
  if (!secret) {
    out.fail('aws-secret', `Secret ${name} does not exist: job Pods that reference it do not start (CreateContainerConfigError)`, `kubectl -n ${namespace} create secret generic ${name} --from-literal=AWS_ACCESS_KEY_ID=... --from-literal=AWS_SECRET_ACCESS_KEY=...`);
    return;
  }
  const missing = missingAwsKeys(secret);
  if (missing.length > 0) {
    out.fail('aws-secret', `Secret ${name} has no ${missing.join(' or ')} key (it has: ${keyNames(secret).join(', ') || 'no keys'})`, `kubectl -n ${namespace} edit secret ${name}: add ${missing.join(' and ')}`);
  } else {
    out.ok('aws-secret', `Secret ${name} has ${AWS_KEYS.join(' and ')}`);
  }
}

async function checkPullSecret(namespace: V1Namespace, name: string, context: NamespaceContext, out: Checks): Promise<void> {
  const ns = namespace.metadata?.name ?? '';
  const { config, now } = context;
  const annotations = namespace.metadata?.annotations ?? {};
  const statusKey = annotationKeys(config.labelPrefix).pullSecretStatus;
  const secret = await readOrFail(out, 'pull-secret', `Secret ${name}`, () => context.api.secret(ns, name));
  if (secret === null) return;
  if (!secret) {
    const fix = context.refresher
      ? `the refresher creates it: ${refresherLogs(context)}`
      : `deploy the refresher (kubectl apply -k manifests/overlays/refresher), or kubectl -n ${ns} create secret docker-registry ${name} --docker-server=REGISTRY --docker-username=AWS --docker-password="$(aws ecr get-login-password)"`;
    out.fail('pull-secret', `Secret ${name} does not exist: private image pulls fail (ImagePullBackOff)`, fix);
    checkRefresherStatus(annotations[statusKey], name, context, out);
    return;
  }
  if (secret.type !== DOCKER_CONFIG_TYPE) {
    out.fail('pull-secret', `Secret ${name} has type ${secret.type ?? 'Opaque'}, not ${DOCKER_CONFIG_TYPE}: the kubelet ignores it`, `kubectl -n ${ns} delete secret ${name} and recreate it with kubectl create secret docker-registry (the refresher recreates it when deployed)`);
    return;
  }
  out.ok('pull-secret', `Secret ${name} exists (${DOCKER_CONFIG_TYPE})`);
  const passwords = readDockerConfig(secret.data?.[DOCKER_CONFIG_KEY]);
  const desired = desiredPullSecret(ns, namespace.metadata?.labels, annotations, config);
  if (desired.kind === 'invalid') out.fail('pull-secret-registries', desired.error, `kubectl annotate --overwrite namespace ${ns} ${annotationKeys(config.labelPrefix).ecrRegistries}=HOST[,HOST]`);
  else if (desired.kind === 'secret') {
    const missing = desired.registries.map((r) => r.registry.host).filter((host) => !passwords.has(host));
    if (missing.length > 0) out.fail('pull-secret-registries', `Secret ${name} holds no credentials for ${missing.join(', ')} (it has: ${[...passwords.keys()].join(', ') || 'none'})`, context.refresher ? 'the refresher adds them on its next pass: see its status below' : `recreate ${name} with every registry`);
    else out.ok('pull-secret-registries', `Secret ${name} holds credentials for ${desired.registries.map((r) => r.registry.host).join(', ')}`);
  }
  checkTokens(name, passwords, now, out);
  if (isManaged(secret)) out.ok('pull-secret-managed', `Secret ${name} is managed by the refresher (${MANAGED_BY_LABEL}=${MANAGED_BY})`);
  else {
    out.warn('pull-secret-managed', `Secret ${name} is not managed by the refresher (no ${MANAGED_BY_LABEL}=${MANAGED_BY}): nobody renews its 12-hour ECR tokens`, context.refresher ? `kubectl -n ${ns} delete secret ${name} (the refresher then creates its own)` : 'deploy the refresher: kubectl apply -k manifests/overlays/refresher');
  }
  checkRefresherStatus(annotations[statusKey], name, context, out);
}

/** Each registry's token expiry, from the token's own payload (decoded here, never printed). */
function checkTokens(secret: string, passwords: Map<string, string>, now: Date, out: Checks): void {
  if (passwords.size === 0) {
    out.fail('pull-secret-token', `Secret ${secret} holds no registry password in ${DOCKER_CONFIG_KEY}`, `recreate ${secret} with kubectl create secret docker-registry`);
    return;
  }
  for (const [host, password] of passwords) {
    const expiresAt = tokenExpiry(password);
    if (expiresAt === undefined) {
      out.warn('pull-secret-token', `the ${host} password carries no expiry: not an ECR token?`, '');
    } else if (expiresAt.getTime() <= now.getTime()) {
      out.fail('pull-secret-token', `the ${host} token expired at ${expiresAt.toISOString()}: image pulls fail`, 'see the refresher checks; or recreate the Secret with a fresh aws ecr get-login-password');
    } else {
      const hours = (expiresAt.getTime() - now.getTime()) / HOUR_MS;
      const text = `the ${host} token expires at ${expiresAt.toISOString()} (in ${hours.toFixed(1)} h)`;
      if (hours < 1) out.warn('pull-secret-token', `${text}`, 'see the refresher checks: it should have renewed it');
      else out.ok('pull-secret-token', text);
    }
  }
}

/** The refresher's own report on the namespace (the status annotation), judged as the webhook does. */
function checkRefresherStatus(annotation: string | undefined, secret: string, context: NamespaceContext, out: Checks): void {
  const status = parsePullSecretStatus(annotation);
  if (status === undefined) {
    if (context.refresher) out.warn('refresher-status', annotation === undefined ? 'the refresher has not reported on this namespace yet' : 'the refresher status annotation does not parse', refresherLogs(context));
    return;
  }
  const problem = assessPullSecret(annotation, secret, context.now);
  if (status.secret !== secret) out.warn('refresher-status', `the refresher reports on Secret ${status.secret}, not ${secret}`, '');
  else if (problem?.problem === 'failing' || problem?.problem === 'expired') out.fail('refresher-status', `${problem.warning}${status.error ? `: ${status.error}` : ''}`, `check the refresher's IAM role (ecr:GetAuthorizationToken); ${refresherLogs(context)}`);
  else if (problem?.problem === 'unmanaged') out.warn('refresher-status', problem.warning, `kubectl delete secret ${secret} in the namespace to let the refresher own it`);
  else out.ok('refresher-status', `the refresher reports ${status.state}${status.refreshedAt ? `, refreshed at ${status.refreshedAt}` : ''}`);
}

function refresherLogs(context: NamespaceContext): string {
  const refresher = context.refresher ?? { namespace: 'buildkite-ecr-injector', name: 'buildkite-ecr-injector-refresher' };
  return `kubectl -n ${refresher.namespace} logs deployment/${refresher.name}`;
}

/** Checks in a fixed order (reads run in parallel and finish in any order). */
const ORDER = ['labels', 'webhook-selects-namespace', 'injection', 'service-account', 'aws-secret', 'credentials-shadowing', 'pull-secret', 'pull-secret-registries', 'pull-secret-token', 'pull-secret-managed', 'refresher-status', 'rules', 'rules-unreachable', 'rule-credentials'];
function sortById(checks: Check[]): Check[] {
  return checks.map((check, index) => ({ check, index })).sort((a, b) => ORDER.indexOf(a.check.check) - ORDER.indexOf(b.check.check) || a.index - b.index).map(({ check }) => check);
}
