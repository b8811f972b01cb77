// No env value, Secret data or whole object ever reaches a log line. Admissions carry unique canary
// strings wherever a Pod or a Secret can hold a secret; they go through the real HTTPS server,
// happy paths and error paths alike (4xx, malformed Pods, a label source failing in two places), with the
// logger at trace level and its lines kept in memory; no line may hold any canary.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { NamespaceLabelSource } from '../src/webhook/namespace-labels.js';
import type { Labels } from '../src/webhook/pod.js';
import { OPTED_IN_NAMESPACES, requestOnce, startTestWebhook } from './helpers/tls-webhook.js';

type Json = Record<string, unknown>;

const TEMPLATE = JSON.parse(readFileSync('examples/admission-review.json', 'utf8')) as { apiVersion: string; kind: string; request: Json };

const canaries: string[] = [];
function canary(where: string): string {
  const value = `CANARY-${where}-${randomUUID()}`;
  canaries.push(value);
  return value;
}

/**
 * A label source with two deliberate faults, to reach the error paths: reading the labels of
 * "broken-labels" throws inside the decision (an internal error, Pod admitted unchanged), and looking
 * up "explode" throws in the route's lookup (fail open as namespace-unknown).
 */
class FaultyNamespaceSource implements NamespaceLabelSource {
  get(namespace: string): Labels | undefined {
    if (namespace === 'explode') throw new Error('label cache exploded');
    if (namespace === 'broken-labels') {
      return new Proxy({}, {
        // 'then' is asked when the labels pass through a promise: answer that one honestly.
        get(_target, key) {
          if (key === 'then') return undefined;
          throw new Error('label cache corrupted');
        },
      });
    }
    return OPTED_IN_NAMESPACES[namespace];
  }
  isSynced(): boolean {
    return true;
  }
  state(): string {
    return 'synced';
  }
  async close(): Promise<void> {}
}

/** The real job Pod capture with canaries in every place a secret can hide. */
function podWithCanaries(): Json {
  const pod = structuredClone(TEMPLATE.request.object) as {
    metadata: { annotations: Record<string, string>; labels: Record<string, string> };
    spec: { containers: Json[]; initContainers?: Json[]; volumes?: Json[] };
  };
  pod.metadata.annotations['example.com/deploy-token'] = canary('annotation');
  pod.metadata.annotations['kubectl.kubernetes.io/last-applied-configuration'] = JSON.stringify({ token: canary('last-applied') });
  pod.metadata.labels['example.com/secret-label'] = canary('label');
  for (const container of pod.spec.containers) {
    container.env = [
      ...((container.env as Json[] | undefined) ?? []),
      { name: 'AWS_SECRET_ACCESS_KEY', value: canary('env') },
      { name: 'GITHUB_TOKEN', value: canary('env') },
    ];
    container.args = ['--password', canary('args')];
  }
  pod.spec.volumes = [...(pod.spec.volumes ?? []), { name: 'inline', csi: { driver: 'x', volumeAttributes: { secret: canary('volume') } } }];
  return pod;
}

function review(request: Json, apiVersion = TEMPLATE.apiVersion): string {
  return JSON.stringify({ apiVersion, kind: 'AdmissionReview', request: { ...TEMPLATE.request, uid: randomUUID(), ...request } });
}

void t.test('no canary from a Pod or a Secret reaches any log line, on any path', async (t) => {
  const webhook = await startTestWebhook(t, { logLevel: 'trace', namespaceSource: new FaultyNamespaceSource() });
  const post = (body: string, contentType = 'application/json') =>
    requestOnce(webhook.port, { ca: webhook.ca, method: 'POST', path: '/mutate', headers: { 'content-type': contentType }, body });

  const secret = {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name: 'aws-credentials', namespace: 'buildkite' },
    data: { AWS_SECRET_ACCESS_KEY: Buffer.from(canary('secret-data')).toString('base64') },
    stringData: { token: canary('secret-string-data') },
  };
  const cases: [string, string, number, string?][] = [
    ['injected job Pod', review({ object: podWithCanaries(), oldObject: secret }), 200],
    ['dry run', review({ object: podWithCanaries(), dryRun: true }), 200],
    ['namespace not opted in', review({ namespace: 'not-opted-in', object: podWithCanaries() }), 200],
    ['namespace unknown', review({ namespace: 'nowhere', object: podWithCanaries() }), 200],
    ['Pod opted out', review({ object: { ...podWithCanaries(), metadata: { ...(podWithCanaries().metadata as Json), labels: { 'buildkite.com/job-uuid': 'x', 'buildkite-ecr-injector/inject': 'disabled' } } } }), 200],
    ['a Secret sent by mistake', review({ kind: { group: '', version: 'v1', kind: 'Secret' }, object: secret }), 200],
    ['UPDATE with an old object', review({ operation: 'UPDATE', object: podWithCanaries(), oldObject: podWithCanaries() }), 200],
    ['malformed Pod: labels not strings', review({ object: { ...podWithCanaries(), metadata: { labels: { nested: { secret: canary('malformed') } } } } }), 200],
    ['malformed Pod: containers not a list', review({ object: { metadata: {}, spec: { containers: { secret: canary('containers') } } } }), 200],
    ['label source fails inside the decision', review({ namespace: 'broken-labels', object: podWithCanaries() }), 200],
    ['label source fails in the lookup', review({ namespace: 'explode', object: podWithCanaries() }), 200],
    ['wrong apiVersion', review({ object: podWithCanaries() }, 'admission.k8s.io/v2'), 400],
    ['kind holds an object', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: podWithCanaries(), request: { uid: 'u' } }), 400],
    ['request is a list', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: [podWithCanaries()] }), 400],
    ['uid missing', JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { object: podWithCanaries() } }), 400],
    ['truncated body', review({ object: podWithCanaries() }).slice(0, 9_000), 400],
    ['__proto__ key', review({ object: podWithCanaries() }).replace('"metadata":{', '"metadata":{"__proto__":{"x":1},'), 400],
    ['wrong content type', review({ object: podWithCanaries() }), 415, 'text/plain'],
  ];
  for (const [name, body, status, contentType] of cases) {
    const answer = await post(body, contentType);
    t.equal(answer.status, status, name);
  }
  const notFound = await requestOnce(webhook.port, { ca: webhook.ca, method: 'POST', path: `/mutate/${canary('path')}`, body: '{}' });
  t.equal(notFound.status, 404);

  const lines = webhook.captured.lines;
  const audits = webhook.captured.records().filter((record) => record.msg === 'admission');
  t.equal(audits.length, 11, 'every answered AdmissionReview wrote an audit line (the check reads real lines)');
  t.ok(lines.some((line) => line.includes('label cache corrupted')), 'the internal-error path logged');
  t.ok(lines.some((line) => line.includes('namespace lookup failed')), 'the failed lookup logged');
  t.ok(lines.some((line) => line.includes('not an AdmissionReview')), 'the 4xx path logged');
  const leaks = canaries.filter((value) => lines.some((line) => line.includes(value)));
  t.same(leaks, [], `none of ${canaries.length} canaries appears in ${lines.length} log lines`);
  // Belt and braces: no line carries a Pod's spec or env, or a Secret's data, whatever the value.
  t.same(
    lines.filter((line) => /"(spec|env|data|stringData|object|oldObject|request)":/.test(line)),
    [],
    'no line carries a spec, env, data or object field',
  );
});
