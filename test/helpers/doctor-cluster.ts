// A cluster for `doctor` tests: the fake Kubernetes API seeded with the real rendered manifests
// (manifests/overlays/refresher: webhook configuration, ConfigMap, both Deployments, marked ready),
// a real HTTPS webhook behind the Service proxy, and namespaces built to order: healthy, or with one
// deliberate fault each.
import { KubeConfig } from '@kubernetes/client-node';
import type { Test } from 'tap';
import { caBundleOf } from '../../src/certs/generate.js';
import { clusterApi, type ClusterApi } from '../../src/doctor/cluster-api.js';
import { dockerConfigJson } from '../../src/refresher/docker-config.js';
import { formatPullSecretStatus } from '../../src/webhook/pull-secret-status.js';
import { FakeKubeApi, type KubeObject } from './fake-kube-api.js';
import { renderKustomization } from './kube-manifests.js';
import { startTestWebhook } from './tls-webhook.js';

export const WEBHOOK_NS = 'buildkite-ecr-injector';
export const MWC = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
export const NAMESPACES = '/api/v1/namespaces';
export const REGISTRY = '111122223333.dkr.ecr.us-east-1.amazonaws.com';
export const ROLE_ARN = 'arn:aws:iam::111122223333:role/buildkite-jobs';
const root = new URL('../..', import.meta.url).pathname;

export interface DoctorCluster {
  fake: FakeKubeApi;
  api: ClusterApi;
  /** The CA that signed what the webhook serves (the right caBundle). */
  ca: string;
  kubeconfigText: string;
}

export async function startDoctorCluster(t: Test): Promise<DoctorCluster> {
  const objects = await renderKustomization(`${root}manifests/overlays/refresher`);
  const webhook = await startTestWebhook(t, { dnsNames: [`${WEBHOOK_NS}.${WEBHOOK_NS}.svc`] });
  const fake = new FakeKubeApi();
  await fake.start();
  t.teardown(() => fake.stop());
  for (const object of objects) {
    const o = structuredClone(object) as unknown as KubeObject & { webhooks?: { clientConfig: { caBundle?: string } }[] };
    if (object.kind === 'MutatingWebhookConfiguration') {
      for (const hook of o.webhooks ?? []) hook.clientConfig.caBundle = caBundleOf(webhook.ca);
      fake.seed(MWC, [o]);
    } else if (object.kind === 'Deployment') {
      const replicas = (o.spec as { replicas?: number }).replicas ?? 1;
      fake.seed(`/apis/apps/v1/namespaces/${WEBHOOK_NS}/deployments`, [{ ...o, status: { replicas, readyReplicas: replicas } }]);
    } else if (object.kind === 'ConfigMap') {
      fake.seed(`/api/v1/namespaces/${WEBHOOK_NS}/configmaps`, [o]);
    }
  }
  fake.serviceProxy.set(`${WEBHOOK_NS}/https:${WEBHOOK_NS}:443`, `https://127.0.0.1:${webhook.port}`);
  const kubeconfigText = fake.kubeconfig();
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(kubeconfigText);
  return { fake, api: clusterApi(kubeConfig), ca: webhook.ca, kubeconfigText };
}

/** An ECR password as ECR makes them: base64 JSON whose `expiration` is in seconds. */
export function ecrToken(expiresAt: Date): string {
  return Buffer.from(JSON.stringify({ payload: 'opaque', datakey: 'opaque', version: '2', type: 'DATA_KEY', expiration: expiresAt.getTime() / 1000 })).toString('base64');
}

export interface NamespaceSpec {
  name: string;
  labels?: Record<string, string>;
  annotations?: Record<string, string>;
  serviceAccount?: { name: string; roleArn?: string };
  awsSecret?: { name: string; keys: string[] };
  pullSecret?: { name: string; expiresAt: Date; managed?: boolean; type?: string; hosts?: string[] };
}

/** A namespace and what it holds, seeded into the fake API. */
export function addNamespace(fake: FakeKubeApi, spec: NamespaceSpec): void {
  fake.seed(NAMESPACES, [{ metadata: { name: spec.name, labels: { 'kubernetes.io/metadata.name': spec.name, ...spec.labels }, annotations: spec.annotations ?? {} } }]);
  if (spec.serviceAccount) {
    const annotations: Record<string, string> = spec.serviceAccount.roleArn ? { 'eks.amazonaws.com/role-arn': spec.serviceAccount.roleArn } : {};
    fake.seed(`${NAMESPACES}/${spec.name}/serviceaccounts`, [{ metadata: { name: spec.serviceAccount.name, namespace: spec.name, annotations } }]);
  }
  const secrets = `${NAMESPACES}/${spec.name}/secrets`;
  if (spec.awsSecret) {
    const data = Object.fromEntries(spec.awsSecret.keys.map((key) => [key, Buffer.from('not-a-real-value').toString('base64')]));
    fake.seed(secrets, [{ metadata: { name: spec.awsSecret.name, namespace: spec.name }, type: 'Opaque', data }]);
  }
  if (spec.pullSecret) {
    const { name, expiresAt, managed = true, type = 'kubernetes.io/dockerconfigjson', hosts = [REGISTRY] } = spec.pullSecret;
    const document = dockerConfigJson(new Map(hosts.map((host) => [host, ecrToken(expiresAt)])));
    fake.seed(secrets, [
      {
        metadata: { name, namespace: spec.name, labels: managed ? { 'app.kubernetes.io/managed-by': 'buildkite-ecr-injector' } : {} },
        type,
        data: { '.dockerconfigjson': Buffer.from(document).toString('base64') },
      },
    ]);
  }
}

/** The refresher's status annotation, as it writes it. */
export function refresherStatus(secret: string, state: 'ready' | 'failing' | 'unmanaged', expiresAt: Date, error?: string): Record<string, string> {
  return {
    'buildkite-ecr-injector/pull-secret-status': formatPullSecretStatus({ secret, registries: [REGISTRY], state, expiresAt: expiresAt.toISOString(), refreshedAt: new Date().toISOString(), ...(error ? { error } : {}) }),
  };
}

/** A healthy opted-in namespace: IRSA ServiceAccount, a fresh managed pull Secret, the refresher's "ready". */
export function healthyNamespace(name: string, now = new Date()): NamespaceSpec {
  const expiresAt = new Date(now.getTime() + 6 * 3_600_000);
  return {
    name,
    labels: {
      'buildkite-ecr-injector/inject': 'enabled',
      'buildkite-ecr-injector/service-account': 'buildkite-agent',
      'buildkite-ecr-injector/pull-secret': 'ecr-credentials',
    },
    annotations: { 'buildkite-ecr-injector/ecr-registries': REGISTRY, ...refresherStatus('ecr-credentials', 'ready', expiresAt) },
    serviceAccount: { name: 'buildkite-agent', roleArn: ROLE_ARN },
    pullSecret: { name: 'ecr-credentials', expiresAt },
  };
}
