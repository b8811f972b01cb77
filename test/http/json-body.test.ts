// The fast JSON body parser: plain JSON.parse only where no prototype-poisoning key can hide, and
// secure-json-parse's refusal (a 400 naming the forbidden property) everywhere else.
import t from 'tap';
import { buildApp } from '../../src/http/app.js';
import { parseConfig } from '../../src/webhook/config.js';
import { mayHidePoisonedKey } from '../../src/http/json-body.js';
import { createLogger } from '../../src/log.js';
import { StaticNamespaceSource } from '../../src/webhook/namespace-labels.js';

void t.test('mayHidePoisonedKey', (t) => {
  const suspect = [
    '{"__proto__":{}}',
    '{"a":{"constructor":{"prototype":{}}}}',
    '{"\\u005f_proto__":{}}',
    '{"\\u005F_proto__":{}}',
    '{"\\u0063onstructor":{}}',
    '{"x":"\\u0041"}', // any escaped letter sends the body the slow way
    '{"x":"\\\\u0061"}', // an escaped backslash then "u0061": harmless, but the slow way is still correct
  ];
  for (const text of suspect) t.equal(mayHidePoisonedKey(text), true, text);
  const plain = [
    '{}',
    '{"a":"b"}',
    '{"cmd":"a \\u0026\\u0026 b \\u003e /dev/null \\u003c in"}', // Go's HTML-safe escapes
    '{"x":"\\u2028\\u0000\\u001f"}',
    '{"proto":"_constructo_r"}',
    '{"x":"\\u00"}', // a cut-off escape is JSON.parse's problem, not a poisoned key
  ];
  for (const text of plain) t.equal(mayHidePoisonedKey(text), false, text);
  t.end();
});

function jobReview(extraAnnotations: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    apiVersion: 'admission.k8s.io/v1',
    kind: 'AdmissionReview',
    request: {
      uid: '0c7e9a4e-0000-4000-8000-000000000001',
      kind: { group: '', version: 'v1', kind: 'Pod' },
      namespace: 'buildkite',
      operation: 'CREATE',
      object: {
        metadata: {
          generateName: 'buildkite-0190c0de-',
          labels: { 'buildkite.com/job-uuid': '0190c0de' },
          annotations: { 'buildkite.com/pipeline-slug': 'app', ...extraAnnotations },
        },
        spec: { serviceAccountName: 'default', containers: [{ name: 'checkout', image: 'agent' }] },
      },
    },
  };
}

void t.test('the /mutate route', async (t) => {
  const app = buildApp({
    config: parseConfig({ defaults: { pullSecret: 'ecr-credentials' } }),
    namespaces: new StaticNamespaceSource({ buildkite: { 'buildkite-ecr-injector/inject': 'enabled' } }),
    log: createLogger({ destination: { write: () => undefined } }),
  });
  t.teardown(() => app.close());
  const post = (payload: string) =>
    app.inject({ method: 'POST', url: '/mutate', headers: { 'content-type': 'application/json' }, payload });

  const plain = await post(JSON.stringify(jobReview()).replace('app', 'a\\u0026pp'));
  t.equal(plain.statusCode, 200, 'a review with Go escapes is answered');
  const answer = plain.json<{ response: { patch?: string; uid: string } }>();
  t.equal(answer.response.uid, '0c7e9a4e-0000-4000-8000-000000000001');
  t.ok(answer.response.patch, 'and patched');

  // These bodies are valid AdmissionReviews to JSON.parse: only the secure parser turns them away.
  const poisoned = [
    JSON.stringify(jobReview()).replace('"metadata":{', '"metadata":{"__proto__":{"polluted":"yes"},'),
    JSON.stringify(jobReview()).replace('"metadata":{', '"metadata":{"\\u005f_proto__":{"polluted":"yes"},'),
    JSON.stringify(jobReview({ x: { constructor: { prototype: { polluted: 'yes' } } } })),
  ];
  for (const payload of poisoned) {
    const response = await post(payload);
    t.equal(response.statusCode, 400, payload.slice(0, 80));
    t.match(response.json<{ message: string }>().message, /^malformed JSON: .*forbidden prototype property/);
  }
  t.equal(({} as Record<string, unknown>).polluted, undefined, 'Object.prototype is untouched');

  const broken = await post('{"apiVersion":');
  t.equal(broken.statusCode, 400, 'a body that is not JSON gets 400');
  t.match(broken.json<{ message: string }>().message, /^malformed JSON: /);
  const empty = await post('');
  t.equal(empty.statusCode, 400, 'an empty body gets 400');
});
