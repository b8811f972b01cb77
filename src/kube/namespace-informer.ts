// Owns namespace labels read from the cluster: a client-node ListWatch (list + watch) over Namespaces
// that keeps only name -> frozen labels (and the few annotations asked for), restarts itself with
// capped exponential backoff, re-lists on 410 Gone and keeps serving the last known labels while the
// API server is away. A namespace the cache does not know yet gets one de-duplicated direct read with
// a short timeout (`fetch`).
import {
  ApiException,
  CoreV1Api,
  ListWatch,
  Observable,
  Watch,
  type ConfigurationOptions,
  type KubeConfig,
  type KubernetesListObject,
  type ObservableMiddleware,
  type V1Namespace,
  type V1NamespaceList,
} from '@kubernetes/client-node';
import { ExponentialBackoff, type IBackoff } from 'cockatiel';
import type { Logger } from '../log.js';
import type { NamespaceLabelSource } from '../webhook/namespace-labels.js';
import type { Labels } from '../webhook/pod.js';

export type InformerState = 'loading' | 'synced' | 'reconnecting' | 'stopped';

type Annotations = Readonly<Record<string, string>>;

/** What the ListWatch keeps per namespace: just enough to diff versions and carry the labels. */
interface SlimNamespace {
  apiVersion?: string;
  kind?: string;
  metadata: { name: string; resourceVersion?: string; labels: Labels; annotations?: Annotations };
}

export interface InformerSourceOptions {
  kubeConfig: KubeConfig;
  log: Logger;
  /** Budget for the slow-path read of one namespace (default 1000 ms). */
  fetchTimeoutMs?: number;
  /** Budget for one list request (default 30 s); a hung list must not stop the informer for good. */
  listTimeoutMs?: number;
  /** Watch requests ask the server to end after this long (default 300 s, ±10% jitter)... */
  watchTimeoutSeconds?: number;
  /** ...and are abandoned if still open this much later (a half-open connection; default 30 s). */
  watchGraceMs?: number;
  /** Restart backoff: first delay and cap (defaults 500 ms and 30 s). */
  backoffInitialMs?: number;
  backoffMaxMs?: number;
  /** Called each time the informer is restarted after an error (metrics). */
  onRestart?: () => void;
  /**
   * Annotation keys to keep besides the labels (the pull-secret-status the refresher writes); every
   * other annotation is dropped as it arrives, so the cache stays small. Default none.
   */
  keepAnnotations?: readonly string[];
  /** Called with a namespace's name whenever what is kept of it may have changed, or it is gone. */
  onChange?: (namespace: string) => void;
}

export class NamespaceLookupError extends Error {
  override name = 'NamespaceLookupError';
}

const NAMESPACES_PATH = '/api/v1/namespaces';
const EMPTY_LABELS: Labels = Object.freeze({});
const LIST_PAGE_SIZE = 500;

export class InformerNamespaceSource implements NamespaceLabelSource {
  readonly #labels = new Map<string, Labels>();
  /** Only namespaces that carry a kept annotation have an entry. */
  readonly #annotations = new Map<string, Annotations>();
  readonly #keep: readonly string[];
  readonly #inflight = new Map<string, Promise<Labels | undefined>>();
  readonly #core: CoreV1Api;
  readonly #watch: SlimWatch;
  readonly #listWatch: ListWatch<SlimNamespace>;
  readonly #log: Logger;
  readonly #options: InformerSourceOptions;
  readonly #backoffPolicy: ExponentialBackoff<unknown>;
  #backoff: IBackoff<unknown> | undefined;
  #restartTimer: NodeJS.Timeout | undefined;
  #state: InformerState = 'loading';
  #synced = false;
  #lastSync: Date | undefined;
  #restarts = 0;
  #closed = false;

  private constructor(options: InformerSourceOptions) {
    this.#options = options;
    this.#log = options.log;
    this.#keep = options.keepAnnotations ?? [];
    this.#core = options.kubeConfig.makeApiClient(CoreV1Api);
    this.#backoffPolicy = new ExponentialBackoff({
      initialDelay: options.backoffInitialMs ?? 500,
      maxDelay: options.backoffMaxMs ?? 30_000,
    });
    this.#watch = new SlimWatch(options.kubeConfig, {
      timeoutSeconds: options.watchTimeoutSeconds ?? 300,
      graceMs: options.watchGraceMs ?? 30_000,
      onConnected: () => this.#onWatchConnected(),
      keepAnnotations: this.#keep,
    });
    this.#listWatch = new ListWatch<SlimNamespace>(NAMESPACES_PATH, this.#watch, () => this.#list(), false);
    const remember = (namespace: SlimNamespace) => {
      this.#remember(namespace);
      options.onChange?.(namespace.metadata.name);
    };
    this.#listWatch.on('add', remember);
    this.#listWatch.on('update', remember);
    this.#listWatch.on('delete', (namespace) => {
      this.#labels.delete(namespace.metadata.name);
      this.#annotations.delete(namespace.metadata.name);
      options.onChange?.(namespace.metadata.name);
    });
    this.#listWatch.on('error', (error: unknown) => this.#onError(error));
  }

  /**
   * Start listing and watching in the background and return at once: `isSynced()` says when the
   * labels are in, and a failed start is retried like any later failure.
   */
  static start(options: InformerSourceOptions): InformerNamespaceSource {
    const source = new InformerNamespaceSource(options);
    source.#run();
    return source;
  }

  get(namespace: string): Labels | undefined {
    return this.#labels.get(namespace);
  }

  annotations(namespace: string): Annotations | undefined {
    return this.#annotations.get(namespace);
  }

  /** Every namespace in the cache (the refresher walks them all). */
  names(): string[] {
    return [...this.#labels.keys()];
  }

  #remember(namespace: SlimNamespace): void {
    const { name, labels, annotations } = namespace.metadata;
    this.#labels.set(name, labels);
    if (annotations) this.#annotations.set(name, annotations);
    else this.#annotations.delete(name);
  }

  /** One direct read for a namespace the cache does not know; concurrent callers share it. */
  fetch(namespace: string): Promise<Labels | undefined> {
    const cached = this.#labels.get(namespace);
    if (cached !== undefined) return Promise.resolve(cached);
    let pending = this.#inflight.get(namespace);
    if (pending === undefined) {
      pending = this.#read(namespace).finally(() => this.#inflight.delete(namespace));
      this.#inflight.set(namespace, pending);
    }
    return pending;
  }

  isSynced(): boolean {
    return this.#synced;
  }

  state(): InformerState {
    return this.#state;
  }

  /** When the cache was last known to match the API server (a list, or a watch (re)connected). */
  lastSyncedAt(): Date | undefined {
    return this.#lastSync;
  }

  /** How many times the informer has been restarted after an error. */
  restarts(): number {
    return this.#restarts;
  }

  async close(): Promise<void> {
    this.#closed = true;
    this.#state = 'stopped';
    clearTimeout(this.#restartTimer);
    await this.#listWatch.stop();
    this.#watch.abortAll();
  }

  async #read(namespace: string): Promise<Labels | undefined> {
    const timeoutMs = this.#options.fetchTimeoutMs ?? 1000;
    let found: V1Namespace;
    try {
      found = await this.#core.readNamespace({ name: namespace }, abortAfter(timeoutMs));
    } catch (error) {
      if (error instanceof ApiException && error.code === 404) return undefined;
      const why = isAbort(error) ? `timed out after ${timeoutMs} ms` : describeError(error);
      throw new NamespaceLookupError(`reading namespace ${namespace} failed: ${why}`);
    }
    // The watch is authoritative: if it delivered this namespace while we were reading, keep its copy.
    if (!this.#labels.has(namespace)) this.#remember(slim(found, this.#keep));
    return this.#labels.get(namespace);
  }

  /**
   * The ListWatch's list function: a paged list (as client-go's reflector does, so 10,000 namespaces
   * are never all parsed at once), trimmed page by page before the ListWatch stores it.
   */
  async #list(): Promise<KubernetesListObject<SlimNamespace>> {
    const items: SlimNamespace[] = [];
    let list: V1NamespaceList;
    let continueToken: string | undefined;
    do {
      list = await this.#core.listNamespace(
        { limit: LIST_PAGE_SIZE, ...(continueToken ? { _continue: continueToken } : {}) },
        abortAfter(this.#options.listTimeoutMs ?? 30_000),
      );
      for (const namespace of list.items) items.push(slim(namespace, this.#keep));
      continueToken = list.metadata?._continue || undefined;
    } while (continueToken !== undefined);
    // A list is a full snapshot: forget namespaces it no longer has (including ones only ever
    // fetched), and take its labels now rather than waiting for the ListWatch's callbacks.
    // (The ListWatch reports what the list added, changed or removed to its callbacks: onChange.)
    this.#labels.clear();
    this.#annotations.clear();
    for (const item of items) this.#remember(item);
    this.#markSynced();
    this.#log.info({ namespaces: items.length, resourceVersion: list.metadata?.resourceVersion }, 'namespace labels listed from the API server');
    // Every page carries the snapshot's resourceVersion: the watch starts from there.
    return { apiVersion: list.apiVersion, kind: list.kind, metadata: { resourceVersion: list.metadata?.resourceVersion }, items };
  }

  #onWatchConnected(): void {
    // A watch that connects means the API server is back: the next failure's backoff starts afresh.
    this.#backoff = undefined;
    if (this.#synced) this.#markSynced();
  }

  #markSynced(): void {
    this.#synced = true;
    this.#lastSync = new Date();
    if (!this.#closed) this.#state = 'synced';
  }

  #onError(error: unknown): void {
    if (this.#closed) return; // stopping aborts the watch, which reports an abort "error"
    if (this.#synced) this.#state = 'reconnecting';
    this.#backoff = (this.#backoff ?? this.#backoffPolicy).next(undefined);
    const delayMs = Math.round(this.#backoff.duration);
    this.#log.warn({ err: describeError(error), retryInMs: delayMs, state: this.#state }, 'namespace informer stopped; restarting');
    clearTimeout(this.#restartTimer);
    this.#restartTimer = setTimeout(() => {
      if (this.#closed) return;
      this.#restarts += 1;
      this.#options.onRestart?.();
      this.#run();
    }, delayMs);
    this.#restartTimer.unref();
  }

  #run(): void {
    // Resumes the watch from the last resourceVersion (or lists first when there is none); a 410 Gone
    // there makes the ListWatch re-list. Errors come back through the 'error' handler, except one
    // thrown before the watch request is made (e.g. credentials), which lands here.
    this.#listWatch.start().catch((error: unknown) => this.#onError(error));
  }
}

interface SlimWatchOptions {
  timeoutSeconds: number;
  graceMs: number;
  onConnected: () => void;
  keepAnnotations: readonly string[];
}

/**
 * The client-node Watch, with three changes the ListWatch cannot make itself: events carry only
 * name, resourceVersion and labels (so the ListWatch's own cache stays small), every watch asks the
 * server to end it after a while and is abandoned if it does not (client-node 1.4 sets no timeout of
 * its own, so a half-open connection would otherwise freeze the cache), and a successful connect is
 * reported (to reset the restart backoff).
 */
class SlimWatch extends Watch {
  readonly #options: SlimWatchOptions;
  readonly #open = new Set<AbortController>();
  #closed = false;

  constructor(kubeConfig: KubeConfig, options: SlimWatchOptions) {
    super(kubeConfig);
    this.#options = options;
  }

  override async watch(
    path: string,
    queryParams: Record<string, string | number | boolean | undefined>,
    callback: (phase: string, apiObj: unknown, watchObj?: unknown) => void,
    done: (err: unknown) => void,
  ): Promise<AbortController> {
    if (this.#closed) return abortedController(); // the ListWatch watches after a list even if stopped meanwhile
    const { timeoutSeconds, graceMs } = this.#options;
    // Jitter spreads the re-watches of many replicas.
    const serverTimeout = Math.max(1, Math.round(timeoutSeconds * (0.9 + Math.random() * 0.2)));
    let controller: AbortController | undefined;
    let finished = false;
    const finish = (error: unknown): void => {
      if (finished) return;
      finished = true;
      clearTimeout(watchdog);
      if (controller) this.#open.delete(controller);
      done(error);
    };
    const watchdog = setTimeout(() => {
      controller?.abort();
      finish(new Error(`watch still open ${graceMs} ms after its ${serverTimeout} s timeout; abandoned`));
    }, serverTimeout * 1000 + graceMs);
    watchdog.unref();
    try {
      controller = await super.watch(
        path,
        { ...queryParams, timeoutSeconds: serverTimeout, allowWatchBookmarks: true },
        (phase, object, raw) => {
          if (!finished) callback(phase, phase === 'ERROR' || phase === 'BOOKMARK' ? object : slim(object as V1Namespace, this.#options.keepAnnotations), raw);
        },
        finish,
      );
    } catch (error) {
      finished = true; // thrown before any request was made: the caller reports it
      clearTimeout(watchdog);
      throw error;
    }
    if (finished || this.#closed) {
      // The watchdog gave up on this one while it was connecting, or we were closed meanwhile.
      controller.abort();
    } else {
      this.#open.add(controller);
      this.#options.onConnected();
    }
    return controller;
  }

  /** Abort every watch still open (the ListWatch only tracks its latest one) and start no more. */
  abortAll(): void {
    this.#closed = true;
    for (const controller of this.#open) controller.abort();
    this.#open.clear();
  }
}

function abortedController(): AbortController {
  const controller = new AbortController();
  controller.abort();
  return controller;
}

function slim(namespace: V1Namespace, keepAnnotations: readonly string[]): SlimNamespace {
  const metadata = namespace.metadata ?? {};
  let annotations: Record<string, string> | undefined;
  for (const key of keepAnnotations) {
    const value = metadata.annotations?.[key];
    if (value !== undefined) (annotations ??= {})[key] = value;
  }
  return {
    metadata: {
      name: metadata.name ?? '',
      ...(metadata.resourceVersion !== undefined ? { resourceVersion: metadata.resourceVersion } : {}),
      labels: freezeLabels(metadata.labels),
      ...(annotations ? { annotations: Object.freeze(annotations) } : {}),
    },
  };
}

function freezeLabels(labels: Record<string, string> | undefined): Labels {
  if (labels === undefined || Object.keys(labels).length === 0) return EMPTY_LABELS;
  return Object.freeze({ ...labels });
}

/** Per-request options that abort the request after `ms` (client-node 1.4 has no timeout option). */
function abortAfter(ms: number): ConfigurationOptions<ObservableMiddleware> {
  const signal = AbortSignal.timeout(ms);
  return {
    middleware: [
      {
        pre: (context) => {
          context.setSignal(signal);
          return new Observable(Promise.resolve(context));
        },
        post: (context) => new Observable(Promise.resolve(context)),
      },
    ],
    middlewareMergeStrategy: 'append',
  };
}

function isAbort(error: unknown): boolean {
  return error instanceof Error && (error.name === 'AbortError' || error.name === 'TimeoutError');
}

function describeError(error: unknown): string {
  if (error instanceof ApiException) return `HTTP ${error.code}`;
  if (error instanceof Error) return error.message;
  return String(error);
}
