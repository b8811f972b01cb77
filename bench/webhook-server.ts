// The real webhook (config loading, logger and startServer from src/) with an in-memory label
// cache of many namespaces, the way the cluster informer holds them, and the Kubernetes client
// loaded as in a cluster: measures what a deployed replica holds, without the start-up residue of
// parsing a 10,000-namespace YAML file.
// Usage: node webhook-server.js PORT CERT KEY CONFIG OPTED_IN_NAMESPACE COUNT
import { loadConfig } from '../src/files/config-file.js';
import { createLogger } from '../src/log.js';
import { StaticNamespaceSource } from '../src/webhook/namespace-labels.js';
import type { Labels } from '../src/webhook/pod.js';
import { startServer } from '../src/http/server.js';
import { generateNamespaces } from './namespaces.js';

const [port, certPath, keyPath, configPath, optedIn, count] = process.argv.slice(2);
if (!port || !certPath || !keyPath || !configPath || !optedIn || !count) {
  process.stderr.write('usage: webhook-server PORT CERT KEY CONFIG OPTED_IN_NAMESPACE COUNT\n');
  process.exit(64);
}

// In a cluster the informer and the self-signed mode load @kubernetes/client-node (some 70 MB of
// RSS); this source does not need it, so load it here to measure what a deployed replica holds.
await import('@kubernetes/client-node');

const log = createLogger();
const namespaces: Record<string, Labels> = generateNamespaces(optedIn, Number(count));
const server = await startServer({
  config: await loadConfig(configPath),
  log,
  host: '127.0.0.1',
  port: Number(port),
  tls: { mode: 'files', certPath, keyPath },
  namespaces: { source: new StaticNamespaceSource(namespaces) },
  // Metrics on, as deployed (each admission is observed), but on loopback.
  metrics: { host: '127.0.0.1', port: 0 },
});
process.once('SIGTERM', () => {
  void server.close().then(() => process.exit(0));
});
