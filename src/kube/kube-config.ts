// Owns how the webhook finds the Kubernetes API: an explicit kubeconfig file, or the in-cluster
// ServiceAccount when running in a Pod; otherwise there is no cluster (local runs use files).
import { KubeConfig } from '@kubernetes/client-node';

export interface KubeConfigSource {
  /** --kubeconfig FILE */
  kubeconfigPath?: string;
  /** True when running in a Pod (KUBERNETES_SERVICE_HOST is set); read by the CLI, not here. */
  inCluster?: boolean;
  /** Without a file or a Pod: KUBECONFIG or ~/.kube/config, as kubectl finds it (the `doctor` run from a laptop). */
  kubectlDefault?: boolean;
  /** --context NAME: a context of the kubeconfig other than its current one. */
  context?: string;
}

export function loadKubeConfig(source: KubeConfigSource): KubeConfig | undefined {
  const kubeConfig = new KubeConfig();
  if (source.kubeconfigPath !== undefined || (source.kubectlDefault && !source.inCluster)) {
    if (source.kubeconfigPath !== undefined) kubeConfig.loadFromFile(source.kubeconfigPath);
    else kubeConfig.loadFromDefault();
    if (source.context !== undefined) {
      if (!kubeConfig.getContextObject(source.context)) throw new Error(`the kubeconfig has no context ${source.context}`);
      kubeConfig.setCurrentContext(source.context);
    }
    if (!kubeConfig.getCurrentCluster()) throw new Error('the kubeconfig names no current context with a cluster (kubectl config use-context NAME, or --context NAME)');
    return kubeConfig;
  }
  if (source.inCluster) {
    kubeConfig.loadFromCluster();
    return kubeConfig;
  }
  return undefined;
}
