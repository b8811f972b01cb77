// The certificate check end to end over real TLS: the webhook publishes the chain it serves on GET
// /certificate (the very certificate of the handshake, and never its key), and doctor's check of
// that chain against a caBundle says trusted, stale, expired or wrong name.
import { X509Certificate } from 'node:crypto';
import t from 'tap';
import { caBundleOf, generateCertificates } from '../../src/certs/generate.js';
import { CERTIFICATE_PATH, DAY_MS } from '../../src/certs/certificate-source.js';
import { verifyServingChain } from '../../src/doctor/serving-chain.js';
import { httpsRequest } from '../helpers/https-client.js';
import { startTestWebhook } from '../helpers/tls-webhook.js';

t.test('GET /certificate answers the served chain, public parts only, and the caBundle of its CA trusts it', async (t) => {
  const webhook = await startTestWebhook(t);
  const res = await httpsRequest({ port: webhook.port, path: CERTIFICATE_PATH, method: 'GET', ca: webhook.ca });
  t.equal(res.status, 200);
  t.match(String(res.headers['content-type']), /^text\/plain/);
  t.notMatch(res.text, /PRIVATE KEY/, 'never the key');
  t.equal(new X509Certificate(res.text).fingerprint256, res.peerFingerprint256, 'the certificate of the TLS handshake itself');
  const now = new Date();
  const trusted = verifyServingChain(res.text, caBundleOf(webhook.ca), 'localhost', now);
  t.equal(trusted.problem, undefined);
  t.ok(trusted.daysLeft! >= 363 && trusted.daysLeft! <= 365, `about a year left: ${trusted.daysLeft}`);

  const other = await generateCertificates({ dnsNames: ['other.invalid'] });
  t.match(verifyServingChain(res.text, caBundleOf(other.caCert), 'localhost', now).problem, /caBundle does not trust the served certificate .*stale/);
  t.match(verifyServingChain(res.text, caBundleOf(webhook.ca), 'buildkite-ecr-injector.buildkite-ecr-injector.svc', now).problem, /does not name buildkite-ecr-injector\.buildkite-ecr-injector\.svc/);
  t.match(verifyServingChain(res.text, undefined, 'localhost', now).problem, /no caBundle/);
  t.match(verifyServingChain(res.text, caBundleOf(webhook.ca), 'localhost', new Date(now.getTime() + 400 * DAY_MS)).problem, /expired at/);
});

t.test('a chain with an intermediate verifies through it; a bundle holding several CAs trusts any of them', async (t) => {
  const root = await generateCertificates({ dnsNames: ['unused.invalid'] });
  const unrelated = await generateCertificates({ dnsNames: ['unused.invalid'] });
  const leaf = await generateCertificates({ dnsNames: ['svc.ns.svc'], ca: { cert: root.caCert, key: root.caKey } });
  const bundle = Buffer.from(`${unrelated.caCert}\n${root.caCert}`).toString('base64');
  t.equal(verifyServingChain(`${leaf.cert}\n${root.caCert}`, bundle, 'svc.ns.svc', new Date()).problem, undefined);
  t.equal(verifyServingChain(leaf.cert, caBundleOf(root.caCert), 'svc.ns.svc', new Date()).problem, undefined);
  t.match(verifyServingChain('not a certificate', bundle, 'svc.ns.svc', new Date()).problem, /served no certificate/);
});
