// A small HTTPS client for tests: real TLS against the webhook's listener, verifying the server with
// a given CA, returning status, headers, parsed JSON and the peer certificate's fingerprint.
import { request, type Agent } from 'node:https';
import type { TLSSocket } from 'node:tls';

export interface HttpsResult {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  text: string;
  json: unknown;
  peerFingerprint256: string | undefined;
}

export interface HttpsRequest {
  port: number;
  path?: string;
  method?: string;
  ca: string;
  body?: string | Buffer;
  headers?: Record<string, string>;
  agent?: Agent | false;
  servername?: string;
}

export function httpsRequest(options: HttpsRequest): Promise<HttpsResult> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        servername: options.servername ?? 'localhost',
        port: options.port,
        path: options.path ?? '/mutate',
        method: options.method ?? 'POST',
        ca: options.ca,
        agent: options.agent ?? false,
        headers: {
          ...(options.body !== undefined ? { 'content-type': 'application/json' } : {}),
          ...options.headers,
        },
      },
      (res) => {
        const peer = (res.socket as TLSSocket).getPeerCertificate();
        const chunks: Buffer[] = [];
        res.on('data', (chunk: Buffer) => chunks.push(chunk));
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString('utf8');
          let json: unknown;
          try {
            json = JSON.parse(text);
          } catch {
            json = undefined;
          }
          resolve({ status: res.statusCode ?? 0, headers: res.headers, text, json, peerFingerprint256: peer.fingerprint256 });
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (options.body !== undefined) req.write(options.body);
    req.end();
  });
}

/** Poll until `check` passes or the deadline expires (no fixed sleeps in assertions). */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 25));
  }
}
