// The first release's way to a patch, kept for tests as the reference: a full diff of the original
// against the mutated Pod (fast-json-patch compare). The webhook records its patch instead
// (src/webhook/patch.ts); tests check the two agree.
import fastJsonPatch, { type Operation } from 'fast-json-patch';

export function diffPods(original: object, mutated: object): Operation[] {
  return fastJsonPatch.compare(original, mutated);
}
