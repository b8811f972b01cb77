// Owns what counts as a Kubernetes object name here, shared by the config schema and its rules.
import { z } from 'zod';

// RFC 1123 subdomain: what Kubernetes accepts as a ServiceAccount or Secret name.
export const KUBERNETES_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/;

export function isKubernetesName(value: string): boolean {
  return value.length <= 253 && KUBERNETES_NAME.test(value);
}

export const kubernetesName = z
  .string()
  .refine(isKubernetesName, 'must be a lowercase RFC 1123 name such as "aws-credentials"');

/** A name, or null / "none" for "do not inject this". */
export const optionalName = z
  .union([kubernetesName, z.literal('none'), z.null()])
  .transform((v) => (v === 'none' ? null : v));
