// Owns how a failed command ends: one line on stderr and an exit code (64 usage, 1 runtime), never a
// stack trace for anything a user can cause (a missing file, a bad flag or config, an unreachable or
// refusing cluster). Only an internal error (a bug) says so, and the stack is there on request.
import { describeError, oneLine } from '../kube/describe-error.js';
import { ConfigError } from '../webhook/config.js';
import { UsageError } from './flags.js';

export const TRACE_ENV = 'BUILDKITE_ECR_INJECTOR_TRACE';

export interface Failure {
  /** What to print: one line (a config error adds its indented list of fields). */
  text: string;
  exitCode: 1 | 64;
  /** The stack, only for an internal error when TRACE_ENV is set. */
  stack?: string;
}

// The error classes only a programming mistake throws; everything else is about the user's input.
// (SyntaxError is left out: JSON.parse throws it for a user's malformed file.)
const INTERNAL = [TypeError, ReferenceError, RangeError] as const;

export function describeFailure(error: unknown, env: NodeJS.ProcessEnv): Failure {
  const program = 'buildkite-ecr-injector';
  if (error instanceof UsageError) return { text: `${program}: ${oneLine(error.message)} (see '${program} --help')`, exitCode: 64 };
  // A config error lists every bad field on its own indented line: that list is the message.
  if (error instanceof ConfigError) return { text: `${program}: ${error.message.trimEnd()}`, exitCode: 1 };
  const message = describeError(error);
  const internal = INTERNAL.some((kind) => error instanceof kind) && !hasSystemCause(error);
  if (!internal) return { text: `${program}: ${message}`, exitCode: 1 };
  const hint = env[TRACE_ENV] ? '' : ` (an internal error; set ${TRACE_ENV}=1 for the stack and report it)`;
  return { text: `${program}: ${message}${hint}`, exitCode: 1, ...(env[TRACE_ENV] && error instanceof Error && error.stack ? { stack: error.stack } : {}) };
}

/** A TypeError from fetch ("fetch failed") carries the real, user-caused reason in its cause. */
function hasSystemCause(error: unknown): boolean {
  const cause = (error as { cause?: { code?: unknown } } | null)?.cause;
  return typeof cause?.code === 'string';
}
