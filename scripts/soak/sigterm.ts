// Soak scenario: SIGTERM while requests flow, including one request whose body is still arriving.
// Criteria: every request the webhook received (it wrote an audit line for it) is answered, no request
// is reset or cut, the process exits 0 within the grace period, and new connections are refused
// (ECONNREFUSED) from then on.
import { randomUUID } from 'node:crypto';
import { Readable } from 'node:stream';
import { createAgent, makeReview, runLoad, sendReview, tally, type RequestRecord } from './load.js';
import type { ScenarioResult, SoakContext } from './scenario.js';
import { startWebhookWithNewCertificate, waitFor } from './webhook-process.js';

const GRACE_SECONDS = 20;

export async function sigtermUnderLoad(context: SoakContext): Promise<ScenarioResult> {
  const problems: string[] = [];
  const webhook = await startWebhookWithNewCertificate(context, ['--grace-period', String(GRACE_SECONDS)]);
  const target = { port: webhook.port, ca: context.ca.cert };
  const agent = createAgent(target);
  let exited = false;
  void webhook.exited.then(() => (exited = true));
  const load = runLoad({ target, keepAliveWorkers: 6, freshWorkers: 2, shouldStop: () => exited });

  // One request whose first half is sent before SIGTERM and second half after it.
  const slowUid = randomUUID();
  const slowBody = Buffer.from(makeReview(slowUid));
  let releaseSecondHalf: () => void = () => undefined;
  const secondHalfReleased = new Promise<void>((resolve) => (releaseSecondHalf = resolve));
  let firstHalfSent = false;
  const slowRequest = (async (): Promise<RequestRecord> => {
    const halves = async function* () {
      yield slowBody.subarray(0, slowBody.length / 2);
      firstHalfSent = true;
      await secondHalfReleased;
      yield slowBody.subarray(slowBody.length / 2);
    };
    // Its own connection, so that its socket is busy (not idle) when the signal lands.
    const slowAgent = createAgent({ port: webhook.port, ca: context.ca.cert });
    try {
      return await sendReview(slowAgent, webhook.port, { fresh: true, uid: slowUid, body: Readable.from(halves()) });
    } finally {
      await slowAgent.close();
    }
  })();

  let signalledAt = 0;
  let exit: { code: number | null; signal: NodeJS.Signals | null; at: number } | undefined;
  const afterExit: RequestRecord[] = [];
  try {
    await waitFor(() => load.records.length >= 1500 && firstHalfSent, 20_000);
    // Give the first half time to cross loopback before the signal.
    await new Promise((resolve) => setTimeout(resolve, 200));
    signalledAt = Date.now();
    webhook.child.kill('SIGTERM');
    setTimeout(releaseSecondHalf, 300);
    exit = await Promise.race([webhook.exited, new Promise<undefined>((resolve) => setTimeout(resolve, (GRACE_SECONDS + 5) * 1000, undefined))]);
    if (exit === undefined) {
      webhook.kill();
      problems.push(`the webhook had not exited ${GRACE_SECONDS + 5} s after SIGTERM`);
    }
    await load.done;
    // After exit, new connections must be refused, every time.
    for (let attempt = 0; attempt < 20; attempt += 1) afterExit.push(await sendReview(agent, webhook.port, { fresh: true }));
  } finally {
    releaseSecondHalf();
    webhook.kill();
    await agent.close();
  }
  const slow = await slowRequest;

  const records = [...load.records, slow, ...afterExit];
  const byUid = new Map(records.map((record) => [record.uid, record]));
  const receivedUnanswered = [...webhook.decided].filter((uid) => byUid.get(uid)?.outcome !== 'answered');
  const requests = tally(records);
  const answeredAfterSignal = records.filter((record) => record.outcome === 'answered' && record.finishedAt >= signalledAt).length;
  const refusedAfterSignal = records.filter((record) => record.outcome === 'refused' && record.sentAt >= signalledAt).length;

  if (receivedUnanswered.length > 0) problems.push(`${receivedUnanswered.length} requests were received but not answered`);
  if (requests.failed > 0) problems.push(`${requests.failed} requests failed (reset, cut or wrong answer)`);
  if (slow.outcome !== 'answered') problems.push(`the request whose body straddled SIGTERM was not answered: ${slow.outcome} ${slow.detail ?? ''}`);
  if (exit && (exit.code !== 0 || exit.signal !== null)) problems.push(`exit code ${exit.code} signal ${exit.signal}, expected 0`);
  if (exit && exit.at - signalledAt > GRACE_SECONDS * 1000) problems.push(`exit took ${exit.at - signalledAt} ms, over the grace period`);
  if (afterExit.some((record) => record.detail !== 'ECONNREFUSED')) problems.push('a connection after exit was not refused with ECONNREFUSED');
  if (requests.refused === 0) problems.push('no new connection was refused after SIGTERM');
  const received = webhook.decided.size;
  return {
    name: `SIGTERM mid-load (grace period ${GRACE_SECONDS} s)`,
    requests,
    figures: {
      'received by the webhook (audit lines)': received,
      'received but unanswered': receivedUnanswered.length,
      'answered after SIGTERM (in flight, or sent on a connection still open)': answeredAfterSignal,
      'request with half its body sent before SIGTERM': slow.outcome,
      'refused while connecting, after SIGTERM': refusedAfterSignal,
      'refused after exit (20 attempts)': afterExit.filter((record) => record.detail === 'ECONNREFUSED').length + ' ECONNREFUSED',
      'exit': exit ? `code ${exit.code}, ${exit.at - signalledAt} ms after SIGTERM` : 'none',
    },
    problems,
  };
}
