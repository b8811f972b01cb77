// The certificate rules with a fake clock: renewal at two thirds of the serving lifetime, a CA rollover
// that never leaves the served certificate untrusted by a bundle an API server may still hold, forced
// rotations, and repair of broken state. Real keys and certificates; only time is simulated.
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { applyStep, caBundlePem, checkPolicy, fingerprintOf, nextStep, serviceDnsNames, settle, splitPemBundle, trustedCaCerts, type RotationPolicy, type Step, type TlsState } from '../../src/certs/cert-authority.js';
import { generateCertificates } from '../../src/certs/generate.js';
import { decodeTlsSecret, encodeTlsSecret } from '../../src/certs/cert-secret.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const policy: RotationPolicy = {
  dnsNames: serviceDnsNames('buildkite-ecr-injector', 'buildkite-ecr-injector'),
  servingLifetimeMs: 9 * DAY,
  caLifetimeMs: 30 * DAY,
  propagationMs: DAY,
  backdateMs: 60_000,
};
const start = new Date('2030-01-01T00:00:00Z');
const at = (ms: number) => new Date(start.getTime() + ms);

function fingerprints(state: TlsState): Set<string> {
  return new Set(trustedCaCerts(state).map((pem) => fingerprintOf(pem)!));
}

/** True when `serving` was signed by one of the CA certificates in `bundle` (what a TLS client checks). */
function trustedBy(serving: string, bundle: readonly string[]): boolean {
  const leaf = new X509Certificate(serving);
  return bundle.some((pem) => {
    const ca = new X509Certificate(pem);
    return leaf.checkIssued(ca) && leaf.verify(ca.publicKey);
  });
}

t.test('a fresh state is bootstrapped with a CA and a serving certificate for every service name', async (t) => {
  const { state, steps } = await settle({}, start, policy, new Set());
  t.same(
    steps.map((s) => s.kind),
    ['bootstrap'],
  );
  const serving = new X509Certificate(state.serving!.cert);
  for (const name of policy.dnsNames) t.match(serving.subjectAltName, `DNS:${name}`);
  t.equal(serving.publicKey.asymmetricKeyType, 'ec', 'ECDSA key');
  t.ok(trustedBy(state.serving!.cert, [state.ca!.cert]));
  t.ok(new X509Certificate(state.ca!.cert).ca, 'the CA is a CA');
  t.equal(new Date(serving.validTo).getTime(), Math.floor((start.getTime() + policy.servingLifetimeMs) / 1000) * 1000);
  t.equal(nextStep(state, start, policy, fingerprints(state)), undefined, 'nothing more to do');
});

t.test('45 simulated days: renewals at two thirds, two CA rollovers, every bundle in use trusts the served certificate', async (t) => {
  let { state } = await settle({}, start, policy, new Set());
  // What the webhook configuration holds: the leader publishes after each write.
  let published = fingerprints(state);
  // Bundles that API servers may still be using: the current one, and each one replaced less than a
  // propagation time ago.
  const bundles: { pems: string[]; replacedAt?: number }[] = [{ pems: trustedCaCerts(state) }];
  const history: { at: number; step: Step }[] = [];
  const step = 12 * HOUR;
  for (let now = step; now <= 45 * DAY; now += step) {
    const result = await settle(state, at(now), policy, published);
    for (const s of result.steps) history.push({ at: now, step: s });
    state = result.state;
    const current = trustedCaCerts(state);
    const last = bundles.at(-1)!;
    if (current.join() !== last.pems.join()) {
      last.replacedAt = now;
      bundles.push({ pems: current });
    }
    published = fingerprints(state);
    // The certificate now served must be trusted by every bundle that may still be in use.
    for (const bundle of bundles) {
      if (bundle.replacedAt !== undefined && now - bundle.replacedAt >= policy.propagationMs) continue;
      if (!trustedBy(state.serving!.cert, bundle.pems)) t.fail(`at day ${now / DAY} the served certificate is not trusted by a bundle in use`);
    }
    const servingNotAfter = new Date(new X509Certificate(state.serving!.cert).validTo).getTime();
    if (servingNotAfter <= start.getTime() + now) t.fail(`served certificate expired at day ${now / DAY}`);
    if (new Date(new X509Certificate(state.ca!.cert).validTo).getTime() <= start.getTime() + now) t.fail('CA expired');
  }

  const renewals = history.filter((h) => h.step.kind === 'issue-serving').map((h) => h.at / DAY);
  t.same(renewals.slice(0, 3), [6, 12, 18], 'the serving certificate is renewed with a third of its 9 days left');
  const rollover = history.filter((h) => h.step.kind !== 'issue-serving').map((h) => [h.at / DAY, h.step.kind]);
  // The CA (30 days) rolls over with 10 days left: next CA made and published at day 20, seen in the
  // bundle the next round, promoted a propagation time later, the old one dropped a day after that;
  // the CA made at day 20 rolls over at day 40 in turn.
  t.same(rollover, [
    [20, 'start-ca-rollover'],
    [20.5, 'mark-next-ca-published'],
    [21.5, 'promote-next-ca'],
    [22.5, 'drop-previous-ca'],
    [40, 'start-ca-rollover'],
    [40.5, 'mark-next-ca-published'],
    [41.5, 'promote-next-ca'],
    [42.5, 'drop-previous-ca'],
  ]);
  t.ok(bundles.some((b) => b.pems.length === 2), 'during the overlap the bundle holds two CAs');
  t.equal(trustedCaCerts(state).length, 1, 'and afterwards one');
});

t.test('a next CA that never shows up in the webhook configuration is never switched to', async (t) => {
  let { state } = await settle({}, start, policy, new Set());
  const original = state.ca!.cert;
  for (let now = 19 * DAY; now <= 25 * DAY; now += 12 * HOUR) {
    // The configuration is stuck with the first CA only (say, the patch is denied).
    ({ state } = await settle(state, at(now), policy, new Set([fingerprintOf(original)!])));
  }
  t.ok(state.next, 'the next CA waits');
  t.equal(state.ca!.cert, original, 'the serving certificate is still signed by the published CA');
  t.ok(trustedBy(state.serving!.cert, [original]));
});

t.test('forced rotations through the annotation', async (t) => {
  const { state } = await settle({}, start, policy, new Set());
  const serving = await settle({ ...state, rotate: 'serving' }, at(HOUR), policy, fingerprints(state));
  t.same(
    serving.steps.map((s) => s.kind),
    ['issue-serving'],
  );
  t.not(serving.state.serving!.cert, state.serving!.cert);
  t.equal(serving.state.rotate, undefined, 'the request is consumed');

  const ca = await settle({ ...state, rotate: 'ca' }, at(HOUR), policy, fingerprints(state));
  t.same(
    ca.steps.map((s) => s.kind),
    ['start-ca-rollover'],
  );
  t.ok(ca.state.next, 'a CA rollover started (with the usual overlap)');
  t.equal(ca.state.ca!.cert, state.ca!.cert, 'the serving CA does not change at once');
});

t.test('broken state is repaired', async (t) => {
  const { state } = await settle({}, start, policy, new Set());
  const stranger = await generateCertificates({ dnsNames: [...policy.dnsNames], now: start });

  t.match(nextStep({ ...state, serving: { cert: stranger.cert, key: stranger.key } }, start, policy, new Set()), {
    kind: 'issue-serving',
    reason: 'serving certificate is not signed by the CA',
  });
  t.match(nextStep({ ...state, serving: { cert: state.serving!.cert, key: stranger.key } }, start, policy, new Set()), {
    kind: 'issue-serving',
    reason: 'serving key does not match',
  });
  const narrow = await generateCertificates({ dnsNames: ['buildkite-ecr-injector'], ca: state.ca!, now: start });
  t.match(nextStep({ ...state, serving: { cert: narrow.cert, key: narrow.key } }, start, policy, new Set()), {
    kind: 'issue-serving',
    reason: /lacks .*buildkite-ecr-injector.buildkite-ecr-injector.svc,/,
  });
  t.match(nextStep({ ...state, ca: { cert: state.ca!.cert, key: stranger.caKey } }, start, policy, new Set()), { kind: 'bootstrap' });
  t.match(nextStep({ ...state, ca: { cert: 'garbage', key: 'garbage' } }, start, policy, new Set()), { kind: 'bootstrap' });
  t.match(nextStep({ ...state, ca: { cert: state.serving!.cert, key: state.serving!.key } }, start, policy, new Set()), {
    kind: 'bootstrap',
    reason: 'CA is not a CA certificate',
  });
  t.match(nextStep(state, at(31 * DAY), policy, new Set()), { kind: 'bootstrap', reason: 'CA has expired' });
  t.match(nextStep({ ...state, next: { cert: 'garbage', key: 'x' } }, start, policy, new Set()), { kind: 'drop-next-ca' });
  t.match(nextStep({ ...state, previous: { cert: stranger.caCert } }, start, policy, new Set()), { kind: 'stamp-previous-ca' });

  t.notOk(trustedBy(state.serving!.cert, [stranger.caCert]), 'the trust check used above can fail');
  const repaired = await applyStep(state, { kind: 'issue-serving', reason: 'test' }, start, policy);
  t.equal(nextStep(repaired, start, policy, new Set()), undefined);
});

t.test('policies that cannot overlap safely are refused', (t) => {
  t.throws(() => checkPolicy({ ...policy, propagationMs: 2 * DAY }), /six times the propagation/);
  t.throws(() => checkPolicy({ ...policy, caLifetimeMs: 20 * DAY }), /three serving lifetimes/);
  t.throws(() => checkPolicy({ ...policy, dnsNames: [] }), /DNS name/);
  t.doesNotThrow(() => checkPolicy(policy));
  t.end();
});

t.test('the state survives a trip through the Secret, and the bundle lists every trusted CA', async (t) => {
  let { state } = await settle({}, start, policy, new Set());
  ({ state } = await settle({ ...state, rotate: 'ca' }, start, policy, new Set()));
  state = { ...state, next: { ...state.next!, publishedAt: at(HOUR) }, previous: { cert: state.ca!.cert, retiredAt: at(2 * HOUR) } };
  const { data, annotations } = encodeTlsSecret(state);
  t.same(Object.keys(data).sort(), ['ca-bundle.crt', 'ca-next.crt', 'ca-next.key', 'ca-previous.crt', 'ca.crt', 'ca.key', 'tls.crt', 'tls.key']);
  const decoded = decodeTlsSecret({ data, metadata: { annotations: { ...annotations, unrelated: 'kept' } } });
  delete state.rotate;
  t.same(decoded, state);
  const bundle = splitPemBundle(Buffer.from(data['ca-bundle.crt']!, 'base64').toString());
  t.same(bundle, splitPemBundle(caBundlePem(state)));
  t.equal(bundle.length, 3);
  t.same(decodeTlsSecret({ data: {}, metadata: { annotations: { 'buildkite-ecr-injector/rotate': 'everything' } } }), {}, 'unknown requests are ignored');
});
