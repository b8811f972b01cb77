// Owns "does the caBundle trust what the webhook serves": the chain the webhook publishes on GET
// /certificate (leaf first) checked locally against the MutatingWebhookConfiguration's caBundle:
// every link issued and signed by the next, ending at a caBundle certificate, each valid now, the
// leaf naming the Service's DNS name. The API server proxy hides the backend's TLS handshake, so the
// webhook publishes the chain itself; this runs on the operator's machine with node:crypto.
import { X509Certificate } from 'node:crypto';
import { certificateBlocks, DAY_MS } from '../certs/certificate-source.js';

export interface ChainVerdict {
  /** Undefined when the caBundle trusts the chain; else why not, in one line. */
  problem?: string;
  /** The leaf's expiry, when the chain parsed. */
  notAfter?: Date;
  notBefore?: Date;
  daysLeft?: number;
}

function parse(pems: string[]): X509Certificate[] {
  return pems.map((pem) => new X509Certificate(pem));
}

function issuedBy(child: X509Certificate, issuer: X509Certificate): boolean {
  return child.checkIssued(issuer) && child.verify(issuer.publicKey);
}

/**
 * `chainPem`: what GET /certificate answered; `caBundle`: the webhook configuration's base64 PEM
 * bundle; `dnsName`: the name the API server dials (`<service>.<namespace>.svc`).
 */
export function verifyServingChain(chainPem: string, caBundle: string | undefined, dnsName: string, now: Date): ChainVerdict {
  let chain: X509Certificate[];
  try {
    chain = parse(certificateBlocks(chainPem));
  } catch (error) {
    return { problem: `the served chain does not parse: ${(error as Error).message}` };
  }
  const leaf = chain[0];
  if (leaf === undefined) return { problem: 'the webhook served no certificate' };
  const notAfter = new Date(leaf.validTo);
  const dates = { notAfter, notBefore: new Date(leaf.validFrom), daysLeft: Math.floor((notAfter.getTime() - now.getTime()) / DAY_MS) };
  if (!caBundle) return { ...dates, problem: 'the webhook configuration has no caBundle: the API server cannot trust any certificate' };
  let anchors: X509Certificate[];
  try {
    anchors = parse(certificateBlocks(Buffer.from(caBundle, 'base64').toString('utf8')));
  } catch (error) {
    return { ...dates, problem: `the caBundle does not parse: ${(error as Error).message}` };
  }
  if (anchors.length === 0) return { ...dates, problem: 'the caBundle holds no PEM certificate' };
  for (const certificate of chain) {
    if (Date.parse(certificate.validFrom) > now.getTime()) return { ...dates, problem: `${certificate.subject.replace(/\n/g, ', ')} is not valid before ${certificate.validFrom}` };
    if (Date.parse(certificate.validTo) <= now.getTime()) return { ...dates, problem: `${certificate.subject.replace(/\n/g, ', ')} expired at ${certificate.validTo}` };
  }
  if (leaf.checkHost(dnsName) === undefined) return { ...dates, problem: `the served certificate does not name ${dnsName} (its names: ${leaf.subjectAltName ?? 'none'})` };
  // Walk up from the leaf: each link signed by the next served certificate, until one the caBundle signed (or holds).
  let current = leaf;
  for (let depth = 0; depth <= chain.length; depth += 1) {
    if (anchors.some((anchor) => anchor.fingerprint256 === current.fingerprint256 || issuedBy(current, anchor))) return dates;
    const next = chain.find((candidate) => candidate !== current && issuedBy(current, candidate));
    if (next === undefined) break;
    current = next;
  }
  return { ...dates, problem: `the caBundle does not trust the served certificate (issuer ${current.issuer.replace(/\n/g, ', ')}): the caBundle is stale or from another CA` };
}
