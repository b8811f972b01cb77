// doctor against the fake Kubernetes API seeded with the real manifests and a real HTTPS webhook
// behind the Service proxy: a healthy namespace is all ✓; each deliberate fault (missing
// ServiceAccount, wrong webhook name order, stale caBundle, expired token, missing Secret, unmanaged
// pull Secret) is found with its fix; --pod explains the decision; the built CLI's exit codes and
// JSON shape.
import { execFile } from 'node:child_process';
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { promisify } from 'node:util';
import t from 'tap';
import { generateCertificates, caBundleOf } from '../../src/certs/generate.js';
import { runDoctor } from '../../src/doctor/doctor.js';
import { dockerConfigJson } from '../../src/refresher/docker-config.js';
import type { Check } from '../../src/doctor/report.js';
import { parseConfig, type Config } from '../../src/webhook/config.js';
import { addNamespace, ecrToken, healthyNamespace, MWC, REGISTRY, refresherStatus, ROLE_ARN, startDoctorCluster, type DoctorCluster } from '../helpers/doctor-cluster.js';
import type { KubeObject } from '../helpers/fake-kube-api.js';

const run = promisify(execFile);
const root = new URL('../..', import.meta.url).pathname;
const HOUR = 3_600_000;

function doctor(cluster: DoctorCluster, namespaces: string[] = [], pod?: { namespace: string; name: string }, config?: Config): Promise<Check[]> {
  return runDoctor({ api: cluster.api, webhookConfiguration: 'buildkite-ecr-injector', namespaces, ...(pod ? { pod } : {}), ...(config ? { config } : {}), now: new Date() });
}

function find(checks: Check[], scope: string, id: string): Check[] {
  return checks.filter((c) => c.scope === scope && c.check === id);
}

async function runCli(args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await run(process.execPath, [join(root, 'dist/cli.js'), 'doctor', ...args], { cwd: root, timeout: 60_000 });
    return { code: 0, stdout, stderr };
  } catch (error) {
    const failed = error as { code: number; stdout: string; stderr: string };
    return { code: failed.code, stdout: failed.stdout, stderr: failed.stderr };
  }
}

t.test('a healthy cluster and namespace: every check ✓, exit 0, text grouped by scope', async (t) => {
  const cluster = await startDoctorCluster(t);
  addNamespace(cluster.fake, healthyNamespace('team-a'));
  addNamespace(cluster.fake, { name: 'not-opted-in', labels: {} });
  const checks = await doctor(cluster);
  t.same(checks.filter((c) => c.status !== 'ok'), [], 'nothing but ✓');
  t.same([...new Set(checks.map((c) => c.scope))], ['cluster', 'namespace/team-a'], 'every opted-in namespace, and only those');
  const ids = checks.filter((c) => c.scope === 'cluster').map((c) => c.check);
  for (const id of ['webhook-configuration', 'webhook-order', 'config', 'webhook-failure-policy', 'webhook-timeout', 'webhook-reinvocation', 'webhook-namespace-selector', 'webhook-object-selector', 'serving-certificate', 'webhook-deployment', 'refresher-deployment', 'namespaces']) {
    t.ok(ids.includes(id), `cluster check ${id}`);
  }
  t.match(find(checks, 'cluster', 'serving-certificate')[0]?.message, /caBundle trusts the served certificate for buildkite-ecr-injector\.buildkite-ecr-injector\.svc; it expires .* \(in 36\d days\)/);
  t.match(find(checks, 'namespace/team-a', 'pull-secret-token')[0]?.message, new RegExp(`${REGISTRY.replace(/\./g, '\\.')} token expires at .* \\(in 6\\.0 h\\)`));
  t.notMatch(JSON.stringify(checks), /not-a-real-value|eyJ/, 'no Secret value or token in any message');

  const kubeconfig = join(t.testdir(), 'kubeconfig');
  await writeFile(kubeconfig, cluster.kubeconfigText);
  const text = await runCli(['--kubeconfig', kubeconfig, '-n', 'team-a']);
  t.equal(text.code, 0, text.stderr);
  t.match(text.stdout, /^cluster\n {2}✓ webhook-configuration: /);
  t.match(text.stdout, /\nnamespace\/team-a\n {2}✓ labels: /);
  t.match(text.stdout, /\n\d+ checks: \d+ ok, 0 warnings, 0 errors\n$/);
});

t.test('each deliberate fault is found with its fix; JSON is exactly {checks: [{scope, check, status, message, fix}]} and exit 1', async (t) => {
  const cluster = await startDoctorCluster(t);
  const { fake } = cluster;
  const now = new Date();
  // An EKS Pod Identity webhook configuration whose name sorts first, and a caBundle from another CA.
  fake.seed(MWC, [{ metadata: { name: 'aaa-pod-identity-webhook' }, webhooks: [] }]);
  const ours = fake.get(MWC, 'buildkite-ecr-injector') as KubeObject & { webhooks: { clientConfig: { caBundle?: string } }[] };
  ours.webhooks[0]!.clientConfig.caBundle = caBundleOf((await generateCertificates({ dnsNames: ['other.invalid'] })).caCert);
  fake.put(MWC, ours);
  const base = healthyNamespace('x');
  addNamespace(fake, { ...healthyNamespace('no-sa'), serviceAccount: undefined });
  addNamespace(fake, { ...healthyNamespace('expired'), pullSecret: { name: 'ecr-credentials', expiresAt: new Date(now.getTime() - HOUR) }, annotations: { ...base.annotations, ...refresherStatus('ecr-credentials', 'failing', new Date(now.getTime() - HOUR), 'AccessDeniedException: not authorized to perform ecr:GetAuthorizationToken') } });
  addNamespace(fake, { ...healthyNamespace('no-secret'), labels: { ...base.labels, 'buildkite-ecr-injector/aws-secret': 'aws-credentials' } });
  addNamespace(fake, { ...healthyNamespace('unmanaged'), pullSecret: { name: 'ecr-credentials', expiresAt: new Date(now.getTime() + 6 * HOUR), managed: false } });
  addNamespace(fake, { ...healthyNamespace('typo'), labels: { ...base.labels, 'buildkite-ecr-injector/service-acount': 'x' } });
  const checks = await doctor(cluster);

  const order = find(checks, 'cluster', 'webhook-order')[0];
  t.equal(order?.status, 'error');
  t.match(order?.message, /aaa-pod-identity-webhook sorts before buildkite-ecr-injector/);
  t.match(order?.fix, /metadata\.name: 0-buildkite-ecr-injector .*kubectl delete mutatingwebhookconfiguration buildkite-ecr-injector/);
  const certificate = find(checks, 'cluster', 'serving-certificate')[0];
  t.equal(certificate?.status, 'error');
  t.match(certificate?.message, /caBundle does not trust the served certificate .*stale/);
  t.match(certificate?.fix, /leader rewrites the caBundle/);

  const sa = find(checks, 'namespace/no-sa', 'service-account')[0];
  t.equal(sa?.status, 'error');
  t.match(sa?.message, /ServiceAccount buildkite-agent does not exist/);
  t.match(sa?.fix, /kubectl -n no-sa create serviceaccount buildkite-agent/);

  const token = find(checks, 'namespace/expired', 'pull-secret-token')[0];
  t.equal(token?.status, 'error');
  t.match(token?.message, /token expired at /);
  const status = find(checks, 'namespace/expired', 'refresher-status')[0];
  t.equal(status?.status, 'error');
  t.match(status?.message, /AccessDeniedException/);
  t.match(status?.fix, /ecr:GetAuthorizationToken.*kubectl -n buildkite-ecr-injector logs deployment\/buildkite-ecr-injector-refresher/);

  const secret = find(checks, 'namespace/no-secret', 'aws-secret')[0];
  t.equal(secret?.status, 'error');
  t.match(secret?.message, /Secret aws-credentials does not exist/);
  t.match(secret?.fix, /kubectl -n no-secret create secret generic aws-credentials --from-literal=AWS_ACCESS_KEY_ID=\.\.\./);
  t.equal(find(checks, 'namespace/no-secret', 'credentials-shadowing')[0]?.status, 'warning', 'static keys beside an IRSA ServiceAccount');

  const managed = find(checks, 'namespace/unmanaged', 'pull-secret-managed')[0];
  t.equal(managed?.status, 'warning');
  t.match(managed?.fix, /kubectl -n unmanaged delete secret ecr-credentials/);
  const labels = find(checks, 'namespace/typo', 'labels')[0];
  t.equal(labels?.status, 'error');
  t.match(labels?.message, /service-acount is not a label the webhook reads/);

  for (const check of checks.filter((c) => c.status === 'error')) t.not(check.fix, '', `${check.scope} ${check.check} has a fix`);

  const kubeconfig = join(t.testdir(), 'kubeconfig');
  await writeFile(kubeconfig, cluster.kubeconfigText);
  const json = await runCli(['--kubeconfig', kubeconfig, '-o', 'json']);
  t.equal(json.code, 1, 'an error check: exit 1');
  const parsed = JSON.parse(json.stdout) as { checks: Record<string, unknown>[] };
  t.same(Object.keys(parsed), ['checks']);
  for (const check of parsed.checks) {
    t.same(Object.keys(check), ['scope', 'check', 'status', 'message', 'fix']);
    t.ok(['ok', 'warning', 'error'].includes(check.status as string));
    t.match(check.scope, /^(cluster|namespace\/[a-z0-9-]+|pod\/[a-z0-9-]+\/[a-z0-9-]+)$/);
  }
  const text = await runCli(['--kubeconfig', kubeconfig, '-n', 'no-sa']);
  t.match(text.stdout, / {2}✗ service-account: ServiceAccount buildkite-agent does not exist[^\n]*\n {6}fix: kubectl -n no-sa create serviceaccount/);
});

t.test('--pod: an injected Pod, a Pod the webhook never saw, a Pod that is not a job', async (t) => {
  const cluster = await startDoctorCluster(t);
  addNamespace(cluster.fake, healthyNamespace('team-a'));
  const pods = '/api/v1/namespaces/team-a/pods';
  const spec = { serviceAccountName: 'default', containers: [{ name: 'container-0', image: 'alpine' }] };
  cluster.fake.seed(pods, [
    { metadata: { name: 'injected', namespace: 'team-a', labels: { 'buildkite.com/job-uuid': 'j1' }, annotations: { 'buildkite-ecr-injector/injected': JSON.stringify({ serviceAccountName: 'buildkite-agent', imagePullSecrets: ['ecr-credentials'] }) } }, spec },
    { metadata: { name: 'missed', namespace: 'team-a', labels: { 'buildkite.com/job-uuid': 'j2' } }, spec },
    { metadata: { name: 'web', namespace: 'team-a', labels: { app: 'web' } }, spec },
  ]);
  const decision = async (name: string) => find(await doctor(cluster, [], { namespace: 'team-a', name }), `pod/team-a/${name}`, 'decision')[0];
  const injected = await decision('injected');
  t.equal(injected?.status, 'ok');
  t.match(injected?.message, /injected ServiceAccount buildkite-agent, pull Secret ecr-credentials/);
  const missed = await decision('missed');
  t.equal(missed?.status, 'error');
  t.match(missed?.message, /never changed this Pod, yet would inject now \(ServiceAccount buildkite-agent, pull Secret ecr-credentials\)/);
  t.match(missed?.fix, /recreate the Pod/);
  const web = await decision('web');
  t.equal(web?.status, 'ok');
  t.match(web?.message, /leaves this Pod alone: not-a-job-pod/);
  const gone = find(await doctor(cluster, [], { namespace: 'team-a', name: 'gone' }), 'pod/team-a/gone', 'pod')[0];
  t.equal(gone?.status, 'error');
});

t.test('rules: which can apply to each namespace, a catch-all that hides later rules, what they name must exist; --pod names the rule', async (t) => {
  const cluster = await startDoctorCluster(t);
  const { fake } = cluster;
  const now = new Date();
  addNamespace(fake, healthyNamespace('payments'));
  addNamespace(fake, healthyNamespace('team-a'));
  addNamespace(fake, { ...healthyNamespace('bare'), labels: { 'buildkite-ecr-injector/inject': 'enabled' }, serviceAccount: undefined, pullSecret: undefined, annotations: {} });
  // payments holds the deployer's ServiceAccount, and a pull Secret of its own that nobody renews.
  fake.seed('/api/v1/namespaces/payments/serviceaccounts', [{ metadata: { name: 'payments-deployer', namespace: 'payments', annotations: { 'eks.amazonaws.com/role-arn': ROLE_ARN } } }]);
  const prod = dockerConfigJson(new Map([[REGISTRY, ecrToken(new Date(now.getTime() + 3 * HOUR))]]));
  fake.seed('/api/v1/namespaces/payments/secrets', [{ metadata: { name: 'ecr-prod', namespace: 'payments' }, type: 'kubernetes.io/dockerconfigjson', data: { '.dockerconfigjson': Buffer.from(prod).toString('base64') } }]);
  const config = parseConfig({
    rules: [
      { name: 'payments-deploy', match: { namespaces: ['payments'], pipelines: ['payments-deploy'], branches: 'main' }, serviceAccount: 'payments-deployer', pullSecret: 'ecr-prod' },
      { name: 'team-a-everything', match: { namespaces: ['team-a'] }, serviceAccount: 'team-a-ci' },
      { name: 'releases', match: { branches: 'release/*' }, awsSecret: 'release-keys' },
    ],
  });
  const checks = await doctor(cluster, ['payments', 'team-a', 'bare'], undefined, config);

  const payments = find(checks, 'namespace/payments', 'rules')[0];
  t.equal(payments?.status, 'ok');
  t.match(payments?.message, /^2 of the config's 3 rules can apply here, first match wins: payments-deploy \(pipelines "payments-deploy", branches "main"\): ServiceAccount payments-deployer, pull Secret ecr-prod; releases \(branches "release\/\*"\): AWS Secret release-keys$/);
  t.match(find(checks, 'namespace/payments', 'injection')[0]?.message, /^job Pods that no rule matches get ServiceAccount buildkite-agent/);
  const paymentsCredentials = find(checks, 'namespace/payments', 'rule-credentials');
  const deploy = paymentsCredentials.find((c) => c.message.startsWith('rule payments-deploy:'));
  t.equal(deploy?.status, 'warning', 'the deployer ServiceAccount exists; ecr-prod is not renewed');
  t.match(deploy?.message, /pull Secret ecr-prod is not the namespace's own, so the refresher does not renew it: its first ECR token expires at /);
  t.match(deploy?.fix, /name the namespace's own pull Secret \(ecr-credentials\) in rule payments-deploy/);
  const releases = paymentsCredentials.find((c) => c.message.startsWith('rule releases:'));
  t.equal(releases?.status, 'error');
  t.match(releases?.message, /AWS Secret release-keys does not exist/);
  t.not(releases?.fix, '');

  t.match(find(checks, 'namespace/team-a', 'rules')[0]?.message, /^2 of the config's 3 rules can apply here/);
  const hidden = find(checks, 'namespace/team-a', 'rules-unreachable')[0];
  t.equal(hidden?.status, 'warning');
  t.match(hidden?.message, /rule team-a-everything matches every job here .*so releases never apply in team-a/);
  t.match(find(checks, 'namespace/team-a', 'injection')[0]?.message, /^job Pods get \(rule team-a-everything, which matches every job here\) ServiceAccount team-a-ci/);
  t.equal(find(checks, 'namespace/team-a', 'service-account')[0]?.status, 'error', 'the catch-all rule\'s ServiceAccount is checked as the namespace\'s own');
  t.same(find(checks, 'namespace/team-a', 'rule-credentials'), [], 'a rule hidden by the catch-all is not read');

  // bare: no labels beyond opt-in, no defaults: only the rule's jobs get anything, which is fine.
  t.equal(find(checks, 'namespace/bare', 'injection')[0]?.status, 'ok');
  t.match(find(checks, 'namespace/bare', 'injection')[0]?.message, /^job Pods that no rule matches get nothing/);
  t.match(find(checks, 'namespace/bare', 'rules')[0]?.message, /^1 of the config's 3 rules can apply here, first match wins: releases/);

  const none = await doctor(cluster, ['bare'], undefined, parseConfig({ rules: [{ name: 'elsewhere', match: { namespaces: 'payments' }, serviceAccount: 'x' }] }));
  t.match(find(none, 'namespace/bare', 'rules')[0]?.message, /^none of the config's 1 rule can apply here/);
  t.equal(find(none, 'namespace/bare', 'injection')[0]?.status, 'error', 'no rule and no label: job Pods get nothing');
  t.same(find(await doctor(cluster, ['bare']), 'namespace/bare', 'rules'), [], 'no rules in the config: no rules check');

  fake.seed('/api/v1/namespaces/payments/pods', [
    { metadata: { name: 'pr-build', namespace: 'payments', labels: { 'buildkite.com/job-uuid': 'j1' }, annotations: { 'buildkite.com/pipeline-slug': 'payments-deploy', 'buildkite.com/build-branch': 'feature/x' } }, spec: { serviceAccountName: 'default', containers: [{ name: 'container-0', image: 'alpine' }] } },
    { metadata: { name: 'deployed', namespace: 'payments', labels: { 'buildkite.com/job-uuid': 'j2' }, annotations: { 'buildkite-ecr-injector/injected': JSON.stringify({ rule: 'payments-deploy', serviceAccountName: 'payments-deployer' }) } }, spec: { serviceAccountName: 'payments-deployer', containers: [{ name: 'container-0', image: 'alpine' }] } },
  ]);
  const missed = find(await doctor(cluster, [], { namespace: 'payments', name: 'pr-build' }, config), 'pod/payments/pr-build', 'decision')[0];
  t.equal(missed?.status, 'error');
  t.match(missed?.message, /would inject now \(ServiceAccount buildkite-agent, pull Secret ecr-credentials\); no rule matches \(rule payments-deploy: branches "feature\/x" does not match "main"; rule team-a-everything: namespaces "payments" does not match "team-a"; rule releases: branches "feature\/x" does not match "release\/\*"\)/);
  const deployed = find(await doctor(cluster, [], { namespace: 'payments', name: 'deployed' }, config), 'pod/payments/deployed', 'decision')[0];
  t.match(deployed?.message, /injected ServiceAccount payments-deployer, chosen by rule payments-deploy/);
});

t.test('usage errors exit 64 with one line', async (t) => {
  const kubeconfig = join(t.testdir(), 'kubeconfig');
  await writeFile(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n');
  for (const args of [['--pod', 'x'], ['-o', 'yaml'], ['stray'], ['--context', 'nope', '--kubeconfig', kubeconfig], ['--kubeconfig', '/missing-kubeconfig']]) {
    const result = await runCli(args);
    t.equal(result.code, 64, `${args.join(' ')}: ${result.stderr}`);
    t.equal(result.stderr.trimEnd().split('\n').length, 1);
  }
});

t.test('an unreachable cluster: every read is an error check with its reason, exit 1, nothing on stderr', async (t) => {
  const kubeconfig = join(t.testdir(), 'kubeconfig');
  await writeFile(kubeconfig, 'apiVersion: v1\nkind: Config\nclusters: [{name: c, cluster: {server: "https://127.0.0.1:1", insecure-skip-tls-verify: true}}]\nusers: [{name: u, user: {token: t}}]\ncontexts: [{name: c, context: {cluster: c, user: u}}]\ncurrent-context: c\n');
  const result = await runCli(['--kubeconfig', kubeconfig, '-o', 'json']);
  t.equal(result.code, 1);
  t.equal(result.stderr, '');
  const checks = (JSON.parse(result.stdout) as { checks: Check[] }).checks;
  t.match(checks.find((c) => c.check === 'webhook-configuration')?.message, /cannot list MutatingWebhookConfigurations: .*ECONNREFUSED/);
});
