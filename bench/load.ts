// Owns driving load: autocannon (keep-alive connections, one request in flight per connection) with
// each response's own time collected, so percentiles are exact to the microsecond rather than rounded
// to autocannon's whole-millisecond histogram buckets.
import autocannon from 'autocannon';
import { readCpuSeconds, sampleRss } from './processes.js';

export interface LoadOptions {
  port: number;
  body: string;
  /** Server process to watch (CPU seconds and RSS). */
  pid: number;
  connections: number;
  durationSeconds: number;
  /** Requests per second across all connections; undefined = as fast as the server answers. */
  rate?: number;
}

export interface LoadResult {
  requests: number;
  /** Completed 2xx answers per second of the run. */
  throughput: number;
  latencyMs: { p50: number; p90: number; p99: number; max: number };
  errors: number;
  non2xx: number;
  /** Share of one core the server used (1 = saturated). */
  serverCpu: number | undefined;
  /**
   * Server CPU time per answered request, in µs. Unlike req/s this does not depend on how much of
   * its core the server got, so it stays comparable when other work shares the machine.
   */
  cpuUsPerRequest: number | undefined;
  /** Share of one core the load generator used; near 1 means it, not the server, was the limit. */
  loadCpu: number;
  maxRssBytes: number | undefined;
}

export async function runLoad(options: LoadOptions): Promise<LoadResult> {
  const times: number[] = [];
  const cpuBefore = readCpuSeconds(options.pid);
  const ownBefore = process.cpuUsage();
  const rss = sampleRss(options.pid);
  const started = performance.now();
  const instance = autocannon(
    {
      url: `https://127.0.0.1:${options.port}/mutate`,
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: options.body,
      connections: options.connections,
      pipelining: 1,
      duration: options.durationSeconds,
      ...(options.rate === undefined ? {} : { overallRate: options.rate }),
    },
    () => undefined,
  );
  instance.on('response', (_client, statusCode, _bytes, responseTime) => {
    if (statusCode >= 200 && statusCode < 300) times.push(responseTime);
  });
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    instance.on('done', resolve);
    instance.on('error', reject);
  });
  const wallSeconds = (performance.now() - started) / 1000;
  const cpuAfter = readCpuSeconds(options.pid);
  const serverCpuSeconds = cpuBefore === undefined || cpuAfter === undefined ? undefined : cpuAfter - cpuBefore;
  const own = process.cpuUsage(ownBefore);
  return {
    requests: times.length,
    throughput: times.length / result.duration,
    latencyMs: percentiles(times),
    errors: result.errors,
    non2xx: result.non2xx,
    serverCpu: serverCpuSeconds === undefined ? undefined : serverCpuSeconds / wallSeconds,
    cpuUsPerRequest: serverCpuSeconds === undefined || times.length === 0 ? undefined : (serverCpuSeconds * 1e6) / times.length,
    loadCpu: (own.user + own.system) / 1e6 / wallSeconds,
    maxRssBytes: rss.stop(),
  };
}

function percentiles(values: number[]): LoadResult['latencyMs'] {
  const sorted = Float64Array.from(values).sort();
  const at = (q: number): number => sorted[Math.min(sorted.length - 1, Math.max(0, Math.ceil(q * sorted.length) - 1))] ?? Number.NaN;
  return { p50: at(0.5), p90: at(0.9), p99: at(0.99), max: sorted[sorted.length - 1] ?? Number.NaN };
}
