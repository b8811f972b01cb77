// Soak scenario: the serving certificate is replaced on disk while requests flow, twice the way a
// Kubernetes Secret volume does it (a new `..data` symlink renamed over the old one) and once by
// renaming new files over tls.key and tls.crt. Criterion: zero failed requests and handshakes, and
// new handshakes get each new certificate.
import { mkdir, rename, symlink, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { runLoad, tally } from './load.js';
import { fingerprintOf, issueServingCertificate, type ScenarioResult, type SoakContext } from './scenario.js';
import { startWebhook, stopWebhook, waitFor } from './webhook-process.js';

export async function certificateRotation(context: SoakContext): Promise<ScenarioResult> {
  const problems: string[] = [];
  const volume = join(context.dir, 'tls');
  let generation = 0;

  /** Write a pair into a new timestamped folder and point `..data` at it with one rename. */
  const swapDataLink = async (pair: { cert: string; key: string }): Promise<void> => {
    generation += 1;
    const folder = `..2026_01_01_00_00_0${generation}`;
    await mkdir(join(volume, folder), { recursive: true });
    await writeFile(join(volume, folder, 'tls.key'), pair.key, { mode: 0o600 });
    await writeFile(join(volume, folder, 'tls.crt'), pair.cert);
    await symlink(folder, join(volume, '..data_tmp'));
    await rename(join(volume, '..data_tmp'), join(volume, '..data'));
  };
  /** Replace each file by renaming a finished copy over it (key first, as cert-manager writes it). */
  const renameFiles = async (pair: { cert: string; key: string }): Promise<void> => {
    await writeFile(join(context.dir, 'tls.key.new'), pair.key, { mode: 0o600 });
    await writeFile(join(context.dir, 'tls.crt.new'), pair.cert);
    await rename(join(context.dir, 'tls.key.new'), join(volume, 'tls.key'));
    await rename(join(context.dir, 'tls.crt.new'), join(volume, 'tls.crt'));
  };

  const initial = await issueServingCertificate(context.ca);
  await mkdir(volume, { recursive: true });
  await swapDataLink(initial);
  await symlink('..data/tls.crt', join(volume, 'tls.crt'));
  await symlink('..data/tls.key', join(volume, 'tls.key'));

  const webhook = await startWebhook({
    certPath: join(volume, 'tls.crt'),
    keyPath: join(volume, 'tls.key'),
    namespacesPath: context.namespacesPath,
  });
  const handshakes = new Map<string, number>();
  let stop = false;
  const target = {
    port: webhook.port,
    ca: context.ca.cert,
    onHandshake: (fingerprint: string) => handshakes.set(fingerprint, (handshakes.get(fingerprint) ?? 0) + 1),
  };
  const load = runLoad({ target, keepAliveWorkers: 4, freshWorkers: 4, shouldStop: () => stop });
  const started = Date.now();
  try {
    await waitFor(() => load.records.length >= 300, 10_000);
    const rotations: [string, (pair: { cert: string; key: string }) => Promise<void>][] = [
      ['..data symlink swap', swapDataLink],
      ['..data symlink swap', swapDataLink],
      ['rename over tls.key and tls.crt', renameFiles],
    ];
    for (const [index, [how, rotate]] of rotations.entries()) {
      const next = await issueServingCertificate(context.ca);
      const fingerprint = fingerprintOf(next.cert);
      const before = load.records.length;
      await rotate(next);
      // The webhook polls the files every second; a fresh handshake must see the new certificate.
      if (!(await waitFor(() => (handshakes.get(fingerprint) ?? 0) > 0, 15_000))) {
        problems.push(`rotation ${index + 1} (${how}): no handshake got the new certificate within 15 s`);
      }
      // Keep the load going on the new certificate for a while before the next rotation.
      await waitFor(() => load.records.length >= before + 600, 15_000);
    }
  } finally {
    stop = true;
    await load.done;
    if (!(await stopWebhook(webhook))) problems.push('the webhook did not stop within 30 s of SIGTERM');
  }
  const requests = tally(load.records);
  if (requests.failed > 0) problems.push(`${requests.failed} requests failed`);
  if (requests.refused > 0) problems.push(`${requests.refused} connections were refused`);
  const reloads = webhook.lines.filter((line) => line.msg === 'serving certificate reloaded').length;
  const failedReloads = webhook.lines.filter((line) => line.msg.startsWith('serving certificate reload failed')).length;
  if (reloads !== 3) problems.push(`the webhook reloaded its certificate ${reloads} times, expected 3`);
  const totalHandshakes = [...handshakes.values()].reduce((sum, count) => sum + count, 0);
  return {
    name: 'certificate files replaced on disk mid-load (3 rotations, same CA)',
    requests,
    figures: {
      duration: `${((Date.now() - started) / 1000).toFixed(1)} s`,
      'TLS handshakes completed': totalHandshakes,
      'handshakes per certificate, in order served': [...handshakes.values()].join(' / '),
      'reloads logged by the webhook': `${reloads} (plus ${failedReloads} half-written pairs skipped)`,
    },
    problems,
  };
}
