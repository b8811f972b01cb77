// Owns the webhook under soak: the built CLI (`node dist/cli.js serve`) as a real child process on
// 127.0.0.1 with `--tls-mode files`, its JSON log lines read back as they come, and its exit.
import { spawn, type ChildProcess } from 'node:child_process';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { writeCertificates } from '../../src/certs/generate.js';
import { issueServingCertificate, type SoakContext } from './scenario.js';

export interface LogLine {
  level: number;
  msg: string;
  [field: string]: unknown;
}

export interface WebhookProcess {
  child: ChildProcess;
  port: number;
  lines: LogLine[];
  /** uids the webhook decided (one audit line each): the requests it received. */
  decided: Set<string>;
  stderr: string[];
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>;
  /** Stop it for good if it is still running (used on the soak's own failure paths). */
  kill(): void;
}

export interface WebhookOptions {
  certPath: string;
  keyPath: string;
  /** Namespace labels from a file, or from a cluster through the informer (--kubeconfig). */
  namespacesPath?: string;
  kubeconfigPath?: string;
  extraArgs?: string[];
}

/** Children still running; killed if the soak itself exits early (its deadline, a crash). */
const running = new Set<ChildProcess>();
process.on('exit', () => {
  for (const child of running) child.kill('SIGKILL');
});

export async function startWebhook(options: WebhookOptions): Promise<WebhookProcess> {
  const args = [
    'dist/cli.js',
    'serve',
    '--config',
    'examples/config.yaml',
    ...(options.namespacesPath !== undefined ? ['--namespaces', options.namespacesPath] : []),
    ...(options.kubeconfigPath !== undefined ? ['--kubeconfig', options.kubeconfigPath] : []),
    '--tls-mode',
    'files',
    '--tls-cert',
    options.certPath,
    '--tls-key',
    options.keyPath,
    '--host',
    '127.0.0.1',
    '--port',
    '0',
    // No metrics listener: it would bind 0.0.0.0:9090, and the soak stays on loopback.
    '--metrics-port',
    '0',
    ...(options.extraArgs ?? []),
  ];
  // process.execPath, not "node" from PATH: the signal must reach the webhook itself, not a wrapper.
  // Without KUBERNETES_SERVICE_HOST: the flags, not the environment, choose the label source.
  const env = { ...process.env };
  delete env.KUBERNETES_SERVICE_HOST;
  const child = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'], env });
  running.add(child);
  const lines: LogLine[] = [];
  const decided = new Set<string>();
  const stderr: string[] = [];
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null; at: number }>((resolve) =>
    child.once('exit', (code, signal) => {
      running.delete(child);
      resolve({ code, signal, at: Date.now() });
    }),
  );
  createInterface({ input: child.stderr }).on('line', (line) => stderr.push(line));

  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`webhook did not start within 15 s: ${stderr.join('\n')}`)), 15_000);
    void exited.then(({ code }) => reject(new Error(`webhook exited with ${code} before listening: ${stderr.join('\n')}`)));
    createInterface({ input: child.stdout }).on('line', (text) => {
      let line: LogLine;
      try {
        line = JSON.parse(text) as LogLine;
      } catch {
        return;
      }
      lines.push(line);
      if (line.msg === 'admission' && typeof line.uid === 'string') decided.add(line.uid);
      if (line.msg === 'webhook listening' && typeof line.port === 'number') {
        clearTimeout(timer);
        resolve(line.port);
      }
    });
  });
  return {
    child,
    port,
    lines,
    decided,
    stderr,
    exited,
    kill: () => {
      if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL');
    },
  };
}

/** The usual set-up: a fresh serving certificate from the soak's CA in the scenario's folder, labels from the namespaces file. */
export async function startWebhookWithNewCertificate(context: SoakContext, extraArgs: string[]): Promise<WebhookProcess> {
  const paths = await writeCertificates(join(context.dir, 'tls'), {
    ...(await issueServingCertificate(context.ca)),
    caCert: context.ca.cert,
    caKey: context.ca.key,
  });
  return startWebhook({ certPath: paths.cert, keyPath: paths.key, namespacesPath: context.namespacesPath, extraArgs });
}

/** SIGTERM the webhook and wait for it to exit; false (and a SIGKILL) when it is still running after `timeoutMs`. */
export async function stopWebhook(webhook: WebhookProcess, timeoutMs = 30_000): Promise<boolean> {
  webhook.child.kill('SIGTERM');
  const exit = await Promise.race([webhook.exited, new Promise<undefined>((resolve) => setTimeout(resolve, timeoutMs, undefined))]);
  if (exit !== undefined) return true;
  webhook.kill();
  return false;
}

/** Wait until `condition` holds, checking every 20 ms; false when `timeoutMs` passes first. */
export async function waitFor(condition: () => boolean, timeoutMs: number): Promise<boolean> {
  const deadline = Date.now() + timeoutMs;
  while (!condition()) {
    if (Date.now() > deadline) return false;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return true;
}
