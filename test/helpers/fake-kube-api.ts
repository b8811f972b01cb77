// A local HTTP server that speaks enough of the Kubernetes API for the webhook's client code: list
// (paged with limit/continue when asked), get, create, update (with resourceVersion conflicts), patch
// (JSON merge and JSON patch), delete, and watch as a chunked stream of newline-delimited events, with
// 410 Gone for expired resourceVersions. Lists and watches take label selectors (a watch reports an
// object leaving or entering the selection as DELETED or ADDED, as the API server does) and work
// across all namespaces (`/api/v1/secrets`); a Secret's type cannot be changed; a delete may carry a
// resourceVersion precondition. Faults are injected on purpose: stop/start on the same port,
// drop watch connections, expire history, fail the next N requests, stall or hold requests. GETs
// through the Service proxy reach an HTTPS backend the test names (`serviceProxy`). Tests seed
// it with real captured objects from ../fixtures/k8s-api.
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { get as httpsGet } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import fastJsonPatch from 'fast-json-patch';

export type KubeObject = {
  metadata: { name: string; namespace?: string; resourceVersion?: string; labels?: Record<string, string>; annotations?: Record<string, string>; [k: string]: unknown };
  [k: string]: unknown;
};

interface WatchEvent {
  type: 'ADDED' | 'MODIFIED' | 'DELETED';
  collection: string;
  object: KubeObject;
  /** The object before a MODIFIED event: label-selector watches need both sides. */
  previous?: KubeObject;
  resourceVersion: number;
}

interface Watcher {
  collection: string;
  fieldName: string | undefined;
  selector: LabelSelector | undefined;
  res: ServerResponse;
}

export interface RecordedRequest {
  method: string;
  path: string;
  query: URLSearchParams;
  watch: boolean;
  /** The Authorization header: which client (kubeconfig token) made the request. */
  authorization?: string;
  /** The HTTP status answered, once the response is complete. */
  status?: number;
}

/** Plural resource names the fake knows; a path ending in one of these is a collection. */
const COLLECTIONS = new Set(['namespaces', 'secrets', 'leases', 'mutatingwebhookconfigurations', 'configmaps', 'serviceaccounts', 'deployments', 'pods']);

const LIST_KIND: Record<string, string> = {
  namespaces: 'NamespaceList',
  secrets: 'SecretList',
  leases: 'LeaseList',
  mutatingwebhookconfigurations: 'MutatingWebhookConfigurationList',
  configmaps: 'ConfigMapList',
  serviceaccounts: 'ServiceAccountList',
  deployments: 'DeploymentList',
  pods: 'PodList',
};

// The API server's Service proxy: /api/v1/namespaces/NS/services/[https:]NAME[:PORT]/proxy/PATH.
const SERVICE_PROXY = /^\/api\/v1\/namespaces\/([^/]+)\/services\/([^/]+)\/proxy(\/.*)?$/;

export interface FakeKubeApiOptions {
  /** Fixed port (for restarts); 0 picks one. */
  port?: number;
  /** Starting resourceVersion (the captured list is at 847). */
  resourceVersion?: number;
}

export class FakeKubeApi {
  readonly requests: RecordedRequest[] = [];
  #server: Server | undefined;
  #port: number;
  #resourceVersion: number;
  /** Events older than this resourceVersion are gone: a watch from before gets 410. */
  #oldestWatchable = 0;
  readonly #collections = new Map<string, Map<string, KubeObject>>();
  readonly #events: WatchEvent[] = [];
  readonly #watchers = new Set<Watcher>();
  readonly #sockets = new Set<Socket>();
  #failures: { count: number; status: number }[] = [];
  #stalled = false;
  /** Awaited before each request is handled (after it is recorded): hold a request to stage a race. */
  intercept: ((request: RecordedRequest) => void | Promise<void>) | undefined;
  #held: (() => void)[] | undefined;
  /**
   * Backends of the Service proxy: `NS/https:NAME:PORT` -> a base URL (an HTTPS listener of the
   * test's). As the API server does, the backend's certificate is not verified.
   */
  readonly serviceProxy = new Map<string, string>();

  constructor(options: FakeKubeApiOptions = {}) {
    this.#port = options.port ?? 0;
    this.#resourceVersion = options.resourceVersion ?? 1000;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  get port(): number {
    return this.#port;
  }

  /** A kubeconfig (YAML text) pointing at this server; the token tells clients apart in `requests`. */
  kubeconfig(namespace = 'default', token = 'fake-token'): string {
    return [
      'apiVersion: v1',
      'kind: Config',
      'clusters: [{name: fake, cluster: {server: "' + this.url + '", insecure-skip-tls-verify: true}}]',
      `users: [{name: fake, user: {token: ${token}}}]`,
      `contexts: [{name: fake, context: {cluster: fake, user: fake, namespace: ${namespace}}}]`,
      'current-context: fake',
      '',
    ].join('\n');
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.on('connection', (socket) => {
      this.#sockets.add(socket);
      socket.on('close', () => this.#sockets.delete(socket));
    });
    server.listen(this.#port, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  /** Stop answering: close the listener and every open connection (an API server outage). */
  async stop(): Promise<void> {
    const server = this.#server;
    if (!server) return;
    this.#server = undefined;
    for (const watcher of this.#watchers) watcher.res.destroy();
    this.#watchers.clear();
    for (const socket of this.#sockets) socket.destroy();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Seed a collection (e.g. '/api/v1/namespaces') with objects, without watch events. */
  seed(collection: string, objects: KubeObject[]): void {
    const items = this.#collection(collection);
    for (const object of objects) {
      const copy = structuredClone(object);
      copy.metadata.resourceVersion = String(++this.#resourceVersion);
      items.set(copy.metadata.name, copy);
    }
  }

  get(collection: string, name: string): KubeObject | undefined {
    const object = this.#collections.get(collection)?.get(name);
    return object && structuredClone(object);
  }

  list(collection: string): KubeObject[] {
    return [...(this.#collections.get(collection)?.values() ?? [])].map((o) => structuredClone(o));
  }

  /** Create or replace an object as a client would, emitting a watch event. */
  put(collection: string, object: KubeObject): KubeObject {
    const items = this.#collection(collection);
    const previous = items.get(object.metadata.name);
    const stored = structuredClone(object);
    stored.metadata.resourceVersion = String(++this.#resourceVersion);
    items.set(stored.metadata.name, stored);
    this.#emit({ type: previous ? 'MODIFIED' : 'ADDED', collection, object: stored, ...(previous ? { previous } : {}), resourceVersion: this.#resourceVersion });
    return structuredClone(stored);
  }

  remove(collection: string, name: string): void {
    const items = this.#collection(collection);
    const object = items.get(name);
    if (!object) return;
    items.delete(name);
    const deleted = structuredClone(object);
    deleted.metadata.resourceVersion = String(++this.#resourceVersion);
    this.#emit({ type: 'DELETED', collection, object: deleted, resourceVersion: this.#resourceVersion });
  }

  /** Forget history: watches resuming from an older resourceVersion get 410 Gone. */
  expireHistory(): void {
    this.#oldestWatchable = this.#resourceVersion + 1;
    this.#events.length = 0;
  }

  /** Cut every open watch stream mid-flight (a dropped connection). */
  dropWatches(): void {
    for (const watcher of this.#watchers) watcher.res.destroy();
    this.#watchers.clear();
  }

  /** Answer the next `count` requests with `status` (e.g. 500, 429). */
  failNext(count: number, status = 500): void {
    this.#failures.push({ count, status });
  }

  /** While stalled, requests are accepted but never answered (a hung API server). */
  stall(stalled: boolean): void {
    this.#stalled = stalled;
  }

  /**
   * Park every request that arrives from now on (recorded, not answered) until the returned function
   * is called, which answers them in order. Unlike `stall`, nothing is lost: for "while a read is
   * in flight" tests.
   */
  hold(): () => void {
    const held: (() => void)[] = [];
    this.#held = held;
    return () => {
      if (this.#held === held) this.#held = undefined;
      for (const resume of held.splice(0)) resume();
    };
  }

  openWatchCount(): number {
    return this.#watchers.size;
  }

  #collection(path: string): Map<string, KubeObject> {
    let items = this.#collections.get(path);
    if (!items) {
      items = new Map();
      this.#collections.set(path, items);
    }
    return items;
  }

  #emit(event: WatchEvent): void {
    this.#events.push(event);
    for (const watcher of this.#watchers) {
      const type = eventFor(watcher, event);
      if (type) watcher.res.write(`${JSON.stringify({ type, object: event.object })}\n`);
    }
  }

  /** Objects of a collection, or of every namespace's collection for a cluster-wide path. */
  #select(collection: string): KubeObject[] {
    const found: KubeObject[] = [];
    for (const [path, items] of this.#collections) {
      if (path === collection || clusterWidePath(path) === collection) for (const object of items.values()) found.push(structuredClone(object));
    }
    return found;
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const url = new URL(req.url ?? '/', 'http://fake');
    const watch = url.searchParams.get('watch') === 'true' || url.searchParams.get('watch') === '1';
    const recorded: RecordedRequest = { method: req.method ?? 'GET', path: url.pathname, query: url.searchParams, watch, ...(req.headers.authorization ? { authorization: req.headers.authorization } : {}) };
    this.requests.push(recorded);
    res.on('finish', () => (recorded.status = res.statusCode));
    if (this.#stalled) return;
    if (this.intercept) await this.intercept(recorded);
    const held = this.#held;
    if (held) await new Promise<void>((resume) => held.push(resume));
    const failure = this.#failures[0];
    if (failure) {
      if (--failure.count <= 0) this.#failures.shift();
      return sendStatus(res, failure.status, 'InternalError', 'injected failure');
    }
    const proxied = SERVICE_PROXY.exec(url.pathname);
    if (proxied && req.method === 'GET') return this.#proxy(res, `${proxied[1]}/${decodeURIComponent(proxied[2]!)}`, proxied[3] ?? '/');
    const body = req.method === 'GET' ? undefined : await readJson(req);
    const segments = url.pathname.split('/').filter(Boolean);
    const last = segments.at(-1) ?? '';
    const isCollection = COLLECTIONS.has(last);
    const collection = isCollection ? url.pathname : `/${segments.slice(0, -1).join('/')}`;
    const name = isCollection ? undefined : last;
    const fieldName = parseNameSelector(url.searchParams.get('fieldSelector'));

    let selector: LabelSelector | undefined;
    try {
      selector = parseLabelSelector(url.searchParams.get('labelSelector'));
    } catch (error) {
      return sendStatus(res, 400, 'BadRequest', (error as Error).message);
    }
    if (isCollection && req.method === 'GET' && watch) return this.#watch(res, collection, url.searchParams, fieldName, selector);
    if (isCollection && req.method === 'GET') return this.#list(res, collection, fieldName, url.searchParams, selector);
    if (isCollection && req.method === 'POST') return this.#create(res, collection, body as KubeObject);
    if (name === undefined) return sendStatus(res, 405, 'MethodNotAllowed', `${req.method} not supported on ${url.pathname}`);
    const current = this.#collections.get(collection)?.get(name);
    if (req.method === 'GET') return current ? sendJson(res, 200, current) : sendStatus(res, 404, 'NotFound', `${name} not found`);
    if (!current) return sendStatus(res, 404, 'NotFound', `${name} not found`);
    if (req.method === 'DELETE') {
      // DeleteOptions may carry a precondition on the resourceVersion, as the API server honours it.
      const expected = (body as { preconditions?: { resourceVersion?: string } } | undefined)?.preconditions?.resourceVersion;
      if (expected !== undefined && expected !== current.metadata.resourceVersion) {
        return sendStatus(res, 409, 'Conflict', `Precondition failed: ResourceVersion in precondition: ${expected}, ResourceVersion in object meta: ${current.metadata.resourceVersion}`);
      }
      this.remove(collection, name);
      return sendStatus(res, 200, 'Success', 'deleted');
    }
    if (req.method === 'PUT') {
      const object = body as KubeObject;
      const expected = object?.metadata?.resourceVersion;
      if (expected !== undefined && expected !== current.metadata.resourceVersion) {
        return sendStatus(res, 409, 'Conflict', `the object has been modified; please apply your changes to the latest version`);
      }
      if (collection.endsWith('/secrets') && (object.type ?? 'Opaque') !== (current.type ?? 'Opaque')) {
        return sendStatus(res, 422, 'Invalid', `Secret "${name}" is invalid: type: Invalid value: "${String(object.type)}": field is immutable`);
      }
      return sendJson(res, 200, this.put(collection, object));
    }
    if (req.method === 'PATCH') {
      const contentType = req.headers['content-type'] ?? '';
      let patched: KubeObject;
      if (contentType.includes('json-patch')) {
        try {
          patched = fastJsonPatch.applyPatch(structuredClone(current), body as fastJsonPatch.Operation[], true, false).newDocument;
        } catch (error) {
          // What the API server answers when a JSON patch does not apply (e.g. a failed `test`).
          return sendStatus(res, 422, 'Invalid', `the patch does not apply: ${(error as Error).message}`);
        }
      } else {
        patched = mergePatch(structuredClone(current), body) as KubeObject;
      }
      const expected = (body as KubeObject | undefined)?.metadata?.resourceVersion;
      if (!contentType.includes('json-patch') && expected !== undefined && expected !== current.metadata.resourceVersion) {
        return sendStatus(res, 409, 'Conflict', 'the object has been modified');
      }
      return sendJson(res, 200, this.put(collection, patched));
    }
    return sendStatus(res, 405, 'MethodNotAllowed', `${req.method} not supported`);
  }

  #proxy(res: ServerResponse, service: string, path: string): void {
    const base = this.serviceProxy.get(service);
    if (base === undefined) return sendStatus(res, 503, 'ServiceUnavailable', `no endpoints available for service "${service}"`);
    const upstream = httpsGet(new URL(path, base), { rejectUnauthorized: false }, (answer) => {
      res.writeHead(answer.statusCode ?? 502, { 'content-type': answer.headers['content-type'] ?? 'text/plain' });
      answer.pipe(res);
    });
    upstream.on('error', (error) => sendStatus(res, 503, 'ServiceUnavailable', `error trying to reach service: ${error.message}`));
  }

  #list(res: ServerResponse, collection: string, fieldName: string | undefined, query: URLSearchParams, selector: LabelSelector | undefined): void {
    const plural = collection.split('/').at(-1) ?? '';
    let items = this.#select(collection).filter((o) => (fieldName === undefined || o.metadata.name === fieldName) && selects(selector, o));
    // Paging (limit/continue) as the API server does it: pages in name order, every page carrying the
    // resourceVersion of the first. Unlike etcd, later pages see objects as they are now.
    let resourceVersion = String(this.#resourceVersion);
    let next: string | undefined;
    const limit = Number(query.get('limit') ?? '0');
    if (limit > 0) {
      items.sort((a, b) => a.metadata.name.localeCompare(b.metadata.name));
      const token = query.get('continue');
      if (token) {
        const { rv, after } = JSON.parse(Buffer.from(token, 'base64').toString('utf8')) as { rv: string; after: string };
        resourceVersion = rv;
        items = items.filter((o) => o.metadata.name.localeCompare(after) > 0);
      }
      if (items.length > limit) {
        items = items.slice(0, limit);
        next = Buffer.from(JSON.stringify({ rv: resourceVersion, after: items.at(-1)!.metadata.name })).toString('base64');
      }
    }
    sendJson(res, 200, {
      kind: LIST_KIND[plural] ?? 'List',
      apiVersion: collection.startsWith('/api/') ? 'v1' : collection.split('/').slice(2, 4).join('/'),
      metadata: { resourceVersion, ...(next ? { continue: next } : {}) },
      items,
    });
  }

  #create(res: ServerResponse, collection: string, object: KubeObject): void {
    if (!object?.metadata?.name) return sendStatus(res, 422, 'Invalid', 'metadata.name is required');
    if (this.#collections.get(collection)?.has(object.metadata.name)) {
      return sendStatus(res, 409, 'AlreadyExists', `${object.metadata.name} already exists`);
    }
    sendJson(res, 201, this.put(collection, object));
  }

  #watch(res: ServerResponse, collection: string, query: URLSearchParams, fieldName: string | undefined, selector: LabelSelector | undefined): void {
    const from = Number(query.get('resourceVersion') ?? '0');
    res.writeHead(200, { 'content-type': 'application/json', 'transfer-encoding': 'chunked' });
    // Send the headers now: clients (node-fetch) resolve the watch request on them.
    res.flushHeaders();
    if (from !== 0 && from < this.#oldestWatchable - 1) {
      // What a real API server sends when the requested resourceVersion has been compacted away.
      const status = { kind: 'Status', apiVersion: 'v1', metadata: {}, status: 'Failure', message: `too old resource version: ${from}`, reason: 'Expired', code: 410 };
      res.end(`${JSON.stringify({ type: 'ERROR', object: status })}\n`);
      return;
    }
    const watcher: Watcher = { collection, fieldName, selector, res };
    for (const event of this.#events) {
      if (event.resourceVersion <= from) continue;
      const type = eventFor(watcher, event);
      if (type) res.write(`${JSON.stringify({ type, object: event.object })}\n`);
    }
    this.#watchers.add(watcher);
    const timeoutSeconds = Number(query.get('timeoutSeconds') ?? '0');
    const timer = timeoutSeconds > 0 ? setTimeout(() => res.end(), timeoutSeconds * 1000) : undefined;
    res.on('close', () => {
      if (timer) clearTimeout(timer);
      this.#watchers.delete(watcher);
    });
  }
}

/** `/api/v1/namespaces/NS/secrets` -> `/api/v1/secrets`; undefined for a path that is not namespaced. */
function clusterWidePath(collection: string): string | undefined {
  const match = /^(\/api\/v1|\/apis\/[^/]+\/[^/]+)\/namespaces\/[^/]+\/([^/]+)$/.exec(collection);
  return match ? `${match[1]}/${match[2]}` : undefined;
}

/** What a watcher is told about an event: the API server turns selection changes into ADDED/DELETED. */
function eventFor(watcher: Watcher, event: WatchEvent): WatchEvent['type'] | undefined {
  if (watcher.collection !== event.collection && watcher.collection !== clusterWidePath(event.collection)) return undefined;
  if (watcher.fieldName !== undefined && watcher.fieldName !== event.object.metadata.name) return undefined;
  const now = selects(watcher.selector, event.object);
  if (event.type !== 'MODIFIED') return now ? event.type : undefined;
  const before = event.previous === undefined || selects(watcher.selector, event.previous);
  if (now) return before ? 'MODIFIED' : 'ADDED';
  return before ? 'DELETED' : undefined;
}

type LabelRequirement =
  | { key: string; op: 'in' | 'notin'; values: string[] }
  | { key: string; op: 'exists' | 'doesnotexist' };
type LabelSelector = LabelRequirement[];

/** The label selector syntax of the API (`a=b,c!=d,e,!f,g in (h,i),j notin (k)`). */
function parseLabelSelector(text: string | null): LabelSelector | undefined {
  if (text === null || text.trim() === '') return undefined;
  const parts = text.match(/[^,(]+(\([^)]*\))?/g) ?? [];
  return parts.map((raw) => {
    const part = raw.trim();
    let match: RegExpExecArray | null;
    if ((match = /^([\w./-]+)\s*(==|=|!=)\s*([\w.-]*)$/.exec(part))) {
      return { key: match[1]!, op: match[2] === '!=' ? 'notin' : 'in', values: [match[3]!] };
    }
    if ((match = /^([\w./-]+)\s+(in|notin)\s+\(([^)]*)\)$/.exec(part))) {
      return { key: match[1]!, op: match[2] as 'in' | 'notin', values: match[3]!.split(',').map((v) => v.trim()) };
    }
    if ((match = /^(!?)([\w./-]+)$/.exec(part))) return { key: match[2]!, op: match[1] ? 'doesnotexist' : 'exists' };
    throw new Error(`unable to parse requirement: ${part}`);
  });
}

function selects(selector: LabelSelector | undefined, object: KubeObject): boolean {
  const labels = object.metadata.labels ?? {};
  return (selector ?? []).every((requirement) => {
    const value = labels[requirement.key];
    switch (requirement.op) {
      case 'in':
        return value !== undefined && requirement.values.includes(value);
      case 'notin':
        return value === undefined || !requirement.values.includes(value);
      case 'exists':
        return value !== undefined;
      case 'doesnotexist':
        return value === undefined;
    }
  });
}

function parseNameSelector(selector: string | null): string | undefined {
  const match = selector?.match(/^metadata\.name=(.+)$/);
  return match?.[1];
}

function mergePatch(target: unknown, patch: unknown): unknown {
  if (typeof patch !== 'object' || patch === null || Array.isArray(patch)) return patch;
  const result: Record<string, unknown> = typeof target === 'object' && target !== null && !Array.isArray(target) ? { ...(target) } : {};
  for (const [key, value] of Object.entries(patch)) {
    if (value === null) delete result[key];
    else result[key] = mergePatch(result[key], value);
  }
  return result;
}

async function readJson(req: IncomingMessage): Promise<unknown> {
  const chunks: Buffer[] = [];
  for await (const chunk of req) chunks.push(chunk as Buffer);
  const text = Buffer.concat(chunks).toString('utf8');
  return text === '' ? undefined : JSON.parse(text);
}

function sendJson(res: ServerResponse, status: number, body: unknown): void {
  res.writeHead(status, { 'content-type': 'application/json' });
  res.end(JSON.stringify(body));
}

function sendStatus(res: ServerResponse, code: number, reason: string, message: string): void {
  sendJson(res, code, { kind: 'Status', apiVersion: 'v1', metadata: {}, status: code < 400 ? 'Success' : 'Failure', message, reason, code });
}
