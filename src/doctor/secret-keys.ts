// Owns what doctor may read of a Secret's contents for AWS keys: the key names, never a value.
import type { V1Secret } from '@kubernetes/client-node';

/** The keys an AWS-credentials Secret needs for the SDKs' environment provider. */
export const AWS_KEYS: readonly string[] = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY'];

/** The key names a Secret holds (data and stringData); never a value. */
export function keyNames(secret: V1Secret): string[] {
  return [...Object.keys(secret.data ?? {}), ...Object.keys(secret.stringData ?? {})];
}

/** The AWS keys a Secret lacks, by name. */
export function missingAwsKeys(secret: V1Secret): string[] {
  const names = keyNames(secret);
  return AWS_KEYS.filter((key) => !names.includes(key));
}
