// Owns the logger: pino JSON lines, with redaction as a backstop. The first line of defence is that
// nothing logs whole objects or env values (audit records carry names only).
//
// Also owns where the lines go. Not pino's sonic-boom destination: its synchronous flush at exit
// retries every write error but EAGAIN/EBUSY forever, so once the reader of stdout has gone (EPIPE) a
// stopping process spins in Atomics.wait and never exits. StdoutDestination writes without blocking,
// drops all further output on a broken pipe, and bounds the exit-time flush.
import { write, writeSync } from 'node:fs';
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths that must never reach a log line even if some future change logs a whole object. */
export const REDACTED_PATHS = [
  'object',
  'oldObject',
  'request.object',
  'request.oldObject',
  '*.env',
  '*.data',
  '*.stringData',
  'key',
  'tlsKey',
  '*.key',
  'req.headers.authorization',
];

/** Pending output beyond this is dropped (a reader that stopped reading must not grow the heap). */
const MAX_PENDING_BYTES = 8 * 1024 * 1024;
/** How long the exit-time flush keeps retrying a full pipe (EAGAIN) before it gives up. */
const EXIT_FLUSH_MS = 1_000;
const RETRY_MS = 10;
/**
 * Lines wait this long (or until BATCH_BYTES are queued) and go out in one write: one write per
 * audit line cost 6-8 % of the webhook's CPU under load. At exit the queue is flushed.
 */
const BATCH_MS = 10;
const BATCH_BYTES = 64 * 1024;

/**
 * Non-blocking writes to a file descriptor: lines queue for up to BATCH_MS, and while one write is
 * in flight, and go out together. Any write error but EAGAIN (EPIPE: the reader went away; EBADF; ...) marks the
 * destination broken, and from then on every line is dropped at once.
 */
export class StdoutDestination implements DestinationStream {
  #pending: string[] = [];
  #pendingBytes = 0;
  #writing = false;
  /** A write that hit a full pipe (EAGAIN) and waits to be retried: not in flight, so exit can flush it. */
  #retry: Buffer | undefined;
  #broken = false;
  #dropped = 0;
  #timer: NodeJS.Timeout | undefined;
  /** flush() was called during a write: write what is queued as soon as it ends, not after BATCH_MS. */
  #flushing = false;

  constructor(private readonly fd: number) {}

  get broken(): boolean {
    return this.#broken;
  }

  /** Lines dropped because the destination broke or the reader fell too far behind. */
  get dropped(): number {
    return this.#dropped;
  }

  write(line: string): boolean {
    if (this.#broken || this.#pendingBytes + line.length > MAX_PENDING_BYTES) {
      this.#dropped += 1;
      return true;
    }
    this.#pending.push(line);
    this.#pendingBytes += line.length;
    if (this.#writing) return true;
    if (this.#pendingBytes >= BATCH_BYTES) this.#writeNext();
    else this.#armTimer();
    return true;
  }

  /** Called by pino's logger.flush(cb): done when everything queued so far is written (or dropped). */
  flush(callback?: (error?: Error) => void): void {
    if (!this.#writing && !this.#broken && this.#pending.length > 0) this.#writeNext();
    if (this.#writing) this.#flushing = true;
    if (!callback) return;
    if (!this.#writing || this.#broken) return callback();
    const wait = (): void => {
      if (!this.#writing || this.#broken) callback();
      else setTimeout(wait, RETRY_MS).unref();
    };
    setTimeout(wait, RETRY_MS).unref();
  }

  /** At exit: write what is queued synchronously, but never for longer than EXIT_FLUSH_MS. */
  flushSync(): void {
    // A write in flight cannot be waited for here; its bytes may or may not reach the reader.
    if (this.#broken || (this.#pending.length === 0 && !this.#retry)) return;
    let buffer = this.#retry ? Buffer.concat([this.#retry, this.#take()]) : this.#take();
    this.#retry = undefined;
    const deadline = Date.now() + EXIT_FLUSH_MS;
    while (buffer.length > 0) {
      try {
        buffer = buffer.subarray(writeSync(this.fd, buffer));
      } catch (error) {
        if ((error as NodeJS.ErrnoException).code !== 'EAGAIN' || Date.now() >= deadline) return this.#break();
        Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, RETRY_MS);
      }
    }
  }

  #take(): Buffer {
    const buffer = Buffer.from(this.#pending.join(''));
    this.#pending = [];
    this.#pendingBytes = 0;
    return buffer;
  }

  #writeNext(): void {
    clearTimeout(this.#timer);
    this.#timer = undefined;
    this.#writing = true;
    this.#send(this.#take());
  }

  #send(buffer: Buffer): void {
    write(this.fd, buffer, 0, buffer.length, null, (error, written) => {
      if (error && error.code === 'EAGAIN') {
        this.#retry = buffer;
        // Unref'd: a reader that stopped reading must not keep the process alive either.
        setTimeout(() => {
          if (this.#retry !== buffer) return;
          this.#retry = undefined;
          this.#send(buffer);
        }, RETRY_MS).unref();
        return;
      }
      if (error) return this.#break();
      if (written < buffer.length) return this.#send(buffer.subarray(written));
      this.#writing = false;
      // Lines that came in during the write wait for the batch too: writing them at once made every
      // write under load carry one or two lines (a write takes far less than the time between two).
      if (this.#pending.length === 0) this.#flushing = false;
      else if (this.#flushing || this.#pendingBytes >= BATCH_BYTES) this.#writeNext();
      else this.#armTimer();
    });
  }

  #armTimer(): void {
    if (this.#timer !== undefined) return;
    // Unref'd: the exit-time flush writes what is still queued.
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      if (!this.#writing && this.#pending.length > 0) this.#writeNext();
    }, BATCH_MS).unref();
  }

  #break(): void {
    this.#broken = true;
    this.#retry = undefined;
    this.#writing = false;
    this.#dropped += this.#pending.length;
    this.#pending = [];
    this.#pendingBytes = 0;
  }
}

let stdout: StdoutDestination | undefined;

/** One destination for fd 1, shared by every logger, flushed (boundedly) when the process exits. */
function stdoutDestination(): StdoutDestination {
  if (!stdout) {
    const destination = new StdoutDestination(1);
    process.on('exit', () => destination.flushSync());
    stdout = destination;
  }
  return stdout;
}

export interface LoggerOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: 'buildkite-ecr-injector',
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ?? stdoutDestination(),
  );
}
