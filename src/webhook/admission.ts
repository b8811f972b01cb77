// Owns the AdmissionReview envelope: checking what arrives, turning one request into a decision
// (policy, then mutation, then a guarded patch) and building the response and its audit record.
// Pure apart from what it is given: the HTTP route and the offline CLI both call `reviewAdmission`.
import type { Config } from './config.js';
import { mutatePod, planMutation, type Injected } from './mutate.js';
import { createPatchGuard, type Operation, type PatchGuard } from './patch.js';
import { describePodShapeProblem, isPlainObject, type Labels, type Pod } from './pod.js';
import { resolvePolicy, type SkipReason } from './policy.js';
import { assessPullSecret, type PullSecretProblem } from './pull-secret-status.js';
import type { RuleEvaluation } from './rules.js';

export const SUPPORTED_API_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'] as const;

export interface AdmissionRequest {
  uid: string;
  kind?: { group?: string; version?: string; kind?: string };
  subResource?: string;
  namespace?: string;
  name?: string;
  operation?: string;
  userInfo?: { username?: string };
  object?: unknown;
  dryRun?: boolean;
  [field: string]: unknown;
}

export interface AdmissionReview {
  apiVersion: string;
  kind: 'AdmissionReview';
  request: AdmissionRequest;
}

export interface AdmissionResponse {
  uid: string;
  allowed: true;
  patchType?: 'JSONPatch';
  patch?: string;
  warnings?: string[];
  auditAnnotations?: Record<string, string>;
}

export type Decision = 'injected' | 'unchanged' | 'skipped';
export type Reason = SkipReason | 'injected' | 'already-present' | 'internal-error';

/** One audit line's worth of facts: names and decisions only, never env values or whole objects. */
export interface AuditRecord {
  uid: string;
  namespace: string | undefined;
  pod: string | undefined;
  jobUuid: string | undefined;
  pipeline: string | undefined;
  branch: string | undefined;
  stepKey: string | undefined;
  buildUrl: string | undefined;
  user: string | undefined;
  operation: string | undefined;
  dryRun: boolean;
  decision: Decision;
  reason: Reason;
  detail?: string;
  injected?: Injected;
  warnings?: string[];
  /** The pull Secret this Pod gets is reported expired, failing or unmanaged by the refresher. */
  pullSecretProblem?: PullSecretProblem;
  /** The rule that matched, null when none did; absent when no rules were evaluated. */
  rule?: string | null;
  /** Identity annotations the Pod lacked that an earlier rule asked about (so it did not match). */
  missingAnnotations?: string[];
}

export interface AdmissionOutcome {
  response: AdmissionResponse;
  audit: AuditRecord;
  operations: Operation[];
  /**
   * The Pod after mutation (the original when nothing changed); for the offline CLI. Undefined for
   * an injection decided with `podResult: false`.
   */
  pod: unknown;
  /** An unexpected error caught while deciding (the Pod was admitted unchanged). */
  error?: Error;
  /** How the rules were evaluated, when they were (for `mutate`'s explanation). */
  rules?: RuleEvaluation;
}

/** Why an HTTP body is not an AdmissionReview we can answer; undefined when it is. */
export function describeEnvelopeProblem(body: unknown): string | undefined {
  if (!isPlainObject(body)) return 'body is not a JSON object';
  if (body.kind !== 'AdmissionReview') return `kind must be "AdmissionReview", got ${describeValue(body.kind)}`;
  if (typeof body.apiVersion !== 'string' || !(SUPPORTED_API_VERSIONS as readonly string[]).includes(body.apiVersion)) {
    return `apiVersion must be one of ${SUPPORTED_API_VERSIONS.join(', ')}, got ${describeValue(body.apiVersion)}`;
  }
  const request = body.request;
  if (!isPlainObject(request)) return 'request is missing or not an object';
  if (typeof request.uid !== 'string' || request.uid === '') return 'request.uid is missing or not a non-empty string';
  for (const field of ['namespace', 'name', 'operation', 'subResource'] as const) {
    if (request[field] !== undefined && typeof request[field] !== 'string') return `request.${field} is not a string`;
  }
  for (const field of ['kind', 'userInfo'] as const) {
    if (request[field] !== undefined && !isPlainObject(request[field])) return `request.${field} is not an object`;
  }
  if (request.dryRun !== undefined && typeof request.dryRun !== 'boolean') return 'request.dryRun is not a boolean';
  return undefined;
}

const MAX_QUOTED_LENGTH = 64;

/**
 * A value for an error message that is logged: a short string is quoted, anything else is named by
 * its type only, so a misplaced object (a whole Pod, say) never reaches a log line.
 */
function describeValue(value: unknown): string {
  if (value === undefined) return 'nothing';
  if (typeof value === 'string') {
    return value.length <= MAX_QUOTED_LENGTH ? JSON.stringify(value) : `a string of ${value.length} characters`;
  }
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'a list';
  return typeof value === 'object' ? 'an object' : `a ${typeof value}`;
}

const MAX_WARNING_LENGTH = 120;
const WARNING_PREFIX = 'buildkite-ecr-injector: ';

export function formatWarning(text: string): string {
  const full = WARNING_PREFIX + text;
  return full.length <= MAX_WARNING_LENGTH ? full : `${full.slice(0, MAX_WARNING_LENGTH - 1)}…`;
}

export interface AdmissionContext {
  config: Config;
  guard?: PatchGuard;
  /** See ShapeOptions.wholePodDepth: the HTTP route sets false, the offline CLI keeps the default. */
  wholePodDepth?: boolean;
  /**
   * Build the mutated Pod (default true). The HTTP route sets false: it answers with the patch
   * alone, and the patch is the same either way.
   */
  podResult?: boolean;
  /**
   * The namespace's pull-secret-status annotation (written by the refresher) and the time to judge
   * it by; without it no pull-Secret warning is given.
   */
  pullSecretStatus?: { annotation: string | undefined; now: Date };
}

/**
 * Decide one admission request. Never throws: an unexpected error admits the Pod unchanged and is
 * reported in the outcome, because a broken webhook must not stop CI (failurePolicy Ignore is the
 * API server's half of that promise, this is ours).
 */
export function reviewAdmission(request: AdmissionRequest, namespaceLabels: Labels | undefined, context: AdmissionContext): AdmissionOutcome {
  try {
    return decide(request, namespaceLabels, context);
  } catch (error) {
    return {
      response: { uid: request.uid, allowed: true, auditAnnotations: { decision: 'skipped', reason: 'internal-error' } },
      audit: { ...auditBase(request, undefined, 'skipped', 'internal-error'), detail: (error as Error).message },
      operations: [],
      pod: request.object,
      error: error as Error,
    };
  }
}

function decide(request: AdmissionRequest, namespaceLabels: Labels | undefined, context: AdmissionContext): AdmissionOutcome {
  const { config } = context;
  const object = request.object;
  const shapeProblem = describePodShapeProblem(object, context);
  if (shapeProblem !== undefined) {
    // Only a Pod CREATE is worth a warning; anything else is simply not ours.
    const isPodCreate = request.operation === 'CREATE' && request.kind?.kind === 'Pod';
    const reason: SkipReason = isPodCreate ? 'malformed-pod' : request.operation === 'CREATE' ? 'not-a-pod' : 'operation-not-create';
    return skipped(request, undefined, reason, shapeProblem, isPodCreate ? [`Pod not mutated: ${shapeProblem}`] : []);
  }
  const pod = object as Pod;
  const policy = resolvePolicy(
    {
      operation: request.operation,
      kind: request.kind,
      subResource: request.subResource,
      namespace: request.namespace,
      pod,
      namespaceLabels,
    },
    config,
  );
  const rules = policy.rules;
  if (policy.action === 'skip') {
    const warn = policy.reason === 'invalid-namespace-label' || policy.reason === 'namespace-unknown';
    return skipped(request, pod, policy.reason, policy.detail, warn ? [`Pod not mutated: ${policy.detail}`] : [], rules);
  }

  const mutation = context.podResult === false ? planMutation(pod, policy.plan, config) : mutatePod(pod, policy.plan, config);
  const operations = mutation.operations;
  (context.guard ?? createPatchGuard(config.labelPrefix)).check(operations);
  const status = context.pullSecretStatus;
  const pullSecret = policy.plan.pullSecret !== null && status ? assessPullSecret(status.annotation, policy.plan.pullSecret, status.now) : undefined;
  const warnings = [...(policy.warnings ?? []), ...mutation.warnings, ...(pullSecret ? [pullSecret.warning] : [])].map(formatWarning);
  // One audit object, filled in place: this is the path every injected Pod takes.
  const unchanged = operations.length === 0;
  const audit = auditBase(request, pod, unchanged ? 'unchanged' : 'injected', unchanged ? 'already-present' : 'injected');
  if (!unchanged) audit.injected = mutation.injected;
  if (warnings.length) audit.warnings = warnings;
  if (pullSecret) audit.pullSecretProblem = pullSecret.problem;
  Object.assign(audit, ruleAudit(rules));
  if (unchanged) {
    return {
      response: withWarnings({ uid: request.uid, allowed: true, auditAnnotations: { decision: 'unchanged', reason: 'already-present', ...ruleAnnotation(rules) } }, warnings),
      audit,
      operations,
      pod,
      ...(rules ? { rules } : {}),
    };
  }
  return {
    response: withWarnings(
      {
        uid: request.uid,
        allowed: true,
        patchType: 'JSONPatch',
        patch: Buffer.from(JSON.stringify(operations)).toString('base64'),
        auditAnnotations: { decision: 'injected', reason: 'injected', injected: JSON.stringify(mutation.injected), ...ruleAnnotation(rules) },
      },
      warnings,
    ),
    audit,
    operations,
    pod: 'pod' in mutation ? mutation.pod : undefined,
    ...(rules ? { rules } : {}),
  };
}

function skipped(request: AdmissionRequest, pod: Pod | undefined, reason: SkipReason, detail: string, rawWarnings: string[], rules?: RuleEvaluation): AdmissionOutcome {
  const warnings = rawWarnings.map(formatWarning);
  return {
    response: withWarnings({ uid: request.uid, allowed: true, auditAnnotations: { decision: 'skipped', reason, ...ruleAnnotation(rules) } }, warnings),
    audit: { ...auditBase(request, pod, 'skipped', reason), ...ruleAudit(rules), detail, ...(warnings.length ? { warnings } : {}) },
    operations: [],
    pod: request.object,
    ...(rules ? { rules } : {}),
  };
}

/** The audit record's rule fields: the matched rule (null for none) and the annotations rules missed. */
function ruleAudit(rules: RuleEvaluation | undefined): Pick<AuditRecord, 'rule' | 'missingAnnotations'> {
  if (rules === undefined) return {};
  const missing: string[] = [];
  for (const miss of rules.misses) if (miss.missing !== undefined && !missing.includes(miss.missing)) missing.push(miss.missing);
  return { rule: rules.rule?.name ?? null, ...(missing.length > 0 ? { missingAnnotations: missing } : {}) };
}

function ruleAnnotation(rules: RuleEvaluation | undefined): { rule?: string } {
  return rules?.rule ? { rule: rules.rule.name } : {};
}

function withWarnings(response: AdmissionResponse, warnings: string[]): AdmissionResponse {
  return warnings.length > 0 ? { ...response, warnings } : response;
}

function auditBase(request: AdmissionRequest, pod: Pod | undefined, decision: Decision, reason: Reason): AuditRecord {
  const metadata = pod?.metadata;
  const annotations = metadata?.annotations ?? {};
  return {
    uid: request.uid,
    namespace: request.namespace,
    pod: metadata?.name || metadata?.generateName || request.name || undefined,
    jobUuid: metadata?.labels?.['buildkite.com/job-uuid'],
    pipeline: annotations['buildkite.com/pipeline-slug'],
    branch: annotations['buildkite.com/build-branch'],
    stepKey: annotations['buildkite.com/step-key'],
    buildUrl: annotations['buildkite.com/build-url'],
    user: typeof request.userInfo?.username === 'string' ? request.userInfo.username : undefined,
    operation: request.operation,
    dryRun: request.dryRun === true,
    decision,
    reason,
  };
}

/** The AdmissionReview answer, in the apiVersion the request came in. */
export function buildReviewResponse(apiVersion: string, response: AdmissionResponse): object {
  return { apiVersion, kind: 'AdmissionReview', response };
}
