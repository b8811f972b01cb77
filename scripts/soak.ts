// `npm run soak`: fault tests under load against the built CLI as a real child process, loopback
// only, bounded in time. Each scenario prints requests sent / answered / failed and its own figures;
// the exit code is non-zero when any scenario breaks its criterion. Not part of `npm test`: it takes
// about a minute and a half and wants the machine to itself.
import { mkdtemp, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { generateCertificates } from '../src/certs/generate.js';
import { apiOutage } from './soak/api-outage.js';
import { certificateRotation } from './soak/cert-rotation.js';
import { formatResult, type Scenario, type ScenarioResult } from './soak/scenario.js';
import { sigtermUnderLoad } from './soak/sigterm.js';
import { slowAndIdleClients } from './soak/slow-clients.js';

const SCENARIOS: [string, Scenario][] = [
  ['a', certificateRotation],
  ['b', sigtermUnderLoad],
  ['c', slowAndIdleClients],
  ['d', apiOutage],
];

/** The whole soak stops by itself after this, whatever happens. */
const OVERALL_DEADLINE_MS = 5 * 60_000;

async function main(): Promise<number> {
  const only = process.argv.slice(2);
  const root = await mkdtemp(join(tmpdir(), 'buildkite-ecr-injector-soak-'));
  const set = await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] });
  const ca = { cert: set.caCert, key: set.caKey };
  const results: ScenarioResult[] = [];
  try {
    for (const [id, scenario] of SCENARIOS) {
      if (only.length > 0 && !only.includes(id)) continue;
      const result = await scenario({ dir: await mkdtemp(join(root, `${id}-`)), ca, namespacesPath: resolve('examples/namespaces.yaml') });
      results.push(result);
      process.stdout.write(`[${id}] ${formatResult(result)}\n\n`);
    }
  } finally {
    await rm(root, { recursive: true, force: true });
  }
  const failed = results.filter((result) => result.problems.length > 0);
  process.stdout.write(`soak: ${results.length - failed.length} passed, ${failed.length} failed\n`);
  return failed.length === 0 ? 0 : 1;
}

const deadline = setTimeout(() => {
  process.stderr.write(`soak: still running after ${OVERALL_DEADLINE_MS / 1000} s; giving up\n`);
  process.exit(2);
}, OVERALL_DEADLINE_MS);
deadline.unref();

main().then(
  (code) => {
    process.exitCode = code;
  },
  (error: unknown) => {
    process.stderr.write(`soak: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    process.exitCode = 1;
  },
);
