// The pure parts of doctor: the text and JSON forms of a report, its exit status, and label
// selectors evaluated as the API server evaluates a webhook's namespaceSelector and objectSelector.
import t from 'tap';
import { selects } from '../../src/doctor/label-selector.js';
import { exitCodeOf, formatJson, formatText, scopeChecks } from '../../src/doctor/report.js';

t.test('text: grouped by scope in order, ✓ ⚠ ✗, a fix under problems only, a count', (t) => {
  const cluster = scopeChecks('cluster');
  cluster.ok('a', 'fine');
  cluster.warn('b', 'hmm', 'do b');
  const ns = scopeChecks('namespace/x');
  ns.fail('c', 'broken', 'do c');
  const checks = [...cluster.checks, ...ns.checks];
  t.equal(formatText(checks), 'cluster\n  ✓ a: fine\n  ⚠ b: hmm\n      fix: do b\n\nnamespace/x\n  ✗ c: broken\n      fix: do c\n\n3 checks: 1 ok, 1 warning, 1 error\n');
  t.same(JSON.parse(formatJson(checks)), { checks: [
    { scope: 'cluster', check: 'a', status: 'ok', message: 'fine', fix: '' },
    { scope: 'cluster', check: 'b', status: 'warning', message: 'hmm', fix: 'do b' },
    { scope: 'namespace/x', check: 'c', status: 'error', message: 'broken', fix: 'do c' },
  ] });
  t.equal(exitCodeOf(checks), 1);
  t.equal(exitCodeOf(cluster.checks), 0, 'warnings alone exit 0');
  t.end();
});

t.test('label selectors: matchLabels and every operator; none selects all; an unknown operator selects none', (t) => {
  const labels = { a: '1', b: '2' };
  t.ok(selects(undefined, labels));
  t.ok(selects({}, labels));
  t.ok(selects({ matchLabels: { a: '1' } }, labels));
  t.notOk(selects({ matchLabels: { a: '2' } }, labels));
  t.ok(selects({ matchExpressions: [{ key: 'a', operator: 'In', values: ['0', '1'] }, { key: 'c', operator: 'DoesNotExist' }] }, labels));
  t.notOk(selects({ matchExpressions: [{ key: 'b', operator: 'NotIn', values: ['2'] }] }, labels));
  t.ok(selects({ matchExpressions: [{ key: 'c', operator: 'NotIn', values: ['2'] }] }, labels), 'NotIn admits a missing key');
  t.notOk(selects({ matchExpressions: [{ key: 'c', operator: 'Exists' }] }, labels));
  t.notOk(selects({ matchExpressions: [{ key: 'a', operator: 'Gt', values: ['0'] }] }, labels));
  t.end();
});
