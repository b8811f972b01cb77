// Runs the built CLI's `serve` as a real child process for tests: collects its output, waits for the
// "webhook listening" log line, reads the bound port from it, and kills it in teardown.
import { spawn, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Test } from 'tap';
import { until } from './https-client.js';

export const repositoryRoot = new URL('../..', import.meta.url).pathname;
export const builtCli = new URL('../../dist/cli.js', import.meta.url).pathname;

export interface ServeProcess {
  child: ChildProcessWithoutNullStreams;
  port: number;
  stdout(): string;
  stderr(): string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

export async function startServeProcess(t: Test, args: string[], env: NodeJS.ProcessEnv = process.env): Promise<ServeProcess> {
  const child = spawn(process.execPath, [builtCli, 'serve', ...args], { cwd: repositoryRoot, env });
  let stdout = '';
  let stderr = '';
  child.stdout.on('data', (chunk: Buffer) => (stdout += chunk.toString()));
  child.stderr.on('data', (chunk: Buffer) => (stderr += chunk.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) =>
    child.on('exit', (code, signal) => resolve({ code, signal })),
  );
  t.teardown(() => {
    child.kill('SIGKILL');
  });
  await until(() => /"msg":"webhook listening"/.test(stdout) || child.exitCode !== null, 'the listening log line', 20_000);
  if (child.exitCode !== null) throw new Error(`serve exited with ${child.exitCode}: ${stderr}`);
  const line = stdout.split('\n').find((l) => l.includes('"msg":"webhook listening"')) ?? '';
  const port = Number(/"port":(\d+)/.exec(line)?.[1]);
  return { child, port, stdout: () => stdout, stderr: () => stderr, exited };
}
