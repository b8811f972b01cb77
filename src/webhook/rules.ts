// Owns credential rules: the `rules:` schema, the job identity they match on, and first-match
// evaluation with the reason every earlier rule did not match. Patterns are compiled once, when the
// config is parsed, so a request pays only for a few Set lookups and substring searches.
// Identity comes only from annotations agent-stack-k8s writes after any pipeline-authored metadata
// (see ../../docs/configuration.md#rules); never from tag.buildkite.com/* labels or env.
import { z } from 'zod';
import { kubernetesName, optionalName } from './names.js';

/** The annotations a rule may match on, written by the agent-stack-k8s controller. */
export const IDENTITY_ANNOTATIONS = {
  pipeline: 'buildkite.com/pipeline-slug',
  branch: 'buildkite.com/build-branch',
  step: 'buildkite.com/step-key',
  buildUrl: 'buildkite.com/build-url',
} as const;

export const MATCH_FIELDS = ['namespaces', 'pipelines', 'branches', 'steps'] as const;
export type MatchField = (typeof MATCH_FIELDS)[number];

/** Where each match field's value comes from, for messages ("missing annotation ..."). */
const FIELD_SOURCE: Record<MatchField, string> = {
  namespaces: 'namespace',
  pipelines: IDENTITY_ANNOTATIONS.pipeline,
  branches: IDENTITY_ANNOTATIONS.branch,
  steps: IDENTITY_ANNOTATIONS.step,
};

/** One match field, compiled: the patterns as written (for explanations) and the test. */
export interface PatternSet {
  readonly patterns: readonly string[];
  readonly test: (value: string) => boolean;
}

export interface Rule {
  readonly name: string;
  readonly match: Readonly<Partial<Record<MatchField, PatternSet>>>;
  /** undefined: not set by the rule (the namespace label, then the default, decide); null: `none`. */
  readonly serviceAccount?: string | null;
  readonly awsSecret?: string | null;
  readonly pullSecret?: string | null;
}

/** What rules match on. A field is undefined when the Pod does not carry its annotation. */
export interface JobIdentity {
  namespaces: string;
  pipelines: string | undefined;
  branches: string | undefined;
  steps: string | undefined;
}

/** Why one rule did not match: the first field that failed, and its value (or that it was missing). */
export interface RuleMiss {
  rule: string;
  field: MatchField;
  /** The Pod's value; undefined when the annotation is missing (`missing` names it). */
  value?: string;
  missing?: string;
}

export interface RuleEvaluation {
  /** The first rule that matched, or undefined. */
  rule: Rule | undefined;
  /** For each rule before it (every rule when none matched), why it did not match. */
  misses: RuleMiss[];
}

// Buildkite's branch-filter syntax: space-separated patterns, `*` for any run (slashes included),
// a leading `!` excludes.
const WHITESPACE = /\s+/;
const patternField = z
  .union([z.string(), z.array(z.string())], { error: 'must be a list of patterns or one string of space-separated patterns' })
  .transform((value, context) => {
    const patterns = typeof value === 'string' ? value.trim().split(WHITESPACE).filter(Boolean) : value;
    const problem =
      patterns.length === 0
        ? 'is empty (give at least one pattern)'
        : patterns.some((p) => p === '' || p === '!')
          ? 'holds an empty pattern ("" or a "!" with nothing after it)'
          : patterns.some((p) => WHITESPACE.test(p))
            ? 'holds a list item with whitespace: one pattern per item'
            : undefined;
    if (problem !== undefined) {
      context.addIssue({ code: 'custom', message: problem });
      return z.NEVER;
    }
    return compilePatterns(patterns);
  });

const matchSchema = z
  .object({ namespaces: patternField.optional(), pipelines: patternField.optional(), branches: patternField.optional(), steps: patternField.optional() })
  .strict();

const ruleSchema = z
  .object({
    name: kubernetesName,
    match: matchSchema.default({}),
    serviceAccount: optionalName.optional(),
    awsSecret: optionalName.optional(),
    pullSecret: optionalName.optional(),
  })
  .strict();

export const rulesSchema = z.array(ruleSchema).superRefine((rules, context) => {
  const seen = new Set<string>();
  rules.forEach((rule, index) => {
    if (seen.has(rule.name)) context.addIssue({ code: 'custom', path: [index, 'name'], message: `${rule.name} is used by an earlier rule; names must be unique` });
    seen.add(rule.name);
  });
});

/** Compile one field's patterns: exact names into a Set, wildcards into piece matchers. */
export function compilePatterns(patterns: readonly string[]): PatternSet {
  const include = patterns.filter((p) => !p.startsWith('!'));
  const exclude = patterns.filter((p) => p.startsWith('!')).map((p) => p.slice(1));
  const included = compileAlternatives(include);
  const excluded = compileAlternatives(exclude);
  // A field of only `!` patterns matches every value it does not exclude.
  const test = include.length === 0 ? (value: string) => !excluded(value) : (value: string) => included(value) && !excluded(value);
  return { patterns: Object.freeze([...patterns]), test };
}

function compileAlternatives(patterns: readonly string[]): (value: string) => boolean {
  if (patterns.length === 0) return () => false;
  const exact = new Set(patterns.filter((p) => !p.includes('*')));
  const wild = patterns.filter((p) => p.includes('*')).map(compileWildcard);
  const [only] = wild;
  if (only === undefined) return (value) => exact.has(value);
  if (wild.length === 1) return exact.size === 0 ? only : (value) => exact.has(value) || only(value);
  return (value) => exact.has(value) || wild.some((test) => test(value));
}

/**
 * One pattern with `*`: the value must start with the text before the first `*`, end with the text
 * after the last, and hold the pieces between in order. Matching each piece at its leftmost place is
 * exact for `*`-only globs and linear in the value; a regex with several `.*` can backtrack
 * polynomially on a long branch name, and branch names are chosen by whoever pushes.
 */
function compileWildcard(pattern: string): (value: string) => boolean {
  const pieces = pattern.split('*');
  const head = pieces[0] ?? '';
  const tail = pieces[pieces.length - 1] ?? '';
  const middle = pieces.slice(1, -1).filter((piece) => piece !== '');
  const minimum = head.length + tail.length;
  return (value) => {
    if (value.length < minimum || !value.startsWith(head) || !value.endsWith(tail)) return false;
    let at = head.length;
    const end = value.length - tail.length;
    for (const piece of middle) {
      const found = value.indexOf(piece, at);
      if (found < 0 || found + piece.length > end) return false;
      at = found + piece.length;
    }
    return true;
  };
}

/**
 * The job's identity from the controller's annotations. The pipeline slug falls back to the build
 * URL's pipeline segment (controllers before v0.32.2 wrote only `build-url`); a branch or step key
 * cannot be recovered, so they stay missing. Empty values count as missing.
 */
export function jobIdentity(namespace: string, annotations: Readonly<Record<string, string>> | undefined): JobIdentity {
  const read = (key: string): string | undefined => {
    const value = annotations?.[key];
    return typeof value === 'string' && value !== '' ? value : undefined;
  };
  return {
    namespaces: namespace,
    pipelines: read(IDENTITY_ANNOTATIONS.pipeline) ?? pipelineFromBuildUrl(read(IDENTITY_ANNOTATIONS.buildUrl)),
    branches: read(IDENTITY_ANNOTATIONS.branch),
    steps: read(IDENTITY_ANNOTATIONS.step),
  };
}

/** `https://buildkite.com/<org>/<pipeline>/builds/<n>` -> `<pipeline>`; anything else -> undefined. */
export function pipelineFromBuildUrl(url: string | undefined): string | undefined {
  if (url === undefined || !URL.canParse(url)) return undefined;
  const segments = new URL(url).pathname.split('/');
  const [empty, org, pipeline, builds, number] = segments;
  if (segments.length !== 5 || empty !== '' || !org || !pipeline || builds !== 'builds' || !number) return undefined;
  return decodeURIComponent(pipeline);
}

/** First match wins, in file order; every given field must match, and an empty match matches all. */
export function evaluateRules(rules: readonly Rule[], identity: JobIdentity): RuleEvaluation {
  const misses: RuleMiss[] = [];
  for (const rule of rules) {
    const miss = firstMiss(rule, identity);
    if (miss === undefined) return { rule, misses };
    misses.push(miss);
  }
  return { rule: undefined, misses };
}

function firstMiss(rule: Rule, identity: JobIdentity): RuleMiss | undefined {
  for (const field of MATCH_FIELDS) {
    const patterns = rule.match[field];
    if (patterns === undefined) continue;
    const value = identity[field];
    // No guessing: a rule that asks about a field the Pod does not carry does not match.
    if (value === undefined) return { rule: rule.name, field, missing: FIELD_SOURCE[field] };
    if (!patterns.test(value)) return { rule: rule.name, field, value };
  }
  return undefined;
}

/** One line for a miss, for `mutate` and the audit detail. */
export function describeMiss(miss: RuleMiss, rule: Rule | undefined): string {
  if (miss.value === undefined) return `rule ${miss.rule}: missing annotation ${miss.missing ?? miss.field}`;
  const patterns = rule?.match[miss.field]?.patterns.join(' ') ?? '';
  return `rule ${miss.rule}: ${miss.field} ${JSON.stringify(miss.value)} does not match "${patterns}"`;
}
