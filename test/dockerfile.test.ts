// The Dockerfile, without a Docker engine: its stages (build with dev dependencies, production
// dependencies alone, a final image of compiled JS), the user and entry point, and that every file it
// copies from the build context exists and is not excluded by .dockerignore. Run after `npm run build`
// (as `npm test` does): the entry point must be a file the build produces.
import dockerignoreModule from '@balena/dockerignore';
import { Copy, DockerfileParser, Entrypoint, Cmd, From, type Instruction } from 'dockerfile-ast';
import { existsSync, statSync } from 'node:fs';
import { readdir, readFile } from 'node:fs/promises';
import { join, posix, relative } from 'node:path';
import t from 'tap';

const ROOT = join(import.meta.dirname, '..');

interface Stage {
  name: string | null;
  image: string;
  instructions: Instruction[];
}

const dockerfile = DockerfileParser.parse(await readFile(join(ROOT, 'Dockerfile'), 'utf8'));
const stages: Stage[] = [];
for (const instruction of dockerfile.getInstructions()) {
  if (instruction instanceof From) {
    stages.push({ name: instruction.getBuildStage(), image: instruction.getImage() ?? '', instructions: [] });
  } else {
    stages.at(-1)?.instructions.push(instruction);
  }
}
const finalStage = stages.at(-1)!;
// CommonJS: the default import is module.exports, whose `default` is the factory.
const dockerignore = dockerignoreModule.default().add((await readFile(join(ROOT, '.dockerignore'), 'utf8')).split('\n'));

const keyword = (i: Instruction) => i.getKeyword().toUpperCase();
const argumentsOf = (i: Instruction) => i.getArguments().map((a) => a.getValue());
const runs = (stage: Stage) => stage.instructions.filter((i) => keyword(i) === 'RUN').map((i) => i.getArgumentsContent() ?? '');
const copies = (stage: Stage) => stage.instructions.filter((i): i is Copy => i instanceof Copy);
function workdir(stage: Stage): string {
  const set = stage.instructions.filter((i) => keyword(i) === 'WORKDIR').map((i) => i.getArgumentsContent() ?? '/');
  return set.at(-1) ?? '/';
}

async function filesUnder(path: string): Promise<string[]> {
  if (!statSync(join(ROOT, path)).isDirectory()) return [path];
  const files: string[] = [];
  for (const entry of await readdir(join(ROOT, path), { withFileTypes: true, recursive: true })) {
    if (entry.isFile()) files.push(relative(ROOT, join(entry.parentPath, entry.name)));
  }
  return files;
}

void t.test('three stages on one Node LTS slim image: build, production dependencies, runtime', (t) => {
  t.equal(stages.length, 3);
  t.same(stages.map((s) => s.name), ['build', 'deps', null]);
  for (const stage of stages) {
    const match = /^node:(\d+)-bookworm-slim$/.exec(stage.image);
    t.ok(match, `${stage.name ?? 'final'} is FROM node:<major>-bookworm-slim`);
    t.equal(Number(match?.[1]) % 2, 0, 'an even (LTS) Node major');
  }
  t.equal(new Set(stages.map((s) => s.image)).size, 1, 'every stage on the same image');
  t.end();
});

void t.test('the build stage compiles with dev dependencies; the deps stage installs production ones only', async (t) => {
  const [build, deps] = stages as [Stage, Stage, Stage];
  t.same(runs(build), ['npm ci --no-audit --no-fund', 'npm run build']);
  t.match(runs(deps).join(' && '), /^npm ci --omit=dev\b/);
  t.notOk(copies(deps).some((c) => argumentsOf(c).includes('src')), 'no sources in the production dependency stage');
  const buildConfig = JSON.parse(await readFile(join(ROOT, 'tsconfig.build.json'), 'utf8')) as { compilerOptions?: { outDir?: string } };
  t.equal(buildConfig.compilerOptions?.outDir, 'dist', 'npm run build writes dist/, which the final stage copies');
});

void t.test('the final image holds package.json, production node_modules and dist, and runs the CLI as a numeric non-root user', (t) => {
  t.same(runs(finalStage), [], 'nothing is installed or built in the final stage');
  const app = workdir(finalStage);
  const copied = copies(finalStage).map((c) => {
    const args = argumentsOf(c);
    return { from: c.getFromFlag()?.getValue() ?? null, sources: args.slice(0, -1), dest: posix.resolve(app, args.at(-1) ?? '') };
  });
  t.same(copied, [
    { from: null, sources: ['package.json'], dest: '/app' },
    { from: 'deps', sources: [`${workdir(stages[1]!)}/node_modules`], dest: '/app/node_modules' },
    { from: 'build', sources: [`${workdir(stages[0]!)}/dist`], dest: '/app/dist' },
  ]);
  const user = finalStage.instructions.filter((i) => keyword(i) === 'USER').at(-1)?.getArgumentsContent();
  const ids = /^(\d+):(\d+)$/.exec(user ?? '');
  t.ok(ids && Number(ids[1]) > 0 && Number(ids[2]) > 0, `USER ${user} is a numeric non-root uid:gid`);
  t.equal(ids?.[1], '65532', 'the uid the Deployment runs as');

  const entrypoint = finalStage.instructions.find((i): i is Entrypoint => i instanceof Entrypoint);
  const cmd = finalStage.instructions.find((i): i is Cmd => i instanceof Cmd);
  const entrypointArgs = entrypoint?.getJSONStrings().map((s) => s.getJSONValue());
  t.same(entrypointArgs, ['node', '/app/dist/cli.js'], 'exec-form ENTRYPOINT, so node is PID 1 and gets SIGTERM');
  t.same(cmd?.getJSONStrings().map((s) => s.getJSONValue()), ['serve']);
  const script = posix.relative('/app', entrypointArgs?.[1] ?? '');
  t.ok(existsSync(join(ROOT, script)), `${script} exists after npm run build (run npm run build first; npm test does)`);
  t.end();
});

void t.test('every file copied from the build context exists and is not excluded by .dockerignore', async (t) => {
  const sources = stages.flatMap((stage) => copies(stage).filter((c) => c.getFromFlag() === null).flatMap((c) => argumentsOf(c).slice(0, -1)));
  t.ok(sources.length >= 5, 'the stages copy package files, tsconfig and src');
  for (const source of new Set(sources)) {
    t.ok(existsSync(join(ROOT, source)), `${source} exists`);
    if (!existsSync(join(ROOT, source))) continue;
    const excluded = (await filesUnder(source)).filter((file) => dockerignore.ignores(file));
    t.same(excluded, [], `nothing under ${source} is excluded`);
  }
  // What must never reach the build context: local certificates and keys, installed or built output.
  for (const path of ['certs/ca.key', 'node_modules/fastify/package.json', 'dist/cli.js', '.git/HEAD', 'test/manifests.test.ts']) {
    t.ok(dockerignore.ignores(path), `${path} is not sent to the build`);
  }
});
