// Owns what the bench takes from the Deployment (manifests/base/deployment.yaml): the V8 flags the
// webhook container runs node with, and its memory limit, so the bench measures the webhook as it
// is deployed and checks the limit against the peak it measures. Read, never copied, so they cannot drift.
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { parse as parseYaml } from 'yaml';

export interface DeployedNode {
  /** node's own flags from the container command (between `node` and the script). */
  nodeFlags: string[];
  memoryLimit: string;
  memoryLimitBytes: number;
}

interface Container {
  name: string;
  command?: string[];
  resources?: { limits?: { memory?: string } };
}

const UNITS: Record<string, number> = { Ki: 1024, Mi: 1024 ** 2, Gi: 1024 ** 3 };

export function readDeployedNode(root: string): DeployedNode {
  const deployment = parseYaml(readFileSync(join(root, 'manifests/base/deployment.yaml'), 'utf8')) as {
    spec: { template: { spec: { containers: Container[] } } };
  };
  const container = deployment.spec.template.spec.containers.find((candidate) => candidate.name === 'webhook');
  if (container === undefined) throw new Error('the Deployment has no webhook container');
  const command = container.command ?? [];
  const memoryLimit = container.resources?.limits?.memory ?? '';
  const match = /^(\d+)(Ki|Mi|Gi)$/.exec(memoryLimit);
  if (match === null) throw new Error(`cannot read the webhook's memory limit ${JSON.stringify(memoryLimit)}`);
  return {
    nodeFlags: command.slice(1).filter((part) => part.startsWith('--')),
    memoryLimit,
    memoryLimitBytes: Number(match[1]) * (UNITS[match[2]!] ?? Number.NaN),
  };
}
