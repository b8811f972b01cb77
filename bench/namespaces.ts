// Owns the benchmark's namespaces: the opted-in one the fixtures are created in (all three
// injections) and, for the memory measurement, a large cluster's worth of others.
import type { Labels } from '../src/webhook/pod.js';

export function optedInLabels(namespace: string): Labels {
  return {
    'kubernetes.io/metadata.name': namespace,
    'buildkite-ecr-injector/inject': 'enabled',
    'buildkite-ecr-injector/service-account': 'buildkite-agent',
    'buildkite-ecr-injector/aws-secret': 'aws-credentials',
    'buildkite-ecr-injector/pull-secret': 'ecr-credentials',
  };
}

/** `count` namespaces: the opted-in one, two system ones, then teams (one in ten opted in). */
export function generateNamespaces(optedIn: string, count: number): Record<string, Labels> {
  const namespaces: Record<string, Labels> = {
    [optedIn]: optedInLabels(optedIn),
    default: { 'kubernetes.io/metadata.name': 'default' },
    'kube-system': { 'kubernetes.io/metadata.name': 'kube-system' },
  };
  for (let i = 0, size = Object.keys(namespaces).length; size < count; i += 1, size += 1) {
    const name = `team-${String(i).padStart(5, '0')}`;
    namespaces[name] =
      i % 10 === 0
        ? { 'kubernetes.io/metadata.name': name, 'buildkite-ecr-injector/inject': 'enabled', 'buildkite-ecr-injector/service-account': `${name}-ci` }
        : { 'kubernetes.io/metadata.name': name, 'team.example.com/owner': `owner-${i % 97}` };
  }
  return namespaces;
}
