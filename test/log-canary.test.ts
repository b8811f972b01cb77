// No env value, Secret data or whole object ever reaches a log line. Admissions carry unique canary
// strings wherever a Pod or a Secret can hold a secret; they go through the real HTTPS server,
// happy paths and error paths alike (4xx, malformed Pods, a label source failing in two places), with the
// logger at trace level and its lines kept in memory; no line may hold any canary. The refresher
// too: every ECR token the fake hands out (password and auth) and the content of Secrets it meets
// are canaries, through writes, restores, unmanaged Secrets, AWS and API failures; no log line and no
// status annotation may hold one.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import t from 'tap';
import type { NamespaceLabelSource } from '../src/webhook/namespace-labels.js';
import type { Labels } from '../src/webhook/pod.js';
import { ACCESS_DENIED, THROTTLING } from './helpers/fake-aws.js';
import { until } from './helpers/https-client.js';
import { EAST, NAMESPACES, OPTED_IN, REGISTRIES, STATUS, WEST, namespace, secretsOf, startRefresherCluster } from './helpers/refresher-cluster.js';
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

void t.test('no ECR token, docker config or auth value reaches a refresher log line or status annotation', async (t) => {
  const c = await startRefresherCluster(t, {
    namespaces: [namespace('team-a', OPTED_IN), namespace('theirs', OPTED_IN), namespace('west', OPTED_IN, { [REGISTRIES]: WEST })],
    aws: { passwordPrefix: 'CANARY-ecr-password-' },
    logLevel: 'trace',
  });
  const theirs = canary('unmanaged-secret');
  c.api.seed(secretsOf('theirs'), [{ apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: 'ecr-credentials', namespace: 'theirs' }, data: { '.dockerconfigjson': Buffer.from(`{"auths":{"x":{"auth":"${theirs}"}}}`).toString('base64') } }]);
  c.aws.fail({ ...ACCESS_DENIED, region: 'eu-west-1', count: 3 });
  const refresher = await c.start();
  await until(() => refresher.isLeader() && refresher.isReady(), 'the first pass');
  await until(() => c.status('west')?.state === 'ready', 'the west namespace recovers from AccessDenied');

  const edited = c.secret('team-a')!;
  const editedData = { '.dockerconfigjson': Buffer.from(JSON.stringify({ auths: { [EAST]: { auth: canary('hand-edit') } } })).toString('base64') };
  edited.data = editedData;
  c.api.failNext(1, 500);
  c.api.put(secretsOf('team-a'), edited);
  await until(() => !JSON.stringify(c.secret('team-a')?.data).includes(editedData['.dockerconfigjson']), 'the hand edit undone');
  c.api.remove(secretsOf('team-a'), 'ecr-credentials');
  await until(() => c.secret('team-a') !== undefined, 'the deleted Secret restored');
  c.aws.fail({ ...THROTTLING, count: Infinity });
  c.api.put(NAMESPACES, namespace('throttled', OPTED_IN, { [REGISTRIES]: '123456789012.dkr.ecr.ap-south-1.amazonaws.com' }));
  await until(() => c.status('throttled')?.state === 'failing', 'throttling reported');
  c.aws.clearFaults();
  await until(() => c.status('throttled')?.state === 'ready', 'throttling over: a third token');
  c.relabel('team-a', { 'buildkite-ecr-injector/pull-secret': 'renamed' });
  await until(() => c.secret('team-a', 'renamed') !== undefined && c.secret('team-a') === undefined, 'the rename');
  c.relabel('team-a', { 'buildkite-ecr-injector/inject': undefined });
  await until(() => c.api.list(secretsOf('team-a')).length === 0, 'the opt-out');
  await refresher.close();

  const secrets = c.aws.issued.flatMap((token) => [token.password, token.authorizationToken, Buffer.from(token.password, 'base64').toString('utf8')]);
  const docker = [...c.api.list(secretsOf('west')), ...c.api.list(secretsOf('theirs'))].map((s) => (s as unknown as { data: Record<string, string> }).data['.dockerconfigjson']!);
  const all = [...secrets, ...docker, ...canaries];
  t.ok(c.aws.issued.length >= 3, `${c.aws.issued.length} tokens issued`);
  const lines = c.captured.lines;
  t.ok(lines.some((line) => line.includes('AccessDeniedException')), 'the AWS failure path logged');
  t.ok(lines.some((line) => line.includes('pull Secret not ready') && line.includes('unmanaged')), 'the unmanaged path logged');
  t.ok(lines.some((line) => line.includes('managed pull Secret deleted')), 'the delete path logged');
  t.same(all.filter((value) => lines.some((line) => line.includes(value))), [], `none of ${all.length} secrets appears in ${lines.length} log lines`);
  const statuses = c.api.requests.length > 0 ? c.api.list(NAMESPACES).map((ns) => ns.metadata.annotations?.[STATUS] ?? '') : [];
  t.ok(statuses.some((status) => status.includes('"state":"ready"')), 'status annotations were written');
  t.same(all.filter((value) => statuses.some((status) => status.includes(value))), [], 'no secret in any status annotation');
  t.same(lines.filter((line) => /"(data|auths|password|auth|dockerconfigjson)":/.test(line)), [], 'no line carries a data, auths, password or auth field');
});
