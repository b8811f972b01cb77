// Owns reading the config file from disk: YAML in, a validated and frozen Config out (the schema is
// the core's, webhook/config.ts). A missing --config means the built-in defaults. `serve` follows
// the file (FileConfigSource): a mounted ConfigMap is updated in place, by a `..data` symlink swap.
import type { Logger } from '../log.js';
import { ConfigError, parseConfig, type Config } from '../webhook/config.js';
import { watchFiles, type FileWatcher } from './watch-files.js';
import { readYamlFile } from './yaml-file.js';

/** Read and validate a YAML config file. A missing path gives the built-in defaults. */
export async function loadConfig(path: string | undefined): Promise<Config> {
  if (path === undefined) return parseConfig({});
  const document = await readYamlFile(path, 'config file', (message) => new ConfigError(message));
  return parseConfig(document, `config file ${path}`);
}

export type ConfigLoadResult = 'initial' | 'applied' | 'failed';

/**
 * Keys read once at start: the request body limit is the HTTP server's, and the label prefix is
 * baked into the patch guard and the namespace informer's kept annotations. A reload that changes
 * them keeps the running values and says so; everything else applies to the next request.
 */
export const RESTART_ONLY_KEYS = ['labelPrefix', 'maxRequestBytes'] as const;

export interface ConfigSourceOptions {
  /** Applied to every config read (serve adds its own namespace to the excluded ones). */
  adjust?: (config: Config) => Config;
  watchIntervalMs?: number;
  /** Told about the first load and every reload (metrics). */
  onLoad?: (result: ConfigLoadResult, at: Date) => void;
}

/** The config file, reloaded when it changes; an invalid edit is refused and the last good config stays. */
export class FileConfigSource {
  #config: Config;
  #watcher: FileWatcher | undefined;
  // Reloads run one after another, so a slow read can never apply an older file over a newer one.
  #reloading: Promise<void> = Promise.resolve();

  private constructor(
    readonly path: string,
    private readonly log: Logger,
    private readonly options: ConfigSourceOptions,
    config: Config,
  ) {
    this.#config = config;
  }

  /** Load the file (a ConfigError naming the field fails start-up) and watch it. */
  static async open(path: string, log: Logger, options: ConfigSourceOptions = {}): Promise<FileConfigSource> {
    const adjust = options.adjust ?? ((config: Config) => config);
    const source = new FileConfigSource(path, log, options, adjust(await loadConfig(path)));
    options.onLoad?.('initial', new Date());
    source.#watcher = watchFiles([path], () => void source.reload(), options.watchIntervalMs);
    return source;
  }

  current(): Config {
    return this.#config;
  }

  reload(): Promise<void> {
    this.#reloading = this.#reloading.then(() => this.#reloadOnce());
    return this.#reloading;
  }

  async #reloadOnce(): Promise<void> {
    let next: Config;
    try {
      next = (this.options.adjust ?? ((config: Config) => config))(await loadConfig(this.path));
    } catch (error) {
      // The message names the file and each bad field ("rules.1.name: ..."); the file holds no secrets.
      this.log.error({ path: this.path, err: (error as Error).message }, 'config file reload refused; the last good config stays in force');
      this.options.onLoad?.('failed', new Date());
      return;
    }
    const previous = this.#config;
    const pinned = RESTART_ONLY_KEYS.filter((key) => next[key] !== previous[key]);
    if (pinned.length > 0) {
      this.log.warn({ path: this.path, keys: pinned }, 'config keys changed that apply only after a restart; keeping their running values');
      next = Object.freeze({ ...next, labelPrefix: previous.labelPrefix, maxRequestBytes: previous.maxRequestBytes });
    }
    this.#config = next;
    this.log.info({ path: this.path, rules: next.rules.length }, 'config file reloaded');
    this.options.onLoad?.('applied', new Date());
  }

  close(): void {
    this.#watcher?.close();
  }
}
