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

const QUOTE = 0x22;
const BACKSLASH = 0x5c;
const OPEN_BRACE = 0x7b;
const CLOSE_BRACE = 0x7d;
const OPEN_BRACKET = 0x5b;
const CLOSE_BRACKET = 0x5d;

/**
 * True when the JSON `text` (already accepted by JSON.parse) nests objects and lists more than
 * `limit` levels deep. A scan of the text, not a walk of the parsed object: strings, where most of a
 * Pod's bytes are, are skipped with indexOf, so it costs far less than visiting every node.
 */
export function nestsDeeperThan(text: string, limit: number): boolean {
  let depth = 0;
  for (let at = 0; at < text.length; at += 1) {
    const code = text.charCodeAt(at);
    if (code === QUOTE) {
      at = closingQuote(text, at);
    } else if (code === OPEN_BRACE || code === OPEN_BRACKET) {
      depth += 1;
      if (depth > limit) return true;
    } else if (code === CLOSE_BRACE || code === CLOSE_BRACKET) {
      depth -= 1;
    }
  }
  return false;
}

/** Where the string opened at `open` ends: the next quote not escaped by an odd run of backslashes. */
function closingQuote(text: string, open: number): number {
  for (let at = text.indexOf('"', open + 1); at !== -1; at = text.indexOf('"', at + 1)) {
    let backslashes = 0;
    while (text.charCodeAt(at - 1 - backslashes) === BACKSLASH) backslashes += 1;
    if (backslashes % 2 === 0) return at;
  }
  return text.length;
}
