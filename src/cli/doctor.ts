// Owns `doctor`: turns flags into a read-only diagnosis with the user's own credentials (kubectl's
// kubeconfig, --kubeconfig or --context; in a Pod its ServiceAccount), prints it as text or JSON,
// and exits 0 (no error), 1 (an error found) or 64 (usage).
import { loadConfig } from '../files/config-file.js';
import { singleFlag, UsageError, type Flags } from './flags.js';

export const doctorUsage = `doctor flags:
  --namespace NS, -n NS  a namespace to check (repeatable); default: every namespace with the opt-in label
  --pod NAME -n NS       also explain what the webhook decided for this Pod
  --kubeconfig FILE      default: KUBECONFIG or ~/.kube/config, as kubectl; in a Pod its ServiceAccount
  --context NAME         a kubeconfig context other than the current one
  --config FILE          the webhook's config.yaml (default: read from its ConfigMap)
  --webhook-config NAME  the MutatingWebhookConfiguration (default buildkite-ecr-injector)
  --output text|json, -o (default text)
  exit status: 0 no check failed, 1 a check failed, 64 usage
`;

export async function doctor(flags: Flags, positionals: string[]): Promise<void> {
  if (positionals.length > 0) throw new UsageError(`doctor takes no arguments, got ${positionals.join(' ')}`);
  const output = flags.output ?? 'text';
  if (output !== 'text' && output !== 'json') throw new UsageError(`--output must be text or json, got ${output}`);
  const namespaces = flags.namespace ?? [];
  let pod: { namespace: string; name: string } | undefined;
  if (flags.pod !== undefined) {
    const namespace = singleFlag(namespaces, 'namespace');
    if (namespace === undefined) throw new UsageError('--pod NAME needs its namespace: -n NS');
    pod = { namespace, name: flags.pod };
  }
  const config = flags.config === undefined ? undefined : await loadConfig(flags.config);
  let kubeConfig;
  try {
    // Loaded only when doctor runs: the other commands must not pay for @kubernetes/client-node.
    const { loadKubeConfig } = await import('../kube/kube-config.js');
    kubeConfig = loadKubeConfig({
      kubeconfigPath: flags.kubeconfig,
      kubectlDefault: true,
      inCluster: flags.kubeconfig === undefined && Boolean(process.env.KUBERNETES_SERVICE_HOST),
      ...(flags.context === undefined ? {} : { context: flags.context }),
    });
  } catch (error) {
    throw new UsageError(`cannot load the Kubernetes client configuration: ${(error as Error).message}`);
  }
  if (!kubeConfig) throw new UsageError('doctor needs the Kubernetes API: a kubeconfig (--kubeconfig FILE) or a Pod');
  // Loaded here: the client and the checks are for this command only.
  const [{ clusterApi }, { runDoctor, DEFAULT_WEBHOOK_CONFIGURATION }, { formatJson, formatText, exitCodeOf }] = await Promise.all([
    import('../doctor/cluster-api.js'),
    import('../doctor/doctor.js'),
    import('../doctor/report.js'),
  ]);
  const checks = await runDoctor({
    api: clusterApi(kubeConfig),
    ...(config ? { config } : {}),
    webhookConfiguration: flags['webhook-config'] ?? DEFAULT_WEBHOOK_CONFIGURATION,
    namespaces: pod ? [] : namespaces,
    ...(pod ? { pod } : {}),
    now: new Date(),
  });
  process.stdout.write(output === 'json' ? formatJson(checks) : formatText(checks));
  process.exitCode = exitCodeOf(checks);
}
