// Owns `mutate`: the offline twin of the webhook (like `istioctl kube-inject` or `kyverno apply`).
// Reads a Pod or an AdmissionReview (YAML or JSON, a file or stdin) and the namespace's labels, and
// prints the decision, its reason, the warnings, the patch and the mutated Pod exactly as the
// webhook would decide them, with the credential rule that matched and why each earlier one did not.
import { readFile } from 'node:fs/promises';
import { stringify as toYaml, parse as parseYaml } from 'yaml';
import { loadConfig } from '../files/config-file.js';
import { parseLabelList, readNamespacesFile } from '../files/namespaces-file.js';
import { reviewAdmission, type AdmissionRequest } from '../webhook/admission.js';
import { isPlainObject, type Labels } from '../webhook/pod.js';
import { describeMiss } from '../webhook/rules.js';
import { singleFlag, UsageError, type Flags } from './flags.js';

export const mutateUsage = `mutate flags:
  mutate POD_FILE|-      a Pod (or an AdmissionReview) as YAML or JSON
  --namespace-labels K=V,...   the namespace's labels, or
  --namespaces FILE --namespace NAME
  --config FILE
  --output yaml|json     (default yaml)
`;

async function readDocument(path: string): Promise<unknown> {
  let text: string;
  try {
    text = path === '-' ? await readStdin() : await readFile(path, 'utf8');
  } catch (error) {
    throw new UsageError(`cannot read ${path}: ${(error as Error).message}`);
  }
  try {
    return parseYaml(text); // YAML is a superset of JSON
  } catch (error) {
    throw new UsageError(`${path} is neither YAML nor JSON: ${(error as Error).message}`);
  }
}

async function readStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  for await (const chunk of process.stdin) chunks.push(chunk as Buffer);
  return Buffer.concat(chunks).toString('utf8');
}

export async function mutate(flags: Flags, positionals: string[]): Promise<void> {
  const input = positionals[0];
  if (input === undefined) throw new UsageError('mutate needs a Pod file (or - for standard input)');
  const namespaceFlag = singleFlag(flags.namespace, 'namespace');
  const config = await loadConfig(flags.config);
  const document = await readDocument(input);
  if (!isPlainObject(document)) throw new UsageError(`${input} does not hold a Pod or an AdmissionReview`);
  let request: AdmissionRequest;
  if (document.kind === 'AdmissionReview' && isPlainObject(document.request)) {
    request = document.request as AdmissionRequest;
  } else {
    const metadata = isPlainObject(document.metadata) ? document.metadata : {};
    request = {
      uid: 'offline',
      kind: { group: '', version: 'v1', kind: typeof document.kind === 'string' ? document.kind : 'Pod' },
      operation: 'CREATE',
      namespace: namespaceFlag ?? (typeof metadata.namespace === 'string' ? metadata.namespace : undefined),
      object: document,
    };
  }
  const namespaceName = namespaceFlag ?? request.namespace;
  let labels: Labels | undefined;
  if (flags['namespace-labels'] !== undefined) {
    labels = parseLabelList(flags['namespace-labels']);
  } else if (flags.namespaces) {
    if (!namespaceName) throw new UsageError('--namespaces needs --namespace NAME (the Pod names none)');
    labels = (await readNamespacesFile(flags.namespaces)).get(namespaceName);
  } else {
    throw new UsageError('mutate needs --namespace-labels k=v,... or --namespaces FILE --namespace NAME');
  }
  if (namespaceName !== undefined) request = { ...request, namespace: namespaceName };
  const outcome = reviewAdmission(request, labels, { config });
  const report = {
    decision: outcome.audit.decision,
    reason: outcome.audit.reason,
    ...(outcome.audit.detail ? { detail: outcome.audit.detail } : {}),
    ...(outcome.audit.injected ? { injected: outcome.audit.injected } : {}),
    // Which credential rule matched and why each one before it did not: the first thing to check.
    ...(outcome.rules
      ? {
          rule: outcome.rules.rule?.name ?? null,
          rulesNotMatched: outcome.rules.misses.map((miss) => describeMiss(miss, config.rules.find((rule) => rule.name === miss.rule))),
        }
      : {}),
    warnings: outcome.response.warnings ?? [],
    patch: outcome.operations,
    pod: outcome.pod,
  };
  const output = flags.output ?? 'yaml';
  if (output === 'json') process.stdout.write(`${JSON.stringify(report, null, 2)}\n`);
  else if (output === 'yaml') process.stdout.write(toYaml(report, { lineWidth: 0 }));
  else throw new UsageError(`--output must be yaml or json, got ${output}`);
}
