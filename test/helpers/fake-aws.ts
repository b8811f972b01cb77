// A local HTTP endpoint that speaks enough AWS for the pull-Secret refresher, reached by the real AWS
// SDK through AWS_ENDPOINT_URL_ECR / AWS_ENDPOINT_URL_STS:
//   - ECR's JSON 1.1 protocol: `X-Amz-Target: AmazonEC2ContainerRegistry_V20150921.GetAuthorizationToken`
//     answered with `authorizationData: [{authorizationToken, expiresAt, proxyEndpoint}]`, the token
//     being base64 of `AWS:<password>` and the password base64 JSON with an `expiration`, as real ones;
//   - STS's query protocol: `Action=AssumeRole` (signed) and `Action=AssumeRoleWithWebIdentity` (the
//     IRSA token file's JWT, unsigned), answered in XML as the real service does, with credentials
//     whose access key says which role they are for.
// Every request is recorded (service, action, the region and access key from the SigV4 credential
// scope), and failures can be injected: the next N calls, or every call for one region, answer an
// AWS error (ThrottlingException with HTTP 400 as ECR throttles, AccessDeniedException, a 500...).
import { randomUUID } from 'node:crypto';
import { once } from 'node:events';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';

export interface AwsCall {
  service: 'ecr' | 'sts';
  action: string;
  /** From the SigV4 credential scope; undefined for unsigned calls (AssumeRoleWithWebIdentity). */
  region: string | undefined;
  accessKeyId: string | undefined;
  /** The role whose temporary credentials signed the call, when they came from this fake's STS. */
  signedAsRole: string | undefined;
  /** STS: the role asked for, and the web identity token sent. */
  roleArn?: string;
  webIdentityToken?: string;
  /** The HTTP status answered. */
  status?: number;
}

export interface IssuedToken {
  region: string;
  password: string;
  /** base64 of `AWS:<password>`: the authorizationToken, and a docker config's `auth`. */
  authorizationToken: string;
  expiresAt: Date;
}

export interface AwsFault {
  service?: 'ecr' | 'sts';
  /** Only calls signed for this region. */
  region?: string;
  /** How many calls to fail; Infinity until cleared. */
  count: number;
  status: number;
  type: string;
  message: string;
}

export const THROTTLING: Omit<AwsFault, 'count'> = { service: 'ecr', status: 400, type: 'ThrottlingException', message: 'Rate exceeded' };
export const ACCESS_DENIED: Omit<AwsFault, 'count'> = {
  service: 'ecr',
  status: 400,
  type: 'AccessDeniedException',
  message: 'User is not authorized to perform: ecr:GetAuthorizationToken',
};

export interface FakeAwsOptions {
  /** Milliseconds since the epoch for token expiry; default the real clock. */
  now?: () => number;
  /** How long issued tokens live (default 12 h, as ECR's). */
  tokenLifetimeMs?: number;
  /** Text at the start of every password, e.g. a canary prefix. */
  passwordPrefix?: string;
}

const ECR_TARGET_PREFIX = 'AmazonEC2ContainerRegistry_V20150921.';
const STS_NAMESPACE = 'https://sts.amazonaws.com/doc/2011-06-15/';

export class FakeAws {
  readonly calls: AwsCall[] = [];
  readonly issued: IssuedToken[] = [];
  readonly #faults: AwsFault[] = [];
  readonly #roleOfKey = new Map<string, string>();
  readonly #options: FakeAwsOptions;
  #server: Server | undefined;
  #port = 0;
  #keys = 0;

  constructor(options: FakeAwsOptions = {}) {
    this.#options = options;
  }

  get url(): string {
    return `http://127.0.0.1:${this.#port}`;
  }

  /** Environment for the real SDK: endpoints here, no shared config files, no instance metadata. */
  endpointEnv(): Record<string, string> {
    return {
      AWS_ENDPOINT_URL_ECR: this.url,
      AWS_ENDPOINT_URL_STS: this.url,
      AWS_EC2_METADATA_DISABLED: 'true',
      AWS_CONFIG_FILE: '/nonexistent/aws-config',
      AWS_SHARED_CREDENTIALS_FILE: '/nonexistent/aws-credentials',
    };
  }

  async start(): Promise<void> {
    const server = createServer((req, res) => void this.#handle(req, res));
    server.listen(0, '127.0.0.1');
    await once(server, 'listening');
    this.#port = (server.address() as AddressInfo).port;
    this.#server = server;
  }

  async stop(): Promise<void> {
    const server = this.#server;
    this.#server = undefined;
    if (!server) return;
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  }

  /** Fail matching calls with an AWS error until `count` have failed (Infinity: until cleared). */
  fail(fault: AwsFault): void {
    this.#faults.push({ ...fault });
  }

  clearFaults(): void {
    this.#faults.length = 0;
  }

  ecrCalls(): AwsCall[] {
    return this.calls.filter((call) => call.service === 'ecr');
  }

  stsCalls(): AwsCall[] {
    return this.calls.filter((call) => call.service === 'sts');
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    const body = Buffer.concat(chunks).toString('utf8');
    const target = String(req.headers['x-amz-target'] ?? '');
    const scope = /Credential=([^/,\s]+)\/\d{8}\/([^/]+)\/([^/]+)\/aws4_request/.exec(String(req.headers.authorization ?? ''));
    const accessKeyId = scope?.[1];
    const call: AwsCall = {
      service: target.startsWith(ECR_TARGET_PREFIX) ? 'ecr' : 'sts',
      action: target.startsWith(ECR_TARGET_PREFIX) ? target.slice(ECR_TARGET_PREFIX.length) : '',
      region: scope?.[2],
      accessKeyId,
      signedAsRole: accessKeyId === undefined ? undefined : this.#roleOfKey.get(accessKeyId),
    };
    this.calls.push(call);
    res.on('finish', () => (call.status = res.statusCode));
    if (call.service === 'ecr') return this.#ecr(call, res);
    const form = new URLSearchParams(body);
    call.action = form.get('Action') ?? '';
    call.roleArn = form.get('RoleArn') ?? undefined;
    call.webIdentityToken = form.get('WebIdentityToken') ?? undefined;
    return this.#sts(call, form, res);
  }

  #fault(call: AwsCall): AwsFault | undefined {
    const index = this.#faults.findIndex((f) => (f.service ?? call.service) === call.service && (f.region === undefined || f.region === call.region));
    const fault = this.#faults[index];
    if (!fault) return undefined;
    if (--fault.count <= 0) this.#faults.splice(index, 1);
    return fault;
  }

  #ecr(call: AwsCall, res: ServerResponse): void {
    const fault = this.#fault(call);
    if (fault) {
      res.writeHead(fault.status, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-errortype': fault.type, 'x-amzn-requestid': randomUUID() });
      res.end(JSON.stringify({ __type: fault.type, message: fault.message }));
      return;
    }
    if (call.action !== 'GetAuthorizationToken' || call.region === undefined) {
      res.writeHead(400, { 'content-type': 'application/x-amz-json-1.1' });
      res.end(JSON.stringify({ __type: 'UnknownOperationException', message: `not faked: ${call.action}` }));
      return;
    }
    const now = this.#options.now?.() ?? Date.now();
    const expiresAt = new Date(Math.floor((now + (this.#options.tokenLifetimeMs ?? 12 * 3_600_000)) / 1000) * 1000);
    const password = Buffer.from(
      JSON.stringify({
        payload: `${this.#options.passwordPrefix ?? ''}${randomUUID()}`,
        datakey: randomUUID(),
        version: '2',
        type: 'DATA_KEY',
        expiration: expiresAt.getTime() / 1000,
      }),
    ).toString('base64');
    const authorizationToken = Buffer.from(`AWS:${password}`).toString('base64');
    this.issued.push({ region: call.region, password, authorizationToken, expiresAt });
    res.writeHead(200, { 'content-type': 'application/x-amz-json-1.1', 'x-amzn-requestid': randomUUID() });
    res.end(
      JSON.stringify({
        authorizationData: [{ authorizationToken, expiresAt: expiresAt.getTime() / 1000, proxyEndpoint: `https://123456789012.dkr.ecr.${call.region}.amazonaws.com` }],
      }),
    );
  }

  #sts(call: AwsCall, form: URLSearchParams, res: ServerResponse): void {
    const fault = this.#fault(call);
    if (fault) {
      res.writeHead(fault.status, { 'content-type': 'text/xml' });
      res.end(
        `<ErrorResponse xmlns="${STS_NAMESPACE}"><Error><Type>Sender</Type><Code>${fault.type}</Code><Message>${fault.message}</Message></Error><RequestId>${randomUUID()}</RequestId></ErrorResponse>`,
      );
      return;
    }
    const action = call.action;
    const roleArn = call.roleArn;
    if ((action !== 'AssumeRole' && action !== 'AssumeRoleWithWebIdentity') || roleArn === undefined) {
      res.writeHead(400, { 'content-type': 'text/xml' });
      res.end(`<ErrorResponse xmlns="${STS_NAMESPACE}"><Error><Type>Sender</Type><Code>InvalidAction</Code><Message>not faked: ${action}</Message></Error></ErrorResponse>`);
      return;
    }
    if (action === 'AssumeRoleWithWebIdentity' && !form.get('WebIdentityToken')) {
      res.writeHead(400, { 'content-type': 'text/xml' });
      res.end(`<ErrorResponse xmlns="${STS_NAMESPACE}"><Error><Type>Sender</Type><Code>InvalidIdentityToken</Code><Message>no token</Message></Error></ErrorResponse>`);
      return;
    }
    const accessKeyId = `ASIAFAKE${String(++this.#keys).padStart(12, '0')}`;
    this.#roleOfKey.set(accessKeyId, roleArn);
    const expiration = new Date((this.#options.now?.() ?? Date.now()) + 3_600_000).toISOString();
    const session = form.get('RoleSessionName') ?? 'session';
    const roleName = roleArn.split('/').at(-1) ?? 'role';
    const account = /::(\d{12}):/.exec(roleArn)?.[1] ?? '123456789012';
    const extra = action === 'AssumeRoleWithWebIdentity' ? '<SubjectFromWebIdentityToken>system:serviceaccount:test:refresher</SubjectFromWebIdentityToken><Audience>sts.amazonaws.com</Audience>' : '';
    res.writeHead(200, { 'content-type': 'text/xml' });
    res.end(
      `<${action}Response xmlns="${STS_NAMESPACE}"><${action}Result>${extra}` +
        `<Credentials><AccessKeyId>${accessKeyId}</AccessKeyId><SecretAccessKey>secret-${randomUUID()}</SecretAccessKey>` +
        `<SessionToken>session-${randomUUID()}</SessionToken><Expiration>${expiration}</Expiration></Credentials>` +
        `<AssumedRoleUser><AssumedRoleId>AROAFAKE:${session}</AssumedRoleId><Arn>arn:aws:sts::${account}:assumed-role/${roleName}/${session}</Arn></AssumedRoleUser>` +
        `</${action}Result><ResponseMetadata><RequestId>${randomUUID()}</RequestId></ResponseMetadata></${action}Response>`,
    );
  }
}
