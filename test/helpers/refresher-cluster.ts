// Shared set-up for the refresher's tests: the local Kubernetes API seeded with Namespaces, the local
// ECR/STS endpoint reached by the real AWS SDK through the endpoint variables (static keys in the
// environment), a manual clock whose timers fire as it is moved, and readers for Secrets and the
// status annotation.
import { KubeConfig } from '@kubernetes/client-node';
import type { Test } from 'tap';
import type { Clock } from '../../src/refresher/clock.js';
import { startRefresher, type RefresherOptions, type RunningRefresher } from '../../src/refresher/refresher.js';
import { parseConfig, type Config } from '../../src/webhook/config.js';
import { parsePullSecretStatus, type PullSecretStatus } from '../../src/webhook/pull-secret-status.js';
import { FakeAws, type FakeAwsOptions } from './fake-aws.js';
import { FakeKubeApi, type KubeObject } from './fake-kube-api.js';
import { captureLog, type CapturedLog } from './log-capture.js';

export const NAMESPACES = '/api/v1/namespaces';
export const REFRESHER_NAMESPACE = 'buildkite-ecr-injector';
export const LEASES = `/apis/coordination.k8s.io/v1/namespaces/${REFRESHER_NAMESPACE}/leases`;
export const LEASE = 'buildkite-ecr-injector-refresher';
export const STATUS = 'buildkite-ecr-injector/pull-secret-status';
export const REGISTRIES = 'buildkite-ecr-injector/ecr-registries';
export const MANAGED = { 'app.kubernetes.io/managed-by': 'buildkite-ecr-injector' };
export const EAST = '123456789012.dkr.ecr.us-east-1.amazonaws.com';
export const WEST = '210987654321.dkr.ecr.eu-west-1.amazonaws.com';
export const ROLE = 'arn:aws:iam::210987654321:role/ecr-pull';
export const STATIC_KEY = 'AKIASTATICEXAMPLE001';

export const secretsOf = (namespace: string) => `${NAMESPACES}/${namespace}/secrets`;

export function testConfig(extra: Record<string, unknown> = {}): Config {
  return parseConfig({
    defaults: { pullSecret: 'ecr-credentials' },
    pullSecrets: { registries: [{ host: EAST }, { host: WEST, roleArn: ROLE }] },
    ...extra,
  });
}

export function namespace(name: string, labels: Record<string, string>, annotations: Record<string, string> = {}): KubeObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name, labels: { 'kubernetes.io/metadata.name': name, ...labels }, annotations }, status: { phase: 'Active' } };
}

export const OPTED_IN = { 'buildkite-ecr-injector/inject': 'enabled' };

/** Timers fire when the clock is moved past them, in time order. */
export class ManualClock implements Clock {
  #now: number;
  #timers: { at: number; fn: () => void; id: number }[] = [];
  #ids = 0;
  constructor(start = Date.now()) {
    this.#now = start;
  }
  now = (): number => this.#now;
  setTimer(delayMs: number, fn: () => void): () => void {
    const timer = { at: this.#now + Math.max(0, delayMs), fn, id: ++this.#ids };
    this.#timers.push(timer);
    return () => {
      this.#timers = this.#timers.filter((t) => t !== timer);
    };
  }
  /** Move time forward, firing every timer that comes due on the way. */
  advance(ms: number): void {
    const target = this.#now + ms;
    for (;;) {
      this.#timers.sort((a, b) => a.at - b.at || a.id - b.id);
      const next = this.#timers[0];
      if (!next || next.at > target) break;
      this.#timers.shift();
      this.#now = Math.max(this.#now, next.at);
      next.fn();
    }
    this.#now = target;
  }
  pending(): number[] {
    return this.#timers.map((t) => t.at).sort((a, b) => a - b);
  }
}

export interface RefresherCluster {
  api: FakeKubeApi;
  aws: FakeAws;
  kubeConfig: (token?: string) => KubeConfig;
  captured: CapturedLog;
  start(options?: Partial<RefresherOptions>): Promise<RunningRefresher>;
  secret(namespace: string, name?: string): KubeObject & { type?: string; data?: Record<string, string> } | undefined;
  /** host -> {username, password, auth} of a pull Secret. */
  auths(namespace: string, name?: string): Record<string, { username: string; password: string; auth: string }> | undefined;
  status(namespace: string): PullSecretStatus | undefined;
  rawStatus(namespace: string): string | undefined;
  relabel(name: string, labels: Record<string, string | undefined>, annotations?: Record<string, string | undefined>): void;
}

export interface ClusterOptions {
  namespaces?: KubeObject[];
  aws?: FakeAwsOptions;
  logLevel?: string;
}

export async function startRefresherCluster(t: Test, options: ClusterOptions = {}): Promise<RefresherCluster> {
  const api = new FakeKubeApi();
  api.seed(NAMESPACES, options.namespaces ?? []);
  await api.start();
  const aws = new FakeAws(options.aws);
  await aws.start();
  for (const name of ['AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ENDPOINT_URL', 'AWS_PROFILE']) delete process.env[name];
  Object.assign(process.env, aws.endpointEnv(), { AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret' });
  const captured = captureLog(options.logLevel ?? 'debug');
  const running: RunningRefresher[] = [];
  t.teardown(async () => {
    for (const refresher of running) await refresher.close();
    await api.stop();
    await aws.stop();
  });
  const kubeConfig = (token = 'refresher') => {
    const config = new KubeConfig();
    config.loadFromString(api.kubeconfig(REFRESHER_NAMESPACE, token));
    return config;
  };
  const cluster: RefresherCluster = {
    api,
    aws,
    kubeConfig,
    captured,
    async start(extra = {}) {
      const refresher = await startRefresher({
        kubeConfig: kubeConfig(),
        config: testConfig(),
        log: captured.log,
        namespace: REFRESHER_NAMESPACE,
        leaseName: LEASE,
        identity: 'refresher-0',
        tokens: { maxAttempts: 1, failureBackoffInitialMs: 50, failureBackoffMaxMs: 200 },
        reconciler: { backoffInitialMs: 50, backoffMaxMs: 400, informer: { backoffInitialMs: 50, backoffMaxMs: 250 } },
        leaderElection: { leaseDurationMs: 3_000, renewDeadlineMs: 2_000, retryPeriodMs: 200 },
        ...extra,
      });
      running.push(refresher);
      return refresher;
    },
    secret: (ns, name = 'ecr-credentials') => api.get(secretsOf(ns), name),
    auths(ns, name = 'ecr-credentials') {
      const data = cluster.secret(ns, name)?.data?.['.dockerconfigjson'];
      if (data === undefined) return undefined;
      return (JSON.parse(Buffer.from(data, 'base64').toString('utf8')) as { auths: Record<string, { username: string; password: string; auth: string }> }).auths;
    },
    rawStatus: (ns) => api.get(NAMESPACES, ns)?.metadata.annotations?.[STATUS],
    status: (ns) => parsePullSecretStatus(cluster.rawStatus(ns)),
    relabel(name, labels, annotations = {}) {
      const current = api.get(NAMESPACES, name)!;
      const merge = (into: Record<string, string> | undefined, changes: Record<string, string | undefined>) => {
        const result = { ...into };
        for (const [key, value] of Object.entries(changes)) {
          if (value === undefined) delete result[key];
          else result[key] = value;
        }
        return result;
      };
      current.metadata.labels = merge(current.metadata.labels, labels);
      current.metadata.annotations = merge(current.metadata.annotations, annotations);
      api.put(NAMESPACES, current);
    },
  };
  return cluster;
}
