// manifests/: every kustomization renders (kubectl kustomize, once each), every object passes the
// Kubernetes / cert-manager schemas with no unknown fields, and the manifests agree with the code:
// the webhook's selectors against config defaults and resolvePolicy, the ConfigMap against
// parseConfig, RBAC without wildcards and limited by name, restricted Pod Security.
import { readFileSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { join, relative } from 'node:path';
import t from 'tap';
import type { IMutatingWebhookConfiguration } from 'kubernetes-models/admissionregistration.k8s.io/v1';
import type { IDeployment } from 'kubernetes-models/apps/v1';
import type { ICronJob } from 'kubernetes-models/batch/v1';
import type { INetworkPolicy } from 'kubernetes-models/networking.k8s.io/v1';
import type { IPodDisruptionBudget } from 'kubernetes-models/policy/v1';
import type { IClusterRoleBinding, IPolicyRule, IRoleBinding } from 'kubernetes-models/rbac.authorization.k8s.io/v1';
import type { IConfigMap, IContainer, IPodSpec, IService } from 'kubernetes-models/v1';
import type { ICertificate } from '@kubernetes-models/cert-manager/cert-manager.io/v1';
import { parse as parseYaml } from 'yaml';
import { DEFAULT_EXCLUDED_NAMESPACES, parseConfig, withExcludedNamespace, type Config } from '../src/webhook/config.js';
import { labelKeys, resolvePolicy } from '../src/webhook/policy.js';
import { isKubernetesName } from '../src/webhook/config.js';
import {
  renderKustomization,
  restrictedViolations,
  schemaProblems,
  selectorMatches,
  unknownFields,
  type KubeObject,
} from './helpers/kube-manifests.js';

const ROOT = join(import.meta.dirname, '..');
const MANIFESTS = join(ROOT, 'manifests');
const NAME = 'buildkite-ecr-injector';
const NAMESPACE = 'buildkite-ecr-injector';
const CONFIG_PATH = '/etc/buildkite-ecr-injector/config.yaml';
const TLS_DIR = '/etc/buildkite-ecr-injector/tls';
const REFRESHER = 'buildkite-ecr-injector-refresher';
const DOCTOR = 'buildkite-ecr-injector-doctor';

async function findKustomizations(dir: string): Promise<string[]> {
  const found: string[] = [];
  for (const entry of await readdir(dir, { withFileTypes: true })) {
    if (entry.isDirectory()) found.push(...(await findKustomizations(join(dir, entry.name))));
    else if (entry.name === 'kustomization.yaml') found.push(relative(MANIFESTS, dir));
  }
  return found.sort();
}

const kustomizations = await findKustomizations(MANIFESTS);
// Rendered once each, up front; every test below reads these.
const rendered = new Map<string, KubeObject[]>();
for (const dir of kustomizations) rendered.set(dir, await renderKustomization(join(MANIFESTS, dir)));

function objects(dir: string): KubeObject[] {
  const list = rendered.get(dir);
  if (list === undefined) throw new Error(`kustomization ${dir} was not rendered`);
  return list;
}
function all<T>(dir: string, kind: string): T[] {
  return objects(dir).filter((o) => o.kind === kind) as unknown as T[];
}
function one<T>(dir: string, kind: string, name: string): T {
  const found = objects(dir).filter((o) => o.kind === kind && o.metadata.name === name);
  if (found.length !== 1) throw new Error(`${dir}: expected one ${kind} ${name}, found ${found.length}`);
  return found[0] as unknown as T;
}

function podTemplates(dir: string): { where: string; spec: IPodSpec }[] {
  return [
    ...all<IDeployment>(dir, 'Deployment').map((d) => ({ where: `Deployment ${d.metadata?.name}`, spec: d.spec!.template.spec! })),
    ...all<ICronJob>(dir, 'CronJob').map((c) => ({ where: `CronJob ${c.metadata?.name}`, spec: c.spec!.jobTemplate.spec!.template.spec! })),
  ];
}

function webhookContainer(deployment: IDeployment): IContainer {
  const container = deployment.spec!.template.spec!.containers.find((c) => c.name === 'webhook');
  if (container === undefined) throw new Error('Deployment has no container named webhook');
  return container;
}

/** Which ConfigMap/Secret key a file path in the webhook container comes from. */
function fileSource(deployment: IDeployment, path: string): { kind: 'configMap' | 'secret'; name: string; key: string } | undefined {
  const spec = deployment.spec!.template.spec!;
  for (const mount of webhookContainer(deployment).volumeMounts ?? []) {
    if (!path.startsWith(`${mount.mountPath}/`)) continue;
    const inside = path.slice(mount.mountPath.length + 1);
    const volume = spec.volumes?.find((v) => v.name === mount.name);
    for (const source of volume?.projected?.sources ?? []) {
      for (const kind of ['configMap', 'secret'] as const) {
        const projection = source[kind];
        const item = projection?.items?.find((i) => i.path === inside);
        if (projection?.name !== undefined && item !== undefined) return { kind, name: projection.name, key: item.key };
      }
    }
  }
  return undefined;
}

function configOf(dir: string): Config {
  const configMap = one<IConfigMap>(dir, 'ConfigMap', NAME);
  return parseConfig(parseYaml(configMap.data?.['config.yaml'] ?? ''), `ConfigMap ${NAME} config.yaml`);
}

void t.test('the kustomizations the README names exist, and every one renders', (t) => {
  t.same(kustomizations, [
    'base',
    'components/refresher',
    'examples/namespace-opt-in',
    'optional/doctor-rbac',
    'optional/refresher-policy',
    'optional/validating-admission-policy',
    'overlays/cert-manager',
    'overlays/refresher',
  ]);
  for (const dir of kustomizations) t.ok(objects(dir).length > 0, `${dir} renders objects`);
  t.end();
});

void t.test('every object passes its schema and has no field the schema does not define', (t) => {
  for (const dir of kustomizations) {
    for (const object of objects(dir)) {
      const id = `${dir}: ${object.kind} ${object.metadata.name}`;
      t.same(schemaProblems(object), [], `${id} is valid`);
      const unknown = unknownFields(object);
      if (unknown !== undefined) t.same(unknown, [], `${id} has no unknown fields`);
    }
  }
  t.end();
});

void t.test('the schema checks can fail', (t) => {
  const deployment = structuredClone(one<IDeployment>('base', 'Deployment', NAME)) as unknown as KubeObject;
  const spec = (deployment as unknown as IDeployment).spec!;
  (spec as unknown as Record<string, unknown>).replicas = 'two';
  t.not(schemaProblems(deployment).length, 0, 'a string replica count is rejected');
  (spec.template.spec!.containers[0] as unknown as Record<string, unknown>).readinesProbe = {};
  t.same(unknownFields(deployment), ['/spec/template/spec/containers/0/readinesProbe'], 'a misspelt field is found');
  t.end();
});

void t.test('the webhook configuration matches the issue and sorts before the EKS pod identity webhook', (t) => {
  for (const dir of ['base', 'overlays/cert-manager']) {
    const config = one<IMutatingWebhookConfiguration>(dir, 'MutatingWebhookConfiguration', NAME);
    // The API server calls configurations in metadata.name order, compared as bytes.
    t.ok(Buffer.compare(Buffer.from(NAME), Buffer.from('pod-identity-webhook')) < 0, `${NAME} sorts before pod-identity-webhook`);
    t.equal(config.webhooks?.length, 1);
    const webhook = config.webhooks![0]!;
    t.match(webhook, {
      name: 'pods.buildkite-ecr-injector.buildkite.com',
      admissionReviewVersions: ['v1'],
      sideEffects: 'None',
      matchPolicy: 'Equivalent',
      timeoutSeconds: 5,
      failurePolicy: 'Ignore',
      reinvocationPolicy: 'IfNeeded',
      clientConfig: { service: { name: NAME, namespace: NAMESPACE, path: '/mutate', port: 443 } },
    }, dir);
    t.same(webhook.rules, [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }]);
    t.equal(webhook.clientConfig.caBundle, undefined, `${dir}: caBundle is left to the certificate manager`);

    const service = one<IService>(dir, 'Service', NAME);
    const https = service.spec?.ports?.find((p) => p.port === 443);
    t.equal(https?.name, 'https');
    t.equal(https?.targetPort, 'https');
    const port = webhookContainer(one<IDeployment>(dir, 'Deployment', NAME)).ports?.find((p) => p.name === 'https');
    t.equal(port?.containerPort, 8443, 'the Service reaches the container on 8443');
  }
  t.end();
});

void t.test('the webhook selectors agree with the config defaults and label keys', (t) => {
  const config = configOf('base');
  const keys = labelKeys(config.labelPrefix);
  t.same(config.excludedNamespaces, DEFAULT_EXCLUDED_NAMESPACES, 'the ConfigMap excludes what the code excludes by default');
  t.same(parseConfig({}).labelPrefix, config.labelPrefix, 'the ConfigMap uses the default label prefix');
  t.same(parseConfig({}).jobPodLabel, config.jobPodLabel, 'the ConfigMap uses the default job Pod label');
  const webhook = one<IMutatingWebhookConfiguration>('base', 'MutatingWebhookConfiguration', NAME).webhooks![0]!;
  t.same(webhook.namespaceSelector, {
    matchExpressions: [
      { key: keys.inject, operator: 'In', values: ['enabled'] },
      { key: 'kubernetes.io/metadata.name', operator: 'NotIn', values: [...DEFAULT_EXCLUDED_NAMESPACES, NAMESPACE] },
    ],
  });
  t.same(webhook.objectSelector, {
    matchExpressions: [
      { key: config.jobPodLabel, operator: 'Exists' },
      { key: keys.inject, operator: 'NotIn', values: ['disabled'] },
    ],
  });
  t.end();
});

void t.test('the API server sends exactly the Pods that resolvePolicy would inject', (t) => {
  // The running webhook excludes its own namespace (POD_NAMESPACE) on top of the config.
  const config = withExcludedNamespace(configOf('base'), NAMESPACE);
  const keys = labelKeys(config.labelPrefix);
  const webhook = one<IMutatingWebhookConfiguration>('base', 'MutatingWebhookConfiguration', NAME).webhooks![0]!;
  const namespaces = ['buildkite', 'team-a', ...DEFAULT_EXCLUDED_NAMESPACES, NAMESPACE];
  const injectValues = [undefined, 'enabled', 'disabled', 'Enabled'];
  const podLabelSets: Record<string, string>[] = [
    { [config.jobPodLabel]: '0190c0de-0000-4000-8000-000000000000' },
    { [config.jobPodLabel]: '0190c0de-0000-4000-8000-000000000000', [keys.inject]: 'disabled' },
    { [config.jobPodLabel]: '0190c0de-0000-4000-8000-000000000000', [keys.inject]: 'enabled' },
    { app: 'netshoot' },
    { app: 'netshoot', [keys.inject]: 'enabled' },
  ];
  const disagreements: string[] = [];
  let sent = 0;
  for (const namespace of namespaces) {
    for (const inject of injectValues) {
      // The API server sets kubernetes.io/metadata.name on every Namespace.
      const namespaceLabels: Record<string, string> = { 'kubernetes.io/metadata.name': namespace, [keys.serviceAccount]: 'buildkite-agent' };
      if (inject !== undefined) namespaceLabels[keys.inject] = inject;
      for (const podLabels of podLabelSets) {
        const apiServerSends = selectorMatches(webhook.namespaceSelector, namespaceLabels) && selectorMatches(webhook.objectSelector, podLabels);
        const result = resolvePolicy({
          operation: 'CREATE',
          kind: { group: '', version: 'v1', kind: 'Pod' },
          subResource: undefined,
          namespace,
          namespaceLabels,
          pod: { metadata: { namespace, labels: podLabels }, spec: { containers: [{ name: 'container-0', env: [{ name: 'BUILDKITE_COMMAND', value: 'make' }] }] } },
        }, config);
        if (apiServerSends) sent += 1;
        if (apiServerSends !== (result.action === 'inject')) {
          disagreements.push(`ns ${namespace} inject=${inject} pod ${JSON.stringify(podLabels)}: selectors ${apiServerSends ? 'send' : 'skip'}, policy ${result.action === 'inject' ? 'injects' : result.reason}`);
        }
      }
    }
  }
  t.same(disagreements, []);
  t.equal(sent, 4, 'job Pods not opted out, in the two opted-in ordinary namespaces');
  t.end();
});

void t.test('the ConfigMap is a valid config file, mounted where the Deployment reads it', (t) => {
  for (const dir of ['base', 'overlays/cert-manager']) {
    t.doesNotThrow(() => configOf(dir), `${dir}: config.yaml passes parseConfig`);
    const deployment = one<IDeployment>(dir, 'Deployment', NAME);
    const args = webhookContainer(deployment).args ?? [];
    t.equal(args[args.indexOf('--config') + 1], CONFIG_PATH);
    t.same(fileSource(deployment, CONFIG_PATH), { kind: 'configMap', name: NAME, key: 'config.yaml' });
  }
  t.end();
});

void t.test('the webhook runs the image entrypoint with V8 heap flags that fit its memory limit', (t) => {
  const container = webhookContainer(one<IDeployment>('base', 'Deployment', NAME));
  const entrypoint = JSON.parse(/^ENTRYPOINT (.*)$/m.exec(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'))?.[1] ?? '[]') as string[];
  const command = container.command ?? [];
  t.same([command[0], command.at(-1)], entrypoint, 'node and the script of the Dockerfile ENTRYPOINT');
  const flag = (name: string): number => Number(command.find((part) => part.startsWith(`--${name}=`))?.split('=')[1]);
  const oldSpace = flag('max-old-space-size');
  const semiSpace = flag('max-semi-space-size');
  t.ok(oldSpace > 0 && semiSpace > 0, `old space ${oldSpace} MiB, semi-space ${semiSpace} MiB`);
  const limit = container.resources?.limits?.memory;
  const limitMiB = typeof limit === 'string' && /^\d+Mi$/.test(limit) ? Number.parseInt(limit, 10) : Number.NaN;
  // The young generation is three semi-spaces; code, native memory and TLS buffers need ~80 MiB more.
  t.ok(oldSpace + 3 * semiSpace + 80 <= limitMiB, `heap flags (${oldSpace} + 3 x ${semiSpace} MiB + 80 MiB) fit the ${limit} limit`);
  t.ok(oldSpace >= limitMiB / 2, 'and use most of it: old space is at least half the limit');
  t.end();
});

void t.test('the base runs the self-signed certificate mode with the agreed flags and downward API', (t) => {
  const deployment = one<IDeployment>('base', 'Deployment', NAME);
  const container = webhookContainer(deployment);
  t.same(container.args, ['serve', '--config', CONFIG_PATH, '--tls-mode', 'self-signed', '--metrics-port', '9090']);
  t.same(container.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]), [
    ['POD_NAMESPACE', 'metadata.namespace'],
    ['POD_NAME', 'metadata.name'],
  ]);
  t.equal(deployment.metadata?.namespace, NAMESPACE);
  t.equal(deployment.spec?.replicas, 2);
  t.equal(deployment.spec?.template.spec?.serviceAccountName, NAME);
  t.match(container.readinessProbe, { httpGet: { path: '/readyz', port: 'https', scheme: 'HTTPS' } });
  t.match(container.livenessProbe, { httpGet: { path: '/healthz', port: 'https', scheme: 'HTTPS' } });
  t.same(container.ports?.map((p) => [p.name, p.containerPort]), [['https', 8443], ['metrics', 9090]]);
  t.same(container.lifecycle?.preStop?.exec?.command?.[0], 'node', 'preStop needs no shell');
  t.ok((deployment.spec?.template.spec?.terminationGracePeriodSeconds ?? 30) > 5 + 20, 'grace period covers preStop and the server drain');
  t.ok(container.resources?.requests?.cpu && container.resources.requests.memory && container.resources.limits?.memory, 'requests and a memory limit');
  t.ok((deployment.spec?.template.spec?.topologySpreadConstraints ?? []).length >= 1, 'replicas are spread');

  const templateLabels = deployment.spec?.template.metadata?.labels ?? {};
  const pdb = one<IPodDisruptionBudget>('base', 'PodDisruptionBudget', NAME);
  t.equal(pdb.spec?.minAvailable, 1);
  t.ok(selectorMatches(pdb.spec?.selector, templateLabels), 'the PodDisruptionBudget selects the Pods');
  t.ok(selectorMatches({ matchLabels: one<IService>('base', 'Service', NAME).spec?.selector }, templateLabels), 'the Service selects the Pods');
  t.ok(selectorMatches(one<INetworkPolicy>('base', 'NetworkPolicy', NAME).spec!.podSelector, templateLabels), 'the NetworkPolicy selects the Pods');
  for (const { spec } of podTemplates('base')) t.same(spec.topologySpreadConstraints?.map((c) => selectorMatches(c.labelSelector, templateLabels)), [true, true]);
  t.end();
});

void t.test('the NetworkPolicy admits webhook calls from anywhere and metrics only from a labelled namespace', (t) => {
  const policy = one<INetworkPolicy>('base', 'NetworkPolicy', NAME);
  const spec = policy.spec!;
  t.same(spec.policyTypes, ['Ingress', 'Egress']);
  const webhookRule = spec.ingress?.find((rule) => rule.ports?.some((p) => p.port === 8443));
  t.equal(webhookRule?.from, undefined, '8443 is open to the API server, whatever its address');
  const metricsRule = spec.ingress?.find((rule) => rule.ports?.some((p) => p.port === 9090));
  t.ok(metricsRule?.from?.length && metricsRule.from.every((peer) => peer.namespaceSelector !== undefined), '9090 only from selected namespaces');
  const egressPorts = (spec.egress ?? []).flatMap((rule) => rule.ports?.map((p) => `${p.protocol}/${p.port}`) ?? []);
  t.same(egressPorts.sort(), ['TCP/443', 'TCP/53', 'TCP/6443', 'UDP/53']);
  t.end();
});

void t.test('every Pod template meets the restricted Pod Security Standard', (t) => {
  for (const dir of kustomizations) {
    for (const { where, spec } of podTemplates(dir)) t.same(restrictedViolations(spec), [], `${dir}: ${where}`);
  }
  const webhook = webhookContainer(one<IDeployment>('base', 'Deployment', NAME));
  const spec = one<IDeployment>('base', 'Deployment', NAME).spec!.template.spec!;
  t.equal(webhook.securityContext?.readOnlyRootFilesystem, true, 'read-only root filesystem');
  const uid = webhook.securityContext?.runAsUser ?? spec.securityContext?.runAsUser;
  t.ok(Number.isInteger(uid) && uid! > 0, 'a numeric non-root UID, so runAsNonRoot can be verified');
  t.equal(one<{ metadata: { labels: Record<string, string> } }>('base', 'Namespace', NAMESPACE).metadata.labels['pod-security.kubernetes.io/enforce'], 'restricted');

  const broken = structuredClone(spec);
  delete broken.containers[0]!.securityContext!.allowPrivilegeEscalation;
  broken.containers[0]!.securityContext!.capabilities = { add: ['NET_ADMIN'] };
  broken.volumes = [...(broken.volumes ?? []), { name: 'host', hostPath: { path: '/' } }];
  t.same(restrictedViolations(broken), [
    'volume host is of type hostPath',
    'container webhook does not set allowPrivilegeEscalation: false',
    'container webhook does not drop ALL capabilities',
    'container webhook adds capability NET_ADMIN',
  ], 'the check finds violations');
  t.end();
});

function rulesOf(object: KubeObject): IPolicyRule[] {
  return (object as unknown as { rules?: IPolicyRule[] }).rules ?? [];
}

void t.test('RBAC has no wildcards and names every object it may read or change', (t) => {
  for (const dir of kustomizations) {
    for (const role of objects(dir).filter((o) => o.kind === 'Role' || o.kind === 'ClusterRole')) {
      for (const rule of rulesOf(role)) {
        const id = `${dir}: ${role.kind} ${role.metadata.name} ${JSON.stringify(rule)}`;
        const fields = [...(rule.apiGroups ?? []), ...(rule.resources ?? []), ...rule.verbs, ...(rule.resourceNames ?? []), ...(rule.nonResourceURLs ?? [])];
        t.notOk(fields.some((field) => field.includes('*')), `${id} has no wildcard`);
        // The refresher's ClusterRole is the one exception, exactly as the issue grants it (checked
        // below): it keeps a Secret of a label-chosen name in every opted-in namespace, deletes the
        // ones no longer asked for, and patches its status annotation onto Namespaces.
        const refresher = role.metadata.name === REFRESHER;
        // doctor's role reads what a namespace names, in every namespace (checked below): read-only.
        const doctor = role.metadata.name === DOCTOR && rule.verbs.every((verb) => ['get', 'list'].includes(verb));
        t.notOk(rule.verbs.some((verb) => ['deletecollection', 'bind', 'escalate', 'impersonate'].includes(verb) || (verb === 'delete' && !refresher)), `${id} has no destructive or escalating verb`);
        // A rule must name its objects, unless it only creates (which RBAC cannot limit by name) or
        // is the namespace informer's read access.
        const onlyCreate = rule.verbs.every((verb) => verb === 'create');
        const namespaceReads = rule.resources?.join() === 'namespaces' && rule.verbs.every((verb) => ['get', 'list', 'watch'].includes(verb));
        t.ok((rule.resourceNames?.length ?? 0) > 0 || onlyCreate || namespaceReads || refresher || doctor, `${id} is limited by resourceNames`);
      }
    }
  }
  const byRole = (dir: string, kind: string, name: string) => rulesOf(one<KubeObject>(dir, kind, name));
  t.same(byRole('base', 'ClusterRole', NAME), [{ apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch'] }]);
  t.same(byRole('base', 'Role', `${NAME}-certificates`).flatMap((r) => r.resourceNames ?? []), ['buildkite-ecr-injector-tls', 'buildkite-ecr-injector-leader']);
  t.same(byRole('base', 'ClusterRole', `${NAME}-webhook-ca`).flatMap((r) => r.resourceNames ?? []), [NAME], 'only its own webhook configuration');
  t.equal(one<KubeObject>('base', 'Role', `${NAME}-certificates`).metadata.namespace, NAMESPACE);

  // Every binding in the base binds the webhook's ServiceAccount, and nothing else.
  for (const binding of [...all<IRoleBinding>('base', 'RoleBinding'), ...all<IClusterRoleBinding>('base', 'ClusterRoleBinding')]) {
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: NAME, namespace: NAMESPACE }], `${binding.metadata?.name} subjects`);
    t.ok(objects('base').some((o) => o.kind === binding.roleRef.kind && o.metadata.name === binding.roleRef.name), `${binding.metadata?.name} refers to a role in the base`);
  }
  t.end();
});

void t.test('the cert-manager overlay serves the issued certificate and drops the certificate-mode RBAC', (t) => {
  const dir = 'overlays/cert-manager';
  const deployment = one<IDeployment>(dir, 'Deployment', NAME);
  const args = webhookContainer(deployment).args ?? [];
  t.same(args, ['serve', '--config', CONFIG_PATH, '--tls-mode', 'files', '--tls-cert', `${TLS_DIR}/tls.crt`, '--tls-key', `${TLS_DIR}/tls.key`, '--metrics-port', '9090']);
  const certificate = one<ICertificate>(dir, 'Certificate', NAME);
  const secretName = certificate.spec?.secretName;
  t.same(fileSource(deployment, `${TLS_DIR}/tls.crt`), { kind: 'secret', name: secretName, key: 'tls.crt' });
  t.same(fileSource(deployment, `${TLS_DIR}/tls.key`), { kind: 'secret', name: secretName, key: 'tls.key' });
  t.same(certificate.spec?.dnsNames, [NAME, `${NAME}.${NAMESPACE}`, `${NAME}.${NAMESPACE}.svc`, `${NAME}.${NAMESPACE}.svc.cluster.local`]);
  const issuer = certificate.spec?.issuerRef.name;
  t.ok(objects(dir).some((o) => o.kind === 'Issuer' && o.metadata.name === issuer), 'the serving certificate has its Issuer');
  const webhookConfig = one<KubeObject>(dir, 'MutatingWebhookConfiguration', NAME);
  t.equal(webhookConfig.metadata.annotations?.['cert-manager.io/inject-ca-from'], `${certificate.metadata?.namespace}/${certificate.metadata?.name}`);
  t.same(objects(dir).filter((o) => o.kind === 'Role' || o.kind === 'RoleBinding' || o.metadata.name === `${NAME}-webhook-ca`).map((o) => `${o.kind}/${o.metadata.name}`), []);
  t.same(rulesOf(one<KubeObject>(dir, 'ClusterRole', NAME)), rulesOf(one<KubeObject>('base', 'ClusterRole', NAME)), 'the namespace informer keeps its access');
  t.end();
});

void t.test('the opt-in example labels a namespace with the keys the code reads', (t) => {
  const dir = 'examples/namespace-opt-in';
  const keys = labelKeys(configOf('base').labelPrefix);
  const namespace = one<KubeObject>(dir, 'Namespace', 'buildkite');
  const labels: Record<string, string> = { ...namespace.metadata.labels, 'kubernetes.io/metadata.name': 'buildkite' };
  const webhook = one<IMutatingWebhookConfiguration>('base', 'MutatingWebhookConfiguration', NAME).webhooks![0]!;
  t.ok(selectorMatches(webhook.namespaceSelector, labels), 'the webhook selects the example namespace');
  const serviceAccountName = labels[keys.serviceAccount];
  const serviceAccount = one<KubeObject>(dir, 'ServiceAccount', serviceAccountName ?? '');
  t.equal(serviceAccount.metadata.namespace, 'buildkite', 'the ServiceAccount the label names exists in that namespace');
  t.match(serviceAccount.metadata.annotations?.['eks.amazonaws.com/role-arn'], /^arn:aws:iam::\d{12}:role\//, 'with an IRSA role');
  t.equal(labels[keys.awsSecret], 'none', 'no static keys to shadow IRSA');
  const pullSecret = labels[keys.pullSecret];
  t.same(objects(dir).map((o) => o.kind).sort(), ['Namespace', 'ServiceAccount'], 'no CronJob or RBAC of its own: the refresher makes the pull Secret');
  t.ok(isKubernetesName(pullSecret ?? ''), 'the label names a pull Secret for the refresher');
  const result = resolvePolicy({
    operation: 'CREATE',
    kind: { group: '', version: 'v1', kind: 'Pod' },
    subResource: undefined,
    namespace: 'buildkite',
    namespaceLabels: labels,
    pod: { metadata: { namespace: 'buildkite', labels: { 'buildkite.com/job-uuid': 'x' } }, spec: { containers: [{ name: 'container-0' }] } },
  }, configOf('base'));
  t.same(result, { action: 'inject', plan: { serviceAccount: serviceAccountName, awsSecret: null, pullSecret } });
  t.end();
});

void t.test('the refresher component: its own Deployment and ServiceAccount, the RBAC the issue lists, the shared config', (t) => {
  const dir = 'overlays/refresher';
  for (const object of objects('components/refresher')) {
    t.ok(objects(dir).some((o) => o.kind === object.kind && o.metadata.name === object.metadata.name), `the overlay has ${object.kind} ${object.metadata.name}`);
  }
  t.same(objects(dir).length, objects('base').length + objects('components/refresher').length, 'the overlay is the base plus the component');
  const deployment = one<IDeployment>(dir, 'Deployment', REFRESHER);
  const spec = deployment.spec!.template.spec!;
  const container = spec.containers.find((c) => c.name === 'refresher')!;
  t.equal(deployment.metadata?.namespace, NAMESPACE);
  t.equal(deployment.spec?.replicas, 2, 'two replicas; the Lease picks one writer');
  t.equal(spec.serviceAccountName, REFRESHER, 'its own ServiceAccount, not the webhook one');
  t.same(container.args, ['refresh', '--config', CONFIG_PATH, '--metrics-port', '9090', '--health-port', '8081']);
  t.same(container.env?.map((e) => [e.name, e.valueFrom?.fieldRef?.fieldPath]), [['POD_NAMESPACE', 'metadata.namespace'], ['POD_NAME', 'metadata.name']]);
  t.match(container.readinessProbe, { httpGet: { path: '/readyz', port: 'health' } });
  t.match(container.livenessProbe, { httpGet: { path: '/healthz', port: 'health' } });
  t.same(container.ports?.map((p) => [p.name, p.containerPort]), [['metrics', 9090], ['health', 8081]]);
  t.ok(container.resources?.requests?.cpu && container.resources.requests.memory && container.resources.limits?.memory, 'requests and a memory limit');
  t.same(restrictedViolations(spec), [], 'restricted Pod Security');
  const volume = spec.volumes?.find((v) => v.name === container.volumeMounts?.find((m) => m.mountPath === '/etc/buildkite-ecr-injector')?.name);
  t.equal(volume?.projected?.sources?.[0]?.configMap?.name, NAME, 'the same ConfigMap as the webhook');
  t.ok((spec.terminationGracePeriodSeconds ?? 30) > 10, 'the grace period covers --grace-period');
  t.ok(configOf(dir).pullSecrets, 'the ConfigMap has a valid pullSecrets section');
  t.ok(!selectorMatches(one<INetworkPolicy>(dir, 'NetworkPolicy', NAME).spec!.podSelector, deployment.spec!.template.metadata!.labels!), 'the webhook NetworkPolicy does not select the refresher');
  t.ok(selectorMatches(one<INetworkPolicy>(dir, 'NetworkPolicy', REFRESHER).spec!.podSelector, deployment.spec!.template.metadata!.labels!), 'its own NetworkPolicy does');
  t.ok(!selectorMatches(one<IService>(dir, 'Service', NAME).spec?.selector ? { matchLabels: one<IService>(dir, 'Service', NAME).spec!.selector } : undefined, deployment.spec!.template.metadata!.labels!), 'the webhook Service never sends admissions to it');

  const serviceAccount = one<KubeObject>(dir, 'ServiceAccount', REFRESHER);
  t.match(serviceAccount.metadata.annotations?.['eks.amazonaws.com/role-arn'], /^arn:aws:iam::\d{12}:role\//, 'an IRSA role to fill in');
  const byRole = (kind: string, name: string) => rulesOf(one<KubeObject>(dir, kind, name));
  t.same(byRole('ClusterRole', REFRESHER), [
    { apiGroups: [''], resources: ['secrets'], verbs: ['get', 'list', 'watch', 'create', 'update', 'delete'] },
    { apiGroups: [''], resources: ['namespaces'], verbs: ['get', 'list', 'watch', 'patch'] },
  ], 'exactly what the issue lists');
  t.same(byRole('Role', `${REFRESHER}-leader`), [
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], resourceNames: [REFRESHER], verbs: ['get', 'update'] },
    { apiGroups: ['coordination.k8s.io'], resources: ['leases'], verbs: ['create'] },
  ], 'its Lease by name, in its own namespace');
  t.equal(one<KubeObject>(dir, 'Role', `${REFRESHER}-leader`).metadata.namespace, NAMESPACE);
  for (const binding of [one<IClusterRoleBinding>(dir, 'ClusterRoleBinding', REFRESHER), one<IRoleBinding>(dir, 'RoleBinding', `${REFRESHER}-leader`)]) {
    t.same(binding.subjects, [{ kind: 'ServiceAccount', name: REFRESHER, namespace: NAMESPACE }], `${binding.metadata?.name} binds the refresher only`);
  }
  const webhookGrants = objects(dir)
    .filter((o) => o.kind === 'ClusterRoleBinding' || o.kind === 'RoleBinding')
    .filter((b) => (b as unknown as IRoleBinding).subjects?.some((s) => s.name === NAME))
    .flatMap((b) => rulesOf(one<KubeObject>(dir, (b as unknown as IRoleBinding).roleRef.kind, (b as unknown as IRoleBinding).roleRef.name)));
  t.notOk(webhookGrants.some((rule) => rule.resources?.includes('secrets') && (rule.resourceNames ?? []).length === 0 && rule.verbs.some((v) => v !== 'create')), 'the webhook still holds no Secret access beyond its own TLS Secret');
  t.end();
});

void t.test('the doctor ClusterRole grants every read doctor makes, only reads, and no binding', (t) => {
  const rules = rulesOf(one<KubeObject>('optional/doctor-rbac', 'ClusterRole', DOCTOR));
  const grants = (group: string, resource: string, verb: string, name?: string) =>
    rules.some((r) => r.apiGroups?.includes(group) && r.resources?.includes(resource) && r.verbs.includes(verb) && (r.resourceNames === undefined || (name !== undefined && r.resourceNames.includes(name))));
  // What src/doctor/cluster-api.ts calls.
  const reads: [string, string, string, string?][] = [
    ['admissionregistration.k8s.io', 'mutatingwebhookconfigurations', 'list'],
    ['', 'namespaces', 'list'],
    ['', 'namespaces', 'get'],
    ['apps', 'deployments', 'get'],
    ['', 'serviceaccounts', 'get'],
    ['', 'secrets', 'get'],
    ['', 'pods', 'get'],
    ['', 'configmaps', 'get', NAME],
    ['', 'services/proxy', 'get', `https:${NAME}:443`],
  ];
  for (const [group, resource, verb, name] of reads) t.ok(grants(group, resource, verb, name), `${verb} ${group}/${resource}${name ? ` ${name}` : ''}`);
  t.same([...new Set(rules.flatMap((r) => r.verbs))].sort(), ['get', 'list'], 'reads only');
  t.notOk(grants('', 'configmaps', 'get', 'another-configmap'), 'ConfigMaps: only the webhook\'s');
  t.same(objects('optional/doctor-rbac').map((o) => o.kind), ['ClusterRole'], 'people bind it themselves');
  t.end();
});
