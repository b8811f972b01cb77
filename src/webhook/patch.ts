// Owns the JSON patch: derived by diffing the mutated copy against the original (never written by
// hand), then checked against the only paths the webhook may touch. A path outside that set is a bug.
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { labelKeys } from './policy.js';

export type { Operation };

export class PatchGuardError extends Error {
  override name = 'PatchGuardError';
}

/** RFC 6901 escaping of one reference token ("/" becomes "~1"). */
function escapePointerToken(token: string): string {
  return token.replace(/~/g, '~0').replace(/\//g, '~1');
}

function escapeRegExp(text: string): string {
  return text.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}

export interface PatchGuard {
  check(operations: readonly Operation[]): void;
}

/** The set of paths this webhook may write, for a given label prefix. */
export function createPatchGuard(labelPrefix: string): PatchGuard {
  const annotationKey = labelKeys(labelPrefix).injectedAnnotation;
  const annotationToken = escapeRegExp(escapePointerToken(annotationKey));
  const allowed = new RegExp(
    '^(?:' +
      [
        '/spec/serviceAccountName',
        '/spec/serviceAccount',
        '/spec/imagePullSecrets(?:/\\d+)?',
        '/spec/(?:initContainers|containers)/\\d+/envFrom(?:/\\d+)?',
        `/metadata/annotations/${annotationToken}`,
      ].join('|') +
      ')$',
  );
  return {
    check(operations) {
      for (const operation of operations) {
        if (operation.op !== 'add' && operation.op !== 'replace') {
          throw new PatchGuardError(`patch operation ${operation.op} at ${operation.path} is not allowed`);
        }
        if (allowed.test(operation.path)) continue;
        // A Pod without annotations gets the whole map, which must hold only our key. The diff writes
        // `replace` when the Pod sent `annotations: null`; a map that existed is never replaced whole.
        if (operation.path === '/metadata/annotations') {
          const keys = Object.keys(operation.value as object);
          if (keys.length === 1 && keys[0] === annotationKey) continue;
        }
        throw new PatchGuardError(`patch path ${operation.path} is outside the paths this webhook may write`);
      }
    },
  };
}

/** The RFC 6902 operations that turn `original` into `mutated`. */
export function diffPods(original: object, mutated: object): Operation[] {
  return fastJsonPatch.compare(original, mutated);
}
