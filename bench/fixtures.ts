// Owns the benchmark's request bodies: the real default-job capture (typical, ~12 KB with
// managedFields) and two Pods derived from it, a small one (~2 KB) and a large one (~100 KB).
// Derived deterministically, so every run (and every machine) sends the same bytes.
import { existsSync, readFileSync } from 'node:fs';
import { resolve } from 'node:path';

export interface Fixture {
  name: 'small' | 'typical' | 'large';
  /** The compact JSON body sent over HTTP. */
  body: string;
  /** The parsed review, for the in-process measurement. */
  review: Review;
}

// Loose JSON shapes: the fixture is data we reshape, not a typed Pod.
type Json = Record<string, unknown>;
interface Container extends Json {
  name: string;
  env?: { name: string; value?: string }[];
}
export interface Review extends Json {
  apiVersion: string;
  request: Json & {
    uid: string;
    namespace: string;
    object: Json & { metadata: Json & { annotations: Record<string, string> }; spec: Json & { containers: Container[] } };
  };
}

/** Where the real capture lives: the lead's copy under test/fixtures, else the shared folder. */
export function findTypicalReview(root: string): string {
  const candidates = [
    process.env.BENCH_FIXTURE,
    resolve(root, 'test/fixtures/default-job/review.json'),
    resolve(root, '../shared/fixtures/default-job/review.json'),
  ].filter((path): path is string => path !== undefined && path !== '');
  const found = candidates.find((path) => existsSync(path));
  if (found === undefined) throw new Error(`no default-job review.json found; looked in ${candidates.join(', ')} (set BENCH_FIXTURE)`);
  return found;
}

export function buildFixtures(typicalPath: string): Fixture[] {
  const typical = JSON.parse(readFileSync(typicalPath, 'utf8')) as Review;
  return [makeFixture('small', shrink(typical)), makeFixture('typical', typical), makeFixture('large', grow(typical))];
}

function makeFixture(name: Fixture['name'], review: Review): Fixture {
  return { name, body: encodeLikeGo(JSON.stringify(review)), review };
}

/**
 * The API server's JSON encoder (Go encoding/json) escapes <, > and & as \u003c, \u003e, \u0026
 * (the capture's review.json has them decoded): send the bytes the webhook really gets.
 */
function encodeLikeGo(json: string): string {
  return json.replace(/[<>&\u2028\u2029]/g, (char) => `\\u${char.charCodeAt(0).toString(16).padStart(4, '0')}`);
}

/**
 * ~2 KB: no managedFields, no volumes or tolerations, containers reduced to name + image. The command
 * container keeps BUILDKITE_COMMAND (that env var is what makes it a command container), so the Pod
 * still gets all three injections.
 */
function shrink(typical: Review): Review {
  const review = structuredClone(typical);
  const pod = review.request.object;
  delete pod.metadata.managedFields;
  delete pod.metadata.finalizers;
  for (const key of Object.keys(pod.metadata.annotations)) {
    if (!['buildkite.com/pipeline-slug', 'buildkite.com/build-branch', 'buildkite.com/step-key'].includes(key)) delete pod.metadata.annotations[key];
  }
  const spec = pod.spec as Json & { containers: Container[]; initContainers?: Container[] };
  for (const field of ['volumes', 'tolerations', 'securityContext']) delete spec[field];
  const slim = (container: Container): Container => {
    const command = container.env?.find((variable) => variable.name === 'BUILDKITE_COMMAND');
    return { name: container.name, image: container.image, ...(command ? { env: [command] } : {}) };
  };
  spec.containers = spec.containers.map(slim);
  if (spec.initContainers) spec.initContainers = spec.initContainers.map(slim);
  delete review.request.requestKind;
  delete review.request.requestResource;
  return review;
}

const LARGE_TARGET_BYTES = 100 * 1024;

/**
 * ~100 KB: a fan-out step with many plugin sidecars (copies of the agent container with a longer
 * environment) and a pile of annotations, as large step definitions produce.
 */
function grow(typical: Review): Review {
  const review = structuredClone(typical);
  const pod = review.request.object;
  for (let index = 0; index < 40; index += 1) {
    pod.metadata.annotations[`example.com/note-${index}`] = `${'annotation value '.repeat(6)}${index}`;
  }
  const agent = pod.spec.containers.find((container) => container.name === 'agent') ?? pod.spec.containers[0];
  if (agent === undefined) throw new Error('the typical fixture has no containers');
  for (let index = 0; JSON.stringify(review).length < LARGE_TARGET_BYTES; index += 1) {
    const sidecar = structuredClone(agent);
    sidecar.name = `sidecar-${index}`;
    const extra = Array.from({ length: 30 }, (_, n) => ({ name: `PLUGIN_${index}_SETTING_${n}`, value: `value-${index}-${n}` }));
    sidecar.env = [...(sidecar.env ?? []), ...extra];
    pod.spec.containers.push(sidecar);
  }
  return review;
}
