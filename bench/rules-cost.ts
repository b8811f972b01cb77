// Owns the credential-rules cost: the in-process decision + patch (measureDecision) on the same
// request with no rules and with 20 rules, the matching one last so all 19 before it are evaluated
// (the worst case for first-match). Rounds alternate so drift on a shared machine hits both sides.
// `npm run bench` reports it as a row; `npm run bench:rules` runs it alone.
import { resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { parseConfig } from '../src/webhook/config.js';
import type { Labels } from '../src/webhook/pod.js';
import { buildFixtures, findTypicalReview } from './fixtures.js';
import { measureDecision } from './in-process.js';
import { optedInLabels } from './namespaces.js';

/** 19 rules that miss the typical Pod (payments-api, main, step test) on varied fields and forms, then one that matches. */
export function twentyRules(): unknown[] {
  const rules: unknown[] = [];
  for (let i = 0; i < 19; i += 1) {
    const form = i % 4;
    const match =
      form === 0
        ? { pipelines: [`team-${i}-*`, `service-${i}`] }
        : form === 1
          ? { pipelines: 'payments-*', branches: `release/${i}/* hotfix-${i}` }
          : form === 2
            ? { namespaces: [`team-${i}`], pipelines: ['*'] }
            : { pipelines: ['payments-api'], branches: ['*', '!main'], steps: [`deploy-${i}`] };
    rules.push({ name: `rule-${i}`, match, serviceAccount: `sa-${i}` });
  }
  rules.push({ name: 'payments-main', match: { pipelines: 'payments-*', branches: 'main release/*', steps: ['test', 'deploy-*'] }, serviceAccount: 'buildkite-agent' });
  return rules;
}

export interface RulesCost {
  withoutRulesUs: number;
  withRulesUs: number;
  addedUs: number;
}

/** `document` is the config as written (without rules); the same plus twentyRules() is compared. */
export function measureRulesCost(body: string, labels: Labels, document: Record<string, unknown>, rounds = 5, iterations = 3000): RulesCost {
  const base = parseConfig(document);
  const withRules = parseConfig({ ...document, rules: twentyRules() });
  const without: number[] = [];
  const withR: number[] = [];
  for (let round = 0; round < rounds; round += 1) {
    without.push(measureDecision(body, labels, base, iterations).medianUs);
    withR.push(measureDecision(body, labels, withRules, iterations).medianUs);
  }
  // The lowest median of each side: the least disturbed round on a shared machine.
  const withoutRulesUs = Math.min(...without);
  const withRulesUs = Math.min(...withR);
  return { withoutRulesUs, withRulesUs, addedUs: withRulesUs - withoutRulesUs };
}

if (process.argv[1] !== undefined && import.meta.url === pathToFileURL(resolve(process.argv[1])).href) {
  const root = resolve(new URL('../..', import.meta.url).pathname);
  const typical = buildFixtures(findTypicalReview(root)).find((fixture) => fixture.name === 'typical');
  if (typical === undefined) throw new Error('no typical fixture');
  const document = { defaults: { serviceAccount: 'buildkite-agent', awsSecret: 'none', pullSecret: 'ecr-credentials' } };
  const cost = measureRulesCost(typical.body, optedInLabels(typical.review.request.namespace), document);
  process.stdout.write(
    `decision+patch median, typical Pod: ${cost.withoutRulesUs.toFixed(1)} µs without rules, ${cost.withRulesUs.toFixed(1)} µs with 20 rules ` +
      `(match on the 20th): ${cost.addedUs >= 0 ? '+' : ''}${cost.addedUs.toFixed(1)} µs\n`,
  );
}
