// Owns what doctor reads from the cluster, and only reads: typed get/list calls with the user's own
// credentials, a missing object as undefined (not an error), and the webhook's published certificate
// chain through the API server's Service proxy.
import { AdmissionregistrationV1Api, AppsV1Api, CoreV1Api, type KubeConfig, type V1ConfigMap, type V1Deployment, type V1MutatingWebhookConfiguration, type V1Namespace, type V1Pod, type V1Secret, type V1ServiceAccount } from '@kubernetes/client-node';
import { isApiStatus } from '../kube/api-status.js';

export interface ClusterApi {
  webhookConfigurations(): Promise<V1MutatingWebhookConfiguration[]>;
  namespace(name: string): Promise<V1Namespace | undefined>;
  namespaces(labelSelector: string): Promise<V1Namespace[]>;
  deployment(namespace: string, name: string): Promise<V1Deployment | undefined>;
  configMap(namespace: string, name: string): Promise<V1ConfigMap | undefined>;
  serviceAccount(namespace: string, name: string): Promise<V1ServiceAccount | undefined>;
  secret(namespace: string, name: string): Promise<V1Secret | undefined>;
  pod(namespace: string, name: string): Promise<V1Pod | undefined>;
  /** GET `path` on a Service port through the API server's proxy, as text. */
  serviceProxyGet(namespace: string, service: string, port: number, path: string): Promise<string>;
}

async function orMissing<T>(read: Promise<T>): Promise<T | undefined> {
  try {
    return await read;
  } catch (error) {
    if (isApiStatus(error, 404)) return undefined;
    throw error;
  }
}

export function clusterApi(kubeConfig: KubeConfig): ClusterApi {
  const core = kubeConfig.makeApiClient(CoreV1Api);
  const apps = kubeConfig.makeApiClient(AppsV1Api);
  const admission = kubeConfig.makeApiClient(AdmissionregistrationV1Api);
  return {
    webhookConfigurations: async () => (await admission.listMutatingWebhookConfiguration()).items,
    namespace: (name) => orMissing(core.readNamespace({ name })),
    namespaces: async (labelSelector) => (await core.listNamespace({ labelSelector })).items,
    deployment: (namespace, name) => orMissing(apps.readNamespacedDeployment({ namespace, name })),
    configMap: (namespace, name) => orMissing(core.readNamespacedConfigMap({ namespace, name })),
    serviceAccount: (namespace, name) => orMissing(core.readNamespacedServiceAccount({ namespace, name })),
    secret: (namespace, name) => orMissing(core.readNamespacedSecret({ namespace, name })),
    pod: (namespace, name) => orMissing(core.readNamespacedPod({ namespace, name })),
    serviceProxyGet: async (namespace, service, port, path) =>
      String(await core.connectGetNamespacedServiceProxyWithPath({ namespace, name: `https:${service}:${port}`, path: path.replace(/^\//, '') })),
  };
}
