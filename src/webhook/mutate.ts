// Owns "apply it": given a Pod and an injection plan, return a mutated copy plus what was injected and
// the warnings to show. Pure: the input Pod is never modified, and running it on its own output
// changes nothing (the webhook is reinvoked after other webhooks, see reinvocationPolicy: IfNeeded).
//
// Copy on write: the result shares every subtree it does not change with the input (managedFields,
// volumes, env...), and copies only the objects on the paths it writes. Every write is recorded as
// it is made (PatchRecorder, patch.ts), so the JSON patch costs what we change, not the Pod's size.
import type { Config } from './config.js';
import { PatchRecorder, type Operation } from './patch.js';
import { isPlainObject, selectContainers, type Container, type PlacedContainer, type Pod, type PodSpec } from './pod.js';
import { labelKeys, type InjectionPlan } from './policy.js';

/** What one pass added; also the shape of the `<prefix>/injected` annotation (JSON). */
export interface Injected {
  /** The credential rule that chose what was injected (in the annotation only). */
  rule?: string;
  serviceAccountName?: string;
  envFrom?: { secret: string; containers: string[] };
  imagePullSecrets?: string[];
}

/** What one pass decides: what it injects, the warnings, and the patch (not yet guarded). */
export interface MutationPlan {
  /** What this pass changed; empty when the Pod already had everything. */
  injected: Injected;
  warnings: string[];
  /** The JSON patch from the original to the mutated Pod, recorded write by write. */
  operations: Operation[];
}

export interface MutationResult extends MutationPlan {
  pod: Pod;
}

const DEFAULT_SERVICE_ACCOUNT = 'default';
const SPEC = ['spec'] as const;

/** The mutated Pod (copy on write) and its patch: for callers that need the Pod itself (the offline CLI). */
export function mutatePod(original: Pod, plan: InjectionPlan, config: Config): MutationResult {
  const pod = copyForWriting(original);
  return { pod, ...runMutation(original, plan, config, pod) };
}

/**
 * The same pass without building the mutated Pod: only the operations (and what they inject). The
 * admission route sends a patch, never the Pod, so it saves the copies (test/webhook/recorded-patch
 * checks both give the same patch).
 */
export function planMutation(original: Pod, plan: InjectionPlan, config: Config): MutationPlan {
  return runMutation(original, plan, config, undefined);
}

/**
 * Every writer reads the original Pod (no writer reads what another one wrote) and records its
 * change; `pod`, when given, is the copy-on-write result it also writes into.
 */
function runMutation(original: Pod, plan: InjectionPlan, config: Config, pod: Pod | undefined): MutationPlan {
  const injected: Injected = {};
  const warnings: string[] = [];
  const out: Outputs = { injected, warnings, patch: new PatchRecorder(), pod };

  if (plan.serviceAccount !== null) applyServiceAccount(original, plan.serviceAccount, config, out);
  if (plan.awsSecret !== null) applyEnvFrom(original, plan.awsSecret, config, out);
  if (plan.pullSecret !== null) applyPullSecret(original, plan.pullSecret, out);
  if (plan.serviceAccount !== null && plan.awsSecret !== null) {
    // AWS SDKs take static keys from the environment before IRSA's web identity token.
    warnings.push(`static keys in Secret ${plan.awsSecret} shadow IRSA of ServiceAccount ${plan.serviceAccount}`);
  }
  if (injected.serviceAccountName !== undefined || injected.envFrom !== undefined || injected.imagePullSecrets !== undefined) {
    recordInjection(original, plan.rule === undefined ? injected : { rule: plan.rule, ...injected }, config, out);
  }
  return { injected, warnings, operations: out.patch.operations };
}

/** What the writers report into: what was injected, the warnings, the patch, and the copy to write (if any). */
interface Outputs {
  injected: Injected;
  warnings: string[];
  patch: PatchRecorder;
  pod: Pod | undefined;
}

/**
 * A copy of the Pod whose root, metadata, spec and container lists are new objects; everything
 * below them is shared. Writers below that level go through `writableContainer`, or replace a whole
 * field with a new value (never push into a shared array).
 */
function copyForWriting(original: Pod): Pod {
  const spec: PodSpec = { ...original.spec, containers: [...original.spec.containers] };
  if (Array.isArray(original.spec.initContainers)) spec.initContainers = [...original.spec.initContainers];
  return { ...original, metadata: { ...original.metadata }, spec };
}

/** The container at `placed`, copied into the Pod's (already copied) list so it may be written. */
function writableContainer(pod: Pod, placed: PlacedContainer): Container {
  const list = pod.spec[placed.list];
  if (list === undefined) throw new Error(`spec.${placed.list} vanished while mutating`);
  const copy = { ...placed.container };
  list[placed.index] = copy;
  return copy;
}

function applyServiceAccount(original: Pod, wanted: string, config: Config, { injected, warnings, patch, pod }: Outputs): void {
  const spec = original.spec;
  // The ServiceAccount admission plugin runs before webhooks, so "unset" arrives as "default".
  const current = spec.serviceAccountName || spec.serviceAccount || DEFAULT_SERVICE_ACCOUNT;
  if (current === wanted) return;
  if (current !== DEFAULT_SERVICE_ACCOUNT && config.serviceAccountPolicy !== 'always') {
    warnings.push(`serviceAccountName ${current} was set explicitly; kept instead of ${wanted}`);
    return;
  }
  if (current !== DEFAULT_SERVICE_ACCOUNT) {
    warnings.push(`serviceAccountName ${current} replaced by ${wanted} (serviceAccountPolicy: always)`);
  }
  if (pod) pod.spec.serviceAccountName = wanted;
  patch.set(SPEC, spec, 'serviceAccountName', wanted);
  // Keep the deprecated alias consistent when the API server sent it.
  if (spec.serviceAccount !== undefined) {
    if (pod) pod.spec.serviceAccount = wanted;
    patch.set(SPEC, spec, 'serviceAccount', wanted);
  }
  injected.serviceAccountName = wanted;
}

function applyEnvFrom(original: Pod, secret: string, config: Config, { injected, warnings, patch, pod }: Outputs): void {
  const targets = selectContainers(original.spec, config.targetContainers);
  if (targets.length === 0) {
    warnings.push(`no container matches targetContainers; Secret ${secret} not injected`);
    return;
  }
  const changed: string[] = [];
  for (const placed of targets) {
    if (hasSecretRef(placed.container, secret)) continue;
    // Append: AWS keys from this Secret must not override anything the step set itself in env,
    // and env always wins over envFrom in Kubernetes.
    const source = { secretRef: { name: secret } };
    const list = patch.append(['spec', placed.list, placed.index], placed.container, 'envFrom', source);
    if (pod) writableContainer(pod, placed).envFrom = list;
    changed.push(placed.container.name);
  }
  if (changed.length > 0) injected.envFrom = { secret, containers: changed };
}

function hasSecretRef(container: Container, secret: string): boolean {
  return (container.envFrom ?? []).some((source) => source.secretRef?.name === secret);
}

function applyPullSecret(original: Pod, secret: string, { injected, patch, pod }: Outputs): void {
  const existing = original.spec.imagePullSecrets ?? [];
  if (existing.some((reference) => reference.name === secret)) return;
  // Append, never replace: the ServiceAccount plugin copies its own pull secrets only into Pods that
  // have none, so anything already here must survive.
  const list = patch.append(SPEC, original.spec, 'imagePullSecrets', { name: secret });
  if (pod) pod.spec.imagePullSecrets = list;
  injected.imagePullSecrets = [secret];
}

/** Merge this pass into the `<prefix>/injected` annotation so `kubectl get pod -o yaml` shows it. */
function recordInjection(original: Pod, injected: Injected, config: Config, { patch, pod }: Outputs): void {
  const key = labelKeys(config.labelPrefix).injectedAnnotation;
  const before = original.metadata.annotations;
  const previous = parseInjectedAnnotation(isPlainObject(before) ? before[key] : undefined);
  const merged: Injected = { ...previous, ...injected };
  if (previous.envFrom && injected.envFrom && previous.envFrom.secret === injected.envFrom.secret) {
    merged.envFrom = {
      secret: injected.envFrom.secret,
      containers: [...new Set([...previous.envFrom.containers, ...injected.envFrom.containers])],
    };
  }
  if (previous.imagePullSecrets && injected.imagePullSecrets) {
    merged.imagePullSecrets = [...new Set([...previous.imagePullSecrets, ...injected.imagePullSecrets])];
  }
  const value = JSON.stringify(merged);
  // A map that was there gets the one key; a missing (or null) map is written whole.
  if (isPlainObject(before)) {
    patch.set(['metadata', 'annotations'], before, key, value);
    // A new map: the input's annotations are shared with the original Pod.
    if (pod) pod.metadata.annotations = { ...before, [key]: value };
  } else {
    const annotations = { [key]: value };
    patch.set(['metadata'], original.metadata, 'annotations', annotations);
    if (pod) pod.metadata.annotations = annotations;
  }
}

/** Read a previous pass's annotation, keeping only well-formed fields (anyone can write annotations). */
export function parseInjectedAnnotation(value: string | undefined): Injected {
  if (value === undefined) return {};
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch {
    return {};
  }
  if (!isPlainObject(parsed)) return {};
  const result: Injected = {};
  if (typeof parsed.rule === 'string') result.rule = parsed.rule;
  if (typeof parsed.serviceAccountName === 'string') result.serviceAccountName = parsed.serviceAccountName;
  const envFrom = parsed.envFrom;
  if (isPlainObject(envFrom) && typeof envFrom.secret === 'string' && isStringList(envFrom.containers)) {
    result.envFrom = { secret: envFrom.secret, containers: envFrom.containers };
  }
  if (isStringList(parsed.imagePullSecrets)) result.imagePullSecrets = parsed.imagePullSecrets;
  return result;
}

function isStringList(value: unknown): value is string[] {
  return Array.isArray(value) && value.every((item) => typeof item === 'string');
}
