// Owns certificate generation: a CA and a serving certificate signed by it, via `selfsigned`
// (SHA-256, ECDSA P-256, SANs). The API server's Go TLS client checks SANs, never the CN.
import { X509Certificate } from 'node:crypto';
import { mkdir, writeFile } from 'node:fs/promises';
import { isIP } from 'node:net';
import { dirname, join } from 'node:path';

export interface CertificateSet {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export interface CertificateRequest {
  dnsNames: readonly string[];
  ipAddresses?: readonly string[];
  /** Lifetime of the serving certificate. */
  validityDays?: number;
  /** Lifetime of the CA (longer, so a serving-certificate renewal does not need a new bundle). */
  caValidityDays?: number;
  now?: Date;
  /** Start of validity; by default a minute before `now`. */
  notBefore?: Date;
  /** Sign with this CA instead of making a new one. */
  ca?: { cert: string; key: string };
}

export interface CaRequest {
  validityDays: number;
  now?: Date;
  notBefore?: Date;
  commonName?: string;
}

const DAY_MS = 24 * 60 * 60 * 1000;

function validityStart(now: Date, notBefore: Date | undefined): Date {
  // Start validity a minute early by default: clocks in a cluster are never exactly in step.
  return notBefore ?? new Date(now.getTime() - 60_000);
}

const KEY = { keyType: 'ec' as const, curve: 'P-256' as const, algorithm: 'sha256' as const };

/**
 * `selfsigned`, loaded on first use: with its ASN.1 and crypto dependencies it is about 130 ms of
 * module loading and 8 MB of memory, which `--tls-mode files` never needs.
 */
async function loadSelfsigned() {
  return (await import('selfsigned')).default;
}

/** A new self-signed CA (ECDSA P-256, SHA-256) that may sign serving certificates only. */
export async function generateCa(request: CaRequest): Promise<{ cert: string; key: string }> {
  const now = request.now ?? new Date();
  const selfsigned = await loadSelfsigned();
  const pems = await selfsigned.generate([{ name: 'commonName', value: request.commonName ?? 'buildkite-ecr-injector CA' }], {
    ...KEY,
    notBeforeDate: validityStart(now, request.notBefore),
    notAfterDate: new Date(now.getTime() + request.validityDays * DAY_MS),
    extensions: [
      { name: 'basicConstraints', cA: true, critical: true },
      { name: 'keyUsage', keyCertSign: true, cRLSign: true, digitalSignature: true, critical: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

export async function generateCertificates(request: CertificateRequest): Promise<CertificateSet> {
  const now = request.now ?? new Date();
  const dnsNames = request.dnsNames.filter(Boolean);
  const ipAddresses = request.ipAddresses ?? [];
  if (dnsNames.length === 0 && ipAddresses.length === 0) throw new Error('a certificate needs at least one DNS name or IP address');
  for (const ip of ipAddresses) if (isIP(ip) === 0) throw new Error(`${ip} is not an IP address`);
  const common = { ...KEY, notBeforeDate: validityStart(now, request.notBefore) };
  const ca = request.ca ?? (await generateCa({ now, notBefore: request.notBefore, validityDays: request.caValidityDays ?? 3650 }));

  const selfsigned = await loadSelfsigned();
  const serving = await selfsigned.generate([{ name: 'commonName', value: dnsNames[0] ?? ipAddresses[0] ?? 'localhost' }], {
    ...common,
    notAfterDate: new Date(now.getTime() + (request.validityDays ?? 365) * DAY_MS),
    ca,
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, keyEncipherment: true, critical: true },
      { name: 'extKeyUsage', serverAuth: true },
      {
        name: 'subjectAltName',
        altNames: [...dnsNames.map((value) => ({ type: 2 as const, value })), ...ipAddresses.map((ip) => ({ type: 7 as const, ip }))],
      },
    ],
  });
  return { caCert: ca.cert, caKey: ca.key, cert: serving.cert, key: serving.private };
}

export interface CertificatePaths {
  caCert: string;
  caKey: string;
  cert: string;
  key: string;
}

export function certificatePaths(dir: string): CertificatePaths {
  return { caCert: join(dir, 'ca.crt'), caKey: join(dir, 'ca.key'), cert: join(dir, 'tls.crt'), key: join(dir, 'tls.key') };
}

/**
 * mkdir -p, one level at a time. Node's `mkdir(dir, { recursive: true })` retries forever when a
 * parent exists yet creating the child answers ENOENT (`certs --out /proc/x` hung); here that
 * ENOENT is the answer.
 */
async function ensureDirectory(dir: string): Promise<void> {
  try {
    await mkdir(dir);
    return;
  } catch (error) {
    const code = (error as NodeJS.ErrnoException).code;
    if (code === 'EEXIST') return;
    if (code !== 'ENOENT' || dirname(dir) === dir) throw error;
  }
  await ensureDirectory(dirname(dir));
  await mkdir(dir).catch((error: NodeJS.ErrnoException) => {
    if (error.code !== 'EEXIST') throw error;
  });
}

/** Write a set into a folder (keys readable by the owner only). */
export async function writeCertificates(dir: string, set: CertificateSet): Promise<CertificatePaths> {
  await ensureDirectory(dir);
  const paths = certificatePaths(dir);
  await writeFile(paths.caCert, set.caCert, { mode: 0o644 });
  await writeFile(paths.caKey, set.caKey, { mode: 0o600 });
  // The key first: a watcher that sees the new certificate must find its key already in place.
  await writeFile(paths.key, set.key, { mode: 0o600 });
  await writeFile(paths.cert, set.cert, { mode: 0o644 });
  return paths;
}

/** Base64 of the CA certificate PEM: what a webhook configuration's `caBundle` takes. */
export function caBundleOf(caCertPem: string): string {
  return Buffer.from(caCertPem).toString('base64');
}

export function notAfterOf(certPem: string): Date {
  return new Date(new X509Certificate(certPem).validTo);
}
