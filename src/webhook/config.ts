// Owns the webhook's configuration: its schema, its defaults, and the one place a document is
// validated. The result is frozen; a bad document is refused with a message naming the field.
// Reading the file is files/config-file.ts's job: the core never touches the disk.
import parseDuration from 'parse-duration';
import { z } from 'zod';
import { parseRegistryHost, REGISTRY_HOST_EXAMPLE, roleArnPartition } from './ecr-registry.js';
import { isKubernetesName, KUBERNETES_NAME, kubernetesName, optionalName } from './names.js';
import { rulesSchema } from './rules.js';

export { isKubernetesName };

/** Container roles that `targetContainers` may name; anything else is taken as a container name. */
export const CONTAINER_ROLES = ['command', 'checkout', 'agent', 'sidecar', 'init'] as const;
export type ContainerRole = (typeof CONTAINER_ROLES)[number];

/** Namespaces that are never mutated, whatever their labels say. The webhook's own is added at start. */
export const DEFAULT_EXCLUDED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];

// A label key prefix is a DNS subdomain too (without the "/name" part).
const LABEL_PREFIX = KUBERNETES_NAME;
// A full label key: optional "prefix/" and a name of at most 63 characters.
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

/** ECR authorization tokens live 12 hours; a refresh must come before that. */
export const ECR_TOKEN_LIFETIME_MS = 12 * 3_600_000;

// A Go-style duration ("6h", "90m", "1h30m"), as Kubernetes and cert-manager write them.
const DURATION = /^(\d+(\.\d+)?(ms|s|m|h))+$/;
const duration = z
  .string()
  .regex(DURATION, 'must be a duration such as "6h", "90m" or "1h30m"')
  .transform((text) => parseDuration(text) ?? Number.NaN);

const registry = z
  .object({
    host: z.string().refine((host) => parseRegistryHost(host) !== undefined, `must be an ECR registry host such as ${REGISTRY_HOST_EXAMPLE} (.amazonaws.com.cn in China, dkr.ecr-fips for FIPS)`),
    roleArn: z.string().refine((arn) => roleArnPartition(arn) !== undefined, 'must be an IAM role ARN such as arn:aws:iam::123456789012:role/ecr-pull').optional(),
  })
  .strict()
  .transform((value) => ({ ...value, host: value.host.trim().toLowerCase() }))
  .refine((value) => value.roleArn === undefined || roleArnPartition(value.roleArn) === parseRegistryHost(value.host)?.partition, {
    message: 'roleArn must be in the same AWS partition as the registry (arn:aws-cn: for .amazonaws.com.cn hosts)',
    path: ['roleArn'],
  });

/** What the pull-Secret refresher (`refresh`) keeps in every opted-in namespace. */
const pullSecretsSchema = z
  .object({
    registries: z
      .array(registry)
      .default([])
      .refine((list) => new Set(list.map((r) => r.host)).size === list.length, 'lists a host twice'),
    refreshBefore: duration
      .prefault('6h')
      .refine((ms) => ms > 0 && ms < ECR_TOKEN_LIFETIME_MS, 'must be more than 0 and less than 12h (an ECR token lives 12 hours)'),
  })
  .strict()
  .transform(({ registries, refreshBefore }) => ({ registries, refreshBeforeMs: refreshBefore }));

const configSchema = z
  .object({
    labelPrefix: z
      .string()
      .max(253)
      .regex(LABEL_PREFIX, 'must be a DNS subdomain such as "buildkite-ecr-injector"')
      .default('buildkite-ecr-injector'),
    jobPodLabel: z
      .string()
      .regex(LABEL_KEY, 'must be a label key such as "buildkite.com/job-uuid"')
      .default('buildkite.com/job-uuid'),
    excludedNamespaces: z.array(kubernetesName).default(DEFAULT_EXCLUDED_NAMESPACES),
    defaults: z
      .object({
        serviceAccount: optionalName.default(null),
        awsSecret: optionalName.default(null),
        pullSecret: optionalName.default(null),
      })
      .strict()
      .default({ serviceAccount: null, awsSecret: null, pullSecret: null }),
    serviceAccountPolicy: z
      .enum(['ifDefault', 'always', 'never'])
      .default('ifDefault'),
    targetContainers: z
      .array(z.string().min(1))
      .min(1, 'must name at least one role or container')
      .default(['command', 'checkout']),
    maxRequestBytes: z
      .number()
      .int()
      .min(64 * 1024)
      .max(64 * 1024 * 1024)
      .default(8 * 1024 * 1024),
    pullSecrets: pullSecretsSchema.prefault({}),
    rules: rulesSchema.default([]),
  })
  .strict();

export type Config = Readonly<z.infer<typeof configSchema>>;

export class ConfigError extends Error {
  override name = 'ConfigError';
}

/** Validate a parsed document (from YAML or an object) into a frozen Config. */
export function parseConfig(document: unknown, source = 'config'): Config {
  const result = configSchema.safeParse(document ?? {});
  if (!result.success) {
    const problems = result.error.issues.map((issue) => {
      const field = issue.path.length > 0 ? issue.path.join('.') : '(top level)';
      return `${field}: ${issue.message}`;
    });
    throw new ConfigError(`invalid ${source}:\n  ${problems.join('\n  ')}`);
  }
  return deepFreeze(result.data);
}

/** The config with one more excluded namespace (the webhook's own, known only at start). */
export function withExcludedNamespace(config: Config, namespace: string | undefined): Config {
  if (namespace === undefined || config.excludedNamespaces.includes(namespace)) return config;
  return deepFreeze({ ...config, excludedNamespaces: [...config.excludedNamespaces, namespace] });
}

function deepFreeze<T>(value: T): T {
  if (value !== null && typeof value === 'object' && !Object.isFrozen(value)) {
    Object.freeze(value);
    for (const child of Object.values(value)) deepFreeze(child);
  }
  return value;
}
