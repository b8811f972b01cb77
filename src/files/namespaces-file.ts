// Owns the namespaces file (`serve --namespaces`, `mutate --namespaces`): a YAML map of namespace
// name to labels, read and checked, and a label source that reloads it on change and keeps the last
// good labels when an edit is bad. Local runs and tests use it instead of the cluster.
import type { Logger } from '../log.js';
import type { NamespaceLabelSource } from '../webhook/namespace-labels.js';
import { isPlainObject, type Labels } from '../webhook/pod.js';
import { watchFiles, type FileWatcher } from './watch-files.js';
import { readYamlFile } from './yaml-file.js';

export class NamespaceFileError extends Error {
  override name = 'NamespaceFileError';
}

/**
 * Parse a namespaces file: a YAML map of namespace name to its labels, e.g.
 *   buildkite:
 *     buildkite-ecr-injector/inject: enabled
 */
export function parseNamespacesDocument(document: unknown, source: string): Map<string, Labels> {
  if (document === null || document === undefined) return new Map();
  if (!isPlainObject(document)) throw new NamespaceFileError(`${source}: must be a map of namespace name to labels`);
  const namespaces = new Map<string, Labels>();
  for (const [name, labels] of Object.entries(document)) {
    if (labels === null) {
      namespaces.set(name, {});
      continue;
    }
    if (!isPlainObject(labels)) throw new NamespaceFileError(`${source}: labels of namespace ${name} must be a map`);
    const checked: Record<string, string> = {};
    for (const [key, value] of Object.entries(labels)) {
      if (typeof value !== 'string') {
        throw new NamespaceFileError(`${source}: label ${key} of namespace ${name} must be a string (quote it)`);
      }
      checked[key] = value;
    }
    namespaces.set(name, Object.freeze(checked));
  }
  return namespaces;
}

export async function readNamespacesFile(path: string): Promise<Map<string, Labels>> {
  const document = await readYamlFile(path, 'namespaces file', (message) => new NamespaceFileError(message));
  return parseNamespacesDocument(document, `namespaces file ${path}`);
}

/** Labels from a YAML file, reloaded when it changes; a bad edit keeps the last good labels. */
export class FileNamespaceSource implements NamespaceLabelSource {
  #labels = new Map<string, Labels>();
  #watcher: FileWatcher | undefined;
  #lastError: string | undefined;
  #loadedAt: Date | undefined;

  private constructor(
    readonly path: string,
    private readonly log: Logger,
  ) {}

  /** Load the file (failing start-up if it is bad) and watch it for changes. */
  static async open(path: string, log: Logger, watchIntervalMs?: number): Promise<FileNamespaceSource> {
    const source = new FileNamespaceSource(path, log);
    source.#labels = await readNamespacesFile(path);
    source.#loadedAt = new Date();
    source.#watcher = watchFiles([path], () => void source.reload(), watchIntervalMs);
    log.info({ path, namespaces: source.#labels.size }, 'namespace labels loaded from file');
    return source;
  }

  async reload(): Promise<void> {
    try {
      this.#labels = await readNamespacesFile(this.path);
      this.#lastError = undefined;
      this.#loadedAt = new Date();
      this.log.info({ path: this.path, namespaces: this.#labels.size }, 'namespace labels reloaded from file');
    } catch (error) {
      this.#lastError = (error as Error).message;
      this.log.error({ path: this.path, err: this.#lastError }, 'namespaces file reload failed; keeping the last good labels');
    }
  }

  get(namespace: string): Labels | undefined {
    return this.#labels.get(namespace);
  }

  isSynced(): boolean {
    return true;
  }

  state(): string {
    return this.#lastError === undefined ? 'synced' : 'stale';
  }

  lastSyncedAt(): Date | undefined {
    return this.#loadedAt;
  }

  close(): Promise<void> {
    this.#watcher?.close();
    return Promise.resolve();
  }
}

/** Parse `k=v,k2=v2` (the CLI's --namespace-labels). */
export function parseLabelList(text: string): Labels {
  const labels: Record<string, string> = {};
  for (const pair of text.split(',').map((part) => part.trim()).filter(Boolean)) {
    const separator = pair.indexOf('=');
    if (separator <= 0) throw new NamespaceFileError(`label "${pair}" must be key=value`);
    labels[pair.slice(0, separator)] = pair.slice(separator + 1);
  }
  return labels;
}
