// The floor: the least a Node.js HTTPS webhook can do. A bare node:https server that reads the body,
// JSON.parses it and answers a fixed AdmissionReview. Same TLS key, keep-alive and timeouts as the
// webhook, so the webhook/floor ratio measures only what the webhook adds.
// Usage: node floor-server.js PORT CERT_FILE KEY_FILE
import { readFileSync } from 'node:fs';
import { createServer } from 'node:https';

const [portText, certPath, keyPath] = process.argv.slice(2);
if (portText === undefined || certPath === undefined || keyPath === undefined) {
  process.stderr.write('usage: floor-server PORT CERT_FILE KEY_FILE\n');
  process.exit(64);
}

const ANSWER = JSON.stringify({
  apiVersion: 'admission.k8s.io/v1',
  kind: 'AdmissionReview',
  response: { uid: '00000000-0000-0000-0000-000000000000', allowed: true },
});
const HEADERS = { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(ANSWER) };

const server = createServer(
  {
    cert: readFileSync(certPath),
    key: readFileSync(keyPath),
    minVersion: 'TLSv1.2',
    keepAliveTimeout: 30_000,
    requestTimeout: 30_000,
  },
  (request, response) => {
    if (request.method === 'GET') {
      response.writeHead(200, HEADERS).end(ANSWER);
      return;
    }
    const chunks: Buffer[] = [];
    request.on('data', (chunk: Buffer) => chunks.push(chunk));
    request.on('end', () => {
      try {
        JSON.parse(Buffer.concat(chunks).toString('utf8'));
      } catch {
        response.writeHead(400).end();
        return;
      }
      response.writeHead(200, HEADERS).end(ANSWER);
    });
  },
);
server.listen(Number(portText), '127.0.0.1');
process.on('SIGTERM', () => server.close(() => process.exit(0)));
