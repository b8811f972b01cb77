// Owns the benchmark's child processes: CPU pinning (taskset), starting a server and waiting until it
// answers, stopping it, and reading its resident memory and CPU time from /proc.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { openSync, closeSync, readFileSync } from 'node:fs';
import { request as httpsRequest } from 'node:https';
import { createServer } from 'node:net';
import { availableParallelism } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';

export interface Pinning {
  /** Core for the server under test, or undefined when not pinned. */
  serverCore: number | undefined;
  /** Core for this process (the load generator). */
  loadCore: number | undefined;
  note: string;
}

/** Servers on core 0, the load generator (this process, all its threads) on core 1, where possible. */
export function pinCores(): Pinning {
  const cores = availableParallelism();
  if (cores < 2) return { serverCore: undefined, loadCore: undefined, note: `not pinned: only ${cores} core` };
  if (spawnSync('taskset', ['-V']).error) return { serverCore: undefined, loadCore: undefined, note: 'not pinned: taskset not found' };
  const pinned = spawnSync('taskset', ['-a', '-p', '-c', '1', String(process.pid)]);
  if (pinned.status !== 0) return { serverCore: undefined, loadCore: undefined, note: `not pinned: taskset failed: ${pinned.stderr.toString().trim()}` };
  return { serverCore: 0, loadCore: 1, note: `server on core 0, load generator on core 1 (taskset; ${cores} cores)` };
}

/** A free loopback port (bound and released: a tiny race nobody else on this machine is running). */
export async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const address = server.address();
  await new Promise<void>((resolve) => server.close(() => resolve()));
  if (address === null || typeof address === 'string') throw new Error('no port');
  return address.port;
}

export interface Started {
  child: ChildProcess;
  pid: number;
  /** Milliseconds from spawn until GET /readyz answered 200. */
  readyMs: number;
}

/** Spawn `node ARGS` (pinned when asked), stdout to a file, and wait for /readyz on `port`. */
export async function startNode(options: { args: string[]; port: number; core: number | undefined; stdoutFile?: string; env?: NodeJS.ProcessEnv }): Promise<Started> {
  const out = options.stdoutFile ? openSync(options.stdoutFile, 'a') : 'ignore';
  const command = options.core === undefined ? process.execPath : 'taskset';
  const args = options.core === undefined ? options.args : ['-c', String(options.core), process.execPath, ...options.args];
  const started = performance.now();
  const child = spawn(command, args, { stdio: ['ignore', out, 'inherit'], env: options.env ?? process.env });
  if (typeof out === 'number') closeSync(out);
  let exited = false;
  child.once('exit', () => (exited = true));
  const deadline = started + 30_000;
  while (performance.now() < deadline) {
    if (exited) throw new Error(`${options.args.join(' ')} exited before it was ready`);
    if ((await getStatus(options.port, '/readyz')) === 200) {
      if (child.pid === undefined) throw new Error('no pid');
      return { child, pid: child.pid, readyMs: performance.now() - started };
    }
    await sleep(2);
  }
  child.kill('SIGKILL');
  throw new Error(`${options.args.join(' ')} was not ready within 30 s`);
}

function getStatus(port: number, path: string): Promise<number | undefined> {
  return new Promise((resolve) => {
    const request = httpsRequest({ host: '127.0.0.1', port, path, method: 'GET', rejectUnauthorized: false, agent: false }, (response) => {
      response.resume();
      response.on('end', () => resolve(response.statusCode));
    });
    request.on('error', () => resolve(undefined));
    request.end();
  });
}

/** SIGTERM, then SIGKILL if it has not exited within the grace period. */
export async function stop(child: ChildProcess, graceMs = 10_000): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), graceMs);
  await exited;
  clearTimeout(timer);
}

/** Resident set size in bytes (VmRSS), or undefined when /proc is not there. */
export function readRss(pid: number): number | undefined {
  return readStatusField(pid, 'VmRSS');
}

/** Peak resident set size in bytes since start (VmHWM). */
export function readPeakRss(pid: number): number | undefined {
  return readStatusField(pid, 'VmHWM');
}

function readStatusField(pid: number, field: string): number | undefined {
  try {
    const match = new RegExp(`^${field}:\\s+(\\d+) kB`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
    return match?.[1] === undefined ? undefined : Number(match[1]) * 1024;
  } catch {
    return undefined;
  }
}

const CLOCK_TICKS_PER_SECOND = Number(spawnSync('getconf', ['CLK_TCK']).stdout?.toString().trim()) || 100;

/** User + system CPU seconds a process has used so far (from /proc/PID/stat). */
export function readCpuSeconds(pid: number): number | undefined {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Fields after the command name (which may hold spaces) start at ")"; utime and stime are 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_SECOND;
  } catch {
    return undefined;
  }
}

/** Sample a process's RSS every `intervalMs` until stopped; returns the largest sample. */
export function sampleRss(pid: number, intervalMs = 100): { stop(): number | undefined } {
  let max: number | undefined;
  const take = (): void => {
    const rss = readRss(pid);
    if (rss !== undefined && (max === undefined || rss > max)) max = rss;
  };
  take();
  const timer = setInterval(take, intervalMs);
  return {
    stop() {
      clearInterval(timer);
      take();
      return max;
    },
  };
}
