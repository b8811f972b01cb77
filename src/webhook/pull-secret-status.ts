// Owns the Namespace annotation through which the pull-Secret refresher reports, for people
// (`kubectl get ns -o yaml`) and for the webhook: its JSON shape, writing and reading it, and the
// webhook's judgement of it for one admission ("this Pod is about to get an expired, failing or
// unmanaged pull Secret"). Never a token: only names, hosts, times and an error message. Pure: the
// time to judge by is an argument.

export type PullSecretState = 'ready' | 'failing' | 'unmanaged';

export interface PullSecretStatus {
  /** The Secret's name in the namespace. */
  secret: string;
  /** The registry hosts the Secret holds (or should hold) credentials for. */
  registries: string[];
  state: PullSecretState;
  /** When the earliest token in the Secret expires (ISO 8601). */
  expiresAt?: string;
  /** When the refresher last wrote fresh tokens into the Secret. */
  refreshedAt?: string;
  /** Why the last attempt failed (state failing), or why the Secret is left alone (unmanaged). */
  error?: string;
}

/** Annotation keys under the config's prefix. */
export function annotationKeys(prefix: string): { pullSecretStatus: string; ecrRegistries: string } {
  return { pullSecretStatus: `${prefix}/pull-secret-status`, ecrRegistries: `${prefix}/ecr-registries` };
}

/** The annotation value: JSON with a fixed key order, so an unchanged status is an unchanged string. */
export function formatPullSecretStatus(status: PullSecretStatus): string {
  const ordered: PullSecretStatus = { secret: status.secret, registries: [...status.registries], state: status.state };
  if (status.expiresAt !== undefined) ordered.expiresAt = status.expiresAt;
  if (status.refreshedAt !== undefined) ordered.refreshedAt = status.refreshedAt;
  if (status.error !== undefined) ordered.error = status.error;
  return JSON.stringify(ordered);
}

const STATES: readonly string[] = ['ready', 'failing', 'unmanaged'];

/** The status in an annotation value; undefined when it is missing or not one (hand-edited, say). */
export function parsePullSecretStatus(text: string | undefined): PullSecretStatus | undefined {
  if (text === undefined) return undefined;
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch {
    return undefined;
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return undefined;
  const record = value as Record<string, unknown>;
  const { secret, registries, state, expiresAt, refreshedAt, error } = record;
  if (typeof secret !== 'string' || typeof state !== 'string' || !STATES.includes(state)) return undefined;
  if (!Array.isArray(registries) || !registries.every((host) => typeof host === 'string')) return undefined;
  const status: PullSecretStatus = { secret, registries: registries, state: state as PullSecretState };
  if (typeof expiresAt === 'string') status.expiresAt = expiresAt;
  if (typeof refreshedAt === 'string') status.refreshedAt = refreshedAt;
  if (typeof error === 'string') status.error = error;
  return status;
}

export type PullSecretProblem = 'expired' | 'failing' | 'unmanaged';

export interface PullSecretAssessment {
  problem: PullSecretProblem;
  /** One short line for the admission warning (formatWarning adds the prefix and the length cap). */
  warning: string;
}

/**
 * What is wrong with the pull Secret a Pod is about to get, by the refresher's report; undefined when
 * nothing is (or nothing is reported: no refresher, or a report about another Secret name).
 * Expired wins over failing: it is the one that stops image pulls.
 */
export function assessPullSecret(annotation: string | undefined, secret: string, now: Date): PullSecretAssessment | undefined {
  const status = parsePullSecretStatus(annotation);
  if (status === undefined || status.secret !== secret) return undefined;
  if (status.state === 'unmanaged') {
    return { problem: 'unmanaged', warning: `pull Secret ${secret} is not managed by the refresher; it may be stale` };
  }
  const expiresAt = status.expiresAt === undefined ? undefined : Date.parse(status.expiresAt);
  if (expiresAt !== undefined && !Number.isNaN(expiresAt) && expiresAt <= now.getTime()) {
    return { problem: 'expired', warning: `pull Secret ${secret} expired at ${status.expiresAt}; private image pulls will fail` };
  }
  if (status.state === 'failing') {
    const until = status.expiresAt ? `; valid until ${status.expiresAt}` : '';
    return { problem: 'failing', warning: `pull Secret ${secret}: refresh failing (see namespace annotation)${until}` };
  }
  return undefined;
}
