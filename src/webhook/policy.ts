// Owns "what applies": from the admission request, the namespace's labels and the config, decide
// whether a Pod is a candidate and which ServiceAccount and Secrets it should get. Pure: no I/O.
import { isKubernetesName, type Config } from './config.js';
import type { Labels, Pod } from './pod.js';
import { evaluateRules, jobIdentity, type RuleEvaluation } from './rules.js';

/** Label and annotation keys, all under the configurable prefix. */
export interface LabelKeys {
  inject: string;
  serviceAccount: string;
  awsSecret: string;
  pullSecret: string;
  injectedAnnotation: string;
}

export function labelKeys(prefix: string): LabelKeys {
  return {
    inject: `${prefix}/inject`,
    serviceAccount: `${prefix}/service-account`,
    awsSecret: `${prefix}/aws-secret`,
    pullSecret: `${prefix}/pull-secret`,
    injectedAnnotation: `${prefix}/injected`,
  };
}

/** Machine-readable reasons for leaving a request alone. Stable: dashboards and alerts use them. */
export type SkipReason =
  | 'operation-not-create'
  | 'not-a-pod'
  | 'not-a-job-pod'
  | 'mirror-pod'
  | 'namespace-excluded'
  | 'namespace-unknown'
  | 'namespace-not-opted-in'
  | 'pod-opted-out'
  | 'invalid-namespace-label'
  | 'nothing-to-inject'
  | 'malformed-pod';

/** What a Pod should get. null means "not this one". */
export interface InjectionPlan {
  serviceAccount: string | null;
  awsSecret: string | null;
  pullSecret: string | null;
  /** The rule the plan came from, recorded in the injected annotation. */
  rule?: string;
}

export type PolicyResult =
  | { action: 'skip'; reason: SkipReason; detail: string; rules?: RuleEvaluation }
  | { action: 'inject'; plan: InjectionPlan; rules?: RuleEvaluation; warnings?: string[] };

export interface PolicyInput {
  operation: string | undefined;
  /** The request's `kind` (group/version/kind of the object). */
  kind: { group?: string; version?: string; kind?: string } | undefined;
  subResource: string | undefined;
  namespace: string | undefined;
  pod: Pod;
  /** The namespace's labels, or undefined when the namespace is not known. */
  namespaceLabels: Labels | undefined;
}

const MIRROR_ANNOTATION = 'kubernetes.io/config.mirror';

export function resolvePolicy(input: PolicyInput, config: Config): PolicyResult {
  const keys = labelKeys(config.labelPrefix);
  const skip = (reason: SkipReason, detail: string): PolicyResult => ({ action: 'skip', reason, detail });

  if (input.operation !== 'CREATE') return skip('operation-not-create', `operation is ${input.operation ?? 'missing'}`);
  const kind = input.kind;
  if (kind?.kind !== 'Pod' || (kind.group ?? '') !== '' || kind.version !== 'v1' || input.subResource) {
    return skip('not-a-pod', 'request is not for a v1 Pod');
  }
  const podLabels = input.pod.metadata.labels ?? {};
  if (podLabels[config.jobPodLabel] === undefined) {
    return skip('not-a-job-pod', `Pod has no ${config.jobPodLabel} label`);
  }
  if (input.pod.metadata.annotations?.[MIRROR_ANNOTATION] !== undefined) {
    return skip('mirror-pod', 'mirror Pods are never mutated');
  }
  const namespace = input.namespace ?? input.pod.metadata.namespace;
  if (namespace === undefined || namespace === '') return skip('namespace-unknown', 'request names no namespace');
  if (config.excludedNamespaces.includes(namespace)) {
    return skip('namespace-excluded', `namespace ${namespace} is excluded by config`);
  }
  const labels = input.namespaceLabels;
  if (labels === undefined) return skip('namespace-unknown', `namespace ${namespace} is not known to the label source`);
  if (labels[keys.inject] !== 'enabled') {
    return skip('namespace-not-opted-in', `namespace ${namespace} has no ${keys.inject}=enabled label`);
  }
  if (podLabels[keys.inject] === 'disabled') {
    return skip('pod-opted-out', `Pod has ${keys.inject}=disabled`);
  }

  // Rules are evaluated only for candidates: they choose credentials, they never opt a namespace in.
  const rules = config.rules.length > 0 ? evaluateRules(config.rules, jobIdentity(namespace, input.pod.metadata.annotations)) : undefined;
  const rule = rules?.rule;
  const skipWithRules = (reason: SkipReason, detail: string): PolicyResult => ({ action: 'skip', reason, detail, ...(rules ? { rules } : {}) });

  const choices: [Credential, string][] = [
    ['serviceAccount', keys.serviceAccount],
    ['awsSecret', keys.awsSecret],
    ['pullSecret', keys.pullSecret],
  ];
  const plan: InjectionPlan = { serviceAccount: null, awsSecret: null, pullSecret: null, ...(rule ? { rule: rule.name } : {}) };
  // Per credential: the matching rule's value, else the namespace label, else the config default.
  for (const [field, key] of choices) {
    const ruled = rule?.[field];
    const value = labels[key];
    if (ruled !== undefined) {
      plan[field] = ruled;
    } else if (value === undefined) {
      plan[field] = config.defaults[field];
    } else if (value === 'none') {
      plan[field] = null;
    } else if (isKubernetesName(value)) {
      plan[field] = value;
    } else {
      return skipWithRules('invalid-namespace-label', `label ${key}=${value} is not a valid name`);
    }
  }
  const warnings = ruleServiceAccountWarnings(input.pod, rule?.name, rule?.serviceAccount, config);
  const asked = rule ? `rule ${rule.name}, namespace ${namespace} and config defaults ask` : `namespace ${namespace} and config defaults ask`;
  if (countRequested(plan) === 0) return skipWithRules('nothing-to-inject', `${asked} for nothing`);
  if (config.serviceAccountPolicy === 'never') plan.serviceAccount = null;
  if (countRequested(plan) === 0) return skipWithRules('nothing-to-inject', 'only a ServiceAccount was asked for and serviceAccountPolicy is never');
  return { action: 'inject', plan, ...(warnings.length > 0 ? { warnings } : {}), ...(rules ? { rules } : {}) };
}

type Credential = 'serviceAccount' | 'awsSecret' | 'pullSecret';

/**
 * A rule's ServiceAccount is an authority boundary only with serviceAccountPolicy: always; say so
 * when the Pod's own ServiceAccount (set by a pipeline author, say) or the policy kept it out.
 */
function ruleServiceAccountWarnings(pod: Pod, rule: string | undefined, wanted: string | null | undefined, config: Config): string[] {
  if (rule === undefined || wanted === undefined || wanted === null) return [];
  if (config.serviceAccountPolicy === 'never') return [`rule ${rule}: its ServiceAccount ${wanted} not applied (serviceAccountPolicy never)`];
  const current = pod.spec.serviceAccountName || pod.spec.serviceAccount || 'default';
  if (config.serviceAccountPolicy === 'ifDefault' && current !== 'default' && current !== wanted) {
    return [`rule ${rule}: Pod's own ServiceAccount kept (serviceAccountPolicy ifDefault)`];
  }
  return [];
}

function countRequested(plan: InjectionPlan): number {
  return [plan.serviceAccount, plan.awsSecret, plan.pullSecret].filter((v) => v !== null).length;
}
