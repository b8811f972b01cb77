// Soak scenario: slow and idle clients (slowloris, slow bodies, silent connections, idle keep-alive
// connections), then a flood of connections beyond the limit, while honest clients keep sending
// AdmissionReviews. Criteria: every hostile connection is closed by the webhook within its timeout,
// connections over --max-connections are dropped at once, and honest clients see zero failures
// (those on open keep-alive connections even while the limit is full).
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { createAgent, runLoad, sendReview, tally, type RequestRecord } from './load.js';
import type { ScenarioResult, SoakContext } from './scenario.js';
import { startWebhookWithNewCertificate, stopWebhook, waitFor } from './webhook-process.js';

const MAX_CONNECTIONS = 64;
const KEEP_ALIVE_SECONDS = 3;
/** Node checks header and request timeouts once a second (app.ts), and the machine is shared. */
const SLACK_MS = 3_000;

type AttackKind = 'no TLS handshake' | 'silent after handshake' | 'slow headers (slowloris)' | 'slow body' | 'idle keep-alive';

/** How long each kind may hold a connection, from the webhook's defaults (app.ts) and the flag. */
const BOUND_MS: Record<AttackKind, number> = {
  'no TLS handshake': 10_000,
  'silent after handshake': 10_000,
  'slow headers (slowloris)': 10_000,
  'slow body': 30_000,
  'idle keep-alive': KEEP_ALIVE_SECONDS * 1000,
};

interface Attacker {
  kind: AttackKind;
  openedAt: number;
  established: boolean;
  closedAt?: number;
  status?: string;
  socket: Socket;
}

function openAttacker(kind: AttackKind, port: number, ca: string): Attacker {
  const openedAt = Date.now();
  const socket: Socket =
    kind === 'no TLS handshake' ? netConnect({ host: '127.0.0.1', port }) : tlsConnect({ host: '127.0.0.1', port, ca, servername: 'localhost' });
  const attacker: Attacker = { kind, openedAt, established: false, socket };
  let drip: NodeJS.Timeout | undefined;
  const trickle = (first: string, next: string): void => {
    socket.write(first);
    drip = setInterval(() => socket.writable && socket.write(next), 1000);
  };
  socket.once(kind === 'no TLS handshake' ? 'connect' : 'secureConnect', () => {
    attacker.established = true;
    if (kind === 'slow headers (slowloris)') trickle('POST /mutate HTTP/1.1\r\nHost: localhost\r\n', 'X-Slow: 1\r\n');
    if (kind === 'slow body') {
      trickle('POST /mutate HTTP/1.1\r\nHost: localhost\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{', ' ');
    }
    if (kind === 'idle keep-alive') socket.write('GET /healthz HTTP/1.1\r\nHost: localhost\r\n\r\n');
  });
  socket.on('data', (chunk: Buffer) => {
    // Keep the last status line seen: 200 for the keep-alive probe, 408 for the timed-out ones.
    const match = /^HTTP\/1\.1 (\d{3})/m.exec(chunk.toString('latin1'));
    if (match) attacker.status = match[1];
  });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    attacker.closedAt = Date.now();
    if (drip) clearInterval(drip);
  });
  return attacker;
}

export async function slowAndIdleClients(context: SoakContext): Promise<ScenarioResult> {
  const problems: string[] = [];
  const figures: Record<string, string | number> = {};
  const webhook = await startWebhookWithNewCertificate(context, ['--max-connections', String(MAX_CONNECTIONS), '--keep-alive-timeout', String(KEEP_ALIVE_SECONDS)]);
  const { port } = webhook;
  const ca = context.ca.cert;
  const target = { port, ca };
  const agent = createAgent(target);
  let stopKeepAlive = false;
  let stopFresh = false;
  const keepAliveLoad = runLoad({ target, keepAliveWorkers: 4, freshWorkers: 0, shouldStop: () => stopKeepAlive });
  const freshLoad = runLoad({ target, keepAliveWorkers: 0, freshWorkers: 2, shouldStop: () => stopFresh });
  const attackers: Attacker[] = [];
  const flood: Attacker[] = [];
  const afterFlood: RequestRecord[] = [];
  const started = Date.now();
  try {
    // Phase 1: 48 hostile connections, under the limit of 64.
    const mix: [AttackKind, number][] = [
      ['no TLS handshake', 6],
      ['silent after handshake', 12],
      ['slow headers (slowloris)', 12],
      ['slow body', 12],
      ['idle keep-alive', 6],
    ];
    for (const [kind, count] of mix) for (let i = 0; i < count; i += 1) attackers.push(openAttacker(kind, port, ca));
    const longest = Math.max(...Object.values(BOUND_MS));
    await waitFor(() => attackers.every((attacker) => attacker.closedAt !== undefined), longest + SLACK_MS + 5_000);
    for (const [kind] of mix) {
      const group = attackers.filter((attacker) => attacker.kind === kind);
      const held = group.filter((a) => a.closedAt !== undefined).map((a) => a.closedAt! - a.openedAt);
      const open = group.length - held.length;
      const statuses = [...new Set(group.map((a) => a.status ?? 'none'))].join(',');
      figures[`${kind} x${group.length}`] = `closed by the webhook after ${Math.min(...held)}-${Math.max(...held)} ms (bound ${BOUND_MS[kind]} ms), HTTP status seen: ${statuses}`;
      if (open > 0) problems.push(`${open} "${kind}" connections were still open`);
      if (held.some((ms) => ms > BOUND_MS[kind] + SLACK_MS)) problems.push(`a "${kind}" connection was held longer than ${BOUND_MS[kind] + SLACK_MS} ms`);
      if (group.some((a) => !a.established)) problems.push(`a "${kind}" connection was refused although under the limit`);
      if ((kind === 'slow headers (slowloris)' || kind === 'slow body') && group.some((a) => a.status !== '408')) {
        problems.push(`a "${kind}" connection was closed without a 408 answer`);
      }
    }
    stopFresh = true;
    await freshLoad.done;

    // Phase 2: 150 connections at once, more than the limit; the keep-alive clients go on.
    for (let i = 0; i < 150; i += 1) flood.push(openAttacker('silent after handshake', port, ca));
    await waitFor(() => flood.every((a) => a.established || a.closedAt !== undefined), 15_000);
    const held = flood.filter((a) => a.established).length;
    const dropped = flood.filter((a) => !a.established).length;
    figures['flood of 150 connections'] = `${held} accepted, ${dropped} dropped at once by --max-connections ${MAX_CONNECTIONS}`;
    if (held + 4 > MAX_CONNECTIONS) problems.push(`${held} flood connections were accepted next to 4 keep-alive clients, over the limit of ${MAX_CONNECTIONS}`);
    if (dropped === 0) problems.push('no connection was dropped beyond the limit');
    await waitFor(() => flood.every((a) => a.closedAt !== undefined), BOUND_MS['silent after handshake'] + SLACK_MS + 2_000);
    const lastClose = Math.max(...flood.filter((a) => a.established).map((a) => (a.closedAt ?? Infinity) - a.openedAt));
    figures['accepted flood connections closed after at most'] = `${lastClose} ms`;
    if (!Number.isFinite(lastClose) || lastClose > BOUND_MS['silent after handshake'] + SLACK_MS) {
      problems.push('accepted flood connections were not closed within the idle timeout');
    }
    // Once the flood is reaped, new connections are served again.
    for (let i = 0; i < 20; i += 1) afterFlood.push(await sendReview(agent, port, { fresh: true }));
  } finally {
    stopKeepAlive = true;
    stopFresh = true;
    await Promise.all([keepAliveLoad.done, freshLoad.done]);
    for (const attacker of [...attackers, ...flood]) attacker.socket.destroy();
    await agent.close();
    await stopWebhook(webhook);
  }
  const keepAlive = tally(keepAliveLoad.records);
  const fresh = tally(freshLoad.records);
  const after = tally(afterFlood);
  const requests = tally([...keepAliveLoad.records, ...freshLoad.records, ...afterFlood]);
  figures['honest keep-alive clients (whole run, flood included)'] = `${keepAlive.answered}/${keepAlive.sent} answered`;
  figures['honest new-connection clients (phase 1)'] = `${fresh.answered}/${fresh.sent} answered`;
  figures['new connections after the flood was reaped'] = `${after.answered}/${after.sent} answered`;
  figures.duration = `${((Date.now() - started) / 1000).toFixed(1)} s`;
  const limitLogged = webhook.lines.some((line) => line.msg.startsWith('connection limit reached'));
  figures['webhook logged the connection limit'] = limitLogged ? 'yes' : 'no';
  if (requests.failed > 0 || requests.refused > 0) problems.push(`${requests.failed + requests.refused} honest requests failed`);
  if (keepAlive.answered === 0 || fresh.answered === 0) problems.push('honest clients sent nothing');
  return { name: `slow and idle clients, then a connection flood (--max-connections ${MAX_CONNECTIONS})`, requests, figures, problems };
}
