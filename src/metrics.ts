// Owns what every long-running command shares for Prometheus: the metric name prefix, a registry of
// its own per process part (never prom-client's global one, so tests can build several), and a tiny
// plain-HTTP server that exposes it on its own port, away from the HTTPS admission port. Which
// metrics exist is each command's business (the webhook's: http/webhook-metrics.ts).
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
  const server: Server = createServer((request, response) => {
    const path = (request.url ?? '/').split('?')[0];
    if (request.method !== 'GET' || path !== '/metrics') {
      response.writeHead(404, { 'content-type': 'text/plain' }).end('not found; try GET /metrics\n');
      return;
    }
    source.registry.metrics().then(
      (text) => response.writeHead(200, { 'content-type': source.registry.contentType }).end(text),
      (error: unknown) => {
        log.error({ err: (error as Error).message }, 'collecting metrics failed');
        response.writeHead(500, { 'content-type': 'text/plain' }).end('collecting metrics failed\n');
      },
    );
  });
  // Scrapes are short; an idle keep-alive connection must not hold shutdown.
  server.keepAliveTimeout = 5_000;
  server.listen(port, host);
  await once(server, 'listening');
  const bound = (server.address() as AddressInfo).port;
  log.info({ host, port: bound }, 'metrics listening');
  return {
    port: bound,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}
