// Owns presenting results: the webhook/floor table printed at the end of `npm run bench`.
export interface Row {
  section: string;
  metric: string;
  floor?: number;
  webhook: number;
  /** Smaller is better (latency, memory) or larger is better (throughput). */
  better: 'lower' | 'higher';
  target?: { ratio?: number; absolute?: number; text: string };
  /** Why the target counts as missed whatever the numbers say (e.g. the rate was not kept). */
  void?: string;
  decimals?: number;
}

export function ratioOf(row: Row): number | undefined {
  return row.floor === undefined || row.floor === 0 ? undefined : row.webhook / row.floor;
}

export function meetsTarget(row: Row): boolean | undefined {
  if (row.target === undefined) return undefined;
  if (row.void !== undefined) return false;
  const value = row.target.ratio !== undefined ? ratioOf(row) : row.webhook;
  const limit = row.target.ratio ?? row.target.absolute;
  if (value === undefined || limit === undefined) return undefined;
  return row.better === 'higher' ? value >= limit : value <= limit;
}

export function formatTable(rows: Row[]): string {
  const header = ['', 'metric', 'floor', 'webhook', 'webhook/floor', 'target'];
  const lines = rows.map((row) => {
    const decimals = row.decimals ?? 2;
    const ratio = ratioOf(row);
    const met = meetsTarget(row);
    return [
      row.section,
      row.metric,
      row.floor === undefined ? '' : row.floor.toFixed(decimals),
      row.webhook.toFixed(decimals),
      ratio === undefined ? '' : `${ratio.toFixed(2)}x`,
      row.target === undefined ? '' : `${row.target.text} ${met ? 'met' : 'MISSED'}${row.void ? ` (${row.void})` : ''}`,
    ];
  });
  const widths = header.map((title, column) => Math.max(title.length, ...lines.map((line) => (line[column] ?? '').length)));
  const render = (cells: string[]): string =>
    `| ${cells.map((cell, column) => (column >= 2 && column <= 4 ? cell.padStart(widths[column] ?? 0) : cell.padEnd(widths[column] ?? 0))).join(' | ')} |`;
  const rule = `| ${widths.map((width, column) => (column >= 2 && column <= 4 ? `${'-'.repeat(width - 1)}:` : '-'.repeat(width))).join(' | ')} |`;
  return [render(header), rule, ...lines.map(render)].join('\n');
}

/** One line per target: the measured value, its ratio to the floor where there is one, met or missed. */
export function formatTargets(rows: Row[]): string {
  let section = '';
  const lines: string[] = [];
  for (const row of rows) {
    if (row.section !== '') section = row.section;
    if (row.target === undefined) continue;
    const decimals = row.decimals ?? 2;
    const ratio = ratioOf(row);
    const measured = ratio === undefined ? row.webhook.toFixed(decimals) : `${ratio.toFixed(2)}x floor (${row.webhook.toFixed(decimals)} vs ${row.floor?.toFixed(decimals)})`;
    const met = meetsTarget(row);
    lines.push(`- ${section}, ${row.metric}: ${measured}; target ${row.target.text}: ${met ? 'met' : 'MISSED'}${row.void ? ` (${row.void})` : ''}`);
  }
  return lines.join('\n');
}
