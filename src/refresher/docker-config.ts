// Owns the pull Secret's content: the `.dockerconfigjson` document (one `auths` entry per registry,
// `username: AWS`, the token as `password` and as `auth`), reading it back, and reading a token's
// expiry from the token itself (an ECR password is base64 JSON carrying `expiration`). Pure; every
// value here is a credential, so nothing here logs or throws with one in the message.

export const DOCKER_CONFIG_KEY = '.dockerconfigjson';
export const DOCKER_CONFIG_TYPE = 'kubernetes.io/dockerconfigjson';

export interface RegistryAuth {
  username: string;
  password: string;
  auth: string;
}

/** The document for these registry -> password pairs, hosts in the order given. */
export function dockerConfigJson(passwords: ReadonlyMap<string, string>): string {
  const auths: Record<string, RegistryAuth> = {};
  for (const [host, password] of passwords) {
    auths[host] = { username: 'AWS', password, auth: Buffer.from(`AWS:${password}`).toString('base64') };
  }
  return JSON.stringify({ auths });
}

/** host -> password from a Secret's `.dockerconfigjson` (base64, as in `data`); empty when unreadable. */
export function readDockerConfig(base64: string | undefined): Map<string, string> {
  const passwords = new Map<string, string>();
  if (base64 === undefined) return passwords;
  let document: unknown;
  try {
    document = JSON.parse(Buffer.from(base64, 'base64').toString('utf8'));
  } catch {
    return passwords;
  }
  const auths = (document as { auths?: unknown } | null)?.auths;
  if (typeof auths !== 'object' || auths === null) return passwords;
  for (const [host, entry] of Object.entries(auths as Record<string, unknown>)) {
    const password = (entry as { password?: unknown } | null)?.password;
    if (typeof password === 'string') passwords.set(host, password);
  }
  return passwords;
}

/** When an ECR password expires, from its own payload; undefined when it does not say. */
export function tokenExpiry(password: string): Date | undefined {
  try {
    const payload = JSON.parse(Buffer.from(password, 'base64').toString('utf8')) as { expiration?: unknown };
    const seconds = Number(payload?.expiration);
    return Number.isFinite(seconds) && seconds > 0 ? new Date(seconds * 1000) : undefined;
  } catch {
    return undefined;
  }
}
