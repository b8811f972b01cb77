// Owns what the webhook knows about a Pod's shape: the few fields it reads or writes, typed as plain
// JSON (never run through a client library's serializer, which would drop unknown fields), and how a
// Buildkite job Pod's containers map to roles.
import type { ContainerRole } from './config.js';

export type Labels = Readonly<Record<string, string>>;

export interface EnvFromSource {
  secretRef?: { name?: string; optional?: boolean };
  configMapRef?: { name?: string };
  prefix?: string;
  [field: string]: unknown;
}

export interface Container {
  name: string;
  env?: { name: string; [field: string]: unknown }[];
  envFrom?: EnvFromSource[];
  restartPolicy?: string;
  [field: string]: unknown;
}

export interface PodSpec {
  serviceAccountName?: string;
  /** Deprecated alias of serviceAccountName that the API server still fills in. */
  serviceAccount?: string;
  imagePullSecrets?: { name?: string }[];
  containers: Container[];
  initContainers?: Container[];
  [field: string]: unknown;
}

export interface Pod {
  apiVersion?: string;
  kind?: string;
  metadata: {
    name?: string;
    generateName?: string;
    namespace?: string;
    labels?: Record<string, string>;
    annotations?: Record<string, string>;
    [field: string]: unknown;
  };
  spec: PodSpec;
  [field: string]: unknown;
}

export interface ShapeOptions {
  /**
   * Bound the nesting of the whole Pod (default true): for callers that serialize or copy all of it
   * (the offline CLI prints the mutated Pod). The webhook's own work never recurses into a Pod:
   * copy-on-write copies single objects and the recorded patch carries only values it made, so the
   * HTTP route turns this walk over every node off.
   */
  wholePodDepth?: boolean;
}

/**
 * Check that a value has the Pod fields the webhook reads, with the types it expects. Returns a short
 * description of the first problem, or undefined when the shape is usable. Fields the webhook never
 * touches are not inspected: the API server has validated them already.
 */
export function describePodShapeProblem(value: unknown, options: ShapeOptions = {}): string | undefined {
  if (!isPlainObject(value)) return 'object is not a JSON object';
  if (options.wholePodDepth !== false && exceedsDepth(value, MAX_OBJECT_DEPTH)) return `object nests deeper than ${MAX_OBJECT_DEPTH} levels`;
  const metadata = value.metadata;
  if (!isPlainObject(metadata)) return 'metadata is missing or not an object';
  for (const field of ['labels', 'annotations'] as const) {
    const map = metadata[field];
    if (map !== undefined && map !== null && !isStringMap(map)) return `metadata.${field} is not a map of strings`;
  }
  for (const field of ['name', 'generateName', 'namespace'] as const) {
    const text = metadata[field];
    if (text !== undefined && typeof text !== 'string') return `metadata.${field} is not a string`;
  }
  const spec = value.spec;
  if (!isPlainObject(spec)) return 'spec is missing or not an object';
  for (const field of ['serviceAccountName', 'serviceAccount'] as const) {
    const text = spec[field];
    if (text !== undefined && typeof text !== 'string') return `spec.${field} is not a string`;
  }
  const pullSecrets = spec.imagePullSecrets;
  if (pullSecrets !== undefined && pullSecrets !== null) {
    if (!Array.isArray(pullSecrets) || !pullSecrets.every(isPlainObject)) return 'spec.imagePullSecrets is not a list of objects';
  }
  if (!Array.isArray(spec.containers)) return 'spec.containers is not a list';
  for (const list of ['containers', 'initContainers'] as const) {
    const containers = spec[list];
    if (containers === undefined || containers === null) continue;
    if (!Array.isArray(containers)) return `spec.${list} is not a list`;
    for (let index = 0; index < containers.length; index += 1) {
      const problem = describeContainerProblem(containers[index]);
      if (problem !== undefined) return `spec.${list}[${index}] ${problem}`;
    }
  }
  return undefined;
}

/**
 * Far deeper than any real Pod (its deepest fields, managedFields included, sit some 20 levels
 * down) and far shallower than where structuredClone and the JSON patch diff run out of stack
 * (about 2,000 levels): a hostile body cannot turn into an internal error.
 */
export const MAX_OBJECT_DEPTH = 100;

/**
 * True when `value` has containers nested more than `limit` levels deep. Recursive but safe at any
 * depth: it stops `limit` levels down. Plain loops, no allocation (3 x faster than a stack of pairs).
 */
export function exceedsDepth(value: unknown, limit: number): boolean {
  return typeof value === 'object' && value !== null && deeperThan(value, limit - 1);
}

function deeperThan(node: object, levelsLeft: number): boolean {
  if (Array.isArray(node)) {
    for (const child of node as unknown[]) {
      if (typeof child === 'object' && child !== null && (levelsLeft === 0 || deeperThan(child, levelsLeft - 1))) return true;
    }
    return false;
  }
  for (const key in node) {
    const child = (node as Record<string, unknown>)[key];
    if (typeof child === 'object' && child !== null && (levelsLeft === 0 || deeperThan(child, levelsLeft - 1))) return true;
  }
  return false;
}

function describeContainerProblem(container: unknown): string | undefined {
  if (!isPlainObject(container)) return 'is not an object';
  if (typeof container.name !== 'string') return 'has no name';
  // Only that env is a list: its entries are read once, by roleOf, which skips any that is not an
  // object (the API server has validated them; a second pass here cost as much as the read).
  if (container.env !== undefined && container.env !== null && !Array.isArray(container.env)) return 'env is not a list of objects';
  if (container.envFrom !== undefined && container.envFrom !== null) {
    if (!Array.isArray(container.envFrom) || !container.envFrom.every(isPlainObject)) {
      return 'envFrom is not a list of objects';
    }
  }
  return undefined;
}

export function isPlainObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function isStringMap(value: unknown): value is Record<string, string> {
  if (!isPlainObject(value)) return false;
  // A loop, not Object.values().every(): no list of values per map (annotations can be many).
  for (const key in value) if (typeof value[key] !== 'string') return false;
  return true;
}

/** A container in the Pod, with where it sits (for patch paths and messages). */
export interface PlacedContainer {
  list: 'containers' | 'initContainers';
  index: number;
  container: Container;
}

/**
 * The role a container plays in an agent-stack-k8s job Pod. The controller's own test for a command
 * container is the presence of BUILDKITE_COMMAND in its env (model.IsCommandContainer), whatever its
 * name; checkout and agent are fixed names. Sidecars are native sidecars (initContainers with
 * restartPolicy Always) or, before Kubernetes 1.29, any other regular container.
 */
export function roleOf(list: PlacedContainer['list'], container: Container): ContainerRole {
  if (list === 'initContainers') return container.restartPolicy === 'Always' ? 'sidecar' : 'init';
  if (hasCommandVariable(container.env)) return 'command';
  if (container.name === 'checkout') return 'checkout';
  if (container.name === 'agent') return 'agent';
  return 'sidecar';
}

function hasCommandVariable(env: Container['env']): boolean {
  if (!env) return false;
  for (let index = 0; index < env.length; index += 1) {
    const variable = env[index] as unknown;
    if (typeof variable === 'object' && variable !== null && (variable as { name?: unknown }).name === 'BUILDKITE_COMMAND') return true;
  }
  return false;
}

const CONTAINER_LISTS = ['initContainers', 'containers'] as const;

/**
 * Containers selected by a list of role names and plain container names, init containers first.
 * One pass that places only the ones it keeps: this runs for every Pod, over all its containers.
 */
export function selectContainers(spec: PodSpec, targets: readonly string[]): PlacedContainer[] {
  const selected: PlacedContainer[] = [];
  for (const list of CONTAINER_LISTS) {
    const containers = spec[list];
    if (!containers) continue;
    for (let index = 0; index < containers.length; index += 1) {
      const container = containers[index] as Container;
      if (targets.includes(container.name) || targets.includes(roleOf(list, container))) selected.push({ list, index, container });
    }
  }
  return selected;
}
