// Owns the cluster-wide checks: the MutatingWebhookConfiguration (exists, sorts before every EKS Pod
// Identity webhook, failurePolicy, timeoutSeconds, reinvocationPolicy, rules, and selectors that
// admit what the webhook reads), the certificate its caBundle must trust, and the Deployments.
import type { V1Deployment, V1MutatingWebhook, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import { CERTIFICATE_PATH, isNearExpiry } from '../certs/certificate-source.js';
import { describeError } from '../kube/describe-error.js';
import type { Config } from '../webhook/config.js';
import { labelKeys } from '../webhook/policy.js';
import type { ClusterApi } from './cluster-api.js';
import { selects } from './label-selector.js';
import type { Check, ScopeChecks } from './report.js';
import { verifyServingChain } from './serving-chain.js';

/** Where the webhook runs, from its configuration's clientConfig.service. */
export interface WebhookService {
  namespace: string;
  name: string;
  port: number;
}

type Checks = ScopeChecks;

/** The configuration named `name` among all of them, and the checks of its name order. */
export function checkConfigurationAndOrder(all: V1MutatingWebhookConfiguration[], name: string, out: Checks): V1MutatingWebhookConfiguration | undefined {
  const ours = all.find((c) => c.metadata?.name === name);
  if (!ours) {
    out.fail('webhook-configuration', `no MutatingWebhookConfiguration ${name}`, 'kubectl apply -k manifests/base (or pass --webhook-config NAME if yours has another name)');
    return undefined;
  }
  out.ok('webhook-configuration', `MutatingWebhookConfiguration ${name} exists (${ours.webhooks?.length ?? 0} webhook)`);
  // The API server calls configurations in name order; the EKS webhook reads serviceAccountName.
  const identity = all.map((c) => c.metadata?.name ?? '').filter((other) => other !== name && other.includes('pod-identity'));
  const later = identity.filter((other) => other < name);
  if (later.length === 0) {
    out.ok('webhook-order', identity.length === 0 ? 'no pod-identity webhook configuration in the cluster' : `${name} sorts before ${identity.join(', ')}`);
    return ours;
  }
  let renamed = `0-${name}`;
  while (identity.some((other) => other < renamed)) renamed = `0${renamed}`;
  out.fail(
    'webhook-order',
    `${later.join(', ')} sorts before ${name}: the API server calls it first, so it never sees the ServiceAccount this webhook sets (IRSA does nothing)`,
    `set metadata.name: ${renamed} in your mutating-webhook.yaml (and serve --webhook-config ${renamed} in self-signed mode), kubectl apply it, then kubectl delete mutatingwebhookconfiguration ${name}`,
  );
  return ours;
}

/** failurePolicy, timeoutSeconds, reinvocationPolicy, rules and selectors of each webhook in it. */
export function checkWebhookSettings(configuration: V1MutatingWebhookConfiguration, config: Config, out: Checks): void {
  const name = configuration.metadata?.name ?? '';
  const keys = labelKeys(config.labelPrefix);
  (configuration.webhooks ?? []).forEach((webhook: V1MutatingWebhook, index) => {
    const at = (configuration.webhooks?.length ?? 0) > 1 ? ` (${webhook.name})` : '';
    const patch = (field: string, value: string) => `kubectl patch mutatingwebhookconfiguration ${name} --type json -p '[{"op":"replace","path":"/webhooks/${index}/${field}","value":${value}}]'`;
    const policy = webhook.failurePolicy ?? 'Fail';
    if (policy === 'Ignore') out.ok('webhook-failure-policy', `failurePolicy Ignore${at}: an outage admits job Pods without injection`);
    else out.warn('webhook-failure-policy', `failurePolicy ${policy}${at}: while the webhook is down, no job Pod starts in opted-in namespaces`, `${patch('failurePolicy', '"Ignore"')} (unless blocking is what you want)`);
    const timeout = webhook.timeoutSeconds ?? 10;
    if (timeout <= 10) out.ok('webhook-timeout', `timeoutSeconds ${timeout}${at}`);
    else out.warn('webhook-timeout', `timeoutSeconds ${timeout}${at}: a slow webhook holds every job Pod's creation that long`, patch('timeoutSeconds', '5'));
    if (webhook.reinvocationPolicy === 'IfNeeded') out.ok('webhook-reinvocation', `reinvocationPolicy IfNeeded${at}`);
    else out.warn('webhook-reinvocation', `reinvocationPolicy ${webhook.reinvocationPolicy ?? 'Never'}${at}: a later webhook that changes the Pod is not followed by ours`, patch('reinvocationPolicy', '"IfNeeded"'));
    const coversPods = (webhook.rules ?? []).some((rule) =>
      ['', '*'].some((g) => rule.apiGroups?.includes(g)) && ['pods', '*'].some((r) => rule.resources?.includes(r)) && ['CREATE', '*'].some((o) => rule.operations?.includes(o)),
    );
    if (coversPods) out.ok('webhook-rules', `rules cover CREATE of pods${at}`);
    else out.fail('webhook-rules', `rules do not cover CREATE of pods${at}: the webhook is never called`, 'restore rules from manifests/base/mutating-webhook.yaml and kubectl apply it');
    // A namespace and a job Pod as the webhook reads them must reach it through the selectors.
    const optedIn = { [keys.inject]: 'enabled', 'kubernetes.io/metadata.name': 'an-opted-in-namespace' };
    if (selects(webhook.namespaceSelector, optedIn)) out.ok('webhook-namespace-selector', `namespaceSelector admits namespaces labelled ${keys.inject}=enabled${at}`);
    else out.fail('webhook-namespace-selector', `namespaceSelector does not admit a namespace labelled ${keys.inject}=enabled${at}: opted-in namespaces never reach the webhook`, `make namespaceSelector require ${keys.inject} In [enabled] (the labelPrefix of the config) and kubectl apply it`);
    const jobPod = { [config.jobPodLabel]: 'a-job-uuid' };
    if (selects(webhook.objectSelector, jobPod)) out.ok('webhook-object-selector', `objectSelector admits Pods labelled ${config.jobPodLabel}${at}`);
    else out.fail('webhook-object-selector', `objectSelector does not admit a Pod labelled ${config.jobPodLabel}${at}: job Pods never reach the webhook`, `make objectSelector require ${config.jobPodLabel} Exists (the jobPodLabel of the config) and kubectl apply it`);
  });
}

export function webhookService(configuration: V1MutatingWebhookConfiguration): WebhookService | undefined {
  const service = configuration.webhooks?.[0]?.clientConfig.service;
  return service ? { namespace: service.namespace, name: service.name, port: service.port ?? 443 } : undefined;
}

/** The served chain (through the Service proxy) against the caBundle, and its expiry. */
export async function checkServingCertificate(api: ClusterApi, configuration: V1MutatingWebhookConfiguration, service: WebhookService | undefined, now: Date, out: Checks): Promise<void> {
  if (!service) {
    out.warn('serving-certificate', 'the webhook is called by URL, not through a Service: its certificate cannot be read through the API server', '');
    return;
  }
  let chain: string;
  try {
    chain = await api.serviceProxyGet(service.namespace, service.name, service.port, CERTIFICATE_PATH);
  } catch (error) {
    out.fail(
      'serving-certificate',
      `cannot read the served certificate through the Service proxy: ${describeError(error)}`,
      `check the webhook Deployment below; kubectl -n ${service.namespace} get endpoints ${service.name}`,
    );
    return;
  }
  const dnsName = `${service.name}.${service.namespace}.svc`;
  const verdict = verifyServingChain(chain, configuration.webhooks?.[0]?.clientConfig.caBundle, dnsName, now);
  if (verdict.problem) {
    out.fail(
      'serving-certificate',
      verdict.problem,
      `self-signed mode: the leader rewrites the caBundle (kubectl -n ${service.namespace} logs deployment/${service.name}); cert-manager: check the cert-manager.io/inject-ca-from annotation and the Certificate`,
    );
    return;
  }
  const when = `expires ${verdict.notAfter!.toISOString()} (in ${verdict.daysLeft} days)`;
  if (verdict.notBefore && isNearExpiry({ notBefore: verdict.notBefore, notAfter: verdict.notAfter! }, now)) {
    out.warn('serving-certificate', `the caBundle trusts the served certificate, but it ${when} and nothing has renewed it`, 'self-signed mode renews on its own: check the leader\'s logs; cert-manager: kubectl describe certificate');
  } else {
    out.ok('serving-certificate', `the caBundle trusts the served certificate for ${dnsName}; it ${when}`);
  }
}

/** A Deployment's readiness: missing (an error when `required`), no ready replica, fewer than asked. */
export function checkDeployment(id: string, what: string, namespace: string, name: string, deployment: V1Deployment | undefined, required: boolean, out: Checks): void {
  if (!deployment) {
    if (required) out.fail(id, `no Deployment ${namespace}/${name}`, 'kubectl apply -k manifests/base');
    else out.ok(id, `${what} is not deployed (Deployment ${namespace}/${name}); pull Secrets are kept by whoever made them`);
    return;
  }
  const wanted = deployment.spec?.replicas ?? 1;
  const ready = deployment.status?.readyReplicas ?? 0;
  if (ready === 0) {
    out.fail(id, `${what} has no ready replica (0/${wanted})`, `kubectl -n ${namespace} describe deployment ${name}; kubectl -n ${namespace} logs deployment/${name}`);
  } else if (ready < wanted) {
    out.warn(id, `${what} has ${ready}/${wanted} replicas ready`, `kubectl -n ${namespace} describe deployment ${name}`);
  } else {
    out.ok(id, `${what} has ${ready}/${wanted} replicas ready`);
  }
}

export type { Check };
