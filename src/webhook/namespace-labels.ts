// Owns what the core knows of a namespace (its labels) and the port through which the edges supply
// them: the admission path only ever calls `get`, a synchronous cache read. Sources differ in how
// the cache is filled: a fixed map (here; the offline CLI and tests), the namespaces file
// (files/namespaces-file.ts) or the cluster (kube/namespace-informer.ts).
import type { Labels } from './pod.js';

export interface NamespaceLabelSource {
  /** Labels of a namespace from the cache; undefined when the namespace is not known. */
  get(namespace: string): Labels | undefined;
  /**
   * The few annotations the source keeps (the refresher's pull-secret-status), from the cache;
   * undefined when the namespace has none of them or the source keeps none.
   */
  annotations?(namespace: string): Readonly<Record<string, string>> | undefined;
  /** A slow path for a namespace the cache does not know yet (may make one API call). */
  fetch?(namespace: string): Promise<Labels | undefined>;
  /** True once the source has loaded at least once. */
  isSynced(): boolean;
  /** A one-word state for /readyz and metrics, e.g. "synced", "loading", "stale". */
  state(): string;
  /** When the labels were last known to match their origin (metrics); undefined before the first load. */
  lastSyncedAt?(): Date | undefined;
  close(): Promise<void>;
}

/** A fixed set of namespaces, for the offline CLI and tests. */
export class StaticNamespaceSource implements NamespaceLabelSource {
  readonly #labels: Map<string, Labels>;
  readonly #annotations: Map<string, Readonly<Record<string, string>>>;

  constructor(namespaces: Record<string, Labels> | Map<string, Labels>, annotations: Record<string, Readonly<Record<string, string>>> = {}) {
    this.#labels = namespaces instanceof Map ? new Map(namespaces) : new Map(Object.entries(namespaces));
    this.#annotations = new Map(Object.entries(annotations));
  }

  get(namespace: string): Labels | undefined {
    return this.#labels.get(namespace);
  }

  annotations(namespace: string): Readonly<Record<string, string>> | undefined {
    return this.#annotations.get(namespace);
  }

  isSynced(): boolean {
    return true;
  }

  state(): string {
    return 'synced';
  }

  async close(): Promise<void> {}
}
