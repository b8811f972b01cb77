// Owns the webhook's configuration: its schema, its defaults, and the one place a document is
// validated. The result is frozen; a bad document is refused with a message naming the field.
// Reading the file is files/config-file.ts's job: the core never touches the disk.
import { z } from 'zod';

/** Container roles that `targetContainers` may name; anything else is taken as a container name. */
export const CONTAINER_ROLES = ['command', 'checkout', 'agent', 'sidecar', 'init'] as const;
export type ContainerRole = (typeof CONTAINER_ROLES)[number];

/** Namespaces that are never mutated, whatever their labels say. The webhook's own is added at start. */
export const DEFAULT_EXCLUDED_NAMESPACES = ['kube-system', 'kube-public', 'kube-node-lease'];

// RFC 1123 subdomain: what Kubernetes accepts as a ServiceAccount or Secret name.
const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;
// A label key prefix is a DNS subdomain too (without the "/name" part).
const LABEL_PREFIX = KUBERNETES_NAME;
// A full label key: optional "prefix/" and a name of at most 63 characters.
const LABEL_KEY = /^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/;

export function isKubernetesName(value: string): boolean {
  return value.length <= 253 && KUBERNETES_NAME.test(value);
}

const kubernetesName = z
  .string()
  .refine(isKubernetesName, 'must be a lowercase RFC 1123 name such as "aws-credentials"');

/** A default may be a name, or null / "none" for "do not inject this unless a namespace asks". */
const optionalName = z
  .union([kubernetesName, z.literal('none'), z.null()])
  .transform((v) => (v === 'none' ? null : v));

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
