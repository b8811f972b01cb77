// Owns the refresher's control loop, in client-go's controller shape: watches on Namespaces (labels,
// the registries annotation, the status annotation) and on the Secrets it manages (label selector)
// feed a queue keyed by namespace; one reconcile per namespace at a time (a few namespaces at once);
// a failed reconcile is retried with capped exponential backoff and jitter (cockatiel), without
// holding up any other namespace; a successful one sets a timer for refreshBefore ahead of the
// earliest token expiry; every namespace is looked at again every resync period. One reconcile makes
// the namespace's pull Secret what it should be (desired.ts), deletes the managed ones it should not
// have, leaves a Secret it does not manage alone, and writes the status annotation when it changed.
import { CoreV1Api, makeInformer, type Informer, type KubeConfig, type ObjectCache, type V1Secret } from '@kubernetes/client-node';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import { isApiStatus } from '../kube/api-status.js';
import { InformerNamespaceSource, type InformerSourceOptions } from '../kube/namespace-informer.js';
import type { Logger } from '../log.js';
import type { Config } from '../webhook/config.js';
import { annotationKeys, formatPullSecretStatus, parsePullSecretStatus, type PullSecretStatus } from '../webhook/pull-secret-status.js';
import { systemClock, type Clock } from './clock.js';
import { desiredPullSecret, type DesiredRegistry } from './desired.js';
import { DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE, dockerConfigJson, readDockerConfig, tokenExpiry } from './docker-config.js';
import { EcrTokenError, tokenGroupOf, type EcrToken, type EcrTokens } from './ecr-tokens.js';
import { MANAGED_SELECTOR, PullSecretClient, isAsWritten, isManaged } from './pull-secrets.js';
import type { NamespaceReport, RefresherMetrics, RefreshResult } from './refresher-metrics.js';

export interface ReconcilerOptions {
  kubeConfig: KubeConfig;
  config: Config;
  log: Logger;
  tokens: EcrTokens;
  metrics: RefresherMetrics;
  /** Writes happen only while this says so (the Lease); checked before every reconcile. */
  isLeader: () => boolean;
  clock?: Clock;
  /** Per-namespace retry backoff: first delay and cap (defaults 1 s and 5 min). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Every namespace is reconciled again this often, events or not (default 5 min). */
  resyncIntervalMs?: number;
  /** Namespaces reconciled at once (default 4). */
  workers?: number;
  informer?: Omit<InformerSourceOptions, 'kubeConfig' | 'log' | 'keepAnnotations' | 'onChange'>;
}

/** What a reconcile leads to: a result to count, and when to look again (else: on events and resync). */
interface Outcome {
  result: RefreshResult | undefined;
  refreshAt?: number;
  /** A failure after the status was written: retried with backoff. */
  retry?: Error;
}

export class Reconciler {
  readonly #options: ReconcilerOptions;
  readonly #log: Logger;
  readonly #clock: Clock;
  readonly #client: PullSecretClient;
  readonly #keys: ReturnType<typeof annotationKeys>;
  readonly #namespaces: InformerNamespaceSource;
  readonly #secrets: Informer<V1Secret> & ObjectCache<V1Secret>;
  readonly #backoffPolicy: ExponentialBackoff<unknown>;
  readonly #queue: string[] = [];
  readonly #dirty = new Set<string>();
  readonly #processing = new Set<string>();
  readonly #timers = new Map<string, () => void>();
  readonly #failures = new Map<string, IBackoff<unknown>>();
  readonly #reports = new Map<string, NamespaceReport>();
  /** The status annotation as last written: the watch may not have brought our own write back yet. */
  readonly #written = new Map<string, string>();
  readonly #active = new Set<Promise<void>>();
  #firstPass: Set<string> | undefined;
  #synced = false;
  #closed = false;
  #cancelResync: (() => void) | undefined;
  #syncPoll: NodeJS.Timeout | undefined;
  #secretRestart: NodeJS.Timeout | undefined;
  #secretBackoff: IBackoff<unknown> | undefined;
  #secretsSynced = false;

  private constructor(options: ReconcilerOptions) {
    this.#options = options;
    this.#log = options.log.child({ component: 'refresher' });
    this.#clock = options.clock ?? systemClock;
    const { kubeConfig, config } = options;
    const core = kubeConfig.makeApiClient(CoreV1Api);
    this.#client = new PullSecretClient(core);
    this.#keys = annotationKeys(config.labelPrefix);
    this.#backoffPolicy = new ExponentialBackoff({ initialDelay: options.backoffInitialMs ?? 1_000, maxDelay: options.backoffMaxMs ?? 300_000 });
    this.#namespaces = InformerNamespaceSource.start({
      ...options.informer,
      kubeConfig,
      log: this.#log,
      keepAnnotations: [this.#keys.pullSecretStatus, this.#keys.ecrRegistries],
      onChange: (namespace) => this.enqueue(namespace),
    });
    this.#secrets = makeInformer(kubeConfig, '/api/v1/secrets', () => core.listSecretForAllNamespaces({ labelSelector: MANAGED_SELECTOR }), MANAGED_SELECTOR);
    const onSecret = (secret: V1Secret) => {
      if (secret.metadata?.namespace) this.enqueue(secret.metadata.namespace);
    };
    this.#secrets.on('add', onSecret);
    this.#secrets.on('update', onSecret);
    this.#secrets.on('delete', onSecret);
    this.#secrets.on('error', (error: unknown) => this.#restartSecretWatch(error));
    options.metrics.track(() => this.#reports, () => this.#clock.now());
  }

  /** Start watching; the first full pass begins once both watches have listed. */
  static start(options: ReconcilerOptions): Reconciler {
    const reconciler = new Reconciler(options);
    reconciler.#startSecretWatch();
    reconciler.#syncPoll = setInterval(() => reconciler.#maybeBeginFirstPass(), 25);
    reconciler.#syncPoll.unref();
    return reconciler;
  }

  /** True once every namespace has been reconciled at least once (readiness). */
  isSynced(): boolean {
    return this.#synced;
  }

  /** Queue a namespace; a namespace already queued is not queued twice, one being reconciled is again after. */
  enqueue(namespace: string): void {
    if (this.#closed || this.#dirty.has(namespace)) return;
    this.#dirty.add(namespace);
    if (!this.#processing.has(namespace)) this.#queue.push(namespace);
    this.#pump();
  }

  /** Stop watching and timing, and wait for reconciles in flight. */
  async close(): Promise<void> {
    this.#closed = true;
    clearInterval(this.#syncPoll);
    clearTimeout(this.#secretRestart);
    this.#cancelResync?.();
    for (const cancel of this.#timers.values()) cancel();
    this.#timers.clear();
    this.#queue.length = 0;
    await this.#secrets.stop();
    await this.#namespaces.close();
    await Promise.allSettled([...this.#active]);
  }

  #startSecretWatch(): void {
    this.#secrets.start().then(
      () => {
        this.#secretsSynced = true;
        this.#secretBackoff = undefined;
      },
      (error: unknown) => this.#restartSecretWatch(error),
    );
  }

  #restartSecretWatch(error: unknown): void {
    if (this.#closed) return;
    this.#secretBackoff = (this.#secretBackoff ?? this.#backoffPolicy).next(undefined);
    const delayMs = Math.round(this.#secretBackoff.duration);
    this.#log.warn({ err: describe(error), retryInMs: delayMs }, 'managed Secret watch stopped; restarting');
    clearTimeout(this.#secretRestart);
    this.#secretRestart = setTimeout(() => this.#startSecretWatch(), delayMs);
    this.#secretRestart.unref();
  }

  #maybeBeginFirstPass(): void {
    if (this.#closed || !this.#namespaces.isSynced() || !this.#secretsSynced) return;
    clearInterval(this.#syncPoll);
    const names = this.#namespaces.names();
    this.#firstPass = new Set(names);
    this.#log.info({ namespaces: names.length }, 'watches synced; reconciling every namespace');
    for (const name of names) this.enqueue(name);
    this.#finishFirstPassIfDone();
    this.#scheduleResync();
  }

  #finishFirstPassIfDone(): void {
    if (this.#synced || this.#firstPass?.size !== 0) return;
    this.#synced = true;
    this.#log.info({ namespaces: this.#reports.size }, 'first full pass done');
  }

  #scheduleResync(): void {
    this.#cancelResync = this.#clock.setTimer(this.#options.resyncIntervalMs ?? 300_000, () => {
      if (this.#closed) return;
      for (const name of this.#namespaces.names()) this.enqueue(name);
      this.#scheduleResync();
    });
  }

  #pump(): void {
    const workers = this.#options.workers ?? 4;
    while (!this.#closed && this.#processing.size < workers && this.#queue.length > 0) {
      const namespace = this.#queue.shift()!;
      this.#dirty.delete(namespace);
      this.#processing.add(namespace);
      const run = this.#run(namespace).finally(() => {
        this.#active.delete(run);
        this.#processing.delete(namespace);
        if (this.#dirty.has(namespace)) this.#queue.push(namespace);
        this.#pump();
      });
      this.#active.add(run);
    }
  }

  async #run(namespace: string): Promise<void> {
    if (!this.#options.isLeader()) return;
    this.#timers.get(namespace)?.();
    this.#timers.delete(namespace);
    let outcome: Outcome;
    try {
      outcome = await this.#reconcile(namespace);
    } catch (error) {
      outcome = { result: 'failed', retry: error as Error };
    }
    if (outcome.result) this.#options.metrics.countRefresh(outcome.result);
    if (this.#closed) return;
    if (outcome.retry) {
      const conflict = isApiStatus(outcome.retry, 409);
      const backoff = (this.#failures.get(namespace) ?? this.#backoffPolicy).next(undefined);
      this.#failures.set(namespace, backoff);
      // A conflict means someone else wrote first: look again at once, the watch has the news.
      const delayMs = conflict ? 0 : Math.round(backoff.duration);
      this.#log[conflict ? 'debug' : 'warn']({ namespace, err: describe(outcome.retry), retryInMs: delayMs }, 'pull Secret reconcile failed; retrying');
      this.#setTimer(namespace, delayMs);
    } else {
      this.#failures.delete(namespace);
      if (outcome.refreshAt !== undefined) this.#setTimer(namespace, outcome.refreshAt - this.#clock.now());
    }
    if (this.#firstPass?.delete(namespace)) this.#finishFirstPassIfDone();
  }

  #setTimer(namespace: string, delayMs: number): void {
    this.#timers.get(namespace)?.();
    this.#timers.set(
      namespace,
      this.#clock.setTimer(delayMs, () => {
        this.#timers.delete(namespace);
        this.enqueue(namespace);
      }),
    );
  }

  async #reconcile(namespace: string): Promise<Outcome> {
    const labels = this.#namespaces.get(namespace);
    const annotations = this.#namespaces.annotations(namespace);
    const desired = desiredPullSecret(namespace, labels, annotations, this.#options.config);
    // A namespace that is gone takes its Secrets with it; an invalid ask changes nothing.
    const keep = desired.kind === 'none' ? undefined : desired.secret;
    const removed =
      labels === undefined || desired.kind === 'invalid' ? 0 : await this.#deleteManagedExcept(namespace, keep, desired.kind === 'none' ? desired.reason : `the pull Secret is now ${keep}`);

    const seen = this.#written.get(namespace) ?? annotations?.[this.#keys.pullSecretStatus];
    if (desired.kind === 'none') {
      this.#reports.delete(namespace);
      if (labels !== undefined && (seen !== undefined || annotations?.[this.#keys.pullSecretStatus] !== undefined)) {
        await this.#client.annotateNamespace(namespace, this.#keys.pullSecretStatus, null);
      }
      this.#written.delete(namespace);
      return { result: removed > 0 ? 'removed' : undefined };
    }
    const previous = parsePullSecretStatus(seen);
    if (desired.kind === 'invalid') {
      await this.#report(namespace, { secret: desired.secret, registries: desired.registries, state: 'failing', error: desired.error }, previous);
      return { result: 'failed' };
    }

    const hosts = desired.registries.map((r) => r.registry.host);
    const current = await this.#client.read(namespace, desired.secret);
    if (current && !isManaged(current)) {
      const error = `a Secret named ${desired.secret} exists without the label ${MANAGED_SELECTOR}; it is left alone`;
      await this.#report(namespace, { secret: desired.secret, registries: hosts, state: 'unmanaged', error }, previous);
      return { result: 'unmanaged' };
    }

    const { passwords, expiries, refreshAt, failures } = await this.#collectTokens(desired.registries, current);
    const now = this.#clock.now();
    const errorText = failures.size > 0 ? [...failures].map(([host, message]) => `${host}: ${message}`).join('; ') : undefined;
    const currentExpiry = earliest(current ? [...readDockerConfig(current.data?.[DOCKER_CONFIG_KEY]).values()].map(tokenExpiry) : []);
    if (passwords.size === 0) {
      const status: PullSecretStatus = { secret: desired.secret, registries: hosts, state: 'failing', error: errorText ?? 'no token' };
      if (currentExpiry) status.expiresAt = currentExpiry.toISOString();
      if (previous?.refreshedAt) status.refreshedAt = previous.refreshedAt;
      await this.#report(namespace, status, previous);
      return { result: 'failed', retry: new Error(status.error) };
    }

    const document = dockerConfigJson(passwords);
    let wrote = false;
    if (!current) {
      await this.#client.create(namespace, desired.secret, document);
      wrote = true;
    } else if (current.type !== DOCKER_CONFIG_TYPE) {
      // A Secret's type cannot be changed: replace it whole.
      await this.#client.delete(namespace, desired.secret, current.metadata?.resourceVersion);
      await this.#client.create(namespace, desired.secret, document);
      wrote = true;
    } else if (!isAsWritten(current, document)) {
      await this.#client.replace(current, document);
      wrote = true;
    }
    if (wrote) this.#log.info({ namespace, secret: desired.secret, registries: hosts }, current ? 'pull Secret updated' : 'pull Secret created');
    const expiresAt = earliest(expiries);
    const status: PullSecretStatus = { secret: desired.secret, registries: hosts, state: failures.size > 0 ? 'failing' : 'ready' };
    if (expiresAt) status.expiresAt = expiresAt.toISOString();
    const refreshedAt = wrote ? new Date(now).toISOString() : previous?.refreshedAt;
    if (refreshedAt) status.refreshedAt = refreshedAt;
    if (errorText) status.error = errorText;
    await this.#report(namespace, status, previous, failures.size === 0 ? new Date(now) : undefined);
    if (errorText) return { result: wrote ? 'written' : 'failed', retry: new Error(errorText) };
    return { result: wrote ? 'written' : 'unchanged', refreshAt };
  }

  /**
   * A token per registry, one call per token group. A registry whose token failed keeps the entry the
   * Secret already had while that is still valid, so one broken registry does not take the others'
   * credentials down with it.
   */
  async #collectTokens(registries: DesiredRegistry[], current: V1Secret | undefined) {
    const groups = new Map(registries.map((r) => [r.registry.host, tokenGroupOf(r.registry, r.roleArn)]));
    const unique = new Map([...groups.values()].map((g) => [g.key, g]));
    const tokens = new Map<string, EcrToken | EcrTokenError | Error>();
    await Promise.all(
      [...unique.values()].map(async (group) => {
        tokens.set(group.key, await this.#options.tokens.token(group).catch((error: unknown) => error as Error));
      }),
    );
    const existing = current && isManaged(current) ? readDockerConfig(current.data?.[DOCKER_CONFIG_KEY]) : new Map<string, string>();
    const now = this.#clock.now();
    const passwords = new Map<string, string>();
    const expiries: (Date | undefined)[] = [];
    const failures = new Map<string, string>();
    let refreshAt: number | undefined;
    for (const { registry } of registries) {
      const token = tokens.get(groups.get(registry.host)!.key);
      if (token && !(token instanceof Error)) {
        passwords.set(registry.host, token.password);
        expiries.push(token.expiresAt);
        refreshAt = Math.min(refreshAt ?? Infinity, token.refreshAt.getTime());
        continue;
      }
      failures.set(registry.host, token instanceof Error ? token.message : 'no token');
      const kept = existing.get(registry.host);
      const keptExpiry = kept === undefined ? undefined : tokenExpiry(kept);
      if (kept !== undefined && keptExpiry !== undefined && keptExpiry.getTime() > now) {
        passwords.set(registry.host, kept);
        expiries.push(keptExpiry);
      }
    }
    return { passwords, expiries, refreshAt, failures };
  }

  /** Delete the managed Secrets of a namespace other than `keep`; how many were deleted. */
  async #deleteManagedExcept(namespace: string, keep: string | undefined, why: string): Promise<number> {
    let removed = 0;
    for (const secret of this.#secrets.list(namespace)) {
      const name = secret.metadata?.name;
      if (name === undefined || name === keep || !isManaged(secret)) continue;
      await this.#client.delete(namespace, name, secret.metadata?.resourceVersion);
      this.#log.info({ namespace, secret: name, why }, 'managed pull Secret deleted');
      removed += 1;
    }
    return removed;
  }

  /** Record the namespace's state for metrics, and write the status annotation if it changed. */
  async #report(namespace: string, status: PullSecretStatus, previous: PullSecretStatus | undefined, success?: Date): Promise<void> {
    const last = this.#reports.get(namespace);
    this.#reports.set(namespace, {
      state: status.state,
      expiresAt: status.expiresAt ? new Date(status.expiresAt) : undefined,
      lastSuccess: success ?? last?.lastSuccess,
    });
    const text = formatPullSecretStatus(status);
    if (previous && formatPullSecretStatus(previous) === text) return;
    if (status.state !== 'ready') this.#log.warn({ namespace, secret: status.secret, state: status.state, err: status.error }, 'pull Secret not ready');
    await this.#client.annotateNamespace(namespace, this.#keys.pullSecretStatus, text);
    this.#written.set(namespace, text);
  }
}

function earliest(dates: (Date | undefined)[]): Date | undefined {
  let found: Date | undefined;
  for (const date of dates) if (date && (!found || date < found)) found = date;
  return found;
}

function describe(error: unknown): string {
  if (isApiStatus(error, 409)) return 'HTTP 409 (conflict)';
  const code = (error as { code?: unknown }).code;
  if (typeof code === 'number') return `HTTP ${code}`;
  return error instanceof Error ? error.message : String(error);
}
