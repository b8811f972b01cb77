// Walks test/fixtures/*/webhook.yaml: real AdmissionReview captures (and cases derived from them by
// a JSON patch on the review) with the namespace labels and the expected decision. For each: the
// decision and reason, the exact operations, that the patch applied to the original gives the mutated
// Pod, that a second pass changes nothing, and that the request object itself was not modified.
import fastJsonPatch, { type Operation } from 'fast-json-patch';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import t from 'tap';
import { parse as parseYaml } from 'yaml';
import { reviewAdmission, type AdmissionRequest } from '../../src/webhook/admission.js';
import { parseConfig } from '../../src/webhook/config.js';
import type { Labels } from '../../src/webhook/pod.js';

const fixturesDir = new URL('../fixtures/', import.meta.url);

interface CaseSpec {
  from?: string;
  modify?: Operation[];
  config?: unknown;
  namespaceLabels: Labels | null;
  expect: {
    decision: string;
    reason: string;
    operations: Operation[];
    warnings?: string[];
    dryRun?: boolean;
    /** Credential rules: the matched rule (null: none matched), the annotations they lacked, the misses before it. */
    rule?: string | null;
    missingAnnotations?: string[];
    misses?: unknown[];
  };
}

function readReview(caseName: string): { apiVersion: string; request: AdmissionRequest } {
  return JSON.parse(readFileSync(new URL(`${caseName}/review.json`, fixturesDir), 'utf8')) as { apiVersion: string; request: AdmissionRequest };
}

function byPath(operations: readonly Operation[]): Operation[] {
  return [...operations].sort((a, b) => a.path.localeCompare(b.path));
}

const cases = readdirSync(fixturesDir).filter((name) => existsSync(new URL(`${name}/webhook.yaml`, fixturesDir)));

t.ok(cases.length >= 20, `found ${cases.length} fixture cases`);
t.ok(cases.includes('default-job'), 'the real captures are among the cases');

for (const caseName of cases) {
  t.test(caseName, (t) => {
    const spec = parseYaml(readFileSync(new URL(`${caseName}/webhook.yaml`, fixturesDir), 'utf8')) as CaseSpec;
    let review = readReview(spec.from ?? caseName);
    if (spec.modify) review = fastJsonPatch.applyPatch(review, spec.modify, true, false).newDocument;
    const pristine = structuredClone(review.request.object);
    const config = parseConfig(spec.config ?? {});
    const labels = spec.namespaceLabels ?? undefined;

    const outcome = reviewAdmission(review.request, labels, { config });
    t.equal(outcome.error, undefined, 'no internal error');
    t.equal(outcome.audit.decision, spec.expect.decision, 'decision');
    t.equal(outcome.audit.reason, spec.expect.reason, 'reason');
    t.same(byPath(outcome.operations), byPath(spec.expect.operations), 'exact operations');
    if (spec.expect.warnings !== undefined) t.same(outcome.response.warnings ?? [], spec.expect.warnings, 'warnings');
    for (const warning of outcome.response.warnings ?? []) t.ok(warning.length <= 120, 'warning fits in 120 characters');
    if (spec.expect.rule !== undefined) {
      t.equal(outcome.audit.rule, spec.expect.rule, 'the rule in the audit record');
      t.equal(outcome.response.auditAnnotations?.rule, spec.expect.rule ?? undefined, 'the rule in auditAnnotations');
      t.same(outcome.audit.missingAnnotations, spec.expect.missingAnnotations, 'missing identity annotations');
    } else {
      t.notOk('rule' in outcome.audit, 'no rule field without rules');
    }
    if (spec.expect.misses !== undefined) t.same(outcome.rules?.misses, spec.expect.misses, 'why each earlier rule did not match');
    if (spec.expect.dryRun !== undefined) t.equal(outcome.audit.dryRun, spec.expect.dryRun, 'dryRun in the audit record');
    t.same(review.request.object, pristine, 'the request object was not modified');

    const response = outcome.response;
    t.equal(response.uid, review.request.uid, 'uid echoed');
    t.equal(response.allowed, true, 'always allowed');
    if (outcome.operations.length === 0) {
      t.notOk('patch' in response || 'patchType' in response, 'no patch fields when nothing changes');
    } else {
      t.equal(response.patchType, 'JSONPatch');
      const decoded = JSON.parse(Buffer.from(response.patch ?? '', 'base64').toString('utf8')) as Operation[];
      t.same(decoded, outcome.operations, 'base64 patch decodes to the operations');
    }
    t.equal(response.auditAnnotations?.decision, spec.expect.decision, 'audit annotation carries the decision');

    const patched = fastJsonPatch.applyPatch(structuredClone(pristine), outcome.operations, true, false).newDocument;
    t.same(patched, outcome.pod, 'patch applied to the original equals the mutated Pod');

    const second = reviewAdmission({ ...review.request, object: patched }, labels, { config });
    t.same(second.operations, [], 'a second pass over the result changes nothing');
    t.end();
  });
}
