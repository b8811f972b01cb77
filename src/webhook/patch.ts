// Owns the JSON patch: recorded while the mutation makes each change (PatchRecorder), then checked
// against the only paths the webhook may touch. A path outside that set is a bug.
//
// The first release diffed the whole mutated Pod against the original (fast-json-patch compare) so
// that no operation was ever written by hand; that cost grew with the Pod. The recorder keeps the
// guarantee by construction instead: it is the only way mutate.ts writes a field, every pointer is
// built from raw tokens with fast-json-patch's RFC 6901 escaping, and each operation is the one
// compare() would produce for that write (test/webhook/recorded-patch.test.ts checks thousands of
// generated Pods against compare()).
import fastJsonPatch from 'fast-json-patch';
import type { Operation } from 'fast-json-patch';
import { labelKeys } from './policy.js';

export type { Operation };

/** One reference token of a JSON pointer, unescaped: an object key or a list index. */
export type Token = string | number;

/** The JSON pointer (RFC 6901) for `tokens`, each escaped ("~" to "~0", "/" to "~1"). */
export function pointer(tokens: readonly Token[]): string {
  let path = '';
  for (const token of tokens) path += `/${typeof token === 'number' ? token : fastJsonPatch.escapePathComponent(token)}`;
  return path;
}

/**
 * Collects the operations of a copy-on-write mutation as it writes. `at` is where the written
 * object sits in the Pod; `original` is that object in the original Pod (undefined when it did not
 * exist there), which says whether a write adds a member or replaces one. The operations share their
 * values with the mutated Pod: both are read-only from here on.
 */
export class PatchRecorder {
  readonly operations: Operation[] = [];

  /** `target[key] = value` on the copy of `original`, recorded as compare() would see it. */
  set(at: readonly Token[], original: Readonly<Record<string, unknown>> | undefined, key: string, value: unknown): void {
    const before = original === undefined || !Object.hasOwn(original, key) ? undefined : original[key];
    if (before === value) return;
    this.operations.push({ op: before === undefined ? 'add' : 'replace', path: pointer([...at, key]), value });
  }

  /**
   * `target[key] = [...before, item]`, returned: an add at the end of the list that was there (even
   * an empty one), or the whole new list when there was none (`add`) or it was null (`replace`).
   */
  append<T>(at: readonly Token[], original: Readonly<Record<string, unknown>>, key: string, item: T): T[] {
    const before = Object.hasOwn(original, key) ? original[key] : undefined;
    if (Array.isArray(before)) {
      this.operations.push({ op: 'add', path: pointer([...at, key, before.length]), value: item });
      return [...(before as T[]), item];
    }
    const list = [item];
    this.operations.push({ op: before === undefined ? 'add' : 'replace', path: pointer([...at, key]), value: list });
    return list;
  }
}

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
