// Owns how the webhook finds the Kubernetes API: an explicit kubeconfig file, or the in-cluster
// ServiceAccount when running in a Pod; otherwise there is no cluster (local runs use files).
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeConfigSource {
  /** --kubeconfig FILE */
  kubeconfigPath?: string;
  /** True when running in a Pod (KUBERNETES_SERVICE_HOST is set); read by the CLI, not here. */
  inCluster?: boolean;
}

export function loadKubeConfig(source: KubeConfigSource): KubeConfig | undefined {
  const kubeConfig = new KubeConfig();
  if (source.kubeconfigPath !== undefined) {
    kubeConfig.loadFromFile(source.kubeconfigPath);
    return kubeConfig;
  }
  if (source.inCluster) {
    kubeConfig.loadFromCluster();
    return kubeConfig;
  }
  return undefined;
}
