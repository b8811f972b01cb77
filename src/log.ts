// Owns the logger: pino JSON lines, with redaction as a backstop. The first line of defence is that
// nothing logs whole objects or env values (audit records carry names only).
import pino, { type DestinationStream, type Logger } from 'pino';

export type { Logger };

/** Paths that must never reach a log line even if some future change logs a whole object. */
export const REDACTED_PATHS = [
  'object',
  'oldObject',
  'request.object',
  'request.oldObject',
  '*.env',
  '*.data',
  '*.stringData',
  'key',
  'tlsKey',
  '*.key',
  'req.headers.authorization',
];

export interface LoggerOptions {
  level?: string;
  destination?: DestinationStream;
}

export function createLogger(options: LoggerOptions = {}): Logger {
  return pino(
    {
      name: 'buildkite-ecr-injector',
      level: options.level ?? 'info',
      redact: { paths: REDACTED_PATHS, censor: '[redacted]' },
      base: { pid: process.pid },
    },
    options.destination ?? pino.destination({ dest: 1, sync: false }),
  );
}
