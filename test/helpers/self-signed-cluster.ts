// Shared set-up for the self-signed TLS tests: the local Kubernetes API stand-in seeded with the
// webhook's MutatingWebhookConfiguration (two webhooks, as a user may add), a kubeconfig for it,
// a fake clock, a metrics recorder, and polling with a deadline.
import { KubeConfig } from '@kubernetes/client-node';
import type { Test } from 'tap';
import type { CertificateKind, CertificateMetrics } from '../../src/certs/cert-metrics.js';
import { FakeKubeApi, type KubeObject } from './fake-kube-api.js';

export const NAMESPACE = 'buildkite-ecr-injector';
export const SECRETS = `/api/v1/namespaces/${NAMESPACE}/secrets`;
export const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${NAMESPACE}/leases`;
export const WEBHOOK_CONFIGS = '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations';
export const NAMES = {
  secretName: 'buildkite-ecr-injector-tls',
  webhookConfigName: 'buildkite-ecr-injector',
  serviceName: 'buildkite-ecr-injector',
  leaseName: 'buildkite-ecr-injector-leader',
};
export const SERVICE_HOST = `${NAMES.serviceName}.${NAMESPACE}.svc`;

export function webhookConfiguration(): KubeObject {
  const webhook = (name: string) => ({
    name,
    admissionReviewVersions: ['v1'],
    sideEffects: 'None',
    failurePolicy: 'Ignore',
    timeoutSeconds: 5,
    clientConfig: { service: { name: NAMES.serviceName, namespace: NAMESPACE, path: '/mutate', port: 443 } },
    rules: [{ apiGroups: [''], apiVersions: ['v1'], operations: ['CREATE'], resources: ['pods'], scope: 'Namespaced' }],
  });
  return {
    apiVersion: 'admissionregistration.k8s.io/v1',
    kind: 'MutatingWebhookConfiguration',
    metadata: { name: NAMES.webhookConfigName, labels: { 'app.kubernetes.io/name': 'buildkite-ecr-injector' } },
    webhooks: [webhook('pods.buildkite-ecr-injector.buildkite.com'), webhook('second.buildkite-ecr-injector.buildkite.com')],
  };
}

export interface WebhookView {
  webhooks: { name: string; failurePolicy?: string; clientConfig: { caBundle?: string } }[];
}

/** The caBundles of the webhook configuration as the API stand-in holds it now. */
export function caBundles(api: FakeKubeApi): (string | undefined)[] {
  const config = api.get(WEBHOOK_CONFIGS, NAMES.webhookConfigName) as unknown as WebhookView | undefined;
  return config?.webhooks.map((w) => w.clientConfig.caBundle) ?? [];
}

export function secretData(api: FakeKubeApi): Record<string, string> | undefined {
  const secret = api.get(SECRETS, NAMES.secretName) as unknown as { data?: Record<string, string> } | undefined;
  if (!secret?.data) return undefined;
  return Object.fromEntries(Object.entries(secret.data).map(([key, value]) => [key, Buffer.from(value, 'base64').toString('utf8')]));
}

export async function startCluster(t: Test): Promise<{ api: FakeKubeApi; kubeConfig: KubeConfig }> {
  const api = new FakeKubeApi();
  api.seed(WEBHOOK_CONFIGS, [webhookConfiguration()]);
  await api.start();
  t.teardown(() => api.stop());
  const kubeConfig = new KubeConfig();
  kubeConfig.loadFromString(api.kubeconfig(NAMESPACE));
  return { api, kubeConfig };
}

export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 15_000): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

export class FakeClock {
  #now: number;
  constructor(start = Date.now()) {
    this.#now = start;
  }
  now = (): Date => new Date(this.#now);
  advance(ms: number): void {
    this.#now += ms;
  }
}

export class RecordingMetrics implements CertificateMetrics {
  readonly notAfter = new Map<CertificateKind, Date>();
  readonly rotations = { serving: 0, ca: 0 };
  caBundlePatches = 0;
  leader = false;
  setCertificateNotAfter(kind: CertificateKind, notAfter: Date): void {
    this.notAfter.set(kind, notAfter);
  }
  countRotation(kind: CertificateKind): void {
    this.rotations[kind]++;
  }
  countCaBundlePatch(): void {
    this.caBundlePatches++;
  }
  setLeader(isLeader: boolean): void {
    this.leader = isLeader;
  }
}
