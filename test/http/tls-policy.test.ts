// "Who may talk to us", through a real HTTPS listener: client certificates against --client-ca
// (and its reload), the lowest TLS version, the cipher list, and HTTP/1.1 only.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { connect as tlsConnect, type ConnectionOptions } from 'node:tls';
import t from 'tap';
import { ClientCaError, readCaBundle } from '../../src/http/client-ca.js';
import { checkCiphers, DEFAULT_CIPHERS, parseMinVersion, TlsPolicyError } from '../../src/http/tls-policy.js';
import { createCa, issueClientCertificate, requestOnce, startTestWebhook } from '../helpers/tls-webhook.js';

/** Finish a TLS handshake (and the server's verdict on it) or fail with the error that ended it. */
function handshake(port: number, options: ConnectionOptions): Promise<{ protocol: string | null; alpn: string | false | null; cipher: string }> {
  return new Promise((resolve, reject) => {
    const socket = tlsConnect({ host: '127.0.0.1', port, servername: 'localhost', ...options }, () => {
      const result = { protocol: socket.getProtocol(), alpn: socket.alpnProtocol, cipher: socket.getCipher().name };
      socket.end();
      resolve(result);
    });
    socket.on('error', reject);
  });
}

void t.test('parseMinVersion and checkCiphers refuse what they cannot honour', (t) => {
  t.equal(parseMinVersion('tlsv1.3'), 'TLSv1.3');
  t.throws(() => parseMinVersion('TLSv1.1'), TlsPolicyError);
  t.equal(checkCiphers(` ${DEFAULT_CIPHERS} `), DEFAULT_CIPHERS);
  t.throws(() => checkCiphers('NOT-A-CIPHER'), TlsPolicyError);
  t.throws(() => checkCiphers(''), TlsPolicyError);
  t.end();
});

void t.test('readCaBundle wants CA certificates', async (t) => {
  const dir = t.testdir();
  const ca = await createCa();
  await writeFile(join(dir, 'ca.crt'), ca.caCert + ca.caCert);
  await writeFile(join(dir, 'leaf.crt'), ca.cert);
  await writeFile(join(dir, 'empty.crt'), 'nothing here\n');
  t.match(await readCaBundle(join(dir, 'ca.crt')), /BEGIN CERTIFICATE[\s\S]+BEGIN CERTIFICATE/);
  await t.rejects(readCaBundle(join(dir, 'leaf.crt')), ClientCaError);
  await t.rejects(readCaBundle(join(dir, 'empty.crt')), ClientCaError);
  await t.rejects(readCaBundle(join(dir, 'missing.crt')), ClientCaError);
});

void t.test('with --client-ca, only clients with a certificate the CA signed are served', async (t) => {
  const clientCa = await createCa();
  const dir = t.testdir();
  const caPath = join(dir, 'client-ca.crt');
  await writeFile(caPath, clientCa.caCert);
  const webhook = await startTestWebhook(t, { dir, clientCaPath: caPath, watchIntervalMs: 50 });
  const good = await issueClientCertificate({ cert: clientCa.caCert, key: clientCa.caKey });
  const stranger = await createCa();
  const bad = await issueClientCertificate({ cert: stranger.caCert, key: stranger.caKey });

  const served = await requestOnce(webhook.port, { ca: webhook.ca, ...good });
  t.equal(served.status, 200, 'a client certificate from the CA is served');

  const review = await requestOnce(webhook.port, {
    ca: webhook.ca,
    ...good,
    method: 'POST',
    path: '/mutate',
    headers: { 'content-type': 'application/json' },
    body: JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: 'AdmissionReview', request: { uid: 'u-1' } }),
  });
  t.equal(review.status, 200);
  t.equal((JSON.parse(review.body) as { response: { uid: string } }).response.uid, 'u-1');

  await t.rejects(requestOnce(webhook.port, { ca: webhook.ca }), 'no client certificate: refused');
  await t.rejects(requestOnce(webhook.port, { ca: webhook.ca, ...bad }), 'a certificate from another CA: refused');

  // Rotate the client CA on disk: the new CA's clients get in, the old CA's no longer do.
  await writeFile(caPath, stranger.caCert);
  const deadline = Date.now() + 10_000;
  let switched = false;
  while (!switched && Date.now() < deadline) {
    switched = await requestOnce(webhook.port, { ca: webhook.ca, ...bad }).then(
      (answer) => answer.status === 200,
      () => false,
    );
    if (!switched) await new Promise((resolve) => setTimeout(resolve, 50));
  }
  t.ok(switched, 'after the client CA file changed, its clients are served');
  await t.rejects(requestOnce(webhook.port, { ca: webhook.ca, ...good }), 'clients of the old CA are refused after the reload');
});

void t.test('without --client-ca no client certificate is asked for', async (t) => {
  const webhook = await startTestWebhook(t);
  t.equal((await requestOnce(webhook.port, { ca: webhook.ca })).status, 200);
});

void t.test('TLS 1.2 is the lowest version by default; TLS 1.1 is refused by the server', async (t) => {
  const webhook = await startTestWebhook(t);
  const tls12 = await handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2' });
  t.equal(tls12.protocol, 'TLSv1.2');
  // The client allows old protocols and ciphers (security level 0), so the refusal is the server's.
  await t.rejects(
    handshake(webhook.port, { ca: webhook.ca, minVersion: 'TLSv1', maxVersion: 'TLSv1.1', ciphers: 'DEFAULT@SECLEVEL=0' }),
    { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' },
  );
});

void t.test('--tls-min-version TLSv1.3 refuses TLS 1.2', async (t) => {
  const webhook = await startTestWebhook(t, { tlsPolicy: { minVersion: 'TLSv1.3', ciphers: DEFAULT_CIPHERS } });
  t.equal((await handshake(webhook.port, { ca: webhook.ca })).protocol, 'TLSv1.3');
  await t.rejects(handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2' }), { code: 'ERR_SSL_TLSV1_ALERT_PROTOCOL_VERSION' });
});

void t.test('the default ciphers refuse TLS 1.2 suites without forward secrecy or AEAD', async (t) => {
  const webhook = await startTestWebhook(t);
  const aead = await handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' });
  t.equal(aead.cipher, 'ECDHE-ECDSA-AES128-GCM-SHA256');
  await t.rejects(handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-SHA256' }), 'CBC suite');
  await t.rejects(handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2', ciphers: 'AES128-GCM-SHA256' }), 'no forward secrecy');
});

void t.test('--tls-ciphers narrows the list', async (t) => {
  const webhook = await startTestWebhook(t, { tlsPolicy: { minVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES256-GCM-SHA384' } });
  const chosen = await handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2' });
  t.equal(chosen.cipher, 'ECDHE-ECDSA-AES256-GCM-SHA384');
  await t.rejects(handshake(webhook.port, { ca: webhook.ca, maxVersion: 'TLSv1.2', ciphers: 'ECDHE-ECDSA-AES128-GCM-SHA256' }));
});

void t.test('HTTP/2 is off: ALPN picks http/1.1, and an h2-only client is turned away', async (t) => {
  const webhook = await startTestWebhook(t);
  t.equal((await handshake(webhook.port, { ca: webhook.ca, ALPNProtocols: ['h2', 'http/1.1'] })).alpn, 'http/1.1');
  await t.rejects(handshake(webhook.port, { ca: webhook.ca, ALPNProtocols: ['h2'] }));
});
