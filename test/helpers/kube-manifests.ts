// Test helpers for manifests/: render a kustomization with `kubectl kustomize`, validate objects
// against the Kubernetes and cert-manager schemas (kubernetes-models), find fields those schemas do
// not define (@kubernetes/client-node's type maps), evaluate label selectors, and check a Pod
// template against the restricted Pod Security Standard.
import * as k8s from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { promisify } from 'node:util';
import { parseAllDocuments } from 'yaml';
import {
  MutatingWebhookConfiguration,
  ValidatingAdmissionPolicy,
  ValidatingAdmissionPolicyBinding,
} from 'kubernetes-models/admissionregistration.k8s.io/v1';
import { Deployment } from 'kubernetes-models/apps/v1';
import { CronJob, Job } from 'kubernetes-models/batch/v1';
import { Lease } from 'kubernetes-models/coordination.k8s.io/v1';
import { NetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import { PodDisruptionBudget } from 'kubernetes-models/policy/v1';
import { ClusterRole, ClusterRoleBinding, Role, RoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import { ConfigMap, Namespace, Secret, Service, ServiceAccount } from 'kubernetes-models/v1';
import type { IPodSpec } from 'kubernetes-models/v1';
import { Certificate, Issuer } from '@kubernetes-models/cert-manager/cert-manager.io/v1';

const run = promisify(execFile);

/** A rendered object: only the type meta and name are trusted before validation. */
export interface KubeObject {
  apiVersion: string;
  kind: string;
  metadata: { name: string; namespace?: string; labels?: Record<string, string>; annotations?: Record<string, string> };
  [field: string]: unknown;
}

/** `kubectl kustomize DIR` parsed into objects. Fails with a clear message when kubectl is missing. */
export async function renderKustomization(dir: string): Promise<KubeObject[]> {
  let stdout: string;
  try {
    ({ stdout } = await run('kubectl', ['kustomize', dir], { maxBuffer: 16 * 1024 * 1024 }));
  } catch (error) {
    const err = error as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT') {
      throw new Error('kubectl is not on PATH: the manifest tests render manifests/ with `kubectl kustomize`; install kubectl to run them');
    }
    throw new Error(`kubectl kustomize ${dir} failed: ${err.stderr ?? err.message}`);
  }
  const objects: KubeObject[] = [];
  for (const document of parseAllDocuments(stdout)) {
    if (document.errors.length > 0) throw new Error(`kubectl kustomize ${dir} printed invalid YAML: ${document.errors[0]?.message}`);
    const value: unknown = document.toJS();
    if (value === null || value === undefined) continue;
    if (!isObject(value) || typeof value.apiVersion !== 'string' || typeof value.kind !== 'string' || !isObject(value.metadata) || typeof value.metadata.name !== 'string') {
      throw new Error(`kubectl kustomize ${dir} printed an object without apiVersion, kind or metadata.name`);
    }
    objects.push(value as KubeObject);
  }
  return objects;
}

export function isObject(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

// A model constructor of any kind (a parameter of type never accepts every constructor).
type ModelClass = new (data: never) => { validate(): void };

const MODELS: Record<string, ModelClass> = {};
for (const model of [
  MutatingWebhookConfiguration, Deployment, CronJob, Job, Lease, NetworkPolicy, PodDisruptionBudget,
  ClusterRole, ClusterRoleBinding, Role, RoleBinding, ConfigMap, Namespace, Secret, Service, ServiceAccount,
  Certificate, Issuer, ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
]) {
  MODELS[`${model.apiVersion}/${model.kind}`] = model;
}

/** Schema problems of one object, as "path: message" strings; empty when it is valid. */
export function schemaProblems(object: KubeObject): string[] {
  const Model = MODELS[`${object.apiVersion}/${object.kind}`];
  if (Model === undefined) return [`no schema registered for ${object.apiVersion} ${object.kind} (add its model to test/helpers/kube-manifests.ts)`];
  try {
    new Model(object as never).validate();
    return [];
  } catch (error) {
    const details = (error as { errors?: { instancePath?: string; message?: string }[] }).errors;
    if (!Array.isArray(details)) return [(error as Error).message];
    return details.map((detail) => `${detail.instancePath || '/'}: ${detail.message ?? 'invalid'}`);
  }
}

type AttributeMap = readonly { baseName: string; type: string }[];

// The Kubernetes OpenAPI schemas allow unknown fields (the API server drops them, with a warning at
// best), so a misspelt `readinesProbe` passes schema validation. client-node's generated models
// list every field of every built-in type: walk the object with them.
function attributeMapOf(type: string): AttributeMap | undefined {
  const model = (k8s as unknown as Record<string, unknown>)[type];
  if (typeof model !== 'function') return undefined;
  const map = (model as { attributeTypeMap?: unknown }).attributeTypeMap;
  return Array.isArray(map) ? (map as AttributeMap) : undefined;
}

/** JSON paths of fields that no built-in Kubernetes type defines. Custom resources are skipped. */
export function unknownFields(object: KubeObject): string[] | undefined {
  const group = object.apiVersion.includes('/') ? (object.apiVersion.split('/')[0] ?? '') : '';
  const version = object.apiVersion.split('/').at(-1) ?? '';
  const capitalised = version.charAt(0).toUpperCase() + version.slice(1);
  // client-node names the admission types by group (AdmissionregistrationV1WebhookClientConfig) but
  // the top-level kinds by version (V1MutatingWebhookConfiguration).
  const type = `${capitalised}${object.kind}`;
  // Built-in groups are the core group, dotless ones (apps, batch, policy) and *.k8s.io.
  const builtIn = group === '' || !group.includes('.') || group.endsWith('.k8s.io');
  if (!builtIn) return undefined;
  if (attributeMapOf(type) === undefined) return [`no client-node type ${type}`];
  const found: string[] = [];
  walk(object, type, '', found);
  return found;
}

function walk(value: unknown, type: string, path: string, found: string[]): void {
  if (value === null || value === undefined) return;
  const array = /^Array<(.+)>$/.exec(type);
  if (array?.[1] !== undefined) {
    if (Array.isArray(value)) value.forEach((item, index) => walk(item, array[1]!, `${path}/${index}`, found));
    return;
  }
  const map = /^\{ \[key: string\]: (.+); \}$/.exec(type);
  if (map?.[1] !== undefined) {
    if (isObject(value)) for (const [key, item] of Object.entries(value)) walk(item, map[1], `${path}/${key}`, found);
    return;
  }
  const attributes = attributeMapOf(type);
  if (attributes === undefined || !isObject(value)) return; // a scalar, IntOrString, Quantity, or free-form object
  for (const [key, item] of Object.entries(value)) {
    const attribute = attributes.find((candidate) => candidate.baseName === key);
    if (attribute === undefined) found.push(`${path}/${key}`);
    else walk(item, attribute.type, `${path}/${key}`, found);
  }
}

export interface LabelSelectorRequirement {
  key: string;
  operator: string;
  values?: string[];
}
export interface LabelSelector {
  matchLabels?: Record<string, string>;
  matchExpressions?: LabelSelectorRequirement[];
}

/** Kubernetes label selector semantics (apimachinery labels.Selector). */
export function selectorMatches(selector: LabelSelector | undefined, labels: Readonly<Record<string, string>>): boolean {
  if (selector === undefined) return true;
  for (const [key, value] of Object.entries(selector.matchLabels ?? {})) if (labels[key] !== value) return false;
  for (const { key, operator, values = [] } of selector.matchExpressions ?? []) {
    const value = labels[key];
    const ok =
      operator === 'In' ? value !== undefined && values.includes(value)
      : operator === 'NotIn' ? value === undefined || !values.includes(value)
      : operator === 'Exists' ? value !== undefined
      : operator === 'DoesNotExist' ? value === undefined
      : false;
    if (!ok) return false;
  }
  return true;
}

// Pod Security Standards, "restricted" profile (kubernetes.io/docs/concepts/security/pod-security-standards).
const RESTRICTED_VOLUME_TYPES = new Set(['configMap', 'csi', 'downwardAPI', 'emptyDir', 'ephemeral', 'persistentVolumeClaim', 'projected', 'secret']);
const SECCOMP_ALLOWED = new Set(['RuntimeDefault', 'Localhost']);

/** Violations of the restricted Pod Security Standard by a Pod spec; empty when it complies. */
export function restrictedViolations(spec: IPodSpec): string[] {
  const problems: string[] = [];
  const pod = spec.securityContext ?? {};
  if (spec.hostNetwork === true || spec.hostPID === true || spec.hostIPC === true) problems.push('host namespaces are shared');
  for (const volume of spec.volumes ?? []) {
    const types = Object.keys(volume).filter((key) => key !== 'name');
    for (const type of types) if (!RESTRICTED_VOLUME_TYPES.has(type)) problems.push(`volume ${volume.name} is of type ${type}`);
  }
  if (pod.runAsUser === 0) problems.push('pod runAsUser is 0');
  if (pod.seccompProfile !== undefined && !SECCOMP_ALLOWED.has(pod.seccompProfile.type)) problems.push(`pod seccompProfile is ${pod.seccompProfile.type}`);
  const containers = [...(spec.initContainers ?? []), ...spec.containers];
  for (const container of containers) {
    const where = `container ${container.name}`;
    const sc = container.securityContext ?? {};
    if (sc.privileged === true) problems.push(`${where} is privileged`);
    if (sc.allowPrivilegeEscalation !== false) problems.push(`${where} does not set allowPrivilegeEscalation: false`);
    if (sc.runAsNonRoot === false || (sc.runAsNonRoot !== true && pod.runAsNonRoot !== true)) problems.push(`${where} may run as root (runAsNonRoot)`);
    if (sc.runAsUser === 0) problems.push(`${where} runAsUser is 0`);
    const seccomp = sc.seccompProfile?.type ?? pod.seccompProfile?.type;
    if (seccomp === undefined || !SECCOMP_ALLOWED.has(seccomp)) problems.push(`${where} has no RuntimeDefault/Localhost seccomp profile`);
    if (!(sc.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where} does not drop ALL capabilities`);
    for (const added of sc.capabilities?.add ?? []) if (added !== 'NET_BIND_SERVICE') problems.push(`${where} adds capability ${added}`);
    for (const port of container.ports ?? []) if (port.hostPort !== undefined && port.hostPort !== 0) problems.push(`${where} uses hostPort ${port.hostPort}`);
    if (sc.procMount !== undefined && sc.procMount !== 'Default') problems.push(`${where} procMount is ${sc.procMount}`);
  }
  return problems;
}
