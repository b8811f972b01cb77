// manifests/observability/ against the code: the Grafana dashboard and the PrometheusRule parse, every
// PromQL expression in them parses (Prometheus's own grammar, @prometheus-io/lezer-promql), and names
// only metrics the webhook's and the refresher's registries export, with label matchers and
// groupings on labels those metrics have (or the labels Prometheus adds to every target).
import { parser } from '@prometheus-io/lezer-promql';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import t, { type Test } from 'tap';
import { parse as parseYaml } from 'yaml';
import { createMetrics } from '../src/http/webhook-metrics.js';
import { createRefresherMetrics } from '../src/refresher/refresher-metrics.js';
import type { Registry } from 'prom-client';

const DIR = join(import.meta.dirname, '..', 'manifests', 'observability');
/** Labels the scrape adds to every series (kubernetes_sd / prometheus-operator), and `le` of buckets. */
const TARGET_LABELS = new Set(['job', 'instance', 'namespace', 'pod', 'service', 'container', 'endpoint']);

/** Every series name the registries export, with its label names (histograms: _bucket, _sum, _count). */
function exported(): Map<string, Set<string>> {
  const names = new Map<string, Set<string>>();
  const registries: Registry[] = [createMetrics().registry, createRefresherMetrics().registry];
  for (const registry of registries) {
    for (const metric of registry.getMetricsAsArray()) {
      const { name, type } = metric;
      const labels = new Set((metric as unknown as { labelNames: string[] }).labelNames);
      if (String(type) === 'histogram') {
        names.set(`${name}_bucket`, new Set([...labels, 'le']));
        names.set(`${name}_sum`, labels);
        names.set(`${name}_count`, labels);
      } else {
        names.set(name, labels);
      }
    }
  }
  return names;
}

interface Selector {
  metric: string;
  labels: string[];
}

/** Parse one expression: its syntax errors, the vector selectors it reads, the labels it groups by. */
function analyse(expr: string): { errors: string[]; selectors: Selector[]; grouping: string[] } {
  // Grafana's interval variables are not PromQL; they stand for a duration.
  const text = expr.replace(/\$__(rate_)?interval|\$__range/g, '5m');
  const tree = parser.parse(text);
  const errors: string[] = [];
  const selectors: Selector[] = [];
  const grouping: string[] = [];
  const cursor = tree.cursor();
  do {
    const node = cursor.node;
    if (node.type.isError) errors.push(`syntax error at ${node.from}: ${text.slice(Math.max(0, node.from - 10), node.to + 10)}`);
    if (node.name === 'VectorSelector') {
      const identifier = node.getChild('Identifier');
      const labels: string[] = [];
      const matchers = node.getChild('LabelMatchers');
      for (const matcher of matchers?.getChildren('UnquotedLabelMatcher') ?? []) {
        const name = matcher.getChild('LabelName');
        if (name) labels.push(text.slice(name.from, name.to));
      }
      if (identifier) selectors.push({ metric: text.slice(identifier.from, identifier.to), labels });
      else errors.push(`a selector without a metric name: ${text.slice(node.from, node.to)}`);
    }
    if (node.name === 'GroupingLabels') for (const label of node.getChildren('LabelName')) grouping.push(text.slice(label.from, label.to));
  } while (cursor.next());
  return { errors, selectors, grouping };
}

function dashboardExpressions(): { where: string; expr: string }[] {
  const dashboard = JSON.parse(readFileSync(join(DIR, 'grafana-dashboard.json'), 'utf8')) as { panels: { title: string; targets: { expr: string }[] }[] };
  return dashboard.panels.flatMap((panel) => panel.targets.map((target, i) => ({ where: `dashboard panel "${panel.title}" target ${i}`, expr: target.expr })));
}

function ruleExpressions(): { where: string; expr: string }[] {
  const rule = parseYaml(readFileSync(join(DIR, 'prometheus-rule.yaml'), 'utf8')) as { kind: string; spec: { groups: { name: string; rules: { alert: string; expr: string }[] }[] } };
  if (rule.kind !== 'PrometheusRule') throw new Error('prometheus-rule.yaml is not a PrometheusRule');
  return rule.spec.groups.flatMap((group) => group.rules.map((r) => ({ where: `alert ${r.alert}`, expr: r.expr })));
}

function checkExpressions(t: Test, expressions: { where: string; expr: string }[]): Set<string> {
  const names = exported();
  const used = new Set<string>();
  for (const { where, expr } of expressions) {
    const { errors, selectors, grouping } = analyse(expr);
    t.same(errors, [], `${where} parses`);
    t.ok(selectors.length > 0, `${where} reads a metric`);
    const known = new Set<string>(TARGET_LABELS);
    for (const { metric, labels } of selectors) {
      used.add(metric);
      const metricLabels = names.get(metric);
      t.ok(metricLabels, `${where}: ${metric} is exported by the code`);
      for (const label of metricLabels ?? []) known.add(label);
      for (const label of labels) t.ok(metricLabels?.has(label) || TARGET_LABELS.has(label), `${where}: ${metric} has label ${label}`);
    }
    for (const label of grouping) t.ok(known.has(label), `${where}: grouping label ${label} exists`);
  }
  return used;
}

t.test('the analysis can fail: an unknown metric, a bad label, a syntax error', (t) => {
  t.same(analyse('sum(rate(nope_total{result="x"}[5m]))').selectors, [{ metric: 'nope_total', labels: ['result'] }]);
  t.not(analyse('sum(rate(foo[5m]').errors.length, 0, 'unbalanced parentheses');
  t.same(analyse('max by (state) (a) + b').grouping, ['state']);
  t.end();
});

t.test('the PrometheusRule alerts use only exported metrics and labels, and cover the issue', (t) => {
  const rules = ruleExpressions();
  const used = checkExpressions(t, rules);
  for (const metric of ['buildkite_ecr_injector_admission_errors_total', 'buildkite_ecr_injector_namespace_source_state', 'buildkite_ecr_injector_certificate_not_after_timestamp_seconds', 'buildkite_ecr_injector_refresher_secret_expiry_seconds', 'buildkite_ecr_injector_refresher_namespaces']) {
    t.ok(used.has(metric), `an alert reads ${metric}`);
  }
  const alerts = rules.map((r) => r.where);
  for (const alert of ['FailOpenErrors', 'WebhookNotReady', 'WebhookDown', 'ServingCertificateExpiresSoon', 'PullSecretExpiresSoon', 'RefreshFailing']) {
    t.ok(alerts.includes(`alert BuildkiteEcrInjector${alert}`), alert);
  }
  t.end();
});

t.test('the Grafana dashboard parses and every panel uses only exported metrics and labels', (t) => {
  const expressions = dashboardExpressions();
  const used = checkExpressions(t, expressions);
  for (const metric of ['buildkite_ecr_injector_admissions_total', 'buildkite_ecr_injector_admission_duration_seconds_bucket', 'buildkite_ecr_injector_admission_errors_total', 'buildkite_ecr_injector_namespace_source_state', 'buildkite_ecr_injector_certificate_not_after_timestamp_seconds', 'buildkite_ecr_injector_refresher_secret_expiry_seconds', 'buildkite_ecr_injector_refresher_refreshes_total']) {
    t.ok(used.has(metric), `a panel reads ${metric}`);
  }
  t.ok(expressions.some((e) => e.expr.startsWith('histogram_quantile(0.99,')) && expressions.some((e) => e.expr.startsWith('histogram_quantile(0.5,')), 'latency p50 and p99');
  t.end();
});
