// Owns the Secret that holds the self-managed certificates: how the CA state is laid out in it
// (`tls.crt`/`tls.key` as every TLS Secret, `ca.crt` the signing CA, `ca-bundle.crt` what is
// published) and reading/writing it with resourceVersion checks, so two leaders can never
// overwrite each other unseen.
import type { CoreV1Api, V1Secret } from '@kubernetes/client-node';
import { isApiStatus } from '../kube/api-status.js';
import { caBundlePem, type TlsState } from './cert-authority.js';

export const SECRET_KEYS = {
  cert: 'tls.crt',
  key: 'tls.key',
  caCert: 'ca.crt',
  caKey: 'ca.key',
  nextCaCert: 'ca-next.crt',
  nextCaKey: 'ca-next.key',
  previousCaCert: 'ca-previous.crt',
  /** Derived from the others, for people and tools that want "the bundle"; never read back. */
  bundle: 'ca-bundle.crt',
} as const;

const ANNOTATION_PREFIX = 'buildkite-ecr-injector/';
export const SECRET_ANNOTATIONS = {
  /** When the leader saw the next CA in the webhook configuration's caBundle. */
  nextPublishedAt: `${ANNOTATION_PREFIX}ca-next-published-at`,
  /** When the previous CA stopped signing; it leaves the bundle a propagation time later. */
  previousRetiredAt: `${ANNOTATION_PREFIX}ca-previous-retired-at`,
  /** Set by an operator to `serving` or `ca` to force a rotation; removed once it started. */
  rotate: `${ANNOTATION_PREFIX}rotate`,
} as const;

function decodeValue(data: Record<string, string> | undefined, key: string): string | undefined {
  const value = data?.[key];
  if (value === undefined || value === '') return undefined;
  return Buffer.from(value, 'base64').toString('utf8');
}

function decodeDate(value: string | undefined): Date | undefined {
  if (value === undefined) return undefined;
  const date = new Date(value);
  return Number.isNaN(date.getTime()) ? undefined : date;
}

/** The CA state held in a Secret. Broken or missing parts come back missing; the rules repair them. */
export function decodeTlsSecret(secret: Pick<V1Secret, 'data' | 'metadata'>): TlsState {
  const data = secret.data;
  const annotations = secret.metadata?.annotations ?? {};
  const pair = (certKey: string, keyKey: string) => {
    const cert = decodeValue(data, certKey);
    const key = decodeValue(data, keyKey);
    return cert !== undefined && key !== undefined ? { cert, key } : undefined;
  };
  const state: TlsState = {};
  const ca = pair(SECRET_KEYS.caCert, SECRET_KEYS.caKey);
  if (ca) state.ca = ca;
  const serving = pair(SECRET_KEYS.cert, SECRET_KEYS.key);
  if (serving) state.serving = serving;
  const next = pair(SECRET_KEYS.nextCaCert, SECRET_KEYS.nextCaKey);
  if (next) state.next = { ...next, publishedAt: decodeDate(annotations[SECRET_ANNOTATIONS.nextPublishedAt]) };
  const previous = decodeValue(data, SECRET_KEYS.previousCaCert);
  if (previous) state.previous = { cert: previous, retiredAt: decodeDate(annotations[SECRET_ANNOTATIONS.previousRetiredAt]) };
  const rotate = annotations[SECRET_ANNOTATIONS.rotate];
  if (rotate === 'serving' || rotate === 'ca') state.rotate = rotate;
  return state;
}

/** Secret data and our annotations for a state (other annotations are the caller's to keep). */
export function encodeTlsSecret(state: TlsState): { data: Record<string, string>; annotations: Record<string, string> } {
  const data: Record<string, string> = {};
  const put = (key: string, value: string | undefined) => {
    if (value !== undefined) data[key] = Buffer.from(value).toString('base64');
  };
  put(SECRET_KEYS.cert, state.serving?.cert);
  put(SECRET_KEYS.key, state.serving?.key);
  put(SECRET_KEYS.caCert, state.ca?.cert);
  put(SECRET_KEYS.caKey, state.ca?.key);
  put(SECRET_KEYS.nextCaCert, state.next?.cert);
  put(SECRET_KEYS.nextCaKey, state.next?.key);
  put(SECRET_KEYS.previousCaCert, state.previous?.cert);
  put(SECRET_KEYS.bundle, caBundlePem(state));
  const annotations: Record<string, string> = {};
  if (state.next?.publishedAt) annotations[SECRET_ANNOTATIONS.nextPublishedAt] = state.next.publishedAt.toISOString();
  if (state.previous?.retiredAt) annotations[SECRET_ANNOTATIONS.previousRetiredAt] = state.previous.retiredAt.toISOString();
  if (state.rotate) annotations[SECRET_ANNOTATIONS.rotate] = state.rotate;
  return { data, annotations };
}

export interface StoredTlsSecret {
  state: TlsState;
  secret: V1Secret;
}

/** Reads and writes the one Secret; every write is conditional on what was read. */
export class TlsSecretStore {
  constructor(
    private readonly core: CoreV1Api,
    readonly namespace: string,
    readonly name: string,
  ) {}

  /** The Secret and its state, or undefined when it does not exist. */
  async read(): Promise<StoredTlsSecret | undefined> {
    try {
      const secret = await this.core.readNamespacedSecret({ name: this.name, namespace: this.namespace });
      return { state: decodeTlsSecret(secret), secret };
    } catch (error) {
      if (isApiStatus(error, 404)) return undefined;
      throw error;
    }
  }

  /** Create the Secret; fails with 409 when someone else created it first. */
  async create(state: TlsState): Promise<StoredTlsSecret> {
    const { data, annotations } = encodeTlsSecret(state);
    const body: V1Secret = {
      apiVersion: 'v1',
      kind: 'Secret',
      metadata: {
        name: this.name,
        namespace: this.namespace,
        labels: { 'app.kubernetes.io/name': 'buildkite-ecr-injector', 'app.kubernetes.io/component': 'webhook-tls' },
        annotations,
      },
      type: 'kubernetes.io/tls',
      data,
    };
    const secret = await this.core.createNamespacedSecret({ namespace: this.namespace, body });
    return { state: decodeTlsSecret(secret), secret };
  }

  /**
   * Replace the state in `previous` (the Secret as read); fails with 409 when it changed since.
   * Labels, other annotations, owner references and the type are kept as they were.
   */
  async replace(previous: V1Secret, state: TlsState): Promise<StoredTlsSecret> {
    const { data, annotations } = encodeTlsSecret(state);
    const kept = Object.fromEntries(
      Object.entries(previous.metadata?.annotations ?? {}).filter(([key]) => !Object.values(SECRET_ANNOTATIONS).includes(key as never)),
    );
    const body: V1Secret = {
      ...previous,
      metadata: { ...previous.metadata, name: this.name, namespace: this.namespace, annotations: { ...kept, ...annotations } },
      data,
    };
    delete body.stringData;
    const secret = await this.core.replaceNamespacedSecret({ name: this.name, namespace: this.namespace, body });
    return { state: decodeTlsSecret(secret), secret };
  }
}
