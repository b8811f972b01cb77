// Owns what every long-running command shares for Prometheus: the metric name prefix, a registry of
// its own per process part (never prom-client's global one, so tests can build several), and a tiny
// plain-HTTP server that exposes it on its own port, away from the HTTPS admission port (the same
// server answers the refresher's probes on another port). Which metrics exist is each command's
// business (the webhook's: http/webhook-metrics.ts, the refresher's: refresher/refresher-metrics.ts).
import { once } from 'node:events';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Registry, collectDefaultMetrics } from 'prom-client';
import type { Logger } from './log.js';

export const METRIC_PREFIX = 'buildkite_ecr_injector_';

export interface RegistryOptions {
  /** prom-client's process and Node.js metrics (default true). */
  defaultMetrics?: boolean;
}

export function createRegistry(options: RegistryOptions = {}): Registry {
  const registry = new Registry();
  if (options.defaultMetrics ?? true) collectDefaultMetrics({ register: registry });
  return registry;
}

export interface MetricsServer {
  port: number;
  close(): Promise<void>;
}

/** Serve `GET /metrics` over plain HTTP (Prometheus scrapes it; it carries no secrets). */
export async function startMetricsServer(source: { registry: Registry }, host: string, port: number, log: Logger): Promise<MetricsServer> {
  return startPlainHttpServer(
    {
      '/metrics': async () => {
        try {
          return { status: 200, contentType: source.registry.contentType, body: await source.registry.metrics() };
        } catch (error) {
          log.error({ err: (error as Error).message }, 'collecting metrics failed');
          return { status: 500, contentType: 'text/plain', body: 'collecting metrics failed\n' };
        }
      },
    },
    host,
    port,
    log,
    'metrics',
  );
}

export interface PlainAnswer {
  status: number;
  contentType: string;
  body: string;
}

/** A tiny plain-HTTP server answering GET on a few paths (metrics, probes); 404 elsewhere. */
export async function startPlainHttpServer(
  routes: Record<string, () => PlainAnswer | Promise<PlainAnswer>>,
  host: string,
  port: number,
  log: Logger,
  what: string,
): Promise<MetricsServer> {
  const paths = Object.keys(routes).join(', ');
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0] ?? '/';
    const route = request.method === 'GET' ? routes[path] : undefined;
    if (route === undefined || !Object.hasOwn(routes, path)) {
      response.writeHead(404, { 'content-type': 'text/plain' }).end(`not found; try GET ${paths}\n`);
      return;
    }
    void Promise.resolve(route()).then((answer) => response.writeHead(answer.status, { 'content-type': answer.contentType }).end(answer.body));
  });
  // Scrapes and probes are short; an idle keep-alive connection must not hold shutdown.
  server.keepAliveTimeout = 5_000;
  server.listen(port, host);
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  log.info({ host, port: bound }, `${what} listening`);
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
