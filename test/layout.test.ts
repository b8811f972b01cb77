// The architecture, checked: src/ is one folder per subsystem, each with a README that says what it
// owns and may import, and imports run one way (cli -> http -> certs -> kube/files -> webhook, and
// cli -> refresher -> kube/files -> webhook, and cli -> doctor -> certs/refresher, with log.ts and metrics.ts shared). Imports are read
// with TypeScript's own pre-processor, so type-only imports count too. The ESLint rule that keeps the
// core pure is exercised on real text as well.
import { ESLint } from 'eslint';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import t from 'tap';
import ts from 'typescript';

const root = new URL('..', import.meta.url).pathname;
const src = join(root, 'src');

/** Which rooms each room may import, besides itself. `shared` is src/log.ts and src/metrics.ts. */
const MAY_IMPORT: Record<string, string[]> = {
  webhook: [],
  shared: [],
  files: ['webhook', 'shared'],
  kube: ['webhook', 'shared'],
  certs: ['kube', 'files', 'webhook', 'shared'],
  http: ['certs', 'kube', 'files', 'webhook', 'shared'],
  refresher: ['kube', 'files', 'webhook', 'shared'],
  doctor: ['certs', 'refresher', 'kube', 'files', 'webhook', 'shared'],
  cli: ['http', 'doctor', 'certs', 'refresher', 'kube', 'files', 'webhook', 'shared'],
};

function roomOf(file: string): string {
  const path = relative(src, file);
  if (path === 'cli.ts') return 'cli';
  if (path === 'log.ts' || path === 'metrics.ts') return 'shared';
  const [folder, ...rest] = path.split('/');
  return rest.length > 0 ? folder! : `(loose file ${path})`;
}

function sourceFiles(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const path = join(dir, name);
    if (statSync(path).isDirectory()) return sourceFiles(path);
    return name.endsWith('.ts') ? [path] : [];
  });
}

/** Every module specifier the file imports or re-exports (type-only ones included). */
function importsOf(file: string): string[] {
  const info = ts.preProcessFile(readFileSync(file, 'utf8'), true, true);
  return info.importedFiles.map((imported) => imported.fileName);
}

const files = sourceFiles(src);

t.test('src/ holds one folder per subsystem, each with a README naming what it may import', (t) => {
  const loose = readdirSync(src).filter((name) => !statSync(join(src, name)).isDirectory());
  t.same(loose.sort(), ['cli.ts', 'log.ts', 'metrics.ts'], 'only the entry point and the two shared modules sit at the top');
  for (const folder of readdirSync(src).filter((name) => statSync(join(src, name)).isDirectory())) {
    t.ok(MAY_IMPORT[folder], `src/${folder}/ has a place in the import order of this test`);
    const readme = join(src, folder, 'README.md');
    t.ok(existsSync(readme), `src/${folder}/README.md exists`);
    if (existsSync(readme)) t.match(readFileSync(readme, 'utf8'), /\*\*May import:\*\*/, `src/${folder}/README.md says what it may import`);
  }
  t.end();
});

t.test('imports run one way between the rooms of src/', (t) => {
  const wrong: string[] = [];
  for (const file of files) {
    const from = roomOf(file);
    for (const specifier of importsOf(file).filter((name) => name.startsWith('.'))) {
      const target = resolve(dirname(file), specifier.replace(/\.js$/, '.ts'));
      t.ok(existsSync(target), `${relative(root, file)} imports ${specifier}, which exists`);
      const to = roomOf(target);
      if (to !== from && !(MAY_IMPORT[from] ?? []).includes(to)) wrong.push(`${relative(root, file)} (${from}) imports ${specifier} (${to})`);
    }
  }
  t.same(wrong, [], 'no import runs against the order');
  t.end();
});

t.test('the core imports no I/O module, server, client, logger or clock', (t) => {
  const forbidden = /^(node:|fastify$|@kubernetes\/client-node$|pino$|prom-client$|\.\.\/)/;
  for (const file of files.filter((path) => roomOf(path) === 'webhook')) {
    const bad = importsOf(file).filter((name) => forbidden.test(name));
    t.same(bad, [], `${relative(root, file)} imports only the core and pure libraries`);
  }
  t.end();
});

t.test('ESLint fails a core module that imports outside the core, does I/O or reads the clock', async (t) => {
  const eslint = new ESLint({ cwd: root });
  const text = [
    "import { readFileSync } from 'node:fs';",
    "import { createLogger } from '../log.js';",
    "import fastify from 'fastify';",
    "import { KubeConfig } from '@kubernetes/client-node';",
    'export const used = [readFileSync, createLogger, fastify, KubeConfig, Date.now(), new Date(), process.env.HOME];',
    '',
  ].join('\n');
  const [core] = await eslint.lintText(text, { filePath: join(src, 'webhook/policy.ts') });
  const messages = core!.messages.map((message) => `${message.line}: ${message.ruleId}`);
  t.same(
    messages,
    [
      '1: no-restricted-imports',
      '2: no-restricted-imports',
      '3: no-restricted-imports',
      '4: no-restricted-imports',
      '5: no-restricted-syntax',
      '5: no-restricted-syntax',
      '5: no-restricted-globals',
    ],
    'one error per forbidden import, clock read and environment read',
  );
  const [edge] = await eslint.lintText(text, { filePath: join(src, 'http/app.ts') });
  t.same(edge!.messages.filter((message) => message.ruleId?.startsWith('no-restricted')), [], 'the same text is fine outside the core');
});
