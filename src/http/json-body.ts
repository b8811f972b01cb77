// Owns turning a request body into JSON. Plain JSON.parse when the text cannot hold a prototype
// poisoning key (`__proto__`, `constructor`); secure-json-parse (which refuses them) otherwise, and
// for any body JSON.parse rejects, so errors carry its message. secure-json-parse scans every body
// with two regular expressions that stop at every quote: on a typical Pod that cost more than the
// webhook's own decision.
import secureJsonParse from 'secure-json-parse';

const ZERO = 0x30;
/** `\u0040`-`\u007f`: escapes that can spell a letter or "_", i.e. part of either key. */
const FIRST_LETTER_ROW = 0x34;
const LAST_LETTER_ROW = 0x37;

/**
 * True when `text` might hold a `__proto__` or `constructor` key: the word appears literally, or the
 * text escapes a letter or "_" (JSON lets a key spell them as `\u005f`). Go's encoder only escapes
 * `<`, `>`, `&` and control characters, so real AdmissionReviews take the fast path.
 */
export function mayHidePoisonedKey(text: string): boolean {
  if (text.includes('__proto__') || text.includes('constructor')) return true;
  for (let at = text.indexOf('\\u'); at !== -1; at = text.indexOf('\\u', at + 2)) {
    const row = text.charCodeAt(at + 4);
    if (text.charCodeAt(at + 2) === ZERO && text.charCodeAt(at + 3) === ZERO && row >= FIRST_LETTER_ROW && row <= LAST_LETTER_ROW) return true;
  }
  return false;
}

/** Parse a JSON body; throws secure-json-parse's error for a poisoned or malformed one. */
export function parseJsonBody(text: string): unknown {
  if (!mayHidePoisonedKey(text)) {
    try {
      return JSON.parse(text) as unknown;
    } catch {
      // Fall through: the secure parser throws the error (and message) callers expect.
    }
  }
  return secureJsonParse.parse(text, undefined, { protoAction: 'error', constructorAction: 'error' }) as unknown;
}
