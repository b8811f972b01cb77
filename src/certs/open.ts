// Owns the choice of where the serving certificate comes from (`serve --tls-mode`): PEM files that
// someone else renews (cert-manager), a local CA and localhost certificate generated on first start,
// or the self-signed mode's Secret kept by an elected leader.
import { access } from 'node:fs/promises';
import type { Logger } from '../log.js';
import type { CertificateMetrics } from './cert-metrics.js';
import { readCertificatePair, type CertificateSource } from './certificate-source.js';
import { FileCertificateSource } from './file-certificate-source.js';
import { certificatePaths, generateCertificates, writeCertificates } from './generate.js';
import type { SelfSignedTlsOptions } from './self-signed-tls.js';

export type TlsSettings =
  | { mode: 'files'; certPath: string; keyPath: string }
  /** Local runs: a CA and a localhost certificate generated into `dir` on first start. */
  | { mode: 'local'; dir: string }
  /** A CA and serving certificate kept in a Secret by the elected leader (see self-signed-tls.ts). */
  | ({ mode: 'self-signed' } & Omit<SelfSignedTlsOptions, 'log' | 'metrics'>);

export async function openCertificateSource(tls: TlsSettings, log: Logger, metrics: CertificateMetrics, watchIntervalMs?: number): Promise<CertificateSource> {
  if (tls.mode === 'self-signed') {
    // Loaded only in this mode: it needs @kubernetes/client-node (some 70 MB of RSS).
    const { SelfSignedTls } = await import('./self-signed-tls.js');
    return SelfSignedTls.start({ ...tls, log, metrics });
  }
  if (tls.mode === 'files') return FileCertificateSource.open(tls.certPath, tls.keyPath, log, watchIntervalMs);
  const paths = certificatePaths(tls.dir);
  if (!(await isUsablePair(paths.cert, paths.key))) {
    const set = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1', '::1'] });
    await writeCertificates(tls.dir, set);
    log.info({ dir: tls.dir }, 'generated a local CA and a localhost serving certificate');
  }
  return FileCertificateSource.open(paths.cert, paths.key, log, watchIntervalMs);
}

async function isUsablePair(certPath: string, keyPath: string): Promise<boolean> {
  try {
    await access(certPath);
    const pair = await readCertificatePair(certPath, keyPath);
    return pair.notAfter.getTime() > Date.now();
  } catch {
    return false;
  }
}
