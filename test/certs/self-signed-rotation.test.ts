// The promise of self-signed mode, end to end: two real HTTPS webhook replicas (startServer, the real
// Fastify app) in self-signed mode against the local Kubernetes API stand-in, while a fake clock runs
// 24 days of certificate life in 12-hour steps (three serving renewals and a CA rollover), and a
// client keeps connecting to both replicas the way the API server does: verifying the serving
// certificate and the Service name against the caBundle it reads from the MutatingWebhookConfiguration.
// The API server may act on a bundle for a while after it was replaced, so every connection is
// checked against each bundle that was replaced less than a propagation time ago as well.
// Every certificate is valid in real time (validity is back-dated past the simulated span), so a
// failed handshake can only mean a trust or name mismatch: exactly what a rotation must not cause.
import { request } from 'node:https';
import type { TLSSocket } from 'node:tls';
import t from 'tap';
import { splitPemBundle } from '../../src/certs/cert-authority.js';
import { caBundleOf, generateCertificates } from '../../src/certs/generate.js';
import { loadConfig } from '../../src/files/config-file.js';
import { createLogger } from '../../src/log.js';
import { StaticNamespaceSource } from '../../src/webhook/namespace-labels.js';
import type { SelfSignedTls } from '../../src/certs/self-signed-tls.js';
import { startServer, type RunningServer } from '../../src/http/server.js';
import { FakeClock, NAMES, NAMESPACE, RecordingMetrics, SERVICE_HOST, caBundles, secretData, startCluster, until } from '../helpers/self-signed-cluster.js';

const HOUR = 60 * 60 * 1000;
const DAY = 24 * HOUR;
const ROTATION = { servingLifetimeMs: 9 * DAY, caLifetimeMs: 30 * DAY, propagationMs: DAY, backdateMs: 90 * DAY };

type Handshake = { ok: true; fingerprint: string; validTo: number } | { ok: false; error: string };

function connect(port: number, caPems: string[]): Promise<Handshake> {
  return new Promise((resolve) => {
    const req = request({ host: '127.0.0.1', port, path: '/healthz', ca: caPems, servername: SERVICE_HOST, agent: false }, (res) => {
      const peer = (res.socket as TLSSocket).getPeerCertificate();
      res.resume();
      res.on('end', () => resolve({ ok: true, fingerprint: peer.fingerprint256, validTo: Date.parse(peer.valid_to) }));
    });
    req.on('error', (error) => resolve({ ok: false, error: error.message }));
    req.end();
  });
}

t.test('serving renewals and a CA rollover under constant traffic: zero failed handshakes', async (t) => {
  const { api, kubeConfig } = await startCluster(t);
  const clock = new FakeClock();
  const log = createLogger({ level: 'silent' });
  const config = await loadConfig(undefined);
  const metrics = new RecordingMetrics();
  const start = (identity: string) =>
    startServer({
      config,
      log,
      host: '127.0.0.1',
      port: 0,
      namespaces: { source: new StaticNamespaceSource({}) },
      certificateMetrics: metrics,
      tls: {
        mode: 'self-signed',
        kubeConfig,
        namespace: NAMESPACE,
        ...NAMES,
        identity,
        clock: clock.now,
        rotation: ROTATION,
        resyncIntervalMs: 2_000,
        leaderElection: { leaseDurationMs: 10_000, renewDeadlineMs: 8_000, retryPeriodMs: 200 },
      },
    });
  const servers: RunningServer[] = [await start('pod-a'), await start('pod-b')];
  t.teardown(() => Promise.all(servers.map((s) => s.close())));
  const tlsOf = (server: RunningServer) => server.certificates as SelfSignedTls;

  const settled = () => {
    const data = secretData(api);
    if (!data) return false;
    const bundle = caBundleOf(data['ca-bundle.crt']!);
    return caBundles(api).every((b) => b === bundle) && servers.every((s) => s.certificates.current()?.cert === data['tls.crt']);
  };
  await until(settled, 'the first certificate to be published and served');
  for (const server of servers) {
    const ready = await server.app.inject({ method: 'GET', url: '/readyz' });
    t.equal(ready.statusCode, 200, 'ready once the certificate from the Secret is loaded');
  }

  // The client's view of the published bundles, with the fake time each was replaced.
  const bundles: { key: string; pems: string[]; replacedAt?: number }[] = [];
  const observeBundle = () => {
    const published = caBundles(api)[0];
    if (!published) return;
    const pems = splitPemBundle(Buffer.from(published, 'base64').toString('utf8'));
    const key = pems.join('');
    const last = bundles.at(-1);
    if (last?.key === key) return;
    if (last) last.replacedAt = clock.now().getTime();
    bundles.push({ key, pems });
  };
  const inUse = (bundle: { replacedAt?: number }) =>
    bundle.replacedAt === undefined || clock.now().getTime() - bundle.replacedAt < ROTATION.propagationMs;

  const stats = { handshakes: 0, failures: [] as string[], served: new Set<string>() };
  const round = async () => {
    observeBundle();
    for (const server of servers) {
      for (const bundle of bundles.filter(inUse)) {
        const result = await connect(server.port, bundle.pems);
        if (result.ok) {
          stats.handshakes++;
          stats.served.add(result.fingerprint);
          if (result.validTo <= clock.now().getTime()) stats.failures.push(`served a certificate expired at fake ${clock.now().toISOString()}`);
        } else if (inUse(bundle)) {
          // Only a bundle an API server may still hold when the handshake ended counts.
          stats.failures.push(`${result.error} (bundle of ${bundle.pems.length} CA, fake ${clock.now().toISOString()})`);
        }
      }
    }
  };

  // Traffic in the background the whole time, plus one full round after every settled step.
  let driving = true;
  const background = (async () => {
    while (driving) {
      await round();
      await new Promise((resolve) => setTimeout(resolve, 5));
    }
  })();

  for (let elapsed = 0; elapsed < 24 * DAY; elapsed += 12 * HOUR) {
    clock.advance(12 * HOUR);
    const leader = servers.map(tlsOf).find((tls) => tls.isLeader());
    if (!leader) throw new Error('no leader');
    await leader.reconcile();
    await until(settled, `the step at day ${(elapsed + 12 * HOUR) / DAY} to settle`);
    await round();
  }
  driving = false;
  await background;

  t.same(stats.failures, [], 'zero failed handshakes');
  t.ok(stats.handshakes >= 100, `${stats.handshakes} verified handshakes`);
  t.ok(stats.served.size >= 5, `${stats.served.size} serving certificates seen (first, renewals at days 6, 12, 18, new CA at 21)`);
  const cas = new Set(bundles.flatMap((b) => b.pems));
  t.equal(cas.size, 2, 'the CA was rolled over once');
  t.ok(
    bundles.some((b) => b.pems.length === 2),
    'the bundle held both CAs during the overlap',
  );
  t.equal(bundles.at(-1)!.pems.length, 1, 'and the old CA was dropped afterwards');
  t.ok(metrics.rotations.ca >= 2 && metrics.rotations.serving >= 5, 'rotations counted');

  const stranger = await generateCertificates({ dnsNames: [SERVICE_HOST] });
  const refused = await connect(servers[0]!.port, [stranger.caCert]);
  t.equal(refused.ok, false, 'a bundle without our CA is refused: the check above can fail');
  const wrongName = await new Promise<boolean>((resolve) => {
    const req = request(
      { host: '127.0.0.1', port: servers[0]!.port, path: '/healthz', ca: bundles.at(-1)!.pems, servername: 'other.example.com', agent: false },
      () => resolve(true),
    );
    req.on('error', () => resolve(false));
    req.end();
  });
  t.equal(wrongName, false, 'and so is a name the certificate does not carry');
});
