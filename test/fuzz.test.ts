// Hostile and malformed input, property-based (fast-check): thousands of generated AdmissionReviews
// (wrong types everywhere, missing fields, huge arrays, deep nesting, __proto__ and
// constructor.prototype keys, invalid UTF-8, truncated bodies, wrong apiVersions, wrong content
// types) sent to the real HTTPS server over one kept-alive TLS connection. Every answer must be a
// valid AdmissionReview with the request's uid (200) or a 4xx JSON error, never a 5xx, and no patch
// may touch a path outside the set the webhook is allowed to write.
//
// FUZZ_SEED (a number) and FUZZ_RUNS override the fixed seed and the number of runs, to explore.
import fc from 'fast-check';
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { Client } from 'undici';
import { startTestWebhook } from './helpers/tls-webhook.js';

type Json = null | boolean | number | string | Json[] | { [key: string]: Json };
type Path = (string | number)[];

// Frozen: every run starts from a copy, and a generator that shares a piece of it by mistake throws.
const TEMPLATE = deepFreeze(JSON.parse(readFileSync('examples/admission-review.json', 'utf8')) as { [key: string]: Json });
const SUPPORTED_VERSIONS = ['admission.k8s.io/v1', 'admission.k8s.io/v1beta1'];
const SEED = process.env.FUZZ_SEED ? Number(process.env.FUZZ_SEED) : 20_261_125;
const RUNS = process.env.FUZZ_RUNS ? Number(process.env.FUZZ_RUNS) : 2_000;

// The paths this webhook may write (label prefix buildkite-ecr-injector), written out independently
// of src/webhook/patch.ts so that a bug there cannot hide here.
const ALLOWED_PATHS = [
  /^\/spec\/serviceAccountName$/,
  /^\/spec\/serviceAccount$/,
  /^\/spec\/imagePullSecrets(\/(\d+|-))?$/,
  /^\/spec\/(initContainers|containers)\/\d+\/envFrom(\/(\d+|-))?$/,
  /^\/metadata\/annotations\/buildkite-ecr-injector~1injected$/,
];
const INJECTED_ANNOTATION = 'buildkite-ecr-injector/injected';

// ---- generators ----------------------------------------------------------------------------

const O = ['request', 'object'];
const TARGET_PATHS: Path[] = [
  [],
  ['apiVersion'],
  ['kind'],
  ['request'],
  ['request', 'uid'],
  ['request', 'kind'],
  ['request', 'kind', 'kind'],
  ['request', 'kind', 'version'],
  ['request', 'kind', 'group'],
  ['request', 'operation'],
  ['request', 'namespace'],
  ['request', 'name'],
  ['request', 'subResource'],
  ['request', 'dryRun'],
  ['request', 'userInfo'],
  ['request', 'userInfo', 'username'],
  ['request', 'oldObject'],
  O,
  [...O, 'metadata'],
  [...O, 'metadata', 'name'],
  [...O, 'metadata', 'generateName'],
  [...O, 'metadata', 'namespace'],
  [...O, 'metadata', 'labels'],
  [...O, 'metadata', 'labels', 'buildkite.com/job-uuid'],
  [...O, 'metadata', 'labels', 'buildkite-ecr-injector/inject'],
  [...O, 'metadata', 'annotations'],
  [...O, 'metadata', 'annotations', INJECTED_ANNOTATION],
  [...O, 'metadata', 'annotations', 'kubernetes.io/config.mirror'],
  [...O, 'metadata', 'annotations', 'buildkite.com/pipeline-slug'],
  [...O, 'spec'],
  [...O, 'spec', 'serviceAccountName'],
  [...O, 'spec', 'serviceAccount'],
  [...O, 'spec', 'imagePullSecrets'],
  [...O, 'spec', 'imagePullSecrets', 0],
  [...O, 'spec', 'imagePullSecrets', 0, 'name'],
  [...O, 'spec', 'containers'],
  [...O, 'spec', 'containers', 0],
  [...O, 'spec', 'containers', 0, 'name'],
  [...O, 'spec', 'containers', 0, 'env'],
  [...O, 'spec', 'containers', 0, 'env', 0],
  [...O, 'spec', 'containers', 0, 'env', 0, 'name'],
  [...O, 'spec', 'containers', 0, 'envFrom'],
  [...O, 'spec', 'containers', 0, 'envFrom', 0],
  [...O, 'spec', 'containers', 0, 'envFrom', 0, 'secretRef'],
  [...O, 'spec', 'containers', 1, 'name'],
  [...O, 'spec', 'containers', 2],
  [...O, 'spec', 'initContainers'],
  [...O, 'spec', 'initContainers', 0],
  [...O, 'spec', 'initContainers', 0, 'restartPolicy'],
];

// Big values are generated as small descriptions and built just before sending, so that a
// counterexample stays printable.
type Value =
  | { json: Json }
  | { deep: number; asArray: boolean }
  | { huge: number; item: Json }
  | { containers: number };

const deepNesting: fc.Arbitrary<Value> = fc.record({ deep: fc.integer({ min: 50, max: 20_000 }), asArray: fc.boolean() });
const hugeArray: fc.Arbitrary<Value> = fc.record({ huge: fc.integer({ min: 1_000, max: 10_000 }), item: fc.jsonValue({ maxDepth: 1 }) as fc.Arbitrary<Json> });
/** Many copies of a real command container: a big, legal patch. */
const manyContainers: fc.Arbitrary<Value> = fc.record({ containers: fc.integer({ min: 2, max: 1_000 }) });

/**
 * Deep values stand in the document as a marker string and are spliced into the JSON text as text:
 * JSON.stringify itself gives up at about 4,000 levels, and the server must cope with more.
 */
const DEEP_MARKER = /"__DEEP_(\d+)_(array|object)__"/g;

function deepText(depth: number, asArray: boolean): string {
  return asArray ? `${'['.repeat(depth)}"bottom"${']'.repeat(depth)}` : `${'{"nested":'.repeat(depth)}"bottom"${'}'.repeat(depth)}`;
}

function build(value: Value): Json {
  if ('json' in value) return structuredClone(value.json);
  if ('deep' in value) return `__DEEP_${value.deep}_${value.asArray ? 'array' : 'object'}__`;
  // One item repeated: the wire holds n copies, the generator stays cheap.
  if ('huge' in value) return new Array<Json>(value.huge).fill(value.item);
  const spec = (TEMPLATE.request as { object: { spec: { containers: Json[] } } }).object.spec;
  return Array.from({ length: value.containers }, (_, index) => ({ ...structuredClone(spec.containers[0] as object), name: `container-${index}` }));
}

function deepFreeze<T>(value: T): T {
  if (typeof value === 'object' && value !== null) {
    for (const child of Object.values(value)) deepFreeze(child);
    Object.freeze(value);
  }
  return value;
}

const awkwardScalar: fc.Arbitrary<Json> = fc.constantFrom<Json>(
  null,
  '',
  0,
  -1,
  1e308,
  true,
  false,
  [],
  {},
  'enabled',
  'disabled',
  'none',
  'CREATE',
  'UPDATE',
  'Pod',
  'v1',
  'admission.k8s.io/v1',
  'admission.k8s.io/v2',
  'AdmissionReview',
  'default',
  '__proto__',
  'constructor',
  '~1/~0',
  '../../etc',
  'x'.repeat(5_000),
);

const hostileValue: fc.Arbitrary<Value> = fc.oneof(
  { weight: 8, arbitrary: (fc.jsonValue({ maxDepth: 3 }) as fc.Arbitrary<Json>).map((json) => ({ json })) },
  { weight: 5, arbitrary: awkwardScalar.map((json) => ({ json })) },
  { weight: 2, arbitrary: fc.string({ unit: 'binary', maxLength: 40 }).map((json) => ({ json })) },
  { weight: 1, arbitrary: hugeArray },
  { weight: 1, arbitrary: deepNesting },
  { weight: 1, arbitrary: manyContainers },
);

type Edit = { op: 'set'; path: Path; value: Value } | { op: 'delete'; path: Path };

const edit: fc.Arbitrary<Edit> = fc.oneof(
  { weight: 3, arbitrary: fc.record({ op: fc.constant('set' as const), path: fc.constantFrom(...TARGET_PATHS), value: hostileValue }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('delete' as const), path: fc.constantFrom(...TARGET_PATHS) }) },
);

/** What happens to the JSON text on the wire. */
type Wire =
  | { kind: 'plain' }
  | { kind: 'poison'; at: Path; key: '__proto__' | 'constructor' }
  | { kind: 'truncate'; keep: number }
  | { kind: 'bad-utf8'; bytes: number[]; positions: number[] }
  | { kind: 'empty' };

const wire: fc.Arbitrary<Wire> = fc.oneof(
  { weight: 16, arbitrary: fc.constant({ kind: 'plain' as const }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('poison' as const),
      at: fc.constantFrom<Path>([], ['request'], O, [...O, 'metadata'], [...O, 'spec'], [...O, 'spec', 'containers', 0]),
      key: fc.constantFrom('__proto__' as const, 'constructor' as const),
    }),
  },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant('truncate' as const), keep: fc.double({ min: 0, max: 1, noNaN: true }) }) },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant('bad-utf8' as const),
      bytes: fc.array(fc.constantFrom(0x80, 0xbf, 0xc0, 0xc1, 0xe0, 0xf5, 0xfe, 0xff), { minLength: 1, maxLength: 4 }),
      positions: fc.array(fc.double({ min: 0, max: 1, noNaN: true }), { minLength: 1, maxLength: 3 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ kind: 'empty' as const }) },
);

const contentType = fc.oneof(
  { weight: 20, arbitrary: fc.constant('application/json') },
  {
    weight: 3,
    arbitrary: fc.constantFrom(
      'application/json; charset=utf-8',
      'Application/JSON',
      'text/plain',
      'text/json',
      'application/xml',
      'application/x-www-form-urlencoded',
      'multipart/form-data; boundary=x',
      'application/yaml',
      'application/octet-stream',
      '',
    ),
  },
);

interface Scenario {
  uid: string;
  edits: Edit[];
  wire: Wire;
  contentType: string;
}

const scenario: fc.Arbitrary<Scenario> = fc.record({
  uid: fc.oneof(fc.uuid(), fc.string({ minLength: 1, maxLength: 60 })),
  edits: fc.array(edit, { maxLength: 3 }),
  wire,
  contentType,
});

// ---- building the request ----------------------------------------------------------------------

function isObject(value: unknown): value is { [key: string]: Json } {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function setAt(root: Json, path: Path, value: Json | undefined): Json | undefined {
  if (path.length === 0) return value;
  let node: Json = root;
  for (const step of path.slice(0, -1)) {
    const next: Json | undefined = Array.isArray(node) ? node[step as number] : isObject(node) ? node[step as string] : undefined;
    if (next === undefined || next === null || typeof next !== 'object') return root; // nothing there to edit
    node = next;
  }
  const last = path[path.length - 1]!;
  if (Array.isArray(node) && typeof last === 'number') {
    if (value === undefined) node.splice(last, 1);
    else node[last] = value;
  } else if (isObject(node)) {
    if (value === undefined) delete node[last];
    else node[last] = value;
  }
  return root;
}

function getAt(root: Json, path: Path): Json | undefined {
  let node: Json | undefined = root;
  for (const step of path) node = Array.isArray(node) ? node[step as number] : isObject(node) ? node[step as string] : undefined;
  return node;
}

function buildBody(input: Scenario): Buffer {
  let document: Json | undefined = structuredClone(TEMPLATE);
  setAt(document, ['request', 'uid'], input.uid);
  for (const change of input.edits) {
    if (document === undefined) break;
    document = setAt(document, change.path, change.op === 'set' ? build(change.value) : undefined);
  }
  if (input.wire.kind === 'empty' || document === undefined) return Buffer.alloc(0);
  if (input.wire.kind === 'poison') {
    const target = getAt(document, input.wire.at);
    if (isObject(target)) target.__SENTINEL__ = 0;
  }
  let text = JSON.stringify(document).replace(DEEP_MARKER, (_match, depth: string, shape: string) => deepText(Number(depth), shape === 'array'));
  if (input.wire.kind === 'poison') {
    const poison = input.wire.key === '__proto__' ? '"__proto__":{"polluted":"yes"}' : '"constructor":{"prototype":{"polluted":"yes"}}';
    text = text.replace('"__SENTINEL__":0', poison);
  }
  let bytes = Buffer.from(text, 'utf8');
  if (input.wire.kind === 'truncate') bytes = bytes.subarray(0, Math.floor(bytes.length * input.wire.keep));
  if (input.wire.kind === 'bad-utf8') {
    for (const position of input.wire.positions) {
      const at = Math.floor(bytes.length * position);
      bytes = Buffer.concat([bytes.subarray(0, at), Buffer.from(input.wire.bytes), bytes.subarray(at)]);
    }
  }
  return bytes;
}

// ---- the oracle ----------------------------------------------------------------------------------

/** An own __proto__ key, or a constructor key holding a prototype key, anywhere in the tree. */
function hasPoisonKey(value: Json): boolean {
  const stack: Json[] = [value];
  while (stack.length > 0) {
    const node = stack.pop()!;
    if (Array.isArray(node)) stack.push(...node);
    else if (isObject(node)) {
      if (Object.prototype.hasOwnProperty.call(node, '__proto__')) return true;
      const ctor = Object.prototype.hasOwnProperty.call(node, 'constructor') ? node.constructor : undefined;
      if (isObject(ctor) && Object.prototype.hasOwnProperty.call(ctor, 'prototype')) return true;
      stack.push(...Object.values(node));
    }
  }
  return false;
}

/**
 * The AdmissionReview the server should answer with 200, read the way the server reads it (UTF-8
 * with replacement characters), or undefined when it should answer 4xx.
 */
function expectedReview(body: Buffer, type: string): { [key: string]: Json } | undefined {
  if (type.split(';')[0]!.trim().toLowerCase() !== 'application/json') return undefined;
  let parsed: Json;
  try {
    parsed = JSON.parse(body.toString('utf8')) as Json;
  } catch {
    return undefined;
  }
  if (!isObject(parsed) || hasPoisonKey(parsed)) return undefined;
  if (parsed.kind !== 'AdmissionReview' || typeof parsed.apiVersion !== 'string' || !SUPPORTED_VERSIONS.includes(parsed.apiVersion)) return undefined;
  const request = parsed.request;
  if (!isObject(request) || typeof request.uid !== 'string' || request.uid === '') return undefined;
  for (const field of ['namespace', 'name', 'operation', 'subResource']) {
    if (request[field] !== undefined && typeof request[field] !== 'string') return undefined;
  }
  for (const field of ['kind', 'userInfo']) if (request[field] !== undefined && !isObject(request[field])) return undefined;
  if (request.dryRun !== undefined && typeof request.dryRun !== 'boolean') return undefined;
  return parsed;
}

function checkPatch(patch: string, object: Json): string | undefined {
  let operations: Operation[];
  try {
    operations = JSON.parse(Buffer.from(patch, 'base64').toString('utf8')) as Operation[];
  } catch {
    return 'patch is not base64 JSON';
  }
  if (!Array.isArray(operations) || operations.length === 0) return 'patch is not a non-empty list';
  for (const operation of operations) {
    if (operation.op !== 'add' && operation.op !== 'replace') return `operation ${operation.op} at ${operation.path}`;
    if (ALLOWED_PATHS.some((allowed) => allowed.test(operation.path))) continue;
    const value = (operation as { value?: unknown }).value;
    if (operation.path === '/metadata/annotations' && isObject(value)) {
      const keys = Object.keys(value);
      if (keys.length === 1 && keys[0] === INJECTED_ANNOTATION) continue;
    }
    return `patch path ${operation.path} is outside the allowed set`;
  }
  try {
    fastJsonPatch.applyPatch(object, operations, true, true);
  } catch (error) {
    return `patch does not apply to the object sent: ${(error as Error).message}`;
  }
  return undefined;
}

// ---- the property ----------------------------------------------------------------------------------

void t.test('thousands of hostile AdmissionReviews: no crash, no 5xx, right uid, allowed patch paths only', async (t) => {
  const webhook = await startTestWebhook(t, { logLevel: 'warn' });
  const client = new Client(`https://127.0.0.1:${webhook.port}`, { connect: { ca: webhook.ca, servername: 'localhost' }, pipelining: 1 });
  t.teardown(() => client.close());
  const seen = { answered: 0, patched: 0, rejected: 0 };

  await fc.assert(
    fc.asyncProperty(scenario, async (input) => {
      const body = buildBody(input);
      const response = await client.request({
        method: 'POST',
        path: '/mutate',
        headers: input.contentType === '' ? {} : { 'content-type': input.contentType },
        body,
      });
      const text = await response.body.text();
      const status = response.statusCode;
      const expected = expectedReview(body, input.contentType);
      if (status >= 500) throw new Error(`HTTP ${status}: ${text.slice(0, 200)}`);
      const answer = JSON.parse(text) as { [key: string]: Json };
      if (expected === undefined) {
        if (status < 400) throw new Error(`expected a 4xx for a body that is not an AdmissionReview, got ${status}: ${text.slice(0, 200)}`);
        if (answer.statusCode !== status || typeof answer.message !== 'string') throw new Error(`4xx without a JSON error: ${text.slice(0, 200)}`);
        seen.rejected += 1;
        return;
      }
      if (status !== 200) throw new Error(`expected 200 for an AdmissionReview, got ${status}: ${text.slice(0, 200)}`);
      const reviewResponse = answer.response;
      const request = expected.request as { [key: string]: Json };
      if (answer.apiVersion !== expected.apiVersion || answer.kind !== 'AdmissionReview' || !isObject(reviewResponse)) {
        throw new Error(`not an AdmissionReview answer: ${text.slice(0, 200)}`);
      }
      if (reviewResponse.uid !== request.uid || reviewResponse.allowed !== true) throw new Error(`wrong uid or not allowed: ${text.slice(0, 200)}`);
      const warnings = reviewResponse.warnings;
      if (warnings !== undefined && !(Array.isArray(warnings) && warnings.every((w) => typeof w === 'string' && w.length <= 120))) {
        throw new Error(`bad warnings: ${JSON.stringify(warnings)}`);
      }
      seen.answered += 1;
      if (reviewResponse.patch !== undefined) {
        if (reviewResponse.patchType !== 'JSONPatch' || typeof reviewResponse.patch !== 'string') throw new Error('patch without patchType JSONPatch');
        const problem = checkPatch(reviewResponse.patch, request.object ?? null);
        if (problem !== undefined) throw new Error(problem);
        seen.patched += 1;
      }
    }),
    { numRuns: RUNS, seed: SEED },
  );

  t.comment(`seed ${SEED}: ${seen.answered} AdmissionReviews answered (${seen.patched} with a patch), ${seen.rejected} bodies refused with a 4xx`);
  t.ok(seen.answered > RUNS / 3, 'most generated bodies were AdmissionReviews the webhook answered');
  t.ok(seen.patched > RUNS / 10, 'a good share of them reached the mutation and got a patch');
  t.ok(seen.rejected > RUNS / 20, 'and the rest exercised the 4xx paths');
  const health = await client.request({ method: 'GET', path: '/healthz' });
  t.equal(health.statusCode, 200, 'the server is still up');
  await health.body.dump();
  const records = webhook.captured.records();
  t.same(
    records.filter((record) => record.msg === 'unexpected error serving request'),
    [],
    'no request hit the 5xx path',
  );
  t.same(
    records.filter((record) => record.msg === 'admission failed; Pod admitted unchanged').map((record) => (record.err as { message?: string }).message),
    [],
    'no admission failed inside the webhook',
  );
});
