// Owns the caBundle of the webhook's own MutatingWebhookConfiguration (found by name): which CA
// certificates it trusts now, and a JSON patch that sets every webhook's caBundle to ours. Each
// replaced entry is guarded by a `test` of that webhook's name, so an edit that reorders the
// webhooks between our read and our patch makes the patch fail (and the next reconcile retry) rather
// than land on the wrong webhook. Nothing else in the object is touched.
import type { AdmissionregistrationV1Api, V1MutatingWebhookConfiguration } from '@kubernetes/client-node';
import type { Operation } from 'fast-json-patch';
import { fingerprintOf, splitPemBundle } from './cert-authority.js';
import { isApiStatus } from '../kube/api-status.js';

/** Fingerprints of the CA certificates that every webhook in `config` trusts (empty without webhooks). */
export function publishedFingerprints(config: V1MutatingWebhookConfiguration | undefined): Set<string> {
  const webhooks = config?.webhooks ?? [];
  let common: Set<string> | undefined;
  for (const webhook of webhooks) {
    const pem = Buffer.from(webhook.clientConfig?.caBundle ?? '', 'base64').toString('utf8');
    const prints = new Set(splitPemBundle(pem).map(fingerprintOf).filter((print): print is string => print !== undefined));
    common = common ? new Set([...common].filter((print) => prints.has(print))) : prints;
  }
  return common ?? new Set();
}

/** The operations that give every webhook `caBundle` (base64), or [] when all have it already. */
export function caBundlePatch(config: V1MutatingWebhookConfiguration, caBundle: string): Operation[] {
  const operations: Operation[] = [];
  (config.webhooks ?? []).forEach((webhook, index) => {
    if (webhook.clientConfig?.caBundle === caBundle) return;
    operations.push({ op: 'test', path: `/webhooks/${index}/name`, value: webhook.name });
    operations.push({ op: 'add', path: `/webhooks/${index}/clientConfig/caBundle`, value: caBundle });
  });
  return operations;
}

export class WebhookConfigurationClient {
  constructor(
    private readonly api: AdmissionregistrationV1Api,
    readonly name: string,
  ) {}

  /** The configuration, or undefined when it does not exist (yet). */
  async read(): Promise<V1MutatingWebhookConfiguration | undefined> {
    try {
      return await this.api.readMutatingWebhookConfiguration({ name: this.name });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** Patch `config` (as read) so every webhook carries `caBundle`; true when a patch was sent. */
  async publish(config: V1MutatingWebhookConfiguration, caBundle: string): Promise<boolean> {
    const operations = caBundlePatch(config, caBundle);
    if (operations.length === 0) return false;
    // client-node sends a plain array body as application/json-patch+json.
    await this.api.patchMutatingWebhookConfiguration({ name: this.name, body: operations });
    return true;
  }
}
