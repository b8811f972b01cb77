// Owns a namespace's view of the credential rules: which rules can apply to its job Pods (their
// `namespaces` patterns admit it), in the order the webhook tries them, what each sets; a rule that
// matches every job here and so hides the rules after it; and whether the ServiceAccounts and Secrets
// those rules name exist in the namespace (the API server rejects a Pod whose ServiceAccount is
// missing, and the refresher keeps only the namespace's own pull Secret). Key names and dates only.
import type { V1Secret } from '@kubernetes/client-node';
import { DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE, readDockerConfig, tokenExpiry } from '../refresher/docker-config.js';
import type { Config } from '../webhook/config.js';
import { MATCH_FIELDS, type Rule } from '../webhook/rules.js';
import type { ClusterApi } from './cluster-api.js';
import { readOrFail, type ScopeChecks } from './report.js';
import { missingAwsKeys } from './secret-keys.js';

export interface RuleCheckContext {
  api: ClusterApi;
  config: Config;
  now: Date;
  /** The pull Secret the namespace itself asks for (checked, and kept by the refresher), if any. */
  ownPullSecret: string | null;
  /** Names the namespace checks already read; a rule naming one of them is not read twice. */
  checked: { serviceAccount: string | null; awsSecret: string | null; pullSecret: string | null };
}

/** The rules whose `namespaces` field admits the namespace (or that have none), in file order. */
export function rulesFor(namespace: string, rules: readonly Rule[]): Rule[] {
  return rules.filter((rule) => rule.match.namespaces?.test(namespace) ?? true);
}

/** A rule with no pipeline, branch or step field matches every job in a namespace it admits. */
function matchesEveryJob(rule: Rule): boolean {
  return MATCH_FIELDS.every((field) => field === 'namespaces' || rule.match[field] === undefined);
}

/** `payments-deploy (pipelines "a b", branches "main"): ServiceAccount x, no AWS Secret`. */
export function describeRule(rule: Rule): string {
  const match = MATCH_FIELDS.filter((field) => field !== 'namespaces' && rule.match[field] !== undefined).map((field) => `${field} "${rule.match[field]!.patterns.join(' ')}"`);
  const sets = [
    setting('ServiceAccount', rule.serviceAccount),
    setting('AWS Secret', rule.awsSecret),
    setting('pull Secret', rule.pullSecret),
  ].filter((part): part is string => part !== undefined);
  return `${rule.name} (${match.join(', ') || 'every job'}): ${sets.join(', ') || 'sets nothing (labels and defaults decide)'}`;
}

function setting(what: string, value: string | null | undefined): string | undefined {
  if (value === undefined) return undefined;
  return value === null ? `no ${what}` : `${what} ${value}`;
}

export async function checkRules(namespace: string, context: RuleCheckContext, out: ScopeChecks): Promise<void> {
  const { rules } = context.config;
  if (rules.length === 0) return;
  const applicable = rulesFor(namespace, rules);
  if (applicable.length === 0) {
    out.ok('rules', `none of the config's ${plural(rules.length, 'rule')} can apply here (their namespaces patterns leave ${namespace} out): labels and defaults decide`);
    return;
  }
  const catchAll = applicable.findIndex(matchesEveryJob);
  const reachable = catchAll < 0 ? applicable : applicable.slice(0, catchAll + 1);
  out.ok('rules', `${applicable.length} of the config's ${plural(rules.length, 'rule')} can apply here, first match wins: ${applicable.map(describeRule).join('; ')}`);
  const hidden = applicable.slice(catchAll + 1);
  if (catchAll >= 0 && hidden.length > 0) {
    const rule = applicable[catchAll]!;
    out.warn('rules-unreachable', `rule ${rule.name} matches every job here (no pipelines, branches or steps), so ${hidden.map((r) => r.name).join(', ')} never apply in ${namespace}`, `in the config's rules, move ${rule.name} after them or narrow its match`);
  }
  await Promise.all(reachable.map((rule) => checkRuleCredentials(namespace, rule, context, out)));
}

/** Everything one rule names must exist here; what the namespace checks already read is skipped. */
async function checkRuleCredentials(namespace: string, rule: Rule, context: RuleCheckContext, out: ScopeChecks): Promise<void> {
  const { api, config, checked } = context;
  const id = 'rule-credentials';
  const problems: string[] = [];
  const warnings: string[] = [];
  const fine: string[] = [];
  const reads: Promise<void>[] = [];
  const account = config.serviceAccountPolicy === 'never' ? undefined : rule.serviceAccount;
  if (account && account !== checked.serviceAccount) {
    reads.push(
      readOrFail(out, id, `ServiceAccount ${account}`, () => api.serviceAccount(namespace, account)).then((found) => {
        if (found === undefined) problems.push(`ServiceAccount ${account} does not exist: the API server rejects the job Pods this rule matches`);
        else if (found !== null) fine.push(`ServiceAccount ${account}`);
      }),
    );
  }
  const awsSecret = rule.awsSecret;
  if (awsSecret && awsSecret !== checked.awsSecret) {
    reads.push(
      readOrFail(out, id, `Secret ${awsSecret}`, () => api.secret(namespace, awsSecret)).then((found) => {
        if (found === null) return;
        const missing = found === undefined ? undefined : missingAwsKeys(found);
        if (missing === undefined) problems.push(`AWS Secret ${awsSecret} does not exist: the job Pods this rule matches do not start (CreateContainerConfigError)`);
        else if (missing.length > 0) problems.push(`AWS Secret ${awsSecret} has no ${missing.join(' or ')} key`);
        else fine.push(`AWS Secret ${awsSecret}`);
      }),
    );
  }
  const pullSecret = rule.pullSecret;
  if (pullSecret && pullSecret !== checked.pullSecret) {
    reads.push(
      readOrFail(out, id, `Secret ${pullSecret}`, () => api.secret(namespace, pullSecret)).then((found) => {
        if (found === null) return;
        const problem = pullSecretProblem(pullSecret, found, context);
        if (problem?.severity === 'error') problems.push(problem.message);
        else if (problem) warnings.push(problem.message);
        else fine.push(`pull Secret ${pullSecret}`);
      }),
    );
  }
  await Promise.all(reads);
  if (problems.length > 0) {
    out.fail(id, `rule ${rule.name}: ${[...problems, ...warnings].join('; ')}`, `create them in ${namespace} (kubectl -n ${namespace} create serviceaccount NAME / create secret ...), or change rule ${rule.name} in the config`);
  } else if (warnings.length > 0) {
    out.warn(id, `rule ${rule.name}: ${warnings.join('; ')}`, `name the namespace's own pull Secret${context.ownPullSecret ? ` (${context.ownPullSecret})` : ''} in rule ${rule.name}, or renew ${pullSecret} yourself`);
  } else if (fine.length > 0) {
    out.ok(id, `rule ${rule.name}: ${fine.join(', ')} exist${fine.length === 1 ? 's' : ''}`);
  }
}

function pullSecretProblem(name: string, secret: V1Secret | undefined, context: RuleCheckContext): { severity: 'error' | 'warning'; message: string } | undefined {
  if (secret === undefined) return { severity: 'error', message: `pull Secret ${name} does not exist: private image pulls fail (ImagePullBackOff)` };
  if (secret.type !== DOCKER_CONFIG_TYPE) return { severity: 'error', message: `pull Secret ${name} has type ${secret.type ?? 'Opaque'}, not ${DOCKER_CONFIG_TYPE}: the kubelet ignores it` };
  const expiries = [...readDockerConfig(secret.data?.[DOCKER_CONFIG_KEY]).values()].map(tokenExpiry).filter((date): date is Date => date !== undefined);
  const first = expiries.sort((a, b) => a.getTime() - b.getTime())[0];
  if (first && first.getTime() <= context.now.getTime()) return { severity: 'error', message: `pull Secret ${name} holds an ECR token that expired at ${first.toISOString()}: image pulls fail` };
  // The refresher renews only the namespace's own pull Secret; a rule's other one ages out in 12 h.
  if (first) return { severity: 'warning', message: `pull Secret ${name} is not the namespace's own, so the refresher does not renew it: its first ECR token expires at ${first.toISOString()}` };
  return undefined;
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
