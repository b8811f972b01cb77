// The certificate half of the Prometheus metrics: what self-signed mode reports through the
// CertificateMetrics hook shows up in the registry under Prometheus-style names, and a test recorder
// passed to startServer still sees every call (fan-out).
import t from 'tap';
import { fanOutCertificateMetrics, type CertificateMetrics } from '../../src/certs/cert-metrics.js';
import { createMetrics } from '../../src/http/webhook-metrics.js';

t.test('certificate metrics reach the registry', async (t) => {
  const metrics = createMetrics({ defaultMetrics: false });
  const before = await metrics.registry.metrics();
  t.match(before, /buildkite_ecr_injector_certificate_leader 0/);
  t.match(before, /buildkite_ecr_injector_certificate_rotations_total\{kind="ca"\} 0/);

  const calls: string[] = [];
  const recorder: CertificateMetrics = {
    setCertificateNotAfter: (kind) => calls.push(`notAfter:${kind}`),
    countRotation: (kind) => calls.push(`rotation:${kind}`),
    countCaBundlePatch: () => calls.push('patch'),
    setLeader: (leader) => calls.push(`leader:${leader}`),
  };
  const both = fanOutCertificateMetrics(metrics, recorder);
  both.setLeader(true);
  both.countRotation('ca');
  both.countRotation('serving');
  both.countRotation('serving');
  both.countCaBundlePatch();
  both.setCertificateNotAfter('ca', new Date('2030-01-01T00:00:00Z'));
  both.setCertificateNotAfter('serving', new Date('2027-01-01T00:00:00Z'));

  const after = await metrics.registry.metrics();
  t.match(after, /buildkite_ecr_injector_certificate_leader 1/);
  t.match(after, /buildkite_ecr_injector_certificate_rotations_total\{kind="ca"\} 1/);
  t.match(after, /buildkite_ecr_injector_certificate_rotations_total\{kind="serving"\} 2/);
  t.match(after, /buildkite_ecr_injector_ca_bundle_patches_total 1/);
  t.match(after, /buildkite_ecr_injector_certificate_not_after_timestamp_seconds\{kind="ca"\} 1893456000/);
  t.match(after, /buildkite_ecr_injector_certificate_not_after_timestamp_seconds\{kind="serving"\} 1798761600/);
  t.same(calls, ['leader:true', 'rotation:ca', 'rotation:serving', 'rotation:serving', 'patch', 'notAfter:ca', 'notAfter:serving']);
  t.equal(fanOutCertificateMetrics(metrics, undefined), metrics, 'no extra recorder: the registry alone');
});
