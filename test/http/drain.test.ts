// The drain after SIGTERM (server.close): a request on a kept-alive connection is still answered, and
// its answer carries `Connection: close` so the client reconnects to another replica; before the
// drain the same connection is kept alive. Real TLS, one kept-alive socket.
import { Agent, request } from 'node:https';
import t from 'tap';
import { startTestWebhook } from '../helpers/tls-webhook.js';

function get(port: number, agent: Agent, ca: string): Promise<{ status: number; connection: string | undefined; reusedSocket: boolean }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, servername: 'localhost', ca, agent, path: '/healthz' }, (res) => {
      res.resume();
      res.on('end', () => resolve({ status: res.statusCode ?? 0, connection: res.headers.connection, reusedSocket: req.reusedSocket }));
    });
    req.on('error', reject);
    req.end();
  });
}

t.test('answers during the drain close their connection; answers before it keep it alive', async (t) => {
  const webhook = await startTestWebhook(t, { drainMs: 3_000 });
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  t.teardown(() => agent.destroy());

  const before = await get(webhook.port, agent, webhook.ca);
  t.equal(before.status, 200);
  t.equal(before.connection, 'keep-alive', 'before the drain: kept alive');

  const closing = webhook.server.close();
  const during = await get(webhook.port, agent, webhook.ca);
  t.equal(during.status, 200, 'a request on the open connection is still answered');
  t.ok(during.reusedSocket, 'on the same kept-alive socket');
  t.equal(during.connection, 'close', 'and its answer closes the connection');
  const started = Date.now();
  await closing;
  t.ok(Date.now() - started < 3_000, 'with no connection left, the drain ends before its deadline');
});
