// Owns the CA bundle that client certificates are checked against (serve --client-ca): read it, check
// that it holds CA certificates, and reload it when the file changes, like the serving certificate.
// A bad bundle on disk never replaces a good one in memory.
import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import type { Logger } from '../log.js';
import { watchFiles, type FileWatcher } from '../files/watch-files.js';

export class ClientCaError extends Error {
  override name = 'ClientCaError';
}

const PEM_CERTIFICATE = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

/** Read a PEM bundle of one or more CA certificates. */
export async function readCaBundle(path: string): Promise<string> {
  let text: string;
  try {
    text = await readFile(path, 'utf8');
  } catch (error) {
    throw new ClientCaError(`cannot read client CA file: ${(error as Error).message}`);
  }
  const pems = text.match(PEM_CERTIFICATE) ?? [];
  if (pems.length === 0) throw new ClientCaError(`${path} holds no PEM certificate`);
  for (const [index, pem] of pems.entries()) {
    let certificate: X509Certificate;
    try {
      certificate = new X509Certificate(pem);
    } catch (error) {
      throw new ClientCaError(`${path}: certificate ${index + 1} does not parse: ${(error as Error).message}`);
    }
    // A leaf certificate here would make every client fail verification: say so at start.
    if (!certificate.ca) throw new ClientCaError(`${path}: certificate ${index + 1} (${certificate.subject}) is not a CA certificate`);
  }
  return pems.join('\n');
}

export type ClientCaListener = (bundle: string) => void;

export class FileClientCaSource {
  #current: string;
  #watcher: FileWatcher | undefined;
  readonly #listeners: ClientCaListener[] = [];

  private constructor(
    readonly path: string,
    private readonly log: Logger,
    initial: string,
  ) {
    this.#current = initial;
  }

  static async open(path: string, log: Logger, watchIntervalMs?: number): Promise<FileClientCaSource> {
    const source = new FileClientCaSource(path, log, await readCaBundle(path));
    source.#watcher = watchFiles([path], () => void source.reload(), watchIntervalMs);
    log.info({ path }, 'client CA loaded; clients must present a certificate it signed');
    return source;
  }

  current(): string {
    return this.#current;
  }

  onChange(listener: ClientCaListener): void {
    this.#listeners.push(listener);
  }

  async reload(): Promise<void> {
    try {
      const next = await readCaBundle(this.path);
      if (next === this.#current) return;
      this.#current = next;
      this.log.info({ path: this.path }, 'client CA reloaded');
      for (const listener of this.#listeners) listener(next);
    } catch (error) {
      this.log.warn({ err: (error as Error).message }, 'client CA reload failed; keeping the current one');
    }
  }

  close(): void {
    this.#watcher?.close();
  }
}
