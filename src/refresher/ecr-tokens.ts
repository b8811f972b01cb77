// Owns the AWS side of the refresher: ECR authorization tokens, one GetAuthorizationToken per
// region, partition, FIPS choice and role, shared by every registry and namespace it covers and kept
// until `refreshBefore` ahead of its expiry. Credentials come from the SDK's default chain (static
// keys, IRSA's web identity token file, EKS Pod Identity); a registry with a roleArn first assumes
// that role through STS (fromTemporaryCredentials over the same chain). The SDK itself honours
// AWS_ENDPOINT_URL_ECR / _STS / AWS_ENDPOINT_URL and retries throttling with backoff, up to
// `maxAttempts`. A group whose call failed is not asked again before its own backoff (capped
// exponential with jitter) has passed: every namespace it covers gets the remembered error meanwhile,
// so a throttled region sees one caller, not one per namespace.
import { ECRClient, GetAuthorizationTokenCommand } from '@aws-sdk/client-ecr';
import { fromTemporaryCredentials } from '@aws-sdk/credential-providers';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Logger } from '../log.js';
import type { EcrRegistry, Partition } from '../webhook/ecr-registry.js';
import { tokenExpiry } from './docker-config.js';

/** What one token is good for: every registry in this region and partition, as this principal. */
export interface TokenGroup {
  key: string;
  region: string;
  partition: Partition;
  fips: boolean;
  roleArn: string | undefined;
}

export function tokenGroupOf(registry: EcrRegistry, roleArn: string | undefined): TokenGroup {
  const key = [registry.partition, registry.region, registry.fips ? 'fips' : '', roleArn ?? ''].join('|');
  return { key, region: registry.region, partition: registry.partition, fips: registry.fips, roleArn };
}

export interface EcrToken {
  /** The registry password (a credential: never log it). */
  password: string;
  expiresAt: Date;
  /** When this token should be replaced: refreshBefore ahead of expiry. */
  refreshAt: Date;
}

export type AwsCallResult = 'success' | 'throttled' | 'error';

export interface EcrTokensOptions {
  log: Logger;
  refreshBeforeMs: number;
  /** Milliseconds since the epoch; injectable for tests. */
  now?: () => number;
  /** The SDK's attempts per call, throttling retries included (default 3). */
  maxAttempts?: number;
  /** Called after every AWS call (metrics). */
  onCall?: (operation: 'GetAuthorizationToken', result: AwsCallResult, seconds: number) => void;
  /** How long a failed group waits before AWS is asked again: first delay and cap (1 s, 5 min). */
  failureBackoffInitialMs?: number;
  failureBackoffMaxMs?: number;
}

/** A failed token request, with what the reconciler needs to say and to decide on. */
export class EcrTokenError extends Error {
  override name = 'EcrTokenError';
  constructor(
    message: string,
    readonly code: string,
    readonly throttled: boolean,
  ) {
    super(message);
  }
}

// A token is reused for at least this long, even if AWS answered with one that expires sooner than
// refreshBefore: a short-lived token must not turn into a call per reconcile.
const MIN_TOKEN_REUSE_MS = 60_000;
const SESSION_NAME = 'buildkite-ecr-injector-refresher';

export class EcrTokens {
  readonly #options: EcrTokensOptions;
  readonly #clients = new Map<string, ECRClient>();
  readonly #tokens = new Map<string, EcrToken>();
  readonly #inflight = new Map<string, Promise<EcrToken>>();
  readonly #failed = new Map<string, { error: EcrTokenError; retryAt: number; backoff: IBackoff<unknown> }>();
  readonly #backoffPolicy: ExponentialBackoff<unknown>;

  constructor(options: EcrTokensOptions) {
    this.#options = options;
    this.#backoffPolicy = new ExponentialBackoff({ initialDelay: options.failureBackoffInitialMs ?? 1_000, maxDelay: options.failureBackoffMaxMs ?? 300_000 });
  }

  /** A token for the group: the cached one until its refreshAt, else one call (shared by concurrent callers). */
  token(group: TokenGroup): Promise<EcrToken> {
    const now = this.#now();
    const cached = this.#tokens.get(group.key);
    if (cached && cached.refreshAt.getTime() > now) return Promise.resolve(cached);
    const failed = this.#failed.get(group.key);
    if (failed && failed.retryAt > now) return Promise.reject(failed.error);
    let pending = this.#inflight.get(group.key);
    if (!pending) {
      pending = this.#fetch(group).finally(() => this.#inflight.delete(group.key));
      this.#inflight.set(group.key, pending);
    }
    return pending;
  }

  close(): void {
    for (const client of this.#clients.values()) client.destroy();
    this.#clients.clear();
  }

  #now(): number {
    return this.#options.now?.() ?? Date.now();
  }

  #client(group: TokenGroup): ECRClient {
    let client = this.#clients.get(group.key);
    if (!client) {
      const maxAttempts = this.#options.maxAttempts ?? 3;
      client = new ECRClient({
        region: group.region,
        useFipsEndpoint: group.fips,
        maxAttempts,
        ...(group.roleArn
          ? {
              credentials: fromTemporaryCredentials({
                params: { RoleArn: group.roleArn, RoleSessionName: SESSION_NAME },
                // STS in the registry's own region (and partition): regional endpoints, no global one.
                clientConfig: { region: group.region, useFipsEndpoint: group.fips, maxAttempts },
              }),
            }
          : {}),
      });
      this.#clients.set(group.key, client);
    }
    return client;
  }

  async #fetch(group: TokenGroup): Promise<EcrToken> {
    const { log, onCall } = this.#options;
    const started = process.hrtime.bigint();
    const seconds = () => Number(process.hrtime.bigint() - started) / 1e9;
    let answer;
    try {
      answer = await this.#client(group).send(new GetAuthorizationTokenCommand({}));
    } catch (error) {
      const failure = describeAwsError(error);
      onCall?.('GetAuthorizationToken', failure.throttled ? 'throttled' : 'error', seconds());
      const backoff = (this.#failed.get(group.key)?.backoff ?? this.#backoffPolicy).next(undefined);
      this.#failed.set(group.key, { error: failure, retryAt: this.#now() + backoff.duration, backoff });
      log.warn({ region: group.region, roleArn: group.roleArn, code: failure.code, err: failure.message }, 'ECR GetAuthorizationToken failed');
      throw failure;
    }
    onCall?.('GetAuthorizationToken', 'success', seconds());
    const data = answer.authorizationData?.[0];
    const decoded = data?.authorizationToken ? Buffer.from(data.authorizationToken, 'base64').toString('utf8') : '';
    if (!decoded.startsWith('AWS:')) {
      throw new EcrTokenError(`ECR in ${group.region} answered without a usable authorization token`, 'InvalidResponse', false);
    }
    const password = decoded.slice('AWS:'.length);
    const expiresAt = data?.expiresAt ?? tokenExpiry(password);
    if (expiresAt === undefined) throw new EcrTokenError(`ECR in ${group.region} answered a token without an expiry`, 'InvalidResponse', false);
    const now = this.#now();
    const refreshAt = new Date(Math.min(expiresAt.getTime(), Math.max(expiresAt.getTime() - this.#options.refreshBeforeMs, now + MIN_TOKEN_REUSE_MS)));
    const token: EcrToken = { password, expiresAt, refreshAt };
    this.#tokens.set(group.key, token);
    this.#failed.delete(group.key);
    log.info({ region: group.region, roleArn: group.roleArn, expiresAt: expiresAt.toISOString() }, 'ECR token obtained');
    return token;
  }
}

/** An SDK error as code + message (never the request or its credentials). */
function describeAwsError(error: unknown): EcrTokenError {
  const failure = error as { name?: string; message?: string; $retryable?: { throttling?: boolean }; $metadata?: { httpStatusCode?: number } };
  const code = failure.name ?? 'Error';
  const throttled = failure.$retryable?.throttling === true || /Throttl|TooManyRequests|RequestLimitExceeded/.test(code);
  const status = failure.$metadata?.httpStatusCode;
  const message = `${code}${status ? ` (HTTP ${status})` : ''}: ${failure.message ?? String(error)}`;
  return new EcrTokenError(message, code, throttled);
}
