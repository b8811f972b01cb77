// Every error a user can cause ends with one line and an exit code, never a stack trace: the built
// CLI, per command, in a child process (as a user runs it); and describeFailure on the errors that
// have no command of their own to provoke them (the Kubernetes API's refusals, a bug).
import { ApiException } from '@kubernetes/client-node';
import { execFile } from 'node:child_process';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { describeFailure, TRACE_ENV } from '../../src/cli/errors.js';
import { UsageError } from '../../src/cli/flags.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const cli = join(root, 'dist/cli.js');

async function runCli(args: string[], env: Record<string, string> = {}): Promise<{ code: number; stderr: string }> {
  try {
    const { stderr } = await run(process.execPath, [cli, ...args], { cwd: root, env: { ...process.env, ...env }, timeout: 60_000 });
    return { code: 0, stderr };
  } catch (error) {
    const failed = error as { code: number; stderr: string };
    return { code: failed.code, stderr: failed.stderr };
  }
}

const cases: { command: string; args: string[]; env?: Record<string, string>; code: number; says: RegExp }[] = [
  { command: 'serve', args: ['serve', '--tls-cert', '/missing.crt', '--tls-key', '/missing.key', '--namespaces', 'examples/namespaces.yaml'], code: 1, says: /cannot read TLS files: ENOENT/ },
  { command: 'serve', args: ['serve', '--tls-mode', 'local', '--namespaces', 'examples/namespaces.yaml', '--port', 'eighty'], code: 64, says: /--port must be an integer/ },
  { command: 'serve', args: ['serve', '--tls-mode', 'local', '--namespaces', 'examples/namespaces.yaml', '--config', '/missing.yaml'], code: 1, says: /cannot read config file \/missing\.yaml/ },
  { command: 'mutate', args: ['mutate', '/missing-pod.yaml', '--namespace-labels', 'a=b'], code: 64, says: /cannot read \/missing-pod\.yaml/ },
  { command: 'mutate', args: ['mutate', '--frobnicate'], code: 64, says: /Unknown option '--frobnicate'/ },
  { command: 'mutate', args: ['mutate', '-', '--namespace', 'a', '-n', 'b'], code: 64, says: /--namespace may be given once here/ },
  { command: 'certs', args: ['certs', '--out', '/dev/null/certs'], code: 1, says: /ENOTDIR: not a directory/ },
  // Node's recursive mkdir spun forever here (a parent that exists, a child that cannot be made).
  { command: 'certs', args: ['certs', '--out', '/proc/no-such-dir/certs'], code: 1, says: /ENOENT: no such file or directory, mkdir '\/proc\/no-such-dir'/ },
  { command: 'certs', args: ['certs', '--days', '0'], code: 64, says: /--days must be an integer from 1 to 3650/ },
  { command: 'refresh', args: ['refresh', '--kubeconfig', '/missing-kubeconfig'], env: { POD_NAMESPACE: 'ops' }, code: 64, says: /cannot load the Kubernetes client configuration/ },
  { command: 'refresh', args: ['refresh'], env: { POD_NAMESPACE: '' }, code: 64, says: /refresh needs POD_NAMESPACE/ },
  { command: 'doctor', args: ['doctor', '--kubeconfig', '/missing-kubeconfig'], code: 64, says: /cannot load the Kubernetes client configuration: ENOENT/ },
  { command: 'doctor', args: ['doctor', '--pod', 'web-0'], code: 64, says: /--pod NAME needs its namespace: -n NS/ },
  { command: 'doctor', args: ['doctor', '--config', '/missing.yaml', '--kubeconfig', '/missing-kubeconfig'], code: 1, says: /cannot read config file \/missing\.yaml/ },
  { command: '(none)', args: ['frobnicate'], code: 64, says: /unknown command frobnicate/ },
];

for (const c of cases) {
  t.test(`${c.command}: ${c.args.slice(1).join(' ') || c.args[0]} -> one line, exit ${c.code}`, async (t) => {
    const result = await runCli(c.args, c.env);
    t.equal(result.code, c.code, result.stderr);
    t.match(result.stderr, c.says);
    t.equal(result.stderr.trimEnd().split('\n').length, 1, `one line: ${result.stderr}`);
    t.notMatch(result.stderr, /\n\s+at /, 'no stack frames');
  });
}

t.test('the Kubernetes API refusing a request is its Status message on one line', (t) => {
  const body = JSON.stringify({ kind: 'Status', message: 'namespaces is forbidden: User "jo" cannot list resource "namespaces"', code: 403 });
  const failure = describeFailure(new ApiException(403, 'Unknown API Status Code!', body, { 'content-type': 'application/json' }), {});
  t.equal(failure.text, 'buildkite-ecr-injector: the Kubernetes API answered 403: namespaces is forbidden: User "jo" cannot list resource "namespaces"');
  t.equal(failure.exitCode, 1);
  t.end();
});

t.test('a network failure names its cause; a bug says it is one, with the stack only on request', (t) => {
  const refused = Object.assign(new Error('connect ECONNREFUSED 127.0.0.1:6443'), { code: 'ECONNREFUSED' });
  const fetchFailed = new TypeError('fetch failed', { cause: refused });
  t.equal(describeFailure(fetchFailed, {}).text, 'buildkite-ecr-injector: fetch failed: connect ECONNREFUSED 127.0.0.1:6443');
  const bug = new TypeError("Cannot read properties of undefined (reading 'x')");
  t.match(describeFailure(bug, {}).text, new RegExp(`internal error; set ${TRACE_ENV}=1`));
  t.equal(describeFailure(bug, {}).stack, undefined);
  t.match(describeFailure(bug, { [TRACE_ENV]: '1' }).stack, /TypeError: Cannot read/);
  t.equal(describeFailure(new UsageError('bad\nflag'), {}).text, "buildkite-ecr-injector: bad; flag (see 'buildkite-ecr-injector --help')");
  t.equal(describeFailure(new UsageError('x'), {}).exitCode, 64);
  t.end();
});
