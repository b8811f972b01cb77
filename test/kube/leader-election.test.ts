// Leader election against the local Kubernetes API stand-in, driven round by round with a fake clock:
// one of two candidates wins; a leader that stops renewing is replaced only after the lease duration
// (measured on the candidate's own clock); a released lease is taken at once; a write based on a stale
// read is refused with 409 and does not make a second leader; a leader that cannot renew steps down.
import { CoordinationV1Api, KubeConfig } from '@kubernetes/client-node';
import t, { type Test } from 'tap';
import { LeaderElector } from '../../src/kube/leader-election.js';
import { createLogger } from '../../src/log.js';
import { FakeKubeApi, type RecordedRequest } from '../helpers/fake-kube-api.js';

const NAMESPACE = 'buildkite-ecr-injector';
const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;
const log = createLogger({ level: 'silent' });

async function setup(t: Test) {
  const api = new FakeKubeApi();
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  let now = Date.parse('2030-01-01T00:00:00Z');
  const clock = {
    now: () => now,
    advance: (ms: number) => (now += ms),
  };
  const events: string[] = [];
  const candidate = (identity: string) =>
    new LeaderElector({
      api: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: NAMESPACE,
      name: 'buildkite-ecr-injector-leader',
      identity,
      log,
      now: clock.now,
      onStartedLeading: () => events.push(`${identity} leads`),
      onStoppedLeading: () => events.push(`${identity} stopped`),
    });
  return { api, clock, events, a: candidate('pod-a'), b: candidate('pod-b') };
}


t.test('two candidates: the first wins and renews, the second waits', async (t) => {
  const { api, clock, events, a, b } = await setup(t);
  t.equal(await a.tryAcquireOrRenew(), true, 'a creates the Lease and leads');
  t.equal(await b.tryAcquireOrRenew(), false, 'b sees it held');
  const lease = api.get(LEASES, 'buildkite-ecr-injector-leader')!;
  t.match(lease.spec, { holderIdentity: 'pod-a', leaseDurationSeconds: 15, leaseTransitions: 0 });
  t.match((lease.spec as { renewTime: string }).renewTime, /^2030-01-01T00:00:00\.000000Z$/, 'MicroTime with six fractional digits');

  for (let i = 0; i < 10; i++) {
    clock.advance(2_000);
    t.equal(await a.tryAcquireOrRenew(), true);
    t.equal(await b.tryAcquireOrRenew(), false, 'a renews, so b never sees an expired lease');
  }
  t.same(events, ['pod-a leads']);
  t.equal(a.isLeader() && !b.isLeader(), true);
});

t.test('a leader that stops renewing is replaced once the lease has expired on the waiting candidate\'s clock', async (t) => {
  const { api, clock, events, a, b } = await setup(t);
  await a.tryAcquireOrRenew();
  t.equal(await b.tryAcquireOrRenew(), false);
  // a hangs (no more rounds). Even an ancient renewTime does not count: b times the lease itself.
  clock.advance(14_000);
  t.equal(await b.tryAcquireOrRenew(), false, 'not before the lease duration');
  clock.advance(1_000);
  t.equal(await b.tryAcquireOrRenew(), true, 'b takes over after 15 s unchanged');
  t.match(api.get(LEASES, 'buildkite-ecr-injector-leader')!.spec, { holderIdentity: 'pod-b', leaseTransitions: 1 });
  t.equal(await a.tryAcquireOrRenew(), false, 'a wakes up and sees b holding it');
  t.notOk(a.isLeader(), 'a steps down');
  t.same(events, ['pod-a leads', 'pod-b leads', 'pod-a stopped']);
});

t.test('a leader that stops releases the lease and the other candidate takes it at once', async (t) => {
  const { api, clock, a, b } = await setup(t);
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew();
  await a.stop();
  t.notOk(a.isLeader());
  t.notOk((api.get(LEASES, 'buildkite-ecr-injector-leader')!.spec as { holderIdentity?: string }).holderIdentity, 'released');
  clock.advance(1);
  t.equal(await b.tryAcquireOrRenew(), true, 'no wait for expiry');
});

t.test('a write from a stale read gets 409 and does not make a second leader', async (t) => {
  const { api, clock, a, b } = await setup(t);
  await a.tryAcquireOrRenew();
  await b.tryAcquireOrRenew();
  await a.stop(); // released: both a and b would take it now
  // Hold the first PUT (a's) until b has read and written: a's write then carries a stale resourceVersion.
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let heldRequest: RecordedRequest | undefined;
  api.intercept = async (request) => {
    if (request.method === 'PUT' && request.path.startsWith(LEASES) && !heldRequest) {
      heldRequest = request;
      await held;
    }
  };
  clock.advance(1);
  const aRound = a.tryAcquireOrRenew();
  const deadline = Date.now() + 10_000;
  while (!heldRequest) {
    if (Date.now() > deadline) throw new Error('a never wrote');
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
  t.equal(await b.tryAcquireOrRenew(), true, 'b wins the race');
  release();
  t.equal(await aRound, false, 'a loses');
  t.equal(heldRequest.status, 409, "a's write was refused as a conflict");
  t.notOk(a.isLeader());
  t.equal((api.get(LEASES, 'buildkite-ecr-injector-leader')!.spec as { holderIdentity: string }).holderIdentity, 'pod-b');
});

t.test('a leader that cannot reach the API steps down after the renew deadline, before the lease expires for others', async (t) => {
  const { api, clock, events, a } = await setup(t);
  await a.tryAcquireOrRenew();
  api.failNext(100, 503);
  clock.advance(5_000);
  t.equal(await a.tryAcquireOrRenew(), true, 'one failed renewal is tolerated');
  clock.advance(5_000);
  t.equal(await a.tryAcquireOrRenew(), false, '10 s without a renewal: step down');
  t.same(events, ['pod-a leads', 'pod-a stopped']);
});

t.test('the election loop runs on its own: one leader among two, the other takes over when it stops', async (t) => {
  const api = new FakeKubeApi();
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig());
  const make = (identity: string) =>
    new LeaderElector({
      api: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: NAMESPACE,
      name: 'loop',
      identity,
      log,
      leaseDurationMs: 3_000,
      renewDeadlineMs: 2_000,
      retryPeriodMs: 50,
    });
  const a = make('pod-a');
  const b = make('pod-b');
  a.start();
  b.start();
  t.teardown(() => Promise.all([a.stop(), b.stop()]));
  const until = async (check: () => boolean, what: string) => {
    const deadline = Date.now() + 10_000;
    while (!check()) {
      if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
      await new Promise((resolve) => setTimeout(resolve, 20));
    }
  };
  await until(() => a.isLeader() || b.isLeader(), 'a leader');
  const [leader, other] = a.isLeader() ? [a, b] : [b, a];
  t.notOk(other.isLeader(), 'only one leads');
  await leader.stop();
  await until(() => other.isLeader(), 'the other to take over');
  t.notOk(leader.isLeader());
});
