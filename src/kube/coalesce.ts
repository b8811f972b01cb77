// Owns "run this at most once at a time, and once more if asked while running": reconciles and
// refreshes are triggered by watches, timers and tests at once, and must neither overlap nor be lost.

/**
 * Wrap `fn` so calls never overlap. A call made while a run is in progress gets a promise for one
 * more run that starts after it; any number of such calls share that one run.
 */
export function coalesce(fn: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let queued: Promise<void> | undefined;
  const start = (): Promise<void> => {
    const run = fn().finally(() => {
      if (running === run) running = undefined;
    });
    running = run;
    return run;
  };
  return () => {
    if (queued) return queued;
    if (!running) return start();
    queued = running
      .catch(() => undefined)
      .then(() => {
        queued = undefined;
        return start();
      });
    return queued;
  };
}
