// Owns `--tls-mode self-signed`: wires the Lease, the TLS Secret and the webhook configuration's
// caBundle together. Every replica serves the pair from the Secret (watched and re-read every resync).
// The one replica holding the Lease also reconciles: it creates or repairs the Secret, renews and
// rolls over certificates by the rules in cert-authority.ts, and keeps every webhook's caBundle equal
// to the published CA bundle, at start, whenever the Secret or the configuration changes, and every
// resync. Writes are resourceVersion-checked, so a stale leader can only fail, never overwrite.
import { AdmissionregistrationV1Api, CoordinationV1Api, CoreV1Api, type KubeConfig } from '@kubernetes/client-node';
import { caBundleOf } from './generate.js';
import { WebhookConfigurationClient, publishedFingerprints } from './ca-bundle.js';
import {
  DEFAULT_ROTATION,
  caBundlePem,
  checkPolicy,
  rotatedBy,
  serviceDnsNames,
  settle,
  type RotationPolicy,
  type TlsState,
} from './cert-authority.js';
import { noCertificateMetrics, type CertificateMetrics } from './cert-metrics.js';
import { TlsSecretStore, type StoredTlsSecret } from './cert-secret.js';
import { coalesce } from '../kube/coalesce.js';
import { LeaderElector, type LeaderElectionOptions } from '../kube/leader-election.js';
import type { Logger } from '../log.js';
import { watchObject, type ObjectWatch } from '../kube/object-watch.js';
import { SecretCertificateSource } from './secret-certificate-source.js';
import type { CertificateListener, CertificateSource, ServingCertificate } from './certificate-source.js';

export interface SelfSignedTlsOptions {
  kubeConfig: KubeConfig;
  /** The webhook's own namespace (POD_NAMESPACE): where the Secret and the Lease live. */
  namespace: string;
  secretName: string;
  webhookConfigName: string;
  serviceName: string;
  leaseName: string;
  /** Leader identity (POD_NAME). */
  identity: string;
  log: Logger;
  metrics?: CertificateMetrics;
  /** The clock the rotation rules read; injectable for tests. */
  clock?: () => Date;
  rotation?: Partial<Omit<RotationPolicy, 'dnsNames'>>;
  /** Re-read the Secret (every replica) and reconcile (the leader) this often even without events. */
  resyncIntervalMs?: number;
  leaderElection?: Pick<LeaderElectionOptions, 'leaseDurationMs' | 'renewDeadlineMs' | 'retryPeriodMs' | 'now'>;
}

export const DEFAULT_RESYNC_MS = 60_000;

export class SelfSignedTls implements CertificateSource {
  readonly source: SecretCertificateSource;
  readonly policy: RotationPolicy;
  /** Reconcile now (leader only; a no-op elsewhere). Concurrent calls share runs. */
  readonly reconcile: () => Promise<void>;
  readonly #options: SelfSignedTlsOptions;
  readonly #store: TlsSecretStore;
  readonly #webhooks: WebhookConfigurationClient;
  readonly #elector: LeaderElector;
  readonly #metrics: CertificateMetrics;
  readonly #clock: () => Date;
  readonly #resyncMs: number;
  #secretWatch: ObjectWatch | undefined;
  #webhookWatch: ObjectWatch | undefined;
  #retry: NodeJS.Timeout | undefined;
  #remembered: TlsState | undefined;
  #missingConfigLogged = false;
  #closed = false;

  private constructor(options: SelfSignedTlsOptions) {
    this.#options = options;
    this.#metrics = options.metrics ?? noCertificateMetrics;
    this.#clock = options.clock ?? (() => new Date());
    this.#resyncMs = options.resyncIntervalMs ?? DEFAULT_RESYNC_MS;
    this.policy = { ...DEFAULT_ROTATION, ...options.rotation, dnsNames: serviceDnsNames(options.serviceName, options.namespace) };
    checkPolicy(this.policy);
    const { kubeConfig } = options;
    this.#store = new TlsSecretStore(kubeConfig.makeApiClient(CoreV1Api), options.namespace, options.secretName);
    this.#webhooks = new WebhookConfigurationClient(kubeConfig.makeApiClient(AdmissionregistrationV1Api), options.webhookConfigName);
    this.source = new SecretCertificateSource(this.#store, options.log, this.#metrics, this.#clock);
    this.reconcile = coalesce(() => this.#reconcileSafely());
    this.#elector = new LeaderElector({
      api: kubeConfig.makeApiClient(CoordinationV1Api),
      namespace: options.namespace,
      name: options.leaseName,
      identity: options.identity,
      log: options.log,
      ...options.leaderElection,
      onStartedLeading: () => this.#startLeading(),
      onStoppedLeading: () => this.#stopLeading(),
    });
    this.#metrics.setLeader(false);
  }

  /** Load the Secret if it exists (so a restart serves at once), then watch it and join the election. */
  static async start(options: SelfSignedTlsOptions): Promise<SelfSignedTls> {
    const tls = new SelfSignedTls(options);
    await tls.source.refresh();
    tls.#secretWatch = watchObject({
      kubeConfig: options.kubeConfig,
      path: `/api/v1/namespaces/${options.namespace}/secrets`,
      name: options.secretName,
      resyncIntervalMs: tls.#resyncMs,
      log: options.log,
      onEvent: () => {
        void tls.source.refresh();
        if (tls.isLeader()) void tls.reconcile();
      },
    });
    tls.#elector.start();
    return tls;
  }

  current(): ServingCertificate | undefined {
    return this.source.current();
  }

  onChange(listener: CertificateListener): void {
    this.source.onChange(listener);
  }

  isLeader(): boolean {
    return this.#elector.isLeader();
  }

  /** One leader-election round now (tests; the loop runs on its own). */
  electionRound(): Promise<boolean> {
    return this.#elector.tryAcquireOrRenew();
  }

  #startLeading(): void {
    this.#metrics.setLeader(true);
    this.#webhookWatch = watchObject({
      kubeConfig: this.#options.kubeConfig,
      path: '/apis/admissionregistration.k8s.io/v1/mutatingwebhookconfigurations',
      name: this.#options.webhookConfigName,
      resyncIntervalMs: this.#resyncMs,
      log: this.#options.log,
      onEvent: () => void this.reconcile(),
    });
    void this.reconcile();
  }

  #stopLeading(): void {
    this.#metrics.setLeader(false);
    this.#webhookWatch?.close();
    this.#webhookWatch = undefined;
  }

  async #reconcileSafely(): Promise<void> {
    if (this.#closed || !this.isLeader()) return;
    try {
      await this.#reconcileOnce();
    } catch (error) {
      // Conflicts (someone else wrote first) and API outages land here; try again soon.
      this.#options.log.warn({ err: (error as Error).message }, 'certificate reconcile failed; retrying');
      if (!this.#retry && !this.#closed) {
        this.#retry = setTimeout(() => {
          this.#retry = undefined;
          void this.reconcile();
        }, Math.min(5_000, this.#resyncMs));
      }
    }
  }

  async #reconcileOnce(): Promise<void> {
    const { log } = this.#options;
    const now = this.#clock();
    let stored: StoredTlsSecret | undefined = await this.#store.read();
    let state: TlsState;
    if (stored) {
      state = stored.state;
    } else {
      // Deleted (or never made). Put back what this replica last saw, so the CA and the published
      // bundle stay as they are; only without any memory is a new CA made.
      const remembered = this.#remembered ?? this.source.lastState();
      state = remembered ?? {};
      log.warn({ secret: this.#store.name, restoring: remembered !== undefined }, remembered ? 'TLS Secret missing; restoring it' : 'TLS Secret missing; creating a new CA');
    }
    for (let pass = 0; pass < 3; pass++) {
      const config = await this.#webhooks.read();
      if (!config && !this.#missingConfigLogged) {
        log.warn({ mutatingWebhookConfiguration: this.#webhooks.name }, 'webhook configuration not found; the caBundle cannot be published yet');
      }
      this.#missingConfigLogged = !config;
      const settled = await settle(state, now, this.policy, publishedFingerprints(config));
      if (!stored || settled.steps.length > 0) {
        if (!this.isLeader() || this.#closed) return; // lost the Lease while generating keys
        stored = stored ? await this.#store.replace(stored.secret, settled.state) : await this.#store.create(settled.state);
        for (const step of settled.steps) {
          log.info({ step: step.kind, ...('reason' in step ? { reason: step.reason } : {}) }, 'certificate step');
          for (const kind of rotatedBy(step)) this.#metrics.countRotation(kind);
        }
        void this.source.refresh();
      }
      state = stored.state;
      this.#remembered = state;
      if (!config) return;
      const published = await this.#webhooks.publish(config, caBundleOf(caBundlePem(state)));
      if (!published) return;
      this.#metrics.countCaBundlePatch();
      log.info({ mutatingWebhookConfiguration: this.#webhooks.name, webhooks: config.webhooks?.length ?? 0 }, 'caBundle published');
      // Another pass: the new bundle may let a pending rollover step proceed.
    }
  }

  async close(): Promise<void> {
    this.#closed = true;
    if (this.#retry) clearTimeout(this.#retry);
    this.#secretWatch?.close();
    this.#webhookWatch?.close();
    await this.#elector.stop();
    this.source.close();
  }
}
