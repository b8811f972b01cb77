// The audit line skips pino's redaction (it is an AuditRecord: names and decisions only), so check
// the property redaction would have backed up: no env value reaches the log, and the line is there.
import t from 'tap';
import { buildApp } from '../../src/http/app.js';
import { parseConfig } from '../../src/webhook/config.js';
import { createLogger } from '../../src/log.js';
import { StaticNamespaceSource } from '../../src/webhook/namespace-labels.js';

void t.test('one audit line per admission, without env values', async (t) => {
  const lines: string[] = [];
  const app = buildApp({
    config: parseConfig({ defaults: { pullSecret: 'ecr-credentials', awsSecret: 'aws-credentials' } }),
    namespaces: new StaticNamespaceSource({ buildkite: { 'buildkite-ecr-injector/inject': 'enabled' } }),
    log: createLogger({ destination: { write: (line: string) => void lines.push(line) } }),
  });
  t.teardown(() => app.close());
  const secret = 'sk-live-7f3a9c-never-log-me';
  const review = {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '0c7e9a4e-0000-4000-8000-000000000002',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'buildkite',
      operation: 'CREATE',
      userInfo: { username: 'system:serviceaccount:kube-system:job-controller' },
      object: {
        metadata: {
          generateName: 'buildkite-0190c0de-',
          labels: { 'buildkite.com/job-uuid': '0190c0de' },
          annotations: { 'buildkite.com/pipeline-slug': 'app' },
        },
        spec: {
          containers: [
            { name: 'container-0', image: 'ci', env: [{ name: 'BUILDKITE_COMMAND', value: 'make' }, { name: 'API_KEY', value: secret }] },
          ],
        },
      },
    },
  };
  const response = await app.inject({ method: 'POST', url: '/mutate', payload: review });
  t.equal(response.statusCode, 200);
  await app.close();
  const audit = lines.map((line) => JSON.parse(line) as Record<string, unknown>).filter((line) => line.msg === 'admission');
  t.equal(audit.length, 1, 'one audit line');
  t.match(audit[0], { uid: '0c7e9a4e-0000-4000-8000-000000000002', namespace: 'buildkite', decision: 'injected', pipeline: 'app' });
  t.notOk(lines.some((line) => line.includes(secret)), 'no env value in any log line');
});
