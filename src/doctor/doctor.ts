// Owns one diagnosis: the cluster checks, then every namespace asked for (or every opted-in one),
// then the Pod asked for, in that order. The config is the one given (--config), else the webhook's
// own ConfigMap, else the built-in defaults (and a check says which). Read-only.
import type { V1MutatingWebhookConfiguration, V1Namespace } from '@kubernetes/client-node';
import { bulkhead } from 'cockatiel';
import { parse as parseYaml } from 'yaml';
import { describeError } from '../kube/describe-error.js';
import { parseConfig, withExcludedNamespace, type Config } from '../webhook/config.js';
import { labelKeys } from '../webhook/policy.js';
import type { ClusterApi } from './cluster-api.js';
import { checkNamespace } from './namespace-checks.js';
import { checkPod } from './pod-check.js';
import { READ_FIX, readOrFail, scopeChecks, type Check } from './report.js';
import { checkConfigurationAndOrder, checkDeployment, checkServingCertificate, checkWebhookSettings, webhookService, type WebhookService } from './webhook-checks.js';

export const DEFAULT_WEBHOOK_CONFIGURATION = 'buildkite-ecr-injector';
/** The manifests' names: the ConfigMap and Deployment are named like the Service, the refresher with -refresher. */
const CONFIG_KEY = 'config.yaml';
const REFRESHER_SUFFIX = '-refresher';
/** Namespaces checked at once: each costs a few reads (ServiceAccount, Secrets, and what its rules name). */
const CONCURRENCY = 8;

export interface DoctorOptions {
  api: ClusterApi;
  /** From --config; else the webhook's ConfigMap is read. */
  config?: Config;
  webhookConfiguration: string;
  /** Namespaces to check; empty = every namespace with the opt-in label. */
  namespaces: string[];
  pod?: { namespace: string; name: string };
  now: Date;
}

export async function runDoctor(options: DoctorOptions): Promise<Check[]> {
  const { api, now } = options;
  const cluster = scopeChecks('cluster');
  let configurations: V1MutatingWebhookConfiguration[] = [];
  try {
    configurations = await api.webhookConfigurations();
  } catch (error) {
    cluster.fail('webhook-configuration', `cannot list MutatingWebhookConfigurations: ${describeError(error)}`, `${READ_FIX}, or pass --context`);
  }
  const configuration = configurations.length > 0 || cluster.checks.length === 0 ? checkConfigurationAndOrder(configurations, options.webhookConfiguration, cluster) : undefined;
  const service: WebhookService = (configuration && webhookService(configuration)) ?? { namespace: 'buildkite-ecr-injector', name: 'buildkite-ecr-injector', port: 443 };
  const config = withExcludedNamespace(options.config ?? (await configFromCluster(api, service, cluster)), service.namespace);
  if (configuration) {
    checkWebhookSettings(configuration, config, cluster);
    await checkServingCertificate(api, configuration, configuration && webhookService(configuration), now, cluster);
  }
  const refresherName = `${service.name}${REFRESHER_SUFFIX}`;
  const [webhookDeployment, refresherDeployment] = await Promise.all([readOrFail(cluster, 'webhook-deployment', `Deployment ${service.namespace}/${service.name}`, () => api.deployment(service.namespace, service.name)), readOrFail(cluster, 'refresher-deployment', `Deployment ${service.namespace}/${refresherName}`, () => api.deployment(service.namespace, refresherName))]);
  if (webhookDeployment !== null) checkDeployment('webhook-deployment', 'the webhook', service.namespace, service.name, webhookDeployment, true, cluster);
  if (refresherDeployment !== null) checkDeployment('refresher-deployment', 'the refresher', service.namespace, refresherName, refresherDeployment, false, cluster);

  const wanted = [...options.namespaces];
  if (options.pod && !wanted.includes(options.pod.namespace)) wanted.push(options.pod.namespace);
  const namespaces = await namespacesToCheck(api, wanted, config, cluster);
  const context = { api, config, configuration, refresher: refresherDeployment ? { namespace: service.namespace, name: refresherName } : undefined, now };
  const limit = bulkhead(CONCURRENCY, Infinity);
  const perNamespace = await Promise.all(namespaces.map((entry) => ('missing' in entry ? Promise.resolve(entry.missing) : limit.execute(() => checkNamespace(entry.namespace, context)))));
  const checks = [...cluster.checks, ...perNamespace.flat()];
  if (options.pod) {
    const { namespace, name } = options.pod;
    const found = namespaces.find((entry) => !('missing' in entry) && entry.namespace.metadata?.name === namespace);
    try {
      checks.push(...checkPod(namespace, name, await api.pod(namespace, name), found && 'namespace' in found ? found.namespace : undefined, config));
    } catch (error) {
      const pod = scopeChecks(`pod/${namespace}/${name}`);
      pod.fail('pod', `cannot read Pod ${name}: ${describeError(error)}`, READ_FIX);
      checks.push(...pod.checks);
    }
  }
  return checks;
}

/** The webhook's own config, from its ConfigMap; the built-in defaults when it cannot be read. */
async function configFromCluster(api: ClusterApi, service: WebhookService, out: ReturnType<typeof scopeChecks>): Promise<Config> {
  const where = `ConfigMap ${service.namespace}/${service.name}`;
  let text: string | undefined;
  try {
    text = (await api.configMap(service.namespace, service.name))?.data?.[CONFIG_KEY];
  } catch (error) {
    out.warn('config', `cannot read ${where} (${describeError(error)}); checking with the built-in defaults`, 'pass --config FILE (the webhook\'s config.yaml)');
    return parseConfig({});
  }
  if (text === undefined) {
    out.warn('config', `no ${where} with ${CONFIG_KEY}; checking with the built-in defaults`, 'pass --config FILE (the webhook\'s config.yaml)');
    return parseConfig({});
  }
  try {
    const config = parseConfig(parseYaml(text), `${where} ${CONFIG_KEY}`);
    out.ok('config', `config from ${where}`);
    return config;
  } catch (error) {
    out.fail('config', describeError(error), `kubectl -n ${service.namespace} edit configmap ${service.name}`);
    return parseConfig({});
  }
}

type NamespaceEntry = { namespace: V1Namespace } | { missing: Check[] };

async function namespacesToCheck(api: ClusterApi, names: string[], config: Config, cluster: ReturnType<typeof scopeChecks>): Promise<NamespaceEntry[]> {
  const inject = labelKeys(config.labelPrefix).inject;
  if (names.length === 0) {
    let labelled: V1Namespace[];
    try {
      // Every namespace with the key, so that a mistyped value (inject=true) is reported too.
      labelled = await api.namespaces(inject);
    } catch (error) {
      cluster.fail('namespaces', `cannot list namespaces: ${describeError(error)}`, `${READ_FIX}, or pass --namespace NS`);
      return [];
    }
    const candidates = labelled.filter((ns) => ns.metadata?.labels?.[inject] !== 'disabled');
    if (candidates.length === 0) cluster.warn('namespaces', `no namespace is labelled ${inject}=enabled: the webhook changes nothing`, `kubectl label namespace NAME ${inject}=enabled`);
    else cluster.ok('namespaces', `${candidates.length} namespace${candidates.length === 1 ? '' : 's'} labelled ${inject}`);
    return candidates.map((namespace) => ({ namespace }));
  }
  return Promise.all(
    names.map(async (name): Promise<NamespaceEntry> => {
      const out = scopeChecks(`namespace/${name}`);
      try {
        const namespace = await api.namespace(name);
        if (namespace) return { namespace };
        out.fail('namespace', `namespace ${name} does not exist`, 'kubectl get namespaces');
      } catch (error) {
        out.fail('namespace', `cannot read namespace ${name}: ${describeError(error)}`, READ_FIX);
      }
      return { missing: out.checks };
    }),
  );
}
