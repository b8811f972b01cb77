// Owns what every soak scenario shares: its inputs (a CA and a folder), its result (the request
// figures, extra figures, and the list of broken criteria), and how a result is printed.
import { X509Certificate } from 'node:crypto';
import { generateCertificates, type CertificateSet } from '../../src/certs/generate.js';
import type { Tally } from './load.js';

export interface SoakContext {
  /** A fresh folder for this scenario's files. */
  dir: string;
  ca: { cert: string; key: string };
  namespacesPath: string;
}

export interface ScenarioResult {
  name: string;
  requests: Tally;
  figures: Record<string, string | number>;
  /** Broken criteria; empty means the scenario passed. */
  problems: string[];
}

export type Scenario = (context: SoakContext) => Promise<ScenarioResult>;

/** A serving certificate for 127.0.0.1 and localhost, signed by the soak's CA. */
export function issueServingCertificate(ca: { cert: string; key: string }): Promise<CertificateSet> {
  return generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'], ca });
}

export function fingerprintOf(certPem: string): string {
  return new X509Certificate(certPem).fingerprint256;
}

function formatCounts(counts: Record<string, number>): string {
  return Object.entries(counts)
    .map(([code, count]) => `${code} ${count}`)
    .join(', ');
}

export function formatResult(result: ScenarioResult): string {
  const { requests } = result;
  const lines = [
    `${result.problems.length === 0 ? 'PASS' : 'FAIL'}  ${result.name}`,
    `      requests sent ${requests.sent}, answered ${requests.answered}, failed ${requests.failed}` +
      (requests.refused > 0 ? `, refused while connecting ${requests.refused} (${formatCounts(requests.refusedBy)})` : ''),
    ...Object.entries(result.figures).map(([name, value]) => `      ${name}: ${value}`),
    ...requests.failures.map((failure) => `      failure: ${failure}`),
    ...result.problems.map((problem) => `      criterion broken: ${problem}`),
  ];
  return lines.join('\n');
}
