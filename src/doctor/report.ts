// Owns what a diagnosis is and how it is shown: one check per line, grouped by scope, ✓ ⚠ ✗ and a
// "fix:" line under each problem (text), or `{"checks": [...]}` (json); and the exit status it means.
import { describeError } from '../kube/describe-error.js';

/** The fix for a read the user's credentials may not make. */
export const READ_FIX = 'bind the read-only ClusterRole buildkite-ecr-injector-doctor to yourself (docs/doctor.md)';

export type CheckStatus = 'ok' | 'warning' | 'error';

export interface Check {
  /** "cluster", "namespace/<ns>" or "pod/<ns>/<name>". */
  scope: string;
  /** A stable id, e.g. "webhook-order": scripts may match on it. */
  check: string;
  status: CheckStatus;
  message: string;
  /** The command or change that fixes it; "" when there is nothing to fix. */
  fix: string;
}

/** A read whose failure becomes an error check (`cannot read WHAT: why`, fix: the RBAC); null then. */
export async function readOrFail<T>(out: ScopeChecks, id: string, what: string, read: () => Promise<T>): Promise<T | null> {
  try {
    return await read();
  } catch (error) {
    out.fail(id, `cannot read ${what}: ${describeError(error)}`, READ_FIX);
    return null;
  }
}

export type ScopeChecks = ReturnType<typeof scopeChecks>;

/** Builds the checks of one scope. */
export function scopeChecks(scope: string): {
  checks: Check[];
  ok(check: string, message: string): void;
  warn(check: string, message: string, fix?: string): void;
  fail(check: string, message: string, fix?: string): void;
} {
  const checks: Check[] = [];
  const add = (status: CheckStatus) => (check: string, message: string, fix = '') => void checks.push({ scope, check, status, message, fix });
  return { checks, ok: (check, message) => add('ok')(check, message), warn: add('warning'), fail: add('error') };
}

const MARK: Record<CheckStatus, string> = { ok: '✓', warning: '⚠', error: '✗' };

export function formatText(checks: readonly Check[]): string {
  const lines: string[] = [];
  const scopes = [...new Set(checks.map((c) => c.scope))];
  for (const scope of scopes) {
    if (lines.length > 0) lines.push('');
    lines.push(scope);
    for (const check of checks.filter((c) => c.scope === scope)) {
      lines.push(`  ${MARK[check.status]} ${check.check}: ${check.message}`);
      if (check.fix && check.status !== 'ok') lines.push(`      fix: ${check.fix}`);
    }
  }
  const count = (status: CheckStatus) => checks.filter((c) => c.status === status).length;
  const plural = (n: number, word: string) => `${n} ${word}${n === 1 ? '' : 's'}`;
  lines.push('', `${plural(checks.length, 'check')}: ${count('ok')} ok, ${plural(count('warning'), 'warning')}, ${plural(count('error'), 'error')}`);
  return `${lines.join('\n')}\n`;
}

export function formatJson(checks: readonly Check[]): string {
  const ordered = checks.map(({ scope, check, status, message, fix }) => ({ scope, check, status, message, fix }));
  return `${JSON.stringify({ checks: ordered }, null, 2)}\n`;
}

/** 0 when no check is an error, else 1. */
export function exitCodeOf(checks: readonly Check[]): 0 | 1 {
  return checks.some((c) => c.status === 'error') ? 1 : 0;
}

/** "ServiceAccount a, AWS Secret b, pull Secret c": what a job Pod gets (or got), in words. */
export function describeCredentials(parts: { serviceAccount?: string | null; awsSecret?: string | null; pullSecrets?: readonly string[] | null }): string {
  const words = [
    parts.serviceAccount && `ServiceAccount ${parts.serviceAccount}`,
    parts.awsSecret && `AWS Secret ${parts.awsSecret}`,
    parts.pullSecrets && parts.pullSecrets.length > 0 && `pull Secret ${parts.pullSecrets.join(', ')}`,
  ].filter(Boolean);
  return words.join(', ') || 'nothing';
}
