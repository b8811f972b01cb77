// A logger whose JSON lines stay in memory, so tests can read back exactly what would be logged.
import { createLogger, type Logger } from '../../src/log.js';

export interface CapturedLog {
  log: Logger;
  /** Every raw line written so far, exactly as it would reach stdout. */
  lines: string[];
  records(): Record<string, unknown>[];
}

export function captureLog(level = 'info'): CapturedLog {
  const lines: string[] = [];
  const destination = {
    write(chunk: string): void {
      for (const line of chunk.split('\n')) if (line !== '') lines.push(line);
    },
  };
  return { log: createLogger({ level, destination }), lines, records: () => lines.map((line) => JSON.parse(line) as Record<string, unknown>) };
}
