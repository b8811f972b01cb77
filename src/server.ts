// Owns a running webhook: the certificate source, the namespace label source, the Fastify app and its
// HTTPS listener, wired together and closable as one. Signals stay in the CLI entry (cli.ts).
import { access } from 'node:fs/promises';
import type { Server as HttpsServer } from 'node:https';
import type { AddressInfo } from 'node:net';
import type { FastifyInstance } from 'fastify';
import { buildApp } from './app.js';
import { noCertificateMetrics, type CertificateMetrics } from './cert-metrics.js';
import { certificatePaths, generateCertificates, writeCertificates } from './certs.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import { FileNamespaceSource, type NamespaceLabelSource } from './namespaces.js';
import { SelfSignedTls, type SelfSignedTlsOptions } from './self-signed-tls.js';
import { FileCertificateSource, readCertificatePair, type CertificateSource, type ServingCertificate } from './tls-files.js';

export type TlsSettings =
  | { mode: 'files'; certPath: string; keyPath: string }
  /** Local runs: a CA and a localhost certificate generated into `dir` on first start. */
  | { mode: 'local'; dir: string }
  /** A CA and serving certificate kept in a Secret by the elected leader (see self-signed-tls.ts). */
  | ({ mode: 'self-signed' } & Omit<SelfSignedTlsOptions, 'log' | 'metrics'>);

export interface ServeOptions {
  config: Config;
  log: Logger;
  host: string;
  port: number;
  tls: TlsSettings;
  /** Where namespace labels come from: a YAML file, or a ready-made source. */
  namespaces: { file: string } | { source: NamespaceLabelSource };
  watchIntervalMs?: number;
  /** Certificate metrics hook (not-after, rotations, caBundle patches, leader status). */
  certificateMetrics?: CertificateMetrics;
}

export interface RunningServer {
  app: FastifyInstance;
  port: number;
  certificates: CertificateSource;
  namespaces: NamespaceLabelSource;
  close(): Promise<void>;
}

export async function startServer(options: ServeOptions): Promise<RunningServer> {
  const { log } = options;
  const metrics = options.certificateMetrics ?? noCertificateMetrics;
  const certificates = await openCertificates(options.tls, log, metrics, options.watchIntervalMs);
  let namespaces: NamespaceLabelSource;
  try {
    namespaces =
      'file' in options.namespaces
        ? await FileNamespaceSource.open(options.namespaces.file, log, options.watchIntervalMs)
        : options.namespaces.source;
  } catch (error) {
    await certificates.close();
    throw error;
  }
  // Self-signed mode may start before the leader has written the Secret: listen with a throwaway
  // pair so probes get answers, and stay unready until the real certificate arrives.
  const initial = certificates.current() ?? (await generateCertificates({ dnsNames: ['localhost'], validityDays: 1 }));
  if (certificates.current()) metrics.setCertificateNotAfter('serving', certificates.current()!.notAfter);
  const app = buildApp({
    config: options.config,
    namespaces,
    log,
    https: { cert: initial.cert, key: initial.key },
    isReady: () => (certificates.current()?.notAfter.getTime() ?? 0) > Date.now(),
  });
  const serve = ({ cert, key, notAfter }: ServingCertificate) => {
    // New handshakes use the new pair; connections already open keep theirs.
    (app.server as unknown as HttpsServer).setSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    metrics.setCertificateNotAfter('serving', notAfter);
  };
  certificates.onChange(serve);
  // A certificate that arrived while the app was being built (self-signed mode) was not seen by the listener.
  const arrived = certificates.current();
  if (arrived && arrived.cert !== initial.cert) serve(arrived);
  app.addHook('onClose', async () => {
    await certificates.close();
    await namespaces.close();
  });
  try {
    await app.listen({ host: options.host, port: options.port });
  } catch (error) {
    await app.close();
    throw error;
  }
  const port = (app.server.address() as AddressInfo).port;
  log.info({ host: options.host, port, tls: options.tls.mode }, 'webhook listening');
  return { app, port, certificates, namespaces, close: () => app.close() };
}

async function openCertificates(tls: TlsSettings, log: Logger, metrics: CertificateMetrics, watchIntervalMs?: number): Promise<CertificateSource> {
  if (tls.mode === 'self-signed') {
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
