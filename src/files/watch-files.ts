// Owns "tell me when these files change on disk". Stat polling (fs.watchFile) rather than inotify:
// it follows symlinks, so it sees the atomic `..data` symlink swap that Kubernetes Secret and
// ConfigMap volumes use (and cert-manager rotations through them), where fs.watch misses events.
import { unwatchFile, watchFile, type Stats } from 'node:fs';

export interface FileWatcher {
  close(): void;
}

export const DEFAULT_WATCH_INTERVAL_MS = 1000;

/**
 * Call `onChange` (at most once per burst) when any of `paths` changes content, inode or mtime.
 * Changes to several files at once (a certificate and its key) are coalesced into one call.
 */
export function watchFiles(paths: readonly string[], onChange: () => void, intervalMs = DEFAULT_WATCH_INTERVAL_MS): FileWatcher {
  let pending: NodeJS.Timeout | undefined;
  const listener = (current: Stats, previous: Stats): void => {
    if (current.mtimeMs === previous.mtimeMs && current.ino === previous.ino && current.size === previous.size) return;
    if (pending) clearTimeout(pending);
    // Give a writer that replaces two files a moment to finish the second.
    pending = setTimeout(() => {
      pending = undefined;
      onChange();
    }, Math.min(intervalMs, 200));
  };
  for (const path of paths) watchFile(path, { interval: intervalMs, persistent: false }, listener);
  return {
    close() {
      if (pending) clearTimeout(pending);
      for (const path of paths) unwatchFile(path, listener);
    },
  };
}
