// Owns the hook between certificate management and whatever records metrics. Certificate code calls
// these plain callbacks; the metrics module (prom-client) supplies an implementation, tests record
// calls, and without either nothing is recorded.

export type CertificateKind = 'serving' | 'ca';

export interface CertificateMetrics {
  /** The not-after time of the serving certificate this replica serves, or of the signing CA. */
  setCertificateNotAfter(kind: CertificateKind, notAfter: Date): void;
  /** A certificate was replaced by the leader (renewal, CA rollover, or a new one after loss). */
  countRotation(kind: CertificateKind): void;
  /** The leader wrote a new caBundle into the MutatingWebhookConfiguration. */
  countCaBundlePatch(): void;
  /** This replica became (true) or stopped being (false) the certificate leader. */
  setLeader(isLeader: boolean): void;
}

export const noCertificateMetrics: CertificateMetrics = {
  setCertificateNotAfter: () => undefined,
  countRotation: () => undefined,
  countCaBundlePatch: () => undefined,
  setLeader: () => undefined,
};

/** Send every call to the primary recorder and, when given, to an extra one (tests observe calls). */
export function fanOutCertificateMetrics(primary: CertificateMetrics, extra: CertificateMetrics | undefined): CertificateMetrics {
  if (extra === undefined) return primary;
  return {
    setCertificateNotAfter: (kind, notAfter) => (primary.setCertificateNotAfter(kind, notAfter), extra.setCertificateNotAfter(kind, notAfter)),
    countRotation: (kind) => (primary.countRotation(kind), extra.countRotation(kind)),
    countCaBundlePatch: () => (primary.countCaBundlePatch(), extra.countCaBundlePatch()),
    setLeader: (isLeader) => (primary.setLeader(isLeader), extra.setLeader(isLeader)),
  };
}
