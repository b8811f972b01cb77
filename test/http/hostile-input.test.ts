// Regression tests for what the fuzz test (fuzz.test.ts) found, plus the error texts that must not
// echo what a client sent.
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { readFileSync } from 'node:fs';
import t from 'tap';
import { reviewAdmission, type AdmissionRequest } from '../../src/webhook/admission.js';
import { parseConfig } from '../../src/webhook/config.js';
import { MAX_OBJECT_DEPTH } from '../../src/webhook/pod.js';
import { OPTED_IN_NAMESPACES, requestOnce, startTestWebhook } from '../helpers/tls-webhook.js';

const TEMPLATE = JSON.parse(readFileSync('examples/admission-review.json', 'utf8')) as { apiVersion: string; request: AdmissionRequest };
const config = parseConfig({});
const labels = OPTED_IN_NAMESPACES.buildkite;

function requestWith(change: (pod: Record<string, unknown>) => void): AdmissionRequest {
  const request = structuredClone(TEMPLATE.request);
  change(request.object as Record<string, unknown>);
  return request;
}

void t.test('a Pod without metadata is skipped as malformed, not an internal error', (t) => {
  const outcome = reviewAdmission(
    requestWith((pod) => delete pod.metadata),
    labels,
    { config },
  );
  t.equal(outcome.error, undefined);
  t.equal(outcome.audit.reason, 'malformed-pod');
  t.equal(outcome.response.patch, undefined);
  t.end();
});

void t.test('a Pod nested deeper than any real one is skipped as malformed, not a stack overflow', (t) => {
  for (const depth of [MAX_OBJECT_DEPTH + 1, 5_000, 50_000]) {
    let nested: unknown = 'bottom';
    for (let level = 0; level < depth; level += 1) nested = { nested };
    const outcome = reviewAdmission(
      requestWith((pod) => ((pod.spec as Record<string, unknown>).deep = nested)),
      labels,
      { config },
    );
    t.equal(outcome.error, undefined, `depth ${depth}`);
    t.equal(outcome.audit.reason, 'malformed-pod', `depth ${depth}`);
    t.match(outcome.audit.detail, /nests deeper than 100 levels/);
  }
  const shallow = reviewAdmission(requestWith(() => undefined), labels, { config });
  t.equal(shallow.audit.decision, 'injected', 'the real capture is well within the bound');
  t.end();
});

void t.test('annotations: null still gets the injected annotation, through an allowed patch', (t) => {
  const request = requestWith((pod) => ((pod.metadata as Record<string, unknown>).annotations = null));
  const outcome = reviewAdmission(request, labels, { config });
  t.equal(outcome.error, undefined);
  t.equal(outcome.audit.decision, 'injected');
  const operations = JSON.parse(Buffer.from(outcome.response.patch!, 'base64').toString('utf8')) as Operation[];
  const patched = fastJsonPatch.applyPatch(structuredClone(request.object), operations, true, false).newDocument as {
    metadata: { annotations: Record<string, string> };
  };
  t.same(Object.keys(patched.metadata.annotations), ['buildkite-ecr-injector/injected']);
  t.end();
});

void t.test('4xx answers and their log lines do not quote what the client sent', async (t) => {
  const webhook = await startTestWebhook(t);
  const canary = 'CANARY-4f1d2b';
  const post = (body: string) =>
    requestOnce(webhook.port, { ca: webhook.ca, method: 'POST', path: '/mutate', headers: { 'content-type': 'application/json' }, body });

  const truncated = await post(`{"apiVersion":"admission.k8s.io/v1","kind":"AdmissionReview","request":{"uid":"u","object":{"env":"${canary}"`);
  t.equal(truncated.status, 400);
  t.notMatch(truncated.body, canary, 'a JSON syntax error does not quote the body');

  const misplaced = await post(JSON.stringify({ apiVersion: 'admission.k8s.io/v1', kind: { spec: { env: canary } }, request: { uid: 'u' } }));
  t.equal(misplaced.status, 400);
  t.match(JSON.parse(misplaced.body), { message: /got an object/ });
  t.notMatch(misplaced.body, canary, 'a misplaced object is named by its type only');

  const longString = await post(JSON.stringify({ apiVersion: canary.repeat(20), kind: 'AdmissionReview', request: { uid: 'u' } }));
  t.equal(longString.status, 400);
  t.notMatch(longString.body, canary, 'a long string is described by its length');

  t.notMatch(webhook.captured.lines.join('\n'), canary, 'no log line holds the canary');
});
