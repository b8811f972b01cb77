// Owns "tell me when this one object may have changed": a watch on it by name, reopened with backoff
// whenever it ends or fails, plus a periodic nudge so a missed event costs at most one period. The
// callback re-reads the object itself: events are triggers, not data, which keeps one code path.
import { Watch, type KubeConfig } from '@kubernetes/client-node';
import type { Logger } from '../log.js';

export type ObjectEvent = 'ADDED' | 'MODIFIED' | 'DELETED' | 'RESYNC';

export interface ObjectWatchOptions {
  kubeConfig: KubeConfig;
  /** The collection path, e.g. `/api/v1/namespaces/NS/secrets`. */
  path: string;
  name: string;
  onEvent: (event: ObjectEvent) => void;
  resyncIntervalMs: number;
  log: Logger;
  retryInitialMs?: number;
  retryMaxMs?: number;
}

export interface ObjectWatch {
  close(): void;
}

export function watchObject(options: ObjectWatchOptions): ObjectWatch {
  const { log, path, name } = options;
  const initialDelay = options.retryInitialMs ?? 500;
  const maxDelay = options.retryMaxMs ?? 30_000;
  const watch = new Watch(options.kubeConfig);
  let closed = false;
  let delay = initialDelay;
  let controller: AbortController | undefined;
  let retry: NodeJS.Timeout | undefined;

  const reopenLater = (reason: string) => {
    controller = undefined;
    if (closed || retry) return;
    log.debug({ path, name, reason, delayMs: delay }, 'watch ended; reopening');
    retry = setTimeout(() => {
      retry = undefined;
      void open();
    }, delay);
    delay = Math.min(delay * 2, maxDelay);
  };

  const open = async () => {
    if (closed) return;
    try {
      const opened = await watch.watch(
        path,
        { fieldSelector: `metadata.name=${name}` },
        (type: string) => {
          delay = initialDelay;
          if (type === 'ADDED' || type === 'MODIFIED' || type === 'DELETED') options.onEvent(type);
        },
        (error: unknown) => reopenLater(error instanceof Error ? error.message : 'closed'),
      );
      if (closed) opened.abort();
      else controller = opened;
    } catch (error) {
      reopenLater((error as Error).message);
    }
  };

  const resync = setInterval(() => options.onEvent('RESYNC'), options.resyncIntervalMs);
  resync.unref();
  void open();

  return {
    close() {
      closed = true;
      clearInterval(resync);
      if (retry) clearTimeout(retry);
      controller?.abort();
    },
  };
}
