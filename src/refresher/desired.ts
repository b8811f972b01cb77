// Owns "which pull Secret should this namespace have, for which registries": the same opt-in label,
// excluded namespaces and pull-secret label (else the config default) as the webhook, and the
// registries from the namespace annotation `<prefix>/ecr-registries: host1,host2` (an annotation:
// a label value cannot hold a host list) or else the config's. A host the config lists keeps its
// roleArn. Pure.
import type { Config } from '../webhook/config.js';
import { isKubernetesName } from '../webhook/config.js';
import { parseRegistryHost, type EcrRegistry } from '../webhook/ecr-registry.js';
import type { Labels } from '../webhook/pod.js';
import { labelKeys } from '../webhook/policy.js';
import { annotationKeys } from '../webhook/pull-secret-status.js';

export interface DesiredRegistry {
  registry: EcrRegistry;
  roleArn: string | undefined;
}

export type DesiredPullSecret =
  /** No pull Secret here: any managed one is deleted. */
  | { kind: 'none'; reason: string }
  /** This Secret, with these registries. */
  | { kind: 'secret'; secret: string; registries: DesiredRegistry[] }
  /** A Secret is asked for but cannot be made as asked: report it, change nothing. */
  | { kind: 'invalid'; secret: string; registries: string[]; error: string };

export function desiredPullSecret(
  namespace: string,
  labels: Labels | undefined,
  annotations: Readonly<Record<string, string>> | undefined,
  config: Config,
): DesiredPullSecret {
  const keys = labelKeys(config.labelPrefix);
  if (labels === undefined) return { kind: 'none', reason: 'namespace is gone' };
  if (config.excludedNamespaces.includes(namespace)) return { kind: 'none', reason: 'namespace is excluded by config' };
  if (labels[keys.inject] !== 'enabled') return { kind: 'none', reason: `namespace has no ${keys.inject}=enabled label` };
  const label = labels[keys.pullSecret];
  const secret = label === undefined ? config.defaults.pullSecret : label === 'none' ? null : label;
  if (secret === null) return { kind: 'none', reason: 'namespace asks for no pull Secret' };
  if (!isKubernetesName(secret)) {
    return { kind: 'invalid', secret, registries: [], error: `label ${keys.pullSecret}=${secret} is not a valid Secret name` };
  }

  const configured = new Map(config.pullSecrets.registries.map((entry) => [entry.host, entry.roleArn]));
  const annotationKey = annotationKeys(config.labelPrefix).ecrRegistries;
  const annotation = annotations?.[annotationKey];
  const hosts = annotation === undefined ? [...configured.keys()] : [...new Set(annotation.split(',').map((host) => host.trim().toLowerCase()).filter(Boolean))];
  if (hosts.length === 0) {
    const error = annotation === undefined ? 'no registries: set pullSecrets.registries in the config, or the namespace annotation ' + annotationKey : `annotation ${annotationKey} names no registry`;
    return { kind: 'invalid', secret, registries: [], error };
  }
  const registries: DesiredRegistry[] = [];
  for (const host of hosts) {
    const registry = parseRegistryHost(host);
    if (registry === undefined) {
      return { kind: 'invalid', secret, registries: hosts, error: `annotation ${annotationKey}: ${host} is not an ECR registry host` };
    }
    registries.push({ registry, roleArn: configured.get(host) });
  }
  return { kind: 'secret', secret, registries };
}
