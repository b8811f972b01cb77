// Owns the refresher's writes to the cluster: the pull Secrets it manages (type
// kubernetes.io/dockerconfigjson, label app.kubernetes.io/managed-by: buildkite-ecr-injector) and the
// status annotation on Namespaces. Updates carry the resourceVersion that was read, and deletes a
// precondition on it, so a replica that lost the Lease can only fail, never overwrite.
import { PatchStrategy, setHeaderOptions, type CoreV1Api, type V1Secret } from '@kubernetes/client-node';
import { isApiStatus } from '../kube/api-status.js';
import { DOCKER_CONFIG_KEY, DOCKER_CONFIG_TYPE } from './docker-config.js';

export const MANAGED_BY_LABEL = 'app.kubernetes.io/managed-by';
export const MANAGED_BY = 'buildkite-ecr-injector';
/** The watch and list selector for the Secrets the refresher manages. */
export const MANAGED_SELECTOR = `${MANAGED_BY_LABEL}=${MANAGED_BY}`;

export function isManaged(secret: Pick<V1Secret, 'metadata'>): boolean {
  return secret.metadata?.labels?.[MANAGED_BY_LABEL] === MANAGED_BY;
}

/** The `.dockerconfigjson` text held in a Secret; undefined when it holds none. */
export function dockerConfigOf(secret: V1Secret): string | undefined {
  const value = secret.data?.[DOCKER_CONFIG_KEY];
  return value === undefined ? undefined : Buffer.from(value, 'base64').toString('utf8');
}

/** True when the Secret is exactly what the refresher would write for this document. */
export function isAsWritten(secret: V1Secret, document: string): boolean {
  return (
    isManaged(secret) &&
    secret.type === DOCKER_CONFIG_TYPE &&
    dockerConfigOf(secret) === document &&
    Object.keys(secret.data ?? {}).length === 1 &&
    secret.stringData === undefined
  );
}

export class PullSecretClient {
  constructor(private readonly core: CoreV1Api) {}

  async read(namespace: string, name: string): Promise<V1Secret | undefined> {
    try {
      return await this.core.readNamespacedSecret({ namespace, name });
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** Create the Secret; 409 when one of that name appeared meanwhile. */
  async create(namespace: string, name: string, document: string): Promise<void> {
    await this.core.createNamespacedSecret({ namespace, body: secretBody(namespace, name, document) });
  }

  /** Replace a managed Secret's content, keeping other labels and annotations; 409 when it changed since read. */
  async replace(current: V1Secret, document: string): Promise<void> {
    const namespace = current.metadata?.namespace ?? '';
    const name = current.metadata?.name ?? '';
    const body: V1Secret = {
      ...secretBody(namespace, name, document),
      metadata: {
        ...current.metadata,
        labels: { ...current.metadata?.labels, [MANAGED_BY_LABEL]: MANAGED_BY },
      },
    };
    await this.core.replaceNamespacedSecret({ namespace, name, body });
  }

  /** Delete a Secret as read (resourceVersion precondition); gone already is fine. */
  async delete(namespace: string, name: string, resourceVersion: string | undefined): Promise<void> {
    try {
      await this.core.deleteNamespacedSecret({ namespace, name, body: resourceVersion ? { preconditions: { resourceVersion } } : {} });
    } catch (error) {
      if (!isApiStatus(error, 404)) throw error;
    }
  }

  /** Set (or with null remove) one annotation on a Namespace, by JSON merge patch. */
  async annotateNamespace(namespace: string, key: string, value: string | null): Promise<void> {
    await this.core.patchNamespace(
      { name: namespace, body: { metadata: { annotations: { [key]: value } } } },
      setHeaderOptions('Content-Type', PatchStrategy.MergePatch),
    );
  }
}

function secretBody(namespace: string, name: string, document: string): V1Secret {
  return {
    apiVersion: 'v1',
    kind: 'Secret',
    metadata: { name, namespace, labels: { [MANAGED_BY_LABEL]: MANAGED_BY, 'app.kubernetes.io/component': 'ecr-pull-secret' } },
    type: DOCKER_CONFIG_TYPE,
    data: { [DOCKER_CONFIG_KEY]: Buffer.from(document).toString('base64') },
  };
}
