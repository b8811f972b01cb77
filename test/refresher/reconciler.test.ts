// The refresher against the local Kubernetes API (Namespaces, Secrets, the Lease) and the local
// ECR/STS endpoint, through the real AWS SDK: opt-in gives a Secret within a second, one token per
// region and role for every namespace, deleted and hand-edited Secrets are restored, an unmanaged
// Secret is left alone and reported, opt-out and a renamed pull Secret delete the managed one, ECR
// errors and throttling back off without holding up other namespaces and show in the status
// annotation, and a fake clock moves a token to refreshBefore ahead of its expiry.
import parsePrometheusTextFormat, { type ParsedFamily } from 'parse-prometheus-text-format';
import t from 'tap';
import { ACCESS_DENIED, THROTTLING } from '../helpers/fake-aws.js';
import { until } from '../helpers/https-client.js';
import { getText } from '../helpers/plain-http.js';
import {
  EAST,
  MANAGED,
  ManualClock,
  NAMESPACES,
  OPTED_IN,
  REGISTRIES,
  ROLE,
  STATIC_KEY,
  WEST,
  namespace,
  secretsOf,
  startRefresherCluster,
  testConfig,
} from '../helpers/refresher-cluster.js';

async function scrape(port: number): Promise<ParsedFamily[]> {
  return parsePrometheusTextFormat((await getText(port, '/metrics')).text);
}

function sample(families: ParsedFamily[], name: string, labels: Record<string, string> = {}): number | undefined {
  const found = families.find((f) => f.name === name)?.metrics.find((m) => JSON.stringify(m.labels ?? {}) === JSON.stringify(labels));
  return found?.value === undefined ? undefined : Number(found.value);
}

t.test('opt-in: a Secret within a second, one token per region and role, status for people and the webhook', async (t) => {
  const c = await startRefresherCluster(t, {
    namespaces: [
      namespace('team-a', OPTED_IN),
      namespace('team-b', { ...OPTED_IN, 'buildkite-ecr-injector/pull-secret': 'ecr-pull' }, { [REGISTRIES]: WEST }),
      namespace('plain', {}),
      namespace('kube-system', OPTED_IN),
      namespace('opted-out-of-pulls', { ...OPTED_IN, 'buildkite-ecr-injector/pull-secret': 'none' }),
    ],
  });
  const refresher = await c.start({ metrics: { host: '127.0.0.1', port: 0 } });
  await until(() => refresher.isLeader() && refresher.isReady(), 'the first full pass', 10_000);
  t.ok(refresher.isLeader(), 'the only replica leads');

  const a = c.auths('team-a')!;
  t.same(Object.keys(a), [EAST, WEST], 'config registries, in order');
  const secret = c.secret('team-a')!;
  t.equal(secret.type, 'kubernetes.io/dockerconfigjson');
  t.match(secret.metadata.labels, MANAGED);
  t.same(Object.keys(secret.data ?? {}), ['.dockerconfigjson'], 'one key');
  const east = c.aws.issued.find((i) => i.region === 'us-east-1')!;
  t.same(a[EAST], { username: 'AWS', password: east.password, auth: east.authorizationToken }, 'username AWS, the token as password and as auth');
  t.same(Object.keys(c.auths('team-b', 'ecr-pull')!), [WEST], 'the namespace annotation names its own registries');
  for (const ns of ['plain', 'kube-system', 'opted-out-of-pulls']) t.same(c.api.list(secretsOf(ns)), [], `no Secret in ${ns}`);

  t.same(
    c.aws.ecrCalls().map((call) => `${call.region} ${call.signedAsRole ?? call.accessKeyId}`).sort(),
    [`eu-west-1 ${ROLE}`, `us-east-1 ${STATIC_KEY}`],
    'two namespaces, three registry entries, two tokens: one per region and role',
  );
  t.match(c.aws.stsCalls(), [{ action: 'AssumeRole', roleArn: ROLE, region: 'eu-west-1' }]);

  const status = c.status('team-a')!;
  t.match(status, { secret: 'ecr-credentials', registries: [EAST, WEST], state: 'ready' });
  t.equal(status.expiresAt, east.expiresAt.toISOString(), 'expiresAt: the earliest token');
  t.ok(Date.parse(status.refreshedAt!) <= Date.now(), 'refreshedAt');
  t.notMatch(c.rawStatus('team-a'), east.password.slice(0, 20), 'no token in the annotation');
  t.equal(c.status('plain'), undefined, 'no status where there is no pull Secret');

  const started = Date.now();
  c.api.put(NAMESPACES, namespace('team-new', OPTED_IN));
  await until(() => c.secret('team-new') !== undefined, 'the new namespace Secret', 1_000);
  t.ok(Date.now() - started < 1_000, `opt-in to Secret in ${Date.now() - started} ms`);
  t.equal(c.aws.ecrCalls().length, 2, 'the cached tokens serve the new namespace');

  let families = await scrape(refresher.metricsPort!);
  await until(async () => (sample((families = await scrape(refresher.metricsPort!)), 'buildkite_ecr_injector_refresher_refreshes_total', { result: 'written' }) ?? 0) >= 3, 'three writes counted');
  t.equal(sample(families, 'buildkite_ecr_injector_refresher_leader'), 1);
  t.equal(sample(families, 'buildkite_ecr_injector_refresher_namespaces', { state: 'ready' }), 3);
  const expiry = sample(families, 'buildkite_ecr_injector_refresher_secret_expiry_seconds', { namespace: 'team-a' })!;
  t.ok(expiry > 11 * 3600 && expiry <= 12 * 3600, `seconds until expiry (${expiry})`);
  t.ok(sample(families, 'buildkite_ecr_injector_refresher_last_success_timestamp_seconds', { namespace: 'team-b' })! > 0);
  t.ok(families.some((f) => f.name === 'buildkite_ecr_injector_refresher_aws_request_duration_seconds'), 'AWS latency');
});

t.test('deleted and hand-edited Secrets are restored within seconds', async (t) => {
  const c = await startRefresherCluster(t, { namespaces: [namespace('team-a', OPTED_IN)] });
  const refresher = await c.start();
  await until(() => refresher.isLeader() && refresher.isReady() && c.secret('team-a') !== undefined, 'the Secret');
  const original = c.auths('team-a');

  c.api.remove(secretsOf('team-a'), 'ecr-credentials');
  await until(() => c.secret('team-a') !== undefined, 'the deleted Secret back', 5_000);
  t.same(c.auths('team-a'), original, 'restored with the same tokens');

  const edited = c.secret('team-a')!;
  edited.data = { '.dockerconfigjson': Buffer.from('{"auths":{"evil.example.com":{"auth":"x"}}}').toString('base64') };
  c.api.put(secretsOf('team-a'), edited);
  await until(() => JSON.stringify(c.auths('team-a')) === JSON.stringify(original), 'the hand edit undone', 5_000);
  t.pass('a hand edit of the content is undone');

  const extraKey = c.secret('team-a')!;
  extraKey.data = { ...extraKey.data, extra: Buffer.from('x').toString('base64') };
  c.api.put(secretsOf('team-a'), extraKey);
  await until(() => Object.keys(c.secret('team-a')?.data ?? {}).length === 1, 'the extra key removed', 5_000);
  t.equal(c.aws.ecrCalls().length, 2, 'restoring needs no new token');
});

t.test('a Secret it does not manage is left alone and reported; opt-out and a renamed pull Secret delete the managed one', async (t) => {
  const c = await startRefresherCluster(t, {
    namespaces: [namespace('team-a', OPTED_IN), namespace('theirs', OPTED_IN)],
  });
  const theirs = { apiVersion: 'v1', kind: 'Secret', type: 'kubernetes.io/dockerconfigjson', metadata: { name: 'ecr-credentials', namespace: 'theirs' }, data: { '.dockerconfigjson': Buffer.from('{"auths":{}}').toString('base64') } };
  c.api.seed(secretsOf('theirs'), [theirs]);
  const before = c.secret('theirs')!.metadata.resourceVersion;
  const refresher = await c.start({ metrics: { host: '127.0.0.1', port: 0 } });
  await until(() => refresher.isLeader() && refresher.isReady(), 'the first pass');
  t.equal(c.secret('theirs')!.metadata.resourceVersion, before, 'the unmanaged Secret is untouched');
  t.match(c.status('theirs'), { secret: 'ecr-credentials', state: 'unmanaged', error: /exists without the label app.kubernetes.io\/managed-by=buildkite-ecr-injector; it is left alone/ });
  t.ok(c.captured.records().some((r) => r.msg === 'pull Secret not ready' && r.namespace === 'theirs' && r.state === 'unmanaged'), 'logged');
  const families = await scrape(refresher.metricsPort!);
  t.equal(sample(families, 'buildkite_ecr_injector_refresher_namespaces', { state: 'unmanaged' }), 1, 'the metric says so');
  t.ok(sample(families, 'buildkite_ecr_injector_refresher_refreshes_total', { result: 'unmanaged' })! >= 1);

  c.relabel('team-a', { 'buildkite-ecr-injector/pull-secret': 'ecr-pull' });
  await until(() => c.secret('team-a', 'ecr-pull') !== undefined && c.secret('team-a') === undefined, 'the renamed Secret made and the old one deleted', 5_000);
  await until(() => c.status('team-a')?.secret === 'ecr-pull', 'the status follows the rename');

  c.relabel('team-a', { 'buildkite-ecr-injector/inject': undefined });
  await until(() => c.api.list(secretsOf('team-a')).length === 0 && c.status('team-a') === undefined, 'opt-out deletes the Secret and the status', 5_000);
  t.pass('opted out: no live credential left behind');
  t.equal(c.secret('theirs')!.metadata.resourceVersion, before, 'still untouched');
});

t.test('ECR errors and throttling: backoff, other namespaces unaffected, the status says so, then recovery', async (t) => {
  const c = await startRefresherCluster(t, {
    namespaces: [namespace('east-only', OPTED_IN, { [REGISTRIES]: EAST }), namespace('west-only', OPTED_IN, { [REGISTRIES]: WEST }), namespace('both', OPTED_IN)],
  });
  c.aws.fail({ ...ACCESS_DENIED, region: 'eu-west-1', count: Infinity });
  const refresher = await c.start();
  await until(() => refresher.isLeader() && refresher.isReady(), 'the first pass');
  t.match(c.status('east-only'), { state: 'ready' }, 'another region is unaffected');
  t.ok(c.auths('east-only')?.[EAST], 'and has its Secret');
  t.match(c.status('west-only'), { state: 'failing', error: new RegExp(`${WEST.replace(/\./g, '\\.')}: AccessDeniedException .*not authorized`) });
  t.equal(c.secret('west-only'), undefined, 'no Secret without a token');
  t.match(c.status('both'), { state: 'failing', registries: [EAST, WEST] }, 'a namespace with one broken registry is failing');
  t.same(Object.keys(c.auths('both')!), [EAST], 'but gets the registries that work');
  const failedCalls = () => c.aws.ecrCalls().filter((call) => call.region === 'eu-west-1').length;
  const early = failedCalls();
  await new Promise((resolve) => setTimeout(resolve, 1_000));
  t.ok(failedCalls() > early, 'retried');
  t.ok(failedCalls() <= early + 12, `backed off: ${failedCalls() - early} more calls in a second, not one per reconcile`);

  c.aws.clearFaults();
  await until(() => c.status('west-only')?.state === 'ready' && c.status('both')?.state === 'ready', 'recovery', 5_000);
  t.same(Object.keys(c.auths('both')!), [EAST, WEST], 'the missing registry is added');
  t.equal(c.status('both')?.error, undefined, 'the error is gone');

  c.aws.fail({ ...THROTTLING, count: Infinity });
  c.api.put(NAMESPACES, namespace('throttled', OPTED_IN, { [REGISTRIES]: '123456789012.dkr.ecr.ap-south-1.amazonaws.com' }));
  await until(() => c.status('throttled')?.state === 'failing', 'the throttled namespace reported', 5_000);
  t.match(c.status('throttled')?.error, /ThrottlingException \(HTTP 400\): Rate exceeded/);
  c.relabel('east-only', { team: 'x' });
  c.api.remove(secretsOf('east-only'), 'ecr-credentials');
  await until(() => c.secret('east-only') !== undefined, 'another namespace restored meanwhile (cached token)', 5_000);
  c.aws.clearFaults();
  await until(() => c.status('throttled')?.state === 'ready', 'throttling over', 5_000);
  t.pass('recovered after throttling');
});

t.test('refresh before expiry: a fake clock moves to refreshBefore ahead of the token expiry', async (t) => {
  const clock = new ManualClock();
  const c = await startRefresherCluster(t, { namespaces: [namespace('team-a', OPTED_IN, { [REGISTRIES]: EAST })], aws: { now: clock.now } });
  const refresher = await c.start({ clock, config: testConfig({ pullSecrets: { registries: [{ host: EAST }], refreshBefore: '2h' } }) });
  await until(() => refresher.isLeader() && refresher.isReady(), 'the first pass');
  const first = c.auths('team-a')![EAST]!.password;
  const firstStatus = c.status('team-a')!;
  t.equal(c.aws.ecrCalls().length, 1);

  clock.advance(10 * 3_600_000 - 60_000); // 12 h life, refreshBefore 2 h: due at 10 h
  await new Promise((resolve) => setTimeout(resolve, 300));
  t.equal(c.aws.ecrCalls().length, 1, 'a minute before refreshAt: no new token');
  t.equal(c.auths('team-a')![EAST]!.password, first);

  clock.advance(60_000);
  await until(() => c.auths('team-a')![EAST]!.password !== first, 'the refreshed token', 5_000);
  t.equal(c.aws.ecrCalls().length, 2, 'one new call');
  await until(() => c.status('team-a')?.refreshedAt !== firstStatus.refreshedAt, 'the status updated');
  t.equal(c.status('team-a')?.expiresAt, c.aws.issued.at(-1)!.expiresAt.toISOString(), 'the new expiry');
  t.ok(Date.parse(c.status('team-a')!.expiresAt!) - clock.now() > 11 * 3_600_000, 'good for another 12 h');
});
