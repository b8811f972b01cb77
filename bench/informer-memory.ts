// Measures what 10,000 Namespaces cost in memory: the slim informer source (name -> frozen labels)
// against the stock client-node informer (whole objects), each in its own process, against a local
// fake API server in a third process so its copy of the objects is not counted. Not a test.
//
//   npx tsc --outDir .bench-build && node .bench-build/bench/informer-memory.js [count]
import { CoreV1Api, KubeConfig, makeInformer } from '@kubernetes/client-node';
import { fork, type ChildProcess } from 'node:child_process';
import { once } from 'node:events';
import { fileURLToPath } from 'node:url';
import { createLogger } from '../src/log.js';
import { InformerNamespaceSource } from '../src/kube/namespace-informer.js';
import { FakeKubeApi, type KubeObject } from '../test/helpers/fake-kube-api.js';

const self = fileURLToPath(import.meta.url);
// Children are started as `<role> <count> [kubeconfig]`; the user runs it as `[count]`.
const args = process.argv.slice(2);
const [mode, arg] = args[0] === 'api' || args[0] === 'slim' || args[0] === 'full' ? [args[0], args[1] ?? ''] : ['main', args[0] ?? '10000'];

/** A Namespace shaped like the captured ones: labels, managedFields, spec, status. */
function namespace(index: number): KubeObject {
  const name = `team-${index.toString().padStart(5, '0')}`;
  return {
    apiVersion: 'v1',
    kind: 'Namespace',
    metadata: {
      name,
      uid: `150d2bb2-5b32-45c5-85c5-${index.toString(16).padStart(12, '0')}`,
      creationTimestamp: '2026-11-25T18:18:02Z',
      labels: {
        'kubernetes.io/metadata.name': name,
        'buildkite-ecr-injector/inject': index % 2 === 0 ? 'enabled' : 'disabled',
        'buildkite-ecr-injector/service-account': `ci-${index % 50}`,
        team: `team-${index % 200}`,
      },
      managedFields: [
        { manager: 'kubectl-create', operation: 'Update', apiVersion: 'v1', time: '2026-11-25T18:18:02Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { '.': {}, 'f:kubernetes.io/metadata.name': {} } } } },
        { manager: 'kubectl-label', operation: 'Update', apiVersion: 'v1', time: '2026-11-25T18:18:02Z', fieldsType: 'FieldsV1', fieldsV1: { 'f:metadata': { 'f:labels': { 'f:buildkite-ecr-injector/inject': {}, 'f:buildkite-ecr-injector/service-account': {}, 'f:team': {} } } } },
      ],
    },
    spec: { finalizers: ['kubernetes'] },
    status: { phase: 'Active' },
  };
}

function settle(): void {
  const gc = (globalThis as { gc?: () => void }).gc;
  for (let i = 0; i < 5; i++) gc?.();
}

function megabytes(bytes: number): number {
  return Math.round((bytes / 1024 / 1024) * 10) / 10;
}

async function serveApi(count: number): Promise<void> {
  const api = new FakeKubeApi();
  api.seed('/api/v1/namespaces', Array.from({ length: count }, (_, i) => namespace(i)));
  await api.start();
  process.send?.({ port: api.port, kubeconfig: api.kubeconfig() });
}

async function measure(kind: 'slim' | 'full', kubeconfig: string, count: number): Promise<void> {
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(kubeconfig);
  settle();
  const before = process.memoryUsage();
  let peakRss = before.rss;
  const sampler = setInterval(() => (peakRss = Math.max(peakRss, process.memoryUsage().rss)), 5);
  let size: () => number;
  let stop: () => Promise<void>;
  if (kind === 'slim') {
    const source = InformerNamespaceSource.start({ kubeConfig, log: createLogger({ level: 'silent' }) });
    while (!source.isSynced()) await new Promise((resolve) => setTimeout(resolve, 20));
    size = () => (source.get(`team-${(count - 1).toString().padStart(5, '0')}`) ? count : 0);
    stop = () => source.close();
  } else {
    const core = kubeConfig.makeApiClient(CoreV1Api);
    const informer = makeInformer(kubeConfig, '/api/v1/namespaces', () => core.listNamespace());
    await informer.start();
    size = () => informer.list().length;
    stop = () => informer.stop();
  }
  clearInterval(sampler);
  settle();
  const after = process.memoryUsage();
  process.send?.({
    kind,
    namespaces: size(),
    rssBeforeMiB: megabytes(before.rss),
    rssAfterMiB: megabytes(after.rss),
    rssDeltaMiB: megabytes(after.rss - before.rss),
    peakRssMiB: megabytes(peakRss),
    heapDeltaMiB: megabytes(after.heapUsed - before.heapUsed),
  });
  await stop();
  process.disconnect();
}

function child(args: string[]): ChildProcess {
  return fork(self, args, { execArgv: ['--expose-gc'] });
}

async function main(): Promise<void> {
  const count = Number(arg);
  const api = child(['api', String(count)]);
  const [{ kubeconfig }] = (await once(api, 'message')) as [{ kubeconfig: string }];
  const results: unknown[] = [];
  for (const kind of ['slim', 'full'] as const) {
    const measurer = child([kind, String(count), kubeconfig]);
    const [result] = (await once(measurer, 'message')) as [unknown];
    results.push(result);
    await once(measurer, 'exit');
  }
  api.kill();
  console.table(results);
}

if (mode === 'main') await main();
else if (mode === 'api') await serveApi(Number(arg));
else await measure(mode as 'slim' | 'full', process.argv[4] ?? '', Number(arg));
