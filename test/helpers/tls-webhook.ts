// A real webhook for tests: startServer with a serving certificate from generateCertificates written
// to t.testdir(), listening on 127.0.0.1 port 0, labels from a fixed map, log lines kept in memory.
// Also the client side: certificates for clients and an HTTPS request over a fresh TLS connection.
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { TLSSocket } from 'node:tls';
import { join } from 'node:path';
import selfsigned from 'selfsigned';
import type { Test } from 'tap';
import { generateCertificates, writeCertificates, type CertificateSet } from '../../src/certs/generate.js';
import { parseConfig, type Config } from '../../src/webhook/config.js';
import { StaticNamespaceSource, type NamespaceLabelSource } from '../../src/webhook/namespace-labels.js';
import type { Labels } from '../../src/webhook/pod.js';
import { startServer, type RunningServer, type ServeOptions } from '../../src/http/server.js';
import { captureLog, type CapturedLog } from './log-capture.js';

export const OPTED_IN_NAMESPACES: Record<string, Labels> = {
  buildkite: {
    'buildkite-ecr-injector/inject': 'enabled',
    'buildkite-ecr-injector/service-account': 'buildkite-agent',
    'buildkite-ecr-injector/aws-secret': 'aws-credentials',
    'buildkite-ecr-injector/pull-secret': 'ecr-credentials',
  },
  'not-opted-in': {},
};

export interface TestWebhook {
  server: RunningServer;
  port: number;
  /** The CA that signed the serving certificate: what a client trusts. */
  ca: string;
  captured: CapturedLog;
  dir: string;
}

export interface TestWebhookOptions extends Partial<Pick<ServeOptions, 'tlsPolicy' | 'clientCaPath' | 'limits' | 'watchIntervalMs' | 'drainMs'>> {
  /** A fixed config, or a config file the webhook follows. */
  config?: Config | { file: string };
  namespaces?: Record<string, Labels>;
  /** A label source of the test's own, instead of a fixed map. */
  namespaceSource?: NamespaceLabelSource;
  logLevel?: string;
  /** Names of the serving certificate (default localhost and 127.0.0.1). */
  dnsNames?: string[];
  /** The test's folder when the test already made it (t.testdir() empties the folder on every call). */
  dir?: string;
}

export async function startTestWebhook(t: Test, options: TestWebhookOptions = {}): Promise<TestWebhook> {
  const dir = options.dir ?? t.testdir();
  const set = await generateCertificates({ dnsNames: options.dnsNames ?? ['localhost'], ipAddresses: ['127.0.0.1'] });
  const paths = await writeCertificates(join(dir, 'serving'), set);
  const captured = captureLog(options.logLevel ?? 'info');
  const { config, namespaces, namespaceSource, tlsPolicy, clientCaPath, limits, watchIntervalMs, drainMs } = options;
  const server = await startServer({
    config: config ?? parseConfig({}),
    log: captured.log,
    host: '127.0.0.1',
    port: 0,
    tls: { mode: 'files', certPath: paths.cert, keyPath: paths.key },
    namespaces: { source: namespaceSource ?? new StaticNamespaceSource(namespaces ?? OPTED_IN_NAMESPACES) },
    drainMs: drainMs ?? 0,
    ...(tlsPolicy ? { tlsPolicy } : {}),
    ...(clientCaPath ? { clientCaPath } : {}),
    ...(limits ? { limits } : {}),
    ...(watchIntervalMs ? { watchIntervalMs } : {}),
  });
  t.teardown(() => server.close());
  return { server, port: server.port, ca: set.caCert, captured, dir };
}

/** A client certificate (extKeyUsage clientAuth) signed by `ca`. */
export async function issueClientCertificate(ca: { cert: string; key: string }, commonName = 'kube-apiserver'): Promise<{ cert: string; key: string }> {
  const pems = await selfsigned.generate([{ name: 'commonName', value: commonName }], {
    keyType: 'ec',
    curve: 'P-256',
    algorithm: 'sha256',
    ca,
    notBeforeDate: new Date(Date.now() - 60_000),
    extensions: [
      { name: 'basicConstraints', cA: false, critical: true },
      { name: 'keyUsage', digitalSignature: true, critical: true },
      { name: 'extKeyUsage', clientAuth: true },
    ],
  });
  return { cert: pems.cert, key: pems.private };
}

/** A CA of its own (for client certificates), from the same generator the webhook uses. */
export async function createCa(): Promise<CertificateSet> {
  return generateCertificates({ dnsNames: ['unused.invalid'] });
}

export interface HttpsAnswer {
  status: number;
  body: string;
  alpnProtocol: string | false | null;
}

/**
 * One request over a fresh TLS connection to the test webhook. Rejects with the TLS or socket error
 * when the connection is refused.
 */
export function requestOnce(
  port: number,
  options: Omit<RequestOptions, 'host' | 'port'> & { body?: string | Buffer } = {},
): Promise<HttpsAnswer> {
  const { body, ...requestOptions } = options;
  return new Promise((resolve, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', port, servername: 'localhost', agent: false, method: 'GET', path: '/healthz', ...requestOptions },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('error', reject);
        response.on('end', () =>
          resolve({
            status: response.statusCode ?? 0,
            body: Buffer.concat(chunks).toString('utf8'),
            alpnProtocol: (response.socket as TLSSocket).alpnProtocol,
          }),
        );
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}
