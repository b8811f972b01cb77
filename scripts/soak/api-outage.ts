// Soak scenario: the Kubernetes API goes away and comes back while admissions flow. The webhook reads
// namespace labels with its informer from the local list/watch server (test/helpers/fake-kube-api.ts,
// seeded with the real captured namespace list). Mid-load the server stops (every connection cut),
// the `buildkite` namespace's ServiceAccount label is changed while it is down, its watch history is
// expired so the informer's resume gets 410 Gone, and the server starts again on the same port.
// Criteria: zero failed requests; during the outage every admission is still decided from the last
// known labels (injected, never namespace-unknown); after recovery the informer re-lists and the label
// changed during the outage applies to later Pods.
import { readFile, writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import { FakeKubeApi, type KubeObject } from '../../test/helpers/fake-kube-api.js';
import { runLoad, tally } from './load.js';
import type { ScenarioResult, SoakContext } from './scenario.js';
import { issueServingCertificate } from './scenario.js';
import { startWebhook, stopWebhook, waitFor, type LogLine } from './webhook-process.js';

const NAMESPACES = '/api/v1/namespaces';
const BEFORE = 'buildkite-agent';
const AFTER = 'buildkite-agent-v2';

export async function apiOutage(context: SoakContext): Promise<ScenarioResult> {
  const problems: string[] = [];
  const list = JSON.parse(await readFile(resolve('test/fixtures/k8s-api/namespaces-list.json'), 'utf8')) as { items: KubeObject[] };
  const api = new FakeKubeApi();
  api.seed(
    NAMESPACES,
    list.items.map((item) =>
      item.metadata.name === 'buildkite'
        ? { ...item, metadata: { ...item.metadata, labels: { ...item.metadata.labels, 'buildkite-ecr-injector/service-account': BEFORE } } }
        : item,
    ),
  );
  await api.start();
  const kubeconfigPath = join(context.dir, 'kubeconfig');
  await writeFile(kubeconfigPath, api.kubeconfig());
  const pair = await issueServingCertificate(context.ca);
  await writeFile(join(context.dir, 'tls.crt'), pair.cert);
  await writeFile(join(context.dir, 'tls.key'), pair.key, { mode: 0o600 });

  const webhook = await startWebhook({ certPath: join(context.dir, 'tls.crt'), keyPath: join(context.dir, 'tls.key'), kubeconfigPath });
  const admissions = (): LogLine[] => webhook.lines.filter((line) => line.msg === 'admission');
  const serviceAccountOf = (line: LogLine): unknown => (line.injected as { serviceAccountName?: string } | undefined)?.serviceAccountName;
  let stop = false;
  const load = runLoad({ target: { port: webhook.port, ca: context.ca.cert }, keepAliveWorkers: 4, freshWorkers: 2, shouldStop: () => stop });
  const started = Date.now();
  let duringOutage: LogLine[] = [];
  let outageSeconds = 0;
  let recoverySeconds = Number.NaN;
  try {
    if (!(await waitFor(() => admissions().some((line) => serviceAccountOf(line) === BEFORE), 20_000))) {
      problems.push('no admission injected the ServiceAccount before the outage (informer never synced?)');
    }
    await waitFor(() => load.records.length >= 300, 15_000);

    const outageStart = Date.now();
    await api.stop();
    const firstDuringOutage = admissions().length;
    const buildkite = api.get(NAMESPACES, 'buildkite')!;
    buildkite.metadata.labels = { ...buildkite.metadata.labels, 'buildkite-ecr-injector/service-account': AFTER };
    api.put(NAMESPACES, buildkite);
    api.expireHistory();
    const sentBefore = load.records.length;
    // At least five seconds down: long enough for the informer to fail, back off and retry.
    await waitFor(() => load.records.length >= sentBefore + 1500 && Date.now() - outageStart >= 5_000, 30_000);
    duringOutage = admissions().slice(firstDuringOutage);
    outageSeconds = (Date.now() - outageStart) / 1000;

    const listsBefore = api.requests.filter((request) => request.path === NAMESPACES && !request.watch).length;
    await api.start();
    const restarted = Date.now();
    if (await waitFor(() => admissions().some((line) => serviceAccountOf(line) === AFTER), 60_000)) {
      recoverySeconds = (Date.now() - restarted) / 1000;
    } else {
      problems.push(`the label changed during the outage did not apply within 60 s of the API coming back`);
    }
    const relists = api.requests.filter((request) => request.path === NAMESPACES && !request.watch).length - listsBefore;
    if (relists < 1) problems.push('the informer did not re-list after 410 Gone');
  } finally {
    stop = true;
    await load.done;
    if (!(await stopWebhook(webhook))) problems.push('the webhook did not stop within 30 s of SIGTERM');
    await api.stop();
  }

  const requests = tally(load.records);
  if (requests.failed > 0) problems.push(`${requests.failed} requests failed`);
  const outageDecisions = new Map<string, number>();
  for (const line of duringOutage) {
    const key = `${String(line.decision)}/${String(line.reason)}`;
    outageDecisions.set(key, (outageDecisions.get(key) ?? 0) + 1);
  }
  const notInjected = duringOutage.filter((line) => line.decision !== 'injected').length;
  if (duringOutage.length === 0) problems.push('no admissions were decided during the outage');
  if (notInjected > 0) problems.push(`${notInjected} admissions during the outage were not injected from the last known labels`);
  const restarts = webhook.lines.filter((line) => line.msg === 'namespace informer stopped; restarting').length;
  return {
    name: 'Kubernetes API away and back (stop, label changed while down, 410 Gone on resume)',
    requests,
    figures: {
      duration: `${((Date.now() - started) / 1000).toFixed(1)} s`,
      'outage length': `${outageSeconds.toFixed(1)} s`,
      'admissions decided during the outage': [...outageDecisions].map(([key, count]) => `${key} ${count}`).join(', ') || 'none',
      'informer restarts logged': restarts,
      'label changed during the outage applied after': Number.isNaN(recoverySeconds) ? 'never' : `${recoverySeconds.toFixed(1)} s`,
    },
    problems,
  };
}
