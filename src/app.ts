// Owns the HTTP surface as a Fastify app factory: routes, body limits, content types and the error
// contract (4xx JSON for bad input, an AdmissionReview for every request that is one). Listening,
// TLS files and signals belong to server.ts; the app is built the same way for tests and production.
import fastify, { LogController, type FastifyError, type FastifyInstance, type FastifyServerOptions } from 'fastify';
import { STATUS_CODES } from 'node:http';
import type { SecureContextOptions } from 'node:tls';
import secureJsonParse from 'secure-json-parse';
import {
  buildReviewResponse,
  describeEnvelopeProblem,
  reviewAdmission,
  type AdmissionContext,
  type AdmissionOutcome,
  type AdmissionRequest,
  type AdmissionReview,
} from './admission.js';
import type { Config } from './config.js';
import type { Logger } from './log.js';
import type { LookupResult } from './metrics.js';
import type { NamespaceLabelSource } from './namespaces.js';
import { createPatchGuard } from './patch.js';
import type { Labels } from './pod.js';

export interface AppOptions {
  config: Config;
  namespaces: NamespaceLabelSource;
  log: Logger;
  /** TLS options: when given the app serves HTTPS (TLS 1.2 minimum unless the options say otherwise). */
  https?: SecureContextOptions & { minVersion?: 'TLSv1.2' | 'TLSv1.3' };
  /** Extra readiness condition (for example "a valid certificate is loaded"). */
  isReady?: () => boolean;
  /** Called after every admission decision (metrics). */
  onAdmission?: (outcome: AdmissionOutcome, durationSeconds: number) => void;
  /** Called once per admission that names a namespace: how its labels were found (metrics). */
  onNamespaceLookup?: (result: LookupResult) => void;
  /** Keep-alive and request timeouts, so slow or idle clients cannot hold the server. */
  keepAliveTimeoutMs?: number;
  requestTimeoutMs?: number;
}

export const MUTATE_PATH = '/mutate';

export function buildApp(options: AppOptions): FastifyInstance {
  const { config, namespaces, log } = options;
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
    keepAliveTimeout: options.keepAliveTimeoutMs ?? 30_000,
    requestTimeout: options.requestTimeoutMs ?? 30_000,
    ...(options.https ? { https: { minVersion: 'TLSv1.2', ...options.https } } : {}),
  };
  const app = fastify(serverOptions) as unknown as FastifyInstance;
  const guard = createPatchGuard(config.labelPrefix);

  // Only JSON is an AdmissionReview; anything else gets 415 from Fastify. Our own JSON parser (still
  // secure-json-parse, as Fastify's) so that a bad body is answered with what exactly is wrong.
  app.removeContentTypeParser(['text/plain', 'application/json']);
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_request, body, done) => {
    if (body === '') return done(badRequest('request body is empty'), undefined);
    try {
      done(null, secureJsonParse.parse(body, undefined, { protoAction: 'error', constructorAction: 'error' }));
    } catch (error) {
      done(badRequest(`malformed JSON: ${(error as Error).message}`), undefined);
    }
  });

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
    const outcome = await decideWithLabels(review.request, { config, guard }, namespaces, log, options.onNamespaceLookup);
    const durationSeconds = Number(process.hrtime.bigint() - started) / 1e9;
    if (outcome.error) {
      log.error({ uid: review.request.uid, err: outcome.error }, 'admission failed; Pod admitted unchanged');
    }
    log.info({ ...outcome.audit, durationMs: Math.round(durationSeconds * 1e6) / 1e3 }, 'admission');
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

  app.get('/healthz', (_request, reply) => reply.send({ status: 'ok' }));

  app.get('/readyz', (_request, reply) => {
    const labelState = namespaces.state();
    const ready = namespaces.isSynced() && (options.isReady?.() ?? true);
    return reply.code(ready ? 200 : 503).send({ status: ready ? 'ready' : 'not ready', namespaces: labelState });
  });

  return app;
}

/**
 * Decide from the cached labels first. Only when the policy says the namespace's labels were the one
 * thing missing (reason namespace-unknown: the Pod is a job Pod in a namespace that is not excluded)
 * is the source's slow path (one API read) worth taking; the policy stays the only place that
 * decides which Pods are candidates.
 */
async function decideWithLabels(
  request: AdmissionRequest,
  context: AdmissionContext,
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
