// Owns the rules of the self-managed certificate authority, as functions over plain PEM state with the
// clock passed in: when to issue the serving certificate, renew it, roll the CA over and retire the
// old one. `nextStep` decides (pure); `applyStep` carries a step out (its only side effect is making
// keys). The rollover order is what keeps every API server handshake working:
//   1. make the next CA and publish it in the caBundle beside the current one (both trusted);
//   2. once the bundle holding it has been seen in the webhook configuration and has had time to reach
//      every API server, switch the serving certificate to one signed by the next CA;
//   3. keep the old CA in the bundle until every replica has had time to load the new serving
//      certificate, then drop it.
import { X509Certificate, createPrivateKey, randomBytes } from 'node:crypto';
import { generateCa, generateCertificates } from './generate.js';

export interface KeyPair {
  cert: string;
  key: string;
}

/** Everything the leader keeps in the Secret, decoded. Any part may be missing or broken. */
export interface TlsState {
  /** The CA that signs the serving certificate. */
  ca?: KeyPair;
  /** The serving certificate every replica presents. */
  serving?: KeyPair;
  /** A CA published in the bundle but not signing yet; `publishedAt` once the bundle was seen. */
  next?: KeyPair & { publishedAt?: Date };
  /** The CA the serving certificate was signed by before the last rollover: still trusted. */
  previous?: { cert: string; retiredAt?: Date };
  /** An operator asked for a rotation (the Secret annotation). */
  rotate?: 'serving' | 'ca';
}

export interface RotationPolicy {
  /** SANs of the serving certificate. */
  dnsNames: readonly string[];
  servingLifetimeMs: number;
  caLifetimeMs: number;
  /**
   * How long a change needs to reach everyone who acts on it: a new caBundle every API server, a new
   * serving certificate every replica (they watch the Secret and re-read it every resync).
   */
  propagationMs: number;
  /** Validity starts this long before issue, for clocks that are behind. */
  backdateMs: number;
}

const MINUTE_MS = 60_000;
const DAY_MS = 24 * 60 * MINUTE_MS;

export const DEFAULT_ROTATION = {
  servingLifetimeMs: 90 * DAY_MS,
  caLifetimeMs: 3 * 365 * DAY_MS,
  propagationMs: 15 * MINUTE_MS,
  backdateMs: MINUTE_MS,
} as const;

/** The names the API server may use for the Service: it checks `<service>.<namespace>.svc`. */
export function serviceDnsNames(service: string, namespace: string): string[] {
  return [service, `${service}.${namespace}`, `${service}.${namespace}.svc`, `${service}.${namespace}.svc.cluster.local`];
}

/** Reject lifetimes that cannot give a safe overlap. */
export function checkPolicy(policy: RotationPolicy): void {
  if (policy.dnsNames.length === 0) throw new Error('the serving certificate needs at least one DNS name');
  if (!(policy.propagationMs > 0 && policy.servingLifetimeMs > 0 && policy.caLifetimeMs > 0)) throw new Error('lifetimes must be positive');
  // The serving certificate is renewed with a third of its life left, which must outlast propagation.
  if (policy.servingLifetimeMs / 3 <= 2 * policy.propagationMs) throw new Error('the serving lifetime must exceed six times the propagation time');
  // The CA rolls over with a third of its life left; that third must hold a whole serving lifetime.
  if (policy.caLifetimeMs < 3 * policy.servingLifetimeMs) throw new Error('the CA lifetime must be at least three serving lifetimes');
}

export type Step =
  | { kind: 'bootstrap'; reason: string }
  | { kind: 'issue-serving'; reason: string }
  | { kind: 'start-ca-rollover'; reason: string }
  | { kind: 'mark-next-ca-published' }
  | { kind: 'promote-next-ca' }
  | { kind: 'stamp-previous-ca' }
  | { kind: 'drop-previous-ca' }
  | { kind: 'drop-next-ca'; reason: string };

/** SHA-256 fingerprint of a PEM certificate (how bundles are compared), or undefined if it does not parse. */
export function fingerprintOf(pem: string): string | undefined {
  try {
    return new X509Certificate(pem).fingerprint256;
  } catch {
    return undefined;
  }
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** The certificates in a PEM bundle, each as its own PEM block. */
export function splitPemBundle(text: string): string[] {
  return text.match(PEM_CERTIFICATE) ?? [];
}

/** CA certificates to trust, oldest first: the retired CA, the signing CA, the next CA. */
export function trustedCaCerts(state: TlsState): string[] {
  return [state.previous?.cert, state.ca?.cert, state.next?.cert].filter((pem): pem is string => pem !== undefined);
}

/** The PEM bundle to publish as the webhook's caBundle (before base64). */
export function caBundlePem(state: TlsState): string {
  return trustedCaCerts(state)
    .map((pem) => `${pem.trim()}\n`)
    .join('');
}

type Inspection = { ok: true; x509: X509Certificate; notAfter: number } | { ok: false; reason: string };

function parse(pem: string | undefined, what: string): Inspection {
  if (!pem) return { ok: false, reason: `${what} is missing` };
  try {
    const x509 = new X509Certificate(pem);
    return { ok: true, x509, notAfter: new Date(x509.validTo).getTime() };
  } catch {
    return { ok: false, reason: `${what} does not parse` };
  }
}

function keyMatches(x509: X509Certificate, key: string): boolean {
  try {
    return x509.checkPrivateKey(createPrivateKey(key));
  } catch {
    return false;
  }
}

function inspectCa(pair: KeyPair | undefined, now: number, what: string): Inspection {
  const parsed = parse(pair?.cert, what);
  if (!parsed.ok) return parsed;
  if (!parsed.x509.ca) return { ok: false, reason: `${what} is not a CA certificate` };
  if (!keyMatches(parsed.x509, pair?.key ?? '')) return { ok: false, reason: `${what} key does not match` };
  if (parsed.notAfter <= now) return { ok: false, reason: `${what} has expired` };
  return parsed;
}

function sanDnsNames(x509: X509Certificate): Set<string> {
  const names = (x509.subjectAltName ?? '').split(',').map((part) => part.trim());
  return new Set(names.filter((part) => part.startsWith('DNS:')).map((part) => part.slice(4)));
}

function inspectServing(serving: KeyPair | undefined, ca: X509Certificate, now: number, dnsNames: readonly string[]): Inspection {
  const parsed = parse(serving?.cert, 'serving certificate');
  if (!parsed.ok) return parsed;
  if (!keyMatches(parsed.x509, serving?.key ?? '')) return { ok: false, reason: 'serving key does not match' };
  if (!parsed.x509.checkIssued(ca) || !parsed.x509.verify(ca.publicKey)) return { ok: false, reason: 'serving certificate is not signed by the CA' };
  const sans = sanDnsNames(parsed.x509);
  const missing = dnsNames.filter((name) => !sans.has(name));
  if (missing.length > 0) return { ok: false, reason: `serving certificate lacks ${missing.join(', ')}` };
  if (parsed.notAfter <= now) return { ok: false, reason: 'serving certificate has expired' };
  return parsed;
}

/**
 * The one thing to do next, or undefined when the state is as it should be. `published` holds the
 * fingerprints of the CA certificates present in every webhook's caBundle right now.
 */
export function nextStep(state: TlsState, nowDate: Date, policy: RotationPolicy, published: ReadonlySet<string>): Step | undefined {
  const now = nowDate.getTime();
  const ca = inspectCa(state.ca, now, 'CA');
  if (!ca.ok) return { kind: 'bootstrap', reason: ca.reason };

  if (state.previous) {
    if (state.previous.retiredAt === undefined) return { kind: 'stamp-previous-ca' };
    const previous = parse(state.previous.cert, 'previous CA');
    if (!previous.ok || previous.notAfter <= now || now - state.previous.retiredAt.getTime() >= policy.propagationMs) {
      return { kind: 'drop-previous-ca' };
    }
  }

  if (state.next) {
    const next = inspectCa(state.next, now, 'next CA');
    if (!next.ok) return { kind: 'drop-next-ca', reason: next.reason };
    const publishedAt = state.next.publishedAt?.getTime();
    // Switch only after the bundle holding the next CA has been seen for a whole propagation time.
    if (publishedAt !== undefined && now - publishedAt >= policy.propagationMs && !state.previous) return { kind: 'promote-next-ca' };
    if (publishedAt === undefined && published.has(next.x509.fingerprint256)) return { kind: 'mark-next-ca-published' };
  } else if (!state.previous) {
    if (state.rotate === 'ca') return { kind: 'start-ca-rollover', reason: 'requested' };
    if (ca.notAfter - now <= policy.caLifetimeMs / 3) return { kind: 'start-ca-rollover', reason: 'a third of the CA lifetime left' };
  }

  const serving = inspectServing(state.serving, ca.x509, now, policy.dnsNames);
  if (!serving.ok) return { kind: 'issue-serving', reason: serving.reason };
  if (state.rotate === 'serving') return { kind: 'issue-serving', reason: 'requested' };
  // Renew with a third of the lifetime left, unless the CA's own expiry caps the new one at the same
  // date (then the CA rollover brings the fresh certificate).
  if (serving.notAfter - now <= policy.servingLifetimeMs / 3 && servingNotAfter(ca.notAfter, now, policy) > serving.notAfter) {
    return { kind: 'issue-serving', reason: 'a third of the serving lifetime left' };
  }
  return undefined;
}

function servingNotAfter(caNotAfter: number, now: number, policy: RotationPolicy): number {
  return Math.min(now + policy.servingLifetimeMs, caNotAfter);
}

async function makeCa(now: number, policy: RotationPolicy): Promise<KeyPair> {
  // Every CA gets its own subject name. During a rollover two CAs sit in one bundle, and the
  // certificates carry no key identifiers (selfsigned writes none), so a client that picks the issuer
  // by name (OpenSSL, hence Node) would otherwise try the wrong CA and fail the signature check.
  const commonName = `buildkite-ecr-injector CA ${new Date(now).toISOString().slice(0, 19)}Z ${randomBytes(3).toString('hex')}`;
  return generateCa({ now: new Date(now), notBefore: new Date(now - policy.backdateMs), validityDays: policy.caLifetimeMs / DAY_MS, commonName });
}

async function issueServing(ca: KeyPair, now: number, policy: RotationPolicy): Promise<KeyPair> {
  const caNotAfter = new Date(new X509Certificate(ca.cert).validTo).getTime();
  const set = await generateCertificates({
    dnsNames: policy.dnsNames,
    ca,
    now: new Date(now),
    notBefore: new Date(now - policy.backdateMs),
    validityDays: (servingNotAfter(caNotAfter, now, policy) - now) / DAY_MS,
  });
  return { cert: set.cert, key: set.key };
}

/** Carry out one step, returning the new state (the input is not modified). */
export async function applyStep(state: TlsState, step: Step, nowDate: Date, policy: RotationPolicy): Promise<TlsState> {
  const now = nowDate.getTime();
  switch (step.kind) {
    case 'bootstrap': {
      const ca = await makeCa(now, policy);
      return { ca, serving: await issueServing(ca, now, policy) };
    }
    case 'issue-serving':
      return { ...state, serving: await issueServing(state.ca!, now, policy), rotate: state.rotate === 'serving' ? undefined : state.rotate };
    case 'start-ca-rollover':
      return { ...state, next: await makeCa(now, policy), rotate: state.rotate === 'ca' ? undefined : state.rotate };
    case 'mark-next-ca-published':
      return { ...state, next: { ...state.next!, publishedAt: nowDate } };
    case 'promote-next-ca': {
      const ca = { cert: state.next!.cert, key: state.next!.key };
      return { ...state, ca, serving: await issueServing(ca, now, policy), next: undefined, previous: { cert: state.ca!.cert, retiredAt: nowDate } };
    }
    case 'stamp-previous-ca':
      return { ...state, previous: { ...state.previous!, retiredAt: nowDate } };
    case 'drop-previous-ca':
      return { ...state, previous: undefined };
    case 'drop-next-ca':
      return { ...state, next: undefined };
  }
}

/** What a step replaced, for the rotation counters. */
export function rotatedBy(step: Step): ('serving' | 'ca')[] {
  switch (step.kind) {
    case 'bootstrap':
    case 'promote-next-ca':
      return ['ca', 'serving'];
    case 'issue-serving':
      return ['serving'];
    default:
      return [];
  }
}

/** Apply steps until none is left (bounded: every path settles within a few steps). */
export async function settle(
  state: TlsState,
  now: Date,
  policy: RotationPolicy,
  published: ReadonlySet<string>,
): Promise<{ state: TlsState; steps: Step[] }> {
  const steps: Step[] = [];
  let current = state;
  for (let i = 0; i < 10; i++) {
    const step = nextStep(current, now, policy, published);
    if (!step) return { state: current, steps };
    steps.push(step);
    current = await applyStep(current, step, now, policy);
  }
  throw new Error(`certificate state did not settle: ${steps.map((s) => s.kind).join(', ')}`);
}
