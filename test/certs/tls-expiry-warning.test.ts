// Files mode depends on someone else (cert-manager) renewing the certificate: the webhook warns well
// before expiry (30 days, or a quarter of a short lifetime) so a stuck renewal is noticed in time.
import { PassThrough } from 'node:stream';
import t from 'tap';
import { generateCertificates, writeCertificates } from '../../src/certs/generate.js';
import { createLogger } from '../../src/log.js';
import { FileCertificateSource } from '../../src/certs/file-certificate-source.js';
import { expiryWarningMs, isNearExpiry } from '../../src/certs/certificate-source.js';

const DAY = 24 * 60 * 60 * 1000;

t.test('the warning window', (t) => {
  const notBefore = new Date('2030-01-01T00:00:00Z');
  const year = { notBefore, notAfter: new Date(notBefore.getTime() + 365 * DAY) };
  t.equal(expiryWarningMs(year), 30 * DAY, 'long-lived: 30 days');
  t.equal(expiryWarningMs({ notBefore, notAfter: new Date(notBefore.getTime() + 8 * DAY) }), 2 * DAY, 'short-lived: a quarter');
  t.notOk(isNearExpiry(year, new Date(year.notAfter.getTime() - 31 * DAY)));
  t.ok(isNearExpiry(year, new Date(year.notAfter.getTime() - 29 * DAY)));
  t.ok(isNearExpiry(year, new Date(year.notAfter.getTime() + DAY)), 'expired counts too');
  t.end();
});

t.test('a files-mode certificate close to expiry is logged as a warning', async (t) => {
  const dir = t.testdir();
  const lines: Record<string, unknown>[] = [];
  const stream = new PassThrough();
  stream.on('data', (chunk: Buffer) => {
    for (const line of chunk.toString().split('\n').filter(Boolean)) lines.push(JSON.parse(line) as Record<string, unknown>);
  });
  const log = createLogger({ level: 'info', destination: stream });
  // 20 days left of a 365-day certificate.
  const set = await generateCertificates({ dnsNames: ['localhost'], now: new Date(Date.now() - 345 * DAY), validityDays: 365 });
  const paths = await writeCertificates(dir, set);
  const source = await FileCertificateSource.open(paths.cert, paths.key, log, 50);
  t.teardown(() => source.close());
  const warned = () => lines.find((l) => l.msg === 'serving certificate expires soon and has not been renewed');
  const deadline = Date.now() + 5_000;
  while (!warned() && Date.now() < deadline) await new Promise((resolve) => setTimeout(resolve, 20));
  const warning = warned();
  t.ok(warning, 'warned at load');
  t.equal(warning?.level, 40);
  t.equal(warning?.daysLeft, 19);
  t.notMatch(JSON.stringify(lines), /PRIVATE KEY/, 'no key material in the log');

  t.equal(source.warnIfNearExpiry(new Date(Date.now() - 30 * DAY)), false, 'a month earlier it would have been quiet');
});
