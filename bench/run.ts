// `npm run bench`: the webhook side by side with the floor (a bare node:https server that only parses
// the body), on the same machine, TLS key type, keep-alive connections and fixtures. Prints a table of
// webhook/floor ratios and writes the full result to bench/results/ (git-ignored).
//
// Knobs (environment): BENCH_DURATION seconds per measured run (default 4), BENCH_ROUNDS (default 3:
// floor and webhook alternate, each metric is the median of the rounds), BENCH_CONNECTIONS
// (default 10), BENCH_FIXTURES=typical,... to measure only some fixtures (the small, typical and large
// ones by default), BENCH_PROFILE=1 to start the webhook with --cpu-prof (profiles in bench/results/).
import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, readFile, rm, stat, writeFile } from 'node:fs/promises';
import { request as httpsRequest } from 'node:https';
import { cpus, loadavg, tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify as toYaml } from 'yaml';
import { generateCertificates, writeCertificates, type CertificatePaths } from '../src/certs/generate.js';
import { parseConfig } from '../src/webhook/config.js';
import { readDeployedNode } from './deployment.js';
import { buildFixtures, findTypicalReview, type Fixture } from './fixtures.js';
import { measureDecision, type InProcessResult } from './in-process.js';
import { measureRulesCost } from './rules-cost.js';
import { runLoad, type LoadResult } from './load.js';
import { freePort, pinCores, readPeakRss, readRss, startNode, stop, type Pinning, type Started } from './processes.js';
import { generateNamespaces, optedInLabels } from './namespaces.js';
import { formatTable, formatTargets, meetsTarget, ratioOf, type Row } from './report.js';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');
const CLI = join(ROOT, 'dist/cli.js');
const FLOOR = join(ROOT, 'dist-bench/bench/floor-server.js');
const WEBHOOK_IN_MEMORY = join(ROOT, 'dist-bench/bench/webhook-server.js');
const RESULTS = join(ROOT, 'bench/results');

const DURATION = Number(process.env.BENCH_DURATION ?? 4);
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 3);
const CONNECTIONS = Number(process.env.BENCH_CONNECTIONS ?? 10);
const PROFILE = process.env.BENCH_PROFILE === '1';
const STARTS = 5;
const MANY_NAMESPACES = 10_000;
// The webhook runs with the Deployment's V8 flags, as in a cluster; the floor with node's defaults.
const DEPLOYED = readDeployedNode(ROOT);

// The config the webhook runs with: the example's defaults; the bench namespace opts in to all three.
const CONFIG = {
  defaults: { serviceAccount: 'buildkite-agent', awsSecret: 'none', pullSecret: 'ecr-credentials' },
  targetContainers: ['command', 'checkout'],
};

interface Paths {
  dir: string;
  certs: CertificatePaths;
  config: string;
  namespaces: string;
  manyNamespaces: string;
}

function log(message: string): void {
  process.stderr.write(`bench: ${message}\n`);
}

async function prepare(fixtureNamespace: string): Promise<Paths> {
  const dir = await mkdtemp(join(tmpdir(), 'bench-'));
  // The same key type the webhook uses in production: ECDSA P-256 from certs.ts.
  const certs = await writeCertificates(join(dir, 'certs'), await generateCertificates({ dnsNames: ['localhost'], ipAddresses: ['127.0.0.1'] }));
  const config = join(dir, 'config.yaml');
  await writeFile(config, toYaml(CONFIG));
  const namespaces = join(dir, 'namespaces.yaml');
  await writeFile(namespaces, toYaml(generateNamespaces(fixtureNamespace, 3)));
  const manyNamespaces = join(dir, 'namespaces-10k.yaml');
  await writeFile(manyNamespaces, toYaml(generateNamespaces(fixtureNamespace, MANY_NAMESPACES)));
  return { dir, certs, config, namespaces, manyNamespaces };
}

async function startFloor(paths: Paths, pin: Pinning): Promise<Started & { port: number }> {
  const port = await freePort();
  const started = await startNode({ args: [FLOOR, String(port), paths.certs.cert, paths.certs.key], port, core: pin.serverCore });
  return { ...started, port };
}

async function startWebhook(paths: Paths, pin: Pinning, namespacesFile: string, profile = false): Promise<Started & { port: number }> {
  const port = await freePort();
  const profileArgs = profile ? ['--cpu-prof', `--cpu-prof-dir=${join(RESULTS, 'profiles')}`] : [];
  const args = [
    ...DEPLOYED.nodeFlags,
    ...profileArgs,
    CLI,
    'serve',
    '--config', paths.config,
    '--namespaces', namespacesFile,
    '--tls-mode', 'files',
    '--tls-cert', paths.certs.cert,
    '--tls-key', paths.certs.key,
    '--host', '127.0.0.1',
    '--port', String(port),
    // Metrics on, as deployed (each admission is observed), but on loopback.
    '--metrics-host', '127.0.0.1',
    '--metrics-port', String(await freePort()),
  ];
  const started = await startNode({ args, port, core: pin.serverCore, stdoutFile: join(paths.dir, 'webhook.log') });
  return { ...started, port };
}

/** One request, verified with the CA: the webhook must inject all three, the floor must answer. */
async function post(port: number, ca: string, body: string): Promise<{ status: number | undefined; json: unknown }> {
  return new Promise((resolvePost, reject) => {
    const request = httpsRequest(
      { host: '127.0.0.1', servername: 'localhost', port, path: '/mutate', method: 'POST', ca, agent: false, headers: { 'content-type': 'application/json' } },
      (response) => {
        const chunks: Buffer[] = [];
        response.on('data', (chunk: Buffer) => chunks.push(chunk));
        response.on('end', () => resolvePost({ status: response.statusCode, json: JSON.parse(Buffer.concat(chunks).toString('utf8')) as unknown }));
      },
    );
    request.on('error', reject);
    request.end(body);
  });
}

async function verifyWebhook(port: number, ca: string, fixture: Fixture): Promise<number> {
  const { status, json } = await post(port, ca, fixture.body);
  const response = (json as { response?: { uid?: string; patch?: string } }).response;
  if (status !== 200 || response?.uid !== fixture.review.request.uid || response.patch === undefined) {
    throw new Error(`webhook gave no patch for ${fixture.name}: HTTP ${status}`);
  }
  const paths = (JSON.parse(Buffer.from(response.patch, 'base64').toString('utf8')) as { path: string }[]).map((operation) => operation.path);
  for (const wanted of ['/spec/serviceAccountName', '/envFrom', '/spec/imagePullSecrets']) {
    if (!paths.some((path) => path.includes(wanted))) throw new Error(`webhook patch for ${fixture.name} lacks ${wanted}: ${paths.join(', ')}`);
  }
  return paths.length;
}

/**
 * Floor and webhook, one after the other, ROUNDS times (so a burst of load from elsewhere on the
 * machine hits both alike), after one warm-up each. Each metric is the median over the rounds.
 */
async function measurePair(
  label: string,
  fixture: Fixture,
  servers: { floor: Started & { port: number }; webhook: Started & { port: number } },
  rate?: number,
): Promise<{ floor: LoadResult; webhook: LoadResult; rounds: { floor: LoadResult[]; webhook: LoadResult[] } }> {
  const names = ['floor', 'webhook'] as const;
  const options = (name: (typeof names)[number], durationSeconds: number) => ({
    port: servers[name].port,
    body: fixture.body,
    pid: servers[name].pid,
    connections: CONNECTIONS,
    durationSeconds,
    ...(rate === undefined ? {} : { rate }),
  });
  for (const name of names) await runLoad(options(name, 2)); // warm-up: JIT, TLS sessions, heap growth
  const rounds = { floor: [] as LoadResult[], webhook: [] as LoadResult[] };
  for (let round = 0; round < ROUNDS; round += 1) {
    for (const name of names) {
      const result = await runLoad(options(name, DURATION));
      if (result.errors > 0 || result.non2xx > 0) throw new Error(`${name} ${label} ${fixture.name}: ${result.errors} errors, ${result.non2xx} non-2xx answers`);
      rounds[name].push(result);
    }
  }
  const floor = medianResult(rounds.floor);
  const webhook = medianResult(rounds.webhook);
  for (const [name, result] of [['floor', floor], ['webhook', webhook]] as const) {
    log(
      `${label} ${fixture.name} ${name}: ${result.throughput.toFixed(0)} req/s, p50 ${result.latencyMs.p50.toFixed(2)} ms, ` +
        `p99 ${result.latencyMs.p99.toFixed(2)} ms, server CPU ${((result.serverCpu ?? 0) * 100).toFixed(0)}% ` +
        `(${(result.cpuUsPerRequest ?? 0).toFixed(0)} µs/request), load CPU ${(result.loadCpu * 100).toFixed(0)}%`,
    );
  }
  return { floor, webhook, rounds };
}

/** Each field's median over the rounds (the largest RSS seen, and the total of errors). */
function medianResult(results: LoadResult[]): LoadResult {
  const of = (pick: (result: LoadResult) => number | undefined): number => median(results.map(pick).filter((v): v is number => v !== undefined));
  return {
    requests: results.reduce((sum, result) => sum + result.requests, 0),
    throughput: of((result) => result.throughput),
    latencyMs: {
      p50: of((result) => result.latencyMs.p50),
      p90: of((result) => result.latencyMs.p90),
      p99: of((result) => result.latencyMs.p99),
      max: of((result) => result.latencyMs.max),
    },
    errors: results.reduce((sum, result) => sum + result.errors, 0),
    non2xx: results.reduce((sum, result) => sum + result.non2xx, 0),
    serverCpu: of((result) => result.serverCpu),
    cpuUsPerRequest: of((result) => result.cpuUsPerRequest),
    loadCpu: of((result) => result.loadCpu),
    maxRssBytes: Math.max(...results.map((result) => result.maxRssBytes ?? 0)),
  };
}

interface ManyNamespaces {
  readyMs: number;
  idleRssBytes: number | undefined;
  loadedRssBytes: number | undefined;
  peakRssBytes: number | undefined;
  load: LoadResult;
}

async function measureMany(label: string, fixture: Fixture, start: () => Promise<Started & { port: number }>): Promise<ManyNamespaces> {
  const server = await start();
  try {
    const idleRssBytes = readRss(server.pid);
    const common = { port: server.port, body: fixture.body, pid: server.pid, connections: CONNECTIONS };
    await runLoad({ ...common, durationSeconds: 2 });
    const load = await runLoad({ ...common, durationSeconds: DURATION });
    if (load.errors > 0 || load.non2xx > 0) throw new Error(`${MANY_NAMESPACES} namespaces (${label}): ${load.errors} errors, ${load.non2xx} non-2xx answers`);
    const result = { readyMs: server.readyMs, idleRssBytes, loadedRssBytes: load.maxRssBytes, peakRssBytes: readPeakRss(server.pid), load };
    log(
      `${MANY_NAMESPACES} namespaces (${label}): ready in ${server.readyMs.toFixed(0)} ms, RSS idle ${((idleRssBytes ?? 0) / MB).toFixed(1)} MB, ` +
        `under load ${((load.maxRssBytes ?? 0) / MB).toFixed(1)} MB`,
    );
    return result;
  } finally {
    await stop(server.child);
  }
}

function median(values: number[]): number {
  const sorted = [...values].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)] ?? Number.NaN;
}

const MB = 1024 * 1024;
/** In-process decision + patch targets, µs (median). */
const DECISION_TARGET_US: Partial<Record<Fixture['name'], number>> = { typical: 10, large: 20 };

async function main(): Promise<void> {
  for (const file of [CLI, FLOOR]) if (!existsSync(file)) throw new Error(`${file} is missing: run npm run build first`);
  await mkdir(RESULTS, { recursive: true });
  const pin = pinCores();
  log(pin.note);
  const allFixtures = buildFixtures(findTypicalReview(ROOT));
  const wanted = (process.env.BENCH_FIXTURES ?? '').split(',').filter(Boolean);
  const fixtures = wanted.length === 0 ? allFixtures : allFixtures.filter((fixture) => wanted.includes(fixture.name));
  const typical = allFixtures.find((fixture) => fixture.name === 'typical');
  if (typical === undefined) throw new Error('no typical fixture');
  const paths = await prepare(typical.review.request.namespace);
  const ca = await readFile(paths.certs.caCert, 'utf8');
  const startedAt = new Date();
  const loadBefore = loadavg();

  // In-process decision + patch first, while this process's heap is small and no server runs.
  const config = parseConfig(CONFIG);
  const inProcess: Record<string, InProcessResult> = {};
  for (const fixture of fixtures) {
    inProcess[fixture.name] = measureDecision(fixture.body, optedInLabels(fixture.review.request.namespace), config);
  }
  // What 20 credential rules add to the typical decision (the matching rule last).
  const rulesCost = measureRulesCost(typical.body, optedInLabels(typical.review.request.namespace), CONFIG);
  const floor = await startFloor(paths, pin);
  const webhook = await startWebhook(paths, pin, paths.namespaces, PROFILE);
  const patchOperations: Record<string, number> = {};
  for (const fixture of fixtures) patchOperations[fixture.name] = await verifyWebhook(webhook.port, ca, fixture);
  if ((await post(floor.port, ca, typical.body)).status !== 200) throw new Error('the floor did not answer');

  type Pair = Awaited<ReturnType<typeof measurePair>>;
  const saturation: Record<string, Pair> = {};
  const fixedRate: Record<string, Pair & { rate: number }> = {};
  try {
    for (const fixture of fixtures) saturation[fixture.name] = await measurePair('saturation', fixture, { floor, webhook });
    for (const fixture of fixtures) {
      const rate = Math.max(1, Math.floor((saturation[fixture.name]?.floor.throughput ?? 2) / 2));
      fixedRate[fixture.name] = { rate, ...(await measurePair(`fixed ${rate}/s`, fixture, { floor, webhook }, rate)) };
    }
  } finally {
    await stop(floor.child);
    await stop(webhook.child);
  }
  const logBytes = (await stat(join(paths.dir, 'webhook.log'))).size;

  // 10,000 namespaces in the label cache, idle and under load: from a YAML file through the CLI, and
  // in memory (as the cluster informer holds them) through startServer.
  const manyFromFile = await measureMany('YAML file', typical, () => startWebhook(paths, pin, paths.manyNamespaces));
  const manyInMemory = await measureMany('in memory', typical, async () => {
    const port = await freePort();
    const args = [...DEPLOYED.nodeFlags, WEBHOOK_IN_MEMORY, String(port), paths.certs.cert, paths.certs.key, paths.config, typical.review.request.namespace, String(MANY_NAMESPACES)];
    return { ...(await startNode({ args, port, core: pin.serverCore, stdoutFile: join(paths.dir, 'webhook-in-memory.log') })), port };
  });

  // Start-up: spawn to the first 200 from /readyz, median of several starts.
  const starts = { floor: [] as number[], webhook: [] as number[] };
  for (let i = 0; i < STARTS; i += 1) {
    const f = await startFloor(paths, pin);
    starts.floor.push(f.readyMs);
    await stop(f.child);
    const w = await startWebhook(paths, pin, paths.namespaces);
    starts.webhook.push(w.readyMs);
    await stop(w.child);
  }

  await rm(paths.dir, { recursive: true, force: true });

  const rows: Row[] = [];
  for (const fixture of fixtures) {
    const kb = `${fixture.name} (${(fixture.body.length / 1024).toFixed(1)} KB)`;
    const sat = saturation[fixture.name];
    const fixed = fixedRate[fixture.name];
    if (sat === undefined || fixed === undefined) continue;
    rows.push({
      section: kb,
      metric: 'saturation req/s',
      floor: sat.floor.throughput,
      webhook: sat.webhook.throughput,
      better: 'higher',
      decimals: 0,
      ...(fixture.name === 'small' ? {} : { target: { ratio: 0.7, text: '>= 0.7x (aim 0.85x)' } }),
    });
    rows.push({
      section: '',
      metric: 'req/s per CPU-second of server',
      floor: 1e6 / (sat.floor.cpuUsPerRequest ?? Number.NaN),
      webhook: 1e6 / (sat.webhook.cpuUsPerRequest ?? Number.NaN),
      better: 'higher',
      decimals: 0,
    });
    rows.push({
      section: '',
      metric: 'server CPU µs per request',
      floor: sat.floor.cpuUsPerRequest ?? Number.NaN,
      webhook: sat.webhook.cpuUsPerRequest ?? Number.NaN,
      better: 'lower',
      decimals: 0,
      ...(fixture.name === 'typical' ? { target: { ratio: 1.4, text: '<= 1.4x' } } : {}),
    });
    rows.push({ section: '', metric: 'saturation server CPU %', floor: (sat.floor.serverCpu ?? Number.NaN) * 100, webhook: (sat.webhook.serverCpu ?? Number.NaN) * 100, better: 'higher', decimals: 0 });
    for (const q of ['p50', 'p90', 'p99', 'max'] as const) {
      rows.push({ section: '', metric: `saturation ${q} ms`, floor: sat.floor.latencyMs[q], webhook: sat.webhook.latencyMs[q], better: 'lower' });
    }
    // A server that cannot keep the rate makes autocannon wait for it: its latencies then look fine.
    const keptRate = fixed.webhook.throughput >= 0.95 * fixed.rate;
    rows.push({ section: '', metric: `at ${fixed.rate}/s achieved req/s`, floor: fixed.floor.throughput, webhook: fixed.webhook.throughput, better: 'higher', decimals: 0 });
    for (const q of ['p50', 'p90', 'p99', 'max'] as const) {
      rows.push({
        section: '',
        metric: `at ${fixed.rate}/s ${q} ms`,
        floor: fixed.floor.latencyMs[q],
        webhook: fixed.webhook.latencyMs[q],
        better: 'lower',
        ...(fixture.name === 'typical' && q === 'p99' ? { target: { ratio: 1.5, text: '<= 1.5x' }, ...(keptRate ? {} : { void: 'rate not kept' }) } : {}),
      });
    }
    const decision = inProcess[fixture.name];
    if (decision !== undefined) {
      rows.push({
        section: '',
        metric: 'decision+patch median µs',
        webhook: decision.medianUs,
        better: 'lower',
        decimals: 1,
        ...(DECISION_TARGET_US[fixture.name] === undefined ? {} : { target: { absolute: DECISION_TARGET_US[fixture.name]!, text: `<= ${DECISION_TARGET_US[fixture.name]} µs` } }),
      });
    }
    if (fixture.name === 'typical') {
      rows.push({ section: '', metric: 'added by 20 rules, median µs', webhook: rulesCost.addedUs, better: 'lower', decimals: 1, target: { absolute: 5, text: '<= 5 µs' } });
    }
  }
  const typicalSat = saturation.typical;
  if (typicalSat) {
    rows.push({ section: 'memory', metric: 'RSS under load MB (typical)', floor: (typicalSat.floor.maxRssBytes ?? 0) / MB, webhook: (typicalSat.webhook.maxRssBytes ?? 0) / MB, better: 'lower', decimals: 1 });
  }
  for (const [label, many] of [['in memory, client loaded: as deployed', manyInMemory], ['YAML file', manyFromFile]] as const) {
    rows.push({
      section: '',
      metric: `peak RSS MB, ${MANY_NAMESPACES} namespaces, saturated (${label})`,
      webhook: (many.peakRssBytes ?? Number.NaN) / MB,
      better: 'lower',
      decimals: 1,
      target: { absolute: 180, text: '<= 180 MB' },
    });
  }
  const peak = Math.max(manyInMemory.peakRssBytes ?? Number.NaN, manyFromFile.peakRssBytes ?? Number.NaN);
  rows.push({
    section: '',
    metric: `Deployment limit ${DEPLOYED.memoryLimit} / highest peak (x)`,
    webhook: DEPLOYED.memoryLimitBytes / peak,
    better: 'higher',
    decimals: 2,
    target: { absolute: 1.5, text: '>= 1.5x' },
  });
  rows.push({ section: 'start-up', metric: `spawn to ready ms (median of ${STARTS})`, floor: median(starts.floor), webhook: median(starts.webhook), better: 'lower', decimals: 0 });
  rows.push({ section: '', metric: `spawn to ready ms, ${MANY_NAMESPACES} namespaces (YAML file)`, webhook: manyFromFile.readyMs, better: 'lower', decimals: 0 });

  const table = formatTable(rows);
  const machine = { nproc: cpus().length, cpu: cpus()[0]?.model ?? 'unknown', node: process.version, platform: `${process.platform} ${process.arch}` };
  const load = { before: loadBefore, after: loadavg() };
  const loadText = (values: number[]): string => values.map((value) => value.toFixed(2)).join(' ');
  process.stdout.write(
    `\nbuildkite-ecr-injector benchmark, ${startedAt.toISOString()}\n` +
      `machine: ${machine.nproc} cores, ${machine.cpu}, Node ${machine.node}; ${pin.note}\n` +
      `load average (1/5/15 min): ${loadText(load.before)} at the start, ${loadText(load.after)} at the end; ` +
      `webhook node flags (from the Deployment): ${DEPLOYED.nodeFlags.join(' ') || 'none'}\n` +
      `${CONNECTIONS} keep-alive connections; median of ${ROUNDS} alternating ${DURATION} s runs after a 2 s warm-up; ` +
      `webhook log: ${(logBytes / MB).toFixed(1)} MB of audit lines\n\n` +
      `${table}\n\nTargets (issue 14):\n${formatTargets(rows)}\n`,
  );
  const result = {
    startedAt: startedAt.toISOString(),
    machine,
    load,
    nodeFlags: DEPLOYED.nodeFlags,
    pinning: pin.note,
    settings: { durationSeconds: DURATION, rounds: ROUNDS, connections: CONNECTIONS, profile: PROFILE },
    fixtures: Object.fromEntries(fixtures.map((fixture) => [fixture.name, { bytes: fixture.body.length, patchOperations: patchOperations[fixture.name] }])),
    saturation,
    fixedRate,
    inProcess,
    rulesCost,
    manyNamespaces: { count: MANY_NAMESPACES, inMemory: manyInMemory, yamlFile: manyFromFile },
    startup: starts,
    webhookLogBytes: logBytes,
    table: rows.map((row) => ({ ...row, ratio: ratioOf(row), met: meetsTarget(row) })),
  };
  const file = join(RESULTS, `bench-${startedAt.toISOString().replace(/[:.]/g, '-')}.json`);
  await writeFile(file, `${JSON.stringify(result, null, 2)}\n`);
  await writeFile(join(RESULTS, 'latest.json'), `${JSON.stringify(result, null, 2)}\n`);
  process.stdout.write(`\nwrote ${file}\n`);
}

main().catch((error: unknown) => {
  process.stderr.write(`bench failed: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  process.exitCode = 1;
});
