// The heavy clients are loaded only by the modes that talk to their service: @kubernetes/client-node
// (some 70 MB of RSS on import) by the informer, the self-signed certificate mode and `refresh`;
// the AWS SDK by `refresh`. This walks the static (value) imports from the entry point, as Node
// loads them before anything runs: neither may be among them. `import type` is erased, `import()`
// runs only when its mode does.
import { existsSync, readFileSync } from 'node:fs';
import { dirname, relative, resolve } from 'node:path';
import t from 'tap';

const root = new URL('..', import.meta.url).pathname;
const STATIC_IMPORT = /^(?:import|export)\s+(?!type\s)(?:[^;]*?\sfrom\s+)?'([^']+)';/gms;

function staticImportsOf(file: string): string[] {
  return [...readFileSync(file, 'utf8').matchAll(STATIC_IMPORT)].map((match) => match[1]!);
}

function reachable(entry: string): { modules: Set<string>; packages: Map<string, string> } {
  const modules = new Set<string>();
  const packages = new Map<string, string>();
  const queue = [entry];
  while (queue.length > 0) {
    const file = queue.pop()!;
    if (modules.has(file)) continue;
    modules.add(file);
    for (const specifier of staticImportsOf(file)) {
      if (specifier.startsWith('.')) {
        const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
        if (existsSync(target)) queue.push(target);
      } else if (!packages.has(specifier)) {
        packages.set(specifier, relative(root, file));
      }
    }
  }
  return { modules, packages };
}

t.test('the walk sees what it should (so its silence means something)', (t) => {
  const { modules, packages } = reachable(resolve(root, 'src/cli.ts'));
  t.ok(modules.has(resolve(root, 'src/http/app.ts')), 'the HTTP app is loaded statically');
  t.ok(packages.has('fastify') && packages.has('pino'), 'fastify and pino are static imports');
  t.same(staticImportsOf(resolve(root, 'src/kube/kube-config.ts')), ['@kubernetes/client-node'], 'kube-config imports the client');
  t.end();
});

t.test('no command loads @kubernetes/client-node or the AWS SDK before it needs them', (t) => {
  const { packages } = reachable(resolve(root, 'src/cli.ts'));
  const heavy = [...packages.entries()].filter(([name]) => name.startsWith('@kubernetes/') || name.startsWith('@aws-sdk/'));
  t.same(heavy, [], 'statically reachable heavy clients (package, first importer)');
  t.end();
});
