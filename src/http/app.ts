// Owns the HTTP surface as a Fastify app factory: routes, body limits, content types and the error
// contract (4xx JSON for bad input, an AdmissionReview for every request that is one). Listening,
// TLS files and signals belong to server.ts; the app is built the same way for tests and production.
import fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { Server as HttpsServer, ServerOptions as HttpsServerOptions } from 'node:https';
import type { TlsOptions } from 'node:tls';
import { buildReviewResponse, describeEnvelopeProblem, reviewAdmission, type AdmissionContext, type AdmissionOutcome, type AdmissionRequest, type AdmissionReview } from '../webhook/admission.js';
import type { Config } from '../webhook/config.js';
import { CERTIFICATE_PATH, certificateBlocks } from '../certs/certificate-source.js';
import { parseJsonBody } from './json-body.js';
import type { Logger } from '../log.js';
import type { NamespaceLabelSource } from '../webhook/namespace-labels.js';
import { createPatchGuard } from '../webhook/patch.js';
import { annotationKeys } from '../webhook/pull-secret-status.js';
import type { Labels } from '../webhook/pod.js';

/**
 * What bounds a connection, so slow (slowloris) or idle clients cannot hold the server. Every phase
 * of a connection has a limit: the TLS handshake, the request headers, the whole request, and the
 * idle time between two requests on a kept-alive connection.
 */
export interface ConnectionLimits {
  /** Open connections beyond this are closed as soon as they are accepted. */
  maxConnections: number;
  /** From TCP accept to a finished TLS handshake. */
  handshakeTimeoutMs: number;
  /** From the start of a request to its last header. */
  headersTimeoutMs: number;
  /**
   * Silence allowed on a connection outside the keep-alive wait: it bounds a client that finishes
   * the handshake and then sends nothing, which Node's header timeout does not cover.
   */
  socketIdleTimeoutMs: number;
  /** From the start of a request to its last body byte. */
  requestTimeoutMs: number;
  /** Idle time allowed between two requests on one connection. */
  keepAliveTimeoutMs: number;
  /** How often Node checks the headers and request timeouts. */
  checkIntervalMs: number;
}

export const DEFAULT_CONNECTION_LIMITS: Readonly<ConnectionLimits> = Object.freeze({
  // Enough for every API server replica's connection pool many times over; each open TLS connection
  // costs tens of KiB, so 1000 stays well inside a small memory limit.
  maxConnections: 1000,
  // The API server sends a whole AdmissionReview at once on loopback-class latency: a client that
  // needs 10 s for a handshake or for its headers is stalling, not busy.
  handshakeTimeoutMs: 10_000,
  headersTimeoutMs: 10_000,
  socketIdleTimeoutMs: 10_000,
  // A webhook's timeoutSeconds is at most 30: after that the API server has given up on the answer.
  requestTimeoutMs: 30_000,
  // Longer than the idle timeout of Go's HTTP client (90 s), which the API server's webhook client
  // keeps: the API server then closes idle connections first and never writes a request onto a
  // connection we are closing at that very moment.
  keepAliveTimeoutMs: 95_000,
  // Node's default (30 s) would let a 10 s header timeout fire only after up to 40 s.
  checkIntervalMs: 1_000,
});

export interface AppOptions {
  /** The config at start: the body limit and label prefix come from it. */
  config: Config;
  /** The config in force now (a reloaded config file); decisions use it. Default: `config`. */
  currentConfig?: () => Config;
  namespaces: NamespaceLabelSource;
  log: Logger;
  /** TLS options: when given the app serves HTTPS (see tls-policy.ts for how they are made). */
  https?: TlsOptions;
  /** Extra readiness condition (for example "a valid certificate is loaded"). */
  isReady?: () => boolean;
  /** True once the server has begun to shut down: answers then close their connection. */
  isDraining?: () => boolean;
  /** Called after every admission decision (metrics). */
  onAdmission?: (outcome: AdmissionOutcome, durationSeconds: number) => void;
  /** Called once per admission that names a namespace: how its labels were found (metrics). */
  onNamespaceLookup?: (result: LookupResult) => void;
  limits?: Partial<ConnectionLimits>;
  /** The serving certificate chain (PEM) being served, for GET /certificate; undefined before one arrived. */
  servingCertificate?: () => string | undefined;
}

/** How a namespace's labels were found for one admission (the `result` label of lookups). */
export type LookupResult = 'hit' | 'miss' | 'fetched' | 'not-found' | 'failed';

export const MUTATE_PATH = '/mutate';

export function buildApp(options: AppOptions): FastifyInstance {
  const { config, namespaces, log } = options;
  const limits: ConnectionLimits = { ...DEFAULT_CONNECTION_LIMITS, ...options.limits };
  const httpsOptions: HttpsServerOptions | undefined = options.https && {
    minVersion: 'TLSv1.2',
    ...options.https,
    handshakeTimeout: limits.handshakeTimeoutMs,
    headersTimeout: limits.headersTimeoutMs,
    connectionsCheckingInterval: limits.checkIntervalMs,
  };
  const serverOptions: FastifyServerOptions = {
    loggerInstance: log,
    // One audit line per admission replaces Fastify's per-request lines.
    logController: new LogController({ disableRequestLogging: true }),
    // An AdmissionReview carries the object and (on UPDATE) the old object, each up to ~1.5 MiB:
    // Fastify's 1 MiB default would reject legal requests.
    bodyLimit: config.maxRequestBytes,
    // Requests that arrive on a kept-alive connection while we drain are still answered: a 503 would
    // make the API server admit the Pod without injection (failurePolicy Ignore).
    return503OnClosing: false,
    keepAliveTimeout: limits.keepAliveTimeoutMs,
    requestTimeout: limits.requestTimeoutMs,
    connectionTimeout: limits.socketIdleTimeoutMs,
    // HTTP/2 stays off (fastify's default); tls-policy.ts offers only http/1.1 over ALPN.
    ...(httpsOptions ? { https: httpsOptions } : {}),
  };
  const app = fastify(serverOptions) as unknown as FastifyInstance;
  applyConnectionLimits(app.server as HttpsServer, limits, log);
  // Built once per config, not per request. The label prefix is a restart-only key
  // (files/config-file.ts), so one guard and one status key serve every reload. The Pod's nesting is
  // not walked: nothing here recurses into it (copy-on-write copies single objects; the recorded
  // patch holds only values it made).
  const currentConfig = options.currentConfig ?? (() => config);
  const guard = createPatchGuard(config.labelPrefix);
  const statusAnnotation = annotationKeys(config.labelPrefix).pullSecretStatus;
  // The answer is the patch: the mutated Pod is never built (podResult false).
  let context: DecisionContext = { config, guard, wholePodDepth: false, podResult: false, statusAnnotation };
  const contextFor = (current: Config): DecisionContext => {
    if (context.config !== current) context = { config: current, guard, wholePodDepth: false, podResult: false, statusAnnotation };
    return context;
  };

  // While draining, every answer closes its connection, so the client opens its next one elsewhere
  // instead of writing onto a connection we are about to close.
  app.addHook('onSend', (_request, reply, payload, done) => {
    if (options.isDraining?.()) void reply.header('connection', 'close');
    done(null, payload);
  });

  // Only JSON is an AdmissionReview; anything else gets 415 from Fastify. Our own JSON parser (plain
  // JSON.parse unless a poisoned key could hide, else secure-json-parse, see json-body.ts) so that a
  // bad body is answered with what exactly is wrong.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(badRequest('request body is empty'), undefined);
    try {
      done(null, parseJsonBody(body as string));
    } catch (error) {
      done(badRequest(`malformed JSON: ${describeJsonError(error as Error)}`), undefined);
    }
  });
  // Audit lines are AuditRecords (names and decisions only, by type), so they skip redaction, the
  // backstop for objects that should never be logged: it cost more than the rest of the line.
  // Every other line keeps it.
  const auditLog = log.child({}, { redact: [] });

  app.setErrorHandler((error: FastifyError, request, reply) => {
    const statusCode = error.statusCode ?? 500;
    if (statusCode >= 500) {
      request.log.error({ err: error, url: request.url }, 'unexpected error serving request');
      return reply.code(500).send({ statusCode: 500, error: 'Internal Server Error', message: 'internal error; see the webhook log' });
    }
    return reply.code(statusCode).send({ statusCode, error: STATUS_CODES[statusCode] ?? 'Error', message: error.message });
  });

  app.setNotFoundHandler((request, reply) =>
    reply.code(404).send({ statusCode: 404, error: 'Not Found', message: `no route ${request.method} ${request.url.split('?')[0]}` }),
  );

  app.post(MUTATE_PATH, async (request, reply) => {
    const started = process.hrtime.bigint();
    const problem = describeEnvelopeProblem(request.body);
    if (problem !== undefined) {
      request.log.warn({ problem }, 'rejected a request that is not an AdmissionReview');
      return reply.code(400).send({ statusCode: 400, error: 'Bad Request', message: `not an AdmissionReview: ${problem}` });
    }
    const review = request.body as AdmissionReview;
    const outcome = await decideWithLabels(review.request, contextFor(currentConfig()), namespaces, log, options.onNamespaceLookup);
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (outcome.error) {
      log.error({ uid: review.request.uid, err: outcome.error }, 'admission failed; Pod admitted unchanged');
    }
    auditLog.info({ ...outcome.audit, durationMs: Math.round(durationSeconds * 1e6) / 1e3 }, 'admission');
    options.onAdmission?.(outcome, durationSeconds);
    return reply.send(buildReviewResponse(review.apiVersion, outcome.response));
  });

  app.route({
    method: ['GET', 'PUT', 'PATCH', 'DELETE', 'OPTIONS'],
    url: MUTATE_PATH,
    handler: (request, reply) =>
      reply
        .code(405)
        .header('allow', 'POST')
        .send({ statusCode: 405, error: 'Method Not Allowed', message: `${request.method} is not allowed on ${MUTATE_PATH}; use POST` }),
  });

  app.get(CERTIFICATE_PATH, (_request, reply) => {
    const chain = certificateBlocks(options.servingCertificate?.() ?? '');
    if (chain.length === 0) return reply.code(503).send({ statusCode: 503, error: 'Service Unavailable', message: 'no serving certificate yet' });
    // text/plain, not application/x-pem-file: the Kubernetes clients read only text or JSON through the proxy.
    return reply.type('text/plain; charset=utf-8').send(`${chain.join('\n')}\n`);
  });

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', (_request, reply) => {
    const labelState = namespaces.state();
    const ready = namespaces.isSynced() && (options.isReady?.() ?? true) && !(options.isDraining?.() ?? false);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', namespaces: labelState });
  });

  return app;
}

function applyConnectionLimits(server: HttpsServer, limits: ConnectionLimits, log: Logger): void {
  server.maxConnections = limits.maxConnections;
  // Set again after creation: fastify passes only some options through to the server it creates.
  server.headersTimeout = limits.headersTimeoutMs;
  server.requestTimeout = limits.requestTimeoutMs;
  server.keepAliveTimeout = limits.keepAliveTimeoutMs;
  // Node closes connections over the limit at once ('drop'); say so at most every 10 s, so a flood
  // of connections cannot become a flood of log lines.
  let dropped = 0;
  let lastReport = 0;
  server.on('drop', () => {
    dropped += 1;
    const now = Date.now();
    if (now - lastReport < 10_000) return;
    lastReport = now;
    log.warn({ maxConnections: limits.maxConnections, droppedSinceLastReport: dropped }, 'connection limit reached; new connections are closed');
    dropped = 0;
  });
}

/**
 * What is wrong with a body that is not JSON, without quoting it: V8's messages may carry a slice of
 * the text ('Unexpected token 'x', "...{"value":"hunter2"..." is not valid JSON'), and the body may
 * hold a Pod's env values. The answer goes back to the API server, which logs it.
 */
function describeJsonError(error: Error): string {
  return error.message.replace(/, ".*" is not valid JSON$/s, ' (JSON syntax error)');
}

interface DecisionContext extends AdmissionContext {
  /** The namespace annotation the refresher reports the pull Secret's state in. */
  statusAnnotation: string;
}

/**
 * Decide from the cached labels first. Only when the policy says the namespace's labels were the one
 * thing missing (reason namespace-unknown: the Pod is a job Pod in a namespace that is not excluded)
 * is the source's slow path (one API read) worth taking; the policy stays the only place that
 * decides which Pods are candidates.
 */
async function decideWithLabels(
  request: AdmissionRequest,
  context: DecisionContext,
  source: NamespaceLabelSource,
  log: Logger,
  report: ((result: LookupResult) => void) | undefined,
): Promise<AdmissionOutcome> {
  const namespace = request.namespace;
  if (namespace === undefined || namespace === '') return reviewAdmission(request, undefined, context);
  let cached: Labels | undefined;
  try {
    cached = source.get(namespace);
  } catch (error) {
    // Fail open: the policy turns "unknown" into an unchanged Pod with reason namespace-unknown.
    log.warn({ uid: request.uid, namespace, err: (error as Error).message }, 'namespace lookup failed');
  }
  // The refresher's report on the namespace's pull Secret, from the same cache (never an API call).
  const status = source.annotations?.(namespace)?.[context.statusAnnotation];
  if (status !== undefined) context = { ...context, pullSecretStatus: { annotation: status, now: new Date() } };
  const outcome = reviewAdmission(request, cached, context);
  if (cached !== undefined || outcome.audit.reason !== 'namespace-unknown' || source.fetch === undefined) {
    report?.(cached !== undefined ? 'hit' : 'miss');
    return outcome;
  }
  let fetched: Labels | undefined;
  try {
    fetched = await source.fetch(namespace);
  } catch (error) {
    report?.('failed');
    log.warn({ uid: request.uid, namespace, err: (error as Error).message }, 'namespace lookup failed; Pod admitted unchanged');
    return outcome;
  }
  report?.(fetched === undefined ? 'not-found' : 'fetched');
  return fetched === undefined ? outcome : reviewAdmission(request, fetched, context);
}

function badRequest(message: string): FastifyError {
  return Object.assign(new Error(message), { statusCode: 400 }) as FastifyError;
}
