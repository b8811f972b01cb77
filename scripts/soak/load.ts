// Owns the soak's load: workers that POST AdmissionReviews to the webhook over real TLS with undici,
// each request carrying its own uid, and a tally of what came back. Workers either keep their
// connection alive (as the API server does) or open a fresh one for every request (so every request
// is also a TLS handshake). Loopback only: the target is always 127.0.0.1.
import { randomUUID } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { resolve } from 'node:path';
import type { Readable } from 'node:stream';
import type { TLSSocket } from 'node:tls';
import { Agent, buildConnector, Client, request, type Dispatcher } from 'undici';

export type Outcome =
  /** 200, JSON, an AdmissionReview with our uid. */
  | 'answered'
  /**
   * The connection failed while connecting, before a byte of the request was sent: refused
   * (ECONNREFUSED), or reset in the listen backlog as the listener closed (ECONNRESET on connect).
   */
  | 'refused'
  /** Anything else: a reset, a TLS failure, a cut or wrong answer. */
  | 'failed';

export interface RequestRecord {
  uid: string;
  outcome: Outcome;
  detail?: string;
  sentAt: number;
  finishedAt: number;
}

export interface Tally {
  sent: number;
  answered: number;
  refused: number;
  failed: number;
  /** The first few failure details, for the report. */
  failures: string[];
  /** Refusals by error code. */
  refusedBy: Record<string, number>;
}

const TEMPLATE = JSON.parse(readFileSync(resolve(process.cwd(), 'examples/admission-review.json'), 'utf8')) as {
  request: { uid: string };
};

/** A real job-Pod AdmissionReview (the example capture) with a fresh uid. */
export function makeReview(uid: string): string {
  return JSON.stringify({ ...TEMPLATE, request: { ...TEMPLATE.request, uid } });
}

export interface TargetOptions {
  port: number;
  ca: string;
  /** Called with the SHA-256 fingerprint of the server certificate at every new TLS handshake. */
  onHandshake?: (fingerprint: string) => void;
}

function createConnector(target: TargetOptions): buildConnector.connector {
  // No session resumption: a resumed session skips the certificate, and every handshake here is
  // meant to fetch and verify the one the webhook serves now.
  const base = buildConnector({ ca: target.ca, servername: 'localhost', maxCachedSessions: 0 });
  const connect: buildConnector.connector = (options, callback) =>
    base(options, (...args) => {
      const [error, socket] = args;
      if (error !== null) {
        // Mark it: a failure before the TLS handshake finished means no byte of a request was sent.
        (error as Error & { beforeRequest?: boolean }).beforeRequest = true;
      } else if (target.onHandshake) {
        target.onHandshake((socket as TLSSocket).getPeerCertificate().fingerprint256);
      }
      callback(...args);
    });
  return connect;
}

/** A connection pool to the webhook that trusts only the soak's CA. */
export function createAgent(target: TargetOptions): Agent {
  return new Agent({ connect: createConnector(target), pipelining: 1, connections: 64 });
}

/** One connection, kept alive, like one connection of the API server's pool. */
export function createClient(target: TargetOptions): Client {
  return new Client(`https://127.0.0.1:${target.port}`, { connect: createConnector(target), pipelining: 1 });
}

/**
 * A refusal: the connection failed with ECONNREFUSED, or was reset before its TLS handshake finished
 * (the kernel resets connections still waiting in the listen backlog when the listener closes).
 * Either way no byte of the request was sent. TLS verification errors are failures, not refusals.
 */
function refusalOf(error: unknown): string | undefined {
  const { code, beforeRequest } = error as { code?: string; beforeRequest?: boolean };
  if (code === 'ECONNREFUSED') return code;
  if (code === 'ECONNRESET' && beforeRequest === true) return 'ECONNRESET before the TLS handshake finished';
  return undefined;
}

/** Send one AdmissionReview and classify the answer. Never throws. */
export async function sendReview(
  dispatcher: Dispatcher,
  port: number,
  options: { fresh: boolean; body?: string | Readable; uid?: string },
): Promise<RequestRecord> {
  const uid = options.uid ?? randomUUID();
  const sentAt = Date.now();
  const record = (outcome: Outcome, detail?: string): RequestRecord => ({
    uid,
    outcome,
    sentAt,
    finishedAt: Date.now(),
    ...(detail === undefined ? {} : { detail }),
  });
  try {
    const response = await request(`https://127.0.0.1:${port}/mutate`, {
      dispatcher,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: options.body ?? makeReview(uid),
      // A fresh connection per request: `connection: close`, so the next one is a new handshake.
      reset: options.fresh,
      headersTimeout: 20_000,
      bodyTimeout: 20_000,
    });
    const text = await response.body.text();
    if (response.statusCode !== 200) return record('failed', `HTTP ${response.statusCode}: ${text.slice(0, 120)}`);
    const review = JSON.parse(text) as { kind?: string; response?: { uid?: string; allowed?: boolean; patch?: string } };
    if (review.kind !== 'AdmissionReview' || review.response?.uid !== uid || review.response.allowed !== true) {
      return record('failed', `not our AdmissionReview: ${text.slice(0, 120)}`);
    }
    if (typeof review.response.patch !== 'string') return record('failed', 'a job Pod in an opted-in namespace got no patch');
    return record('answered');
  } catch (error) {
    const refusal = refusalOf(error);
    if (refusal !== undefined) return record('refused', refusal);
    const { code, message } = error as { code?: string; message?: string };
    return record('failed', `${code ?? 'error'}: ${message ?? String(error)}`);
  }
}

export interface LoadOptions {
  target: TargetOptions;
  /** Workers with a connection of their own, kept alive. */
  keepAliveWorkers: number;
  /** Workers that open a new connection (and TLS handshake) for every request. */
  freshWorkers: number;
  /** Workers stop when this returns true (checked before every request). */
  shouldStop: () => boolean;
  /** Seen for every finished request. */
  onRecord?: (record: RequestRecord, fresh: boolean) => void;
}

export interface LoadRun {
  records: RequestRecord[];
  done: Promise<void>;
}

/** Start the workers; `done` settles when all have stopped. */
export function runLoad(options: LoadOptions): LoadRun {
  const records: RequestRecord[] = [];
  const { target } = options;
  const worker = async (dispatcher: Dispatcher, fresh: boolean): Promise<void> => {
    try {
      while (!options.shouldStop()) {
        const record = await sendReview(dispatcher, target.port, { fresh });
        records.push(record);
        options.onRecord?.(record, fresh);
      }
    } finally {
      await dispatcher.close();
    }
  };
  const workers = [
    ...Array.from({ length: options.keepAliveWorkers }, () => worker(createClient(target), false)),
    ...Array.from({ length: options.freshWorkers }, () => worker(createAgent(target), true)),
  ];
  return { records, done: Promise.all(workers).then(() => undefined) };
}

export function tally(records: readonly RequestRecord[]): Tally {
  const result: Tally = { sent: records.length, answered: 0, refused: 0, failed: 0, failures: [], refusedBy: {} };
  for (const record of records) {
    result[record.outcome] += 1;
    if (record.outcome === 'failed' && result.failures.length < 5) result.failures.push(record.detail ?? 'unknown');
    if (record.outcome === 'refused') result.refusedBy[record.detail ?? 'unknown'] = (result.refusedBy[record.detail ?? 'unknown'] ?? 0) + 1;
  }
  return result;
}
