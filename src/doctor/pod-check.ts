// Owns `doctor --pod`: what the webhook decided for one Pod, from the `<prefix>/injected` annotation
// it leaves on every Pod it changed, and otherwise why it left the Pod alone: the core's own decision
// (reviewAdmission, as `mutate` runs it) for the Pod and its namespace's labels as they are now,
// with the credential rule that matched and why each earlier one did not.
import type { V1Namespace, V1Pod } from '@kubernetes/client-node';
import { reviewAdmission } from '../webhook/admission.js';
import type { Config } from '../webhook/config.js';
import { parseInjectedAnnotation, type Injected } from '../webhook/mutate.js';
import { labelKeys } from '../webhook/policy.js';
import { describeMiss, type RuleEvaluation } from '../webhook/rules.js';
import { describeCredentials, scopeChecks, type Check } from './report.js';

// Reasons a Pod is rightly left alone: nothing to fix.
const EXPECTED = new Set(['not-a-job-pod', 'mirror-pod', 'pod-opted-out', 'namespace-excluded', 'operation-not-create', 'not-a-pod']);

export function checkPod(namespace: string, name: string, pod: V1Pod | undefined, ns: V1Namespace | undefined, config: Config): Check[] {
  const out = scopeChecks(`pod/${namespace}/${name}`);
  if (!pod) {
    out.fail('pod', `no Pod ${name} in namespace ${namespace}`, `kubectl -n ${namespace} get pods -l ${config.jobPodLabel}`);
    return out.checks;
  }
  const annotation = pod.metadata?.annotations?.[labelKeys(config.labelPrefix).injectedAnnotation];
  if (annotation !== undefined) {
    const injected = parseInjectedAnnotation(annotation);
    out.ok('decision', `the webhook injected ${describeInjected(injected)}`);
    return out.checks;
  }
  // No annotation: the webhook did not change this Pod. What would it decide now?
  const outcome = reviewAdmission(
    { uid: 'doctor', kind: { group: '', version: 'v1', kind: 'Pod' }, operation: 'CREATE', namespace, object: pod },
    ns?.metadata?.labels,
    { config },
  );
  const { decision, reason, detail } = outcome.audit;
  const rules = outcome.rules ? ruleExplanation(outcome.rules, config) : '';
  if (decision === 'injected') {
    out.fail(
      'decision',
      `the webhook never changed this Pod, yet would inject now (${describeInjected(outcome.audit.injected ?? {})})${rules}: it never saw the Pod (down, timed out, or not called) and failurePolicy Ignore let it through, or the labels changed since`,
      'fix the cluster and namespace checks above, then recreate the Pod (retry the Buildkite job)',
    );
  } else if (EXPECTED.has(reason)) {
    out.ok('decision', `the webhook leaves this Pod alone: ${reason} (${detail ?? decision})${rules}`);
  } else {
    out.warn('decision', `the webhook leaves this Pod alone: ${reason}${detail ? ` (${detail})` : ''}${rules}`, 'see the namespace checks above');
  }
  return out.checks;
}

function describeInjected(injected: Injected): string {
  const into = injected.envFrom ? ` (into ${injected.envFrom.containers.join(', ')})` : '';
  const rule = injected.rule ? `, chosen by rule ${injected.rule}` : '';
  return `${describeCredentials({ serviceAccount: injected.serviceAccountName, awsSecret: injected.envFrom?.secret, pullSecrets: injected.imagePullSecrets })}${into}${rule}`;
}

/** As `mutate` explains it: the rule that matched (or none) and why each one before it did not. */
function ruleExplanation(rules: RuleEvaluation, config: Config): string {
  const misses = rules.misses.map((miss) => describeMiss(miss, config.rules.find((rule) => rule.name === miss.rule)));
  const matched = rules.rule ? `rule ${rules.rule.name} matches` : 'no rule matches';
  return `; ${matched}${misses.length > 0 ? ` (${misses.join('; ')})` : ''}`;
}
