// Owns the in-process measurement: one decision + patch (`reviewAdmission`: shape check, policy,
// mutation with its recorded patch, guard, base64) on a freshly parsed request (as each HTTP request
// brings one), timed one call at a time, without HTTP or logging. The median is the typical call; the
// mean (in the JSON result only) also carries collections of the parse's garbage, so it overstates
// the decision's own cost.
import { reviewAdmission, type AdmissionRequest } from '../src/webhook/admission.js';
import type { Config } from '../src/webhook/config.js';
import { createPatchGuard } from '../src/webhook/patch.js';
import type { Labels } from '../src/webhook/pod.js';

export interface InProcessResult {
  iterations: number;
  medianUs: number;
  meanUs: number;
  p99Us: number;
  operations: number;
}

export function measureDecision(body: string, labels: Labels, config: Config, iterations = 5000): InProcessResult {
  const parse = (): AdmissionRequest => (JSON.parse(body) as { request: AdmissionRequest }).request;
  const request = parse();
  // As the HTTP route decides: the guard built once per app, no walk over the whole Pod's nesting,
  // no mutated Pod built (the answer is the patch).
  const context = { config, guard: createPatchGuard(config.labelPrefix), wholePodDepth: false, podResult: false };
  const check = reviewAdmission(request, labels, context);
  if (check.audit.decision !== 'injected') throw new Error(`expected an injection, got ${check.audit.decision} (${check.audit.reason})`);
  // Warm up so the optimising compiler has seen the path, as it has in a long-running webhook.
  for (let i = 0; i < 2000; i += 1) reviewAdmission(request, labels, context);
  const samples = new Float64Array(iterations);
  for (let i = 0; i < iterations; i += 1) {
    const fresh = parse();
    const started = process.hrtime.bigint();
    reviewAdmission(fresh, labels, context);
    samples[i] = Number(process.hrtime.bigint() - started) / 1000;
  }
  const meanUs = samples.reduce((sum, sample) => sum + sample, 0) / iterations;
  samples.sort();
  return {
    iterations,
    meanUs,
    medianUs: samples[Math.floor(iterations / 2)] ?? Number.NaN,
    p99Us: samples[Math.ceil(iterations * 0.99) - 1] ?? Number.NaN,
    operations: check.operations.length,
  };
}
