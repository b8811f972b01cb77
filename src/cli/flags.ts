// Owns the command line's flags: one option table for every command (node:util parseArgs, strict),
// the usage error that every command throws for a bad flag (exit 64), and small typed readers.
import { parseArgs, type ParseArgsConfig } from 'node:util';

/** A mistake in how the command was called: one line, a hint to --help, exit code 64. */
export class UsageError extends Error {
  override name = 'UsageError';
}

export const OPTIONS = {
  config: { type: 'string' },
  port: { type: 'string' },
  host: { type: 'string' },
  'tls-mode': { type: 'string' },
  'tls-cert': { type: 'string' },
  'tls-key': { type: 'string' },
  'certs-dir': { type: 'string' },
  'tls-secret': { type: 'string' },
  'webhook-config': { type: 'string' },
  service: { type: 'string' },
  lease: { type: 'string' },
  kubeconfig: { type: 'string' },
  namespaces: { type: 'string' },
  'metrics-port': { type: 'string' },
  'metrics-host': { type: 'string' },
  'health-port': { type: 'string' },
  namespace: { type: 'string', short: 'n', multiple: true },
  pod: { type: 'string' },
  context: { type: 'string' },
  'namespace-labels': { type: 'string' },
  'grace-period': { type: 'string' },
  'client-ca': { type: 'string' },
  'tls-min-version': { type: 'string' },
  'tls-ciphers': { type: 'string' },
  'max-connections': { type: 'string' },
  'keep-alive-timeout': { type: 'string' },
  'log-level': { type: 'string' },
  output: { type: 'string', short: 'o' },
  out: { type: 'string' },
  dns: { type: 'string' },
  ip: { type: 'string' },
  days: { type: 'string' },
  help: { type: 'boolean', short: 'h' },
} as const satisfies ParseArgsConfig['options'];

export type Flags = ReturnType<typeof parseFlags>['values'];

export function parseFlags(args: string[]) {
  try {
    return parseArgs({ args, options: OPTIONS, allowPositionals: true, strict: true });
  } catch (error) {
    throw new UsageError((error as Error).message);
  }
}

export function integerFlag(
  flags: Flags,
  name: 'port' | 'metrics-port' | 'health-port' | 'grace-period' | 'days' | 'max-connections' | 'keep-alive-timeout',
  fallback: number,
  min: number,
  max: number,
): number {
  const raw = flags[name];
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isInteger(value) || value < min || value > max) throw new UsageError(`--${name} must be an integer from ${min} to ${max}, got ${raw}`);
  return value;
}

/** A flag that may be given once (the option table lets --namespace repeat, for doctor). */
export function singleFlag(values: string[] | undefined, name: string): string | undefined {
  if (values !== undefined && values.length > 1) throw new UsageError(`--${name} may be given once here`);
  return values?.[0];
}

export function listFlag(value: string | undefined): string[] {
  return (value ?? '').split(',').map((part) => part.trim()).filter(Boolean);
}
