// Owns `certs`: writes a CA and a serving certificate signed by it (for --tls-mode files, or a
// webhook configuration's caBundle) and prints the base64 CA bundle.
import { caBundleOf, generateCertificates, writeCertificates } from '../certs/generate.js';
import { integerFlag, listFlag, type Flags } from './flags.js';

export const certsUsage = `certs flags:
  --out DIR              folder to write ca.crt, ca.key, tls.crt, tls.key (default certs)
  --dns NAME,...         DNS SANs (default localhost)
  --ip ADDR,...          IP SANs
  --days N               serving certificate lifetime (default 365)
`;

export async function certs(flags: Flags): Promise<void> {
  const dir = flags.out ?? 'certs';
  const dnsNames = flags.dns === undefined ? ['localhost'] : listFlag(flags.dns);
  const set = await generateCertificates({ dnsNames, ipAddresses: listFlag(flags.ip), validityDays: integerFlag(flags, 'days', 365, 1, 3650) });
  const paths = await writeCertificates(dir, set);
  process.stderr.write(`wrote ${paths.caCert}, ${paths.caKey}, ${paths.cert}, ${paths.key}\ncaBundle:\n`);
  process.stdout.write(`${caBundleOf(set.caCert)}\n`);
}
