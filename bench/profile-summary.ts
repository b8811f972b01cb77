// Owns reading a V8 CPU profile (node --cpu-prof): self time per function, largest first, as the
// markdown table docs/performance.md shows. Functions of the same name in the same file are one row.
// Usage: node dist-bench/bench/profile-summary.js FILE.cpuprofile [ROWS]
import { readFileSync } from 'node:fs';
import { basename } from 'node:path';

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

export interface SelfTime {
  name: string;
  where: string;
  ms: number;
  share: number;
}

/** Self time per function; `(idle)` is left out of the shares (a saturated server has none). */
export function selfTimes(profile: CpuProfile): SelfTime[] {
  const keyOf = new Map<number, string>();
  const frames = new Map<string, { name: string; where: string }>();
  for (const node of profile.nodes) {
    const { functionName, url } = node.callFrame;
    const name = functionName || '(anonymous)';
    const where = url ? basename(url.replace(/^file:\/\//, '')) : '';
    const key = `${name} ${where}`;
    keyOf.set(node.id, key);
    frames.set(key, { name, where });
  }
  const micros = new Map<string, number>();
  profile.samples.forEach((id, index) => {
    const key = keyOf.get(id);
    if (key !== undefined) micros.set(key, (micros.get(key) ?? 0) + (profile.timeDeltas[index] ?? 0));
  });
  micros.delete('(idle) ');
  const total = [...micros.values()].reduce((sum, value) => sum + value, 0);
  return [...micros.entries()]
    .map(([key, us]) => ({ ...(frames.get(key) ?? { name: key, where: '' }), ms: us / 1000, share: us / total }))
    .sort((a, b) => b.ms - a.ms);
}

export function formatSelfTimes(rows: SelfTime[], count: number): string {
  const lines = rows.slice(0, count).map((row) => `| ${row.name} | ${row.where} | ${row.ms.toFixed(0)} | ${(row.share * 100).toFixed(1)} % |`);
  return ['| function | file | self ms | share |', '|---|---|---:|---:|', ...lines].join('\n');
}

if (process.argv[1] && import.meta.url.endsWith(basename(process.argv[1]))) {
  const [file, rows] = process.argv.slice(2);
  if (!file) {
    process.stderr.write('usage: profile-summary FILE.cpuprofile [ROWS]\n');
    process.exit(64);
  }
  process.stdout.write(`${formatSelfTimes(selfTimes(JSON.parse(readFileSync(file, 'utf8')) as CpuProfile), Number(rows ?? 15))}\n`);
}
