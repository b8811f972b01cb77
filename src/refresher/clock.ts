// Owns the refresher's sense of time: "now" and "call me at", so tests can move a fake clock through
// a token's twelve hours and see the refresh timers fire, where the real clock would need a day.

export interface Clock {
  /** Milliseconds since the epoch. */
  now(): number;
  /** Run `fn` after `delayMs`; returns a cancel function. */
  setTimer(delayMs: number, fn: () => void): () => void;
}

// setTimeout takes at most 2^31-1 ms (~24.8 days); longer delays fire at once. Refreshes are hours.
const MAX_DELAY_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  setTimer(delayMs, fn) {
    const timer = setTimeout(fn, Math.min(Math.max(0, delayMs), MAX_DELAY_MS));
    timer.unref();
    return () => clearTimeout(timer);
  },
};
