// The refresher's AWS side with the real AWS SDK against a local ECR/STS endpoint reached through the
// standard endpoint variables: the region from the registry host, one call per region and role shared
// by every caller, cached until refreshBefore, static keys, AssumeRole for a roleArn, IRSA's web
// identity token file, the generic AWS_ENDPOINT_URL, and throttling bounded by maxAttempts and then
// remembered for the group's backoff.
import { writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import t from 'tap';
import { EcrTokenError, EcrTokens, tokenGroupOf } from '../../src/refresher/ecr-tokens.js';
import { dockerConfigJson, readDockerConfig, tokenExpiry } from '../../src/refresher/docker-config.js';
import { parseRegistryHost } from '../../src/webhook/ecr-registry.js';
import { FakeAws, THROTTLING } from '../helpers/fake-aws.js';
import { captureLog } from '../helpers/log-capture.js';

const fake = new FakeAws();
await fake.start();
t.teardown(() => fake.stop());

const STATIC_KEY = 'AKIASTATICEXAMPLE001';
const AWS_ENV = ['AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN', 'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ENDPOINT_URL', 'AWS_ENDPOINT_URL_ECR', 'AWS_ENDPOINT_URL_STS', 'AWS_REGION', 'AWS_DEFAULT_REGION', 'AWS_PROFILE'];

function useEnv(values: Record<string, string>): void {
  for (const name of AWS_ENV) delete process.env[name];
  Object.assign(process.env, fake.endpointEnv(), values);
}

const group = (host: string, roleArn?: string) => tokenGroupOf(parseRegistryHost(host)!, roleArn);
const EAST = '123456789012.dkr.ecr.us-east-1.amazonaws.com';
const EAST_OTHER_ACCOUNT = '999999999999.dkr.ecr.us-east-1.amazonaws.com';
const WEST = '210987654321.dkr.ecr.eu-west-1.amazonaws.com';
const ROLE = 'arn:aws:iam::210987654321:role/ecr-pull';

function tokens(options: { now?: () => number; maxAttempts?: number; failureBackoffInitialMs?: number; failureBackoffMaxMs?: number } = {}) {
  const captured = captureLog('trace');
  const calls: string[] = [];
  const source = new EcrTokens({ log: captured.log, refreshBeforeMs: 6 * 3_600_000, onCall: (op, result) => calls.push(`${op}:${result}`), ...options });
  t.teardown(() => source.close());
  return { source, captured, calls };
}

t.beforeEach(() => {
  fake.calls.length = 0;
  fake.clearFaults();
});

t.test('static keys: the region comes from the host, one call per region shared by every registry in it', async (t) => {
  useEnv({ AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret' });
  const { source, calls } = tokens();
  t.equal(group(EAST).key, group(EAST_OTHER_ACCOUNT).key, 'two accounts in one region share a token group');
  const [east, eastAgain, eastOther, west] = await Promise.all([source.token(group(EAST)), source.token(group(EAST)), source.token(group(EAST_OTHER_ACCOUNT)), source.token(group(WEST))]);
  t.equal(east, eastAgain, 'concurrent callers share one call');
  t.equal(east, eastOther, 'and so do registries of the same region');
  t.not(east.password, west.password);
  t.same(fake.ecrCalls().map((c) => [c.action, c.region, c.accessKeyId]).sort(), [
    ['GetAuthorizationToken', 'eu-west-1', STATIC_KEY],
    ['GetAuthorizationToken', 'us-east-1', STATIC_KEY],
  ]);
  t.same(fake.stsCalls(), [], 'no STS call without a role');
  t.same(calls, ['GetAuthorizationToken:success', 'GetAuthorizationToken:success']);
  const issued = fake.issued.find((i) => i.password === east.password)!;
  t.same(east.expiresAt, issued.expiresAt, 'expiresAt as ECR answered');
  t.same(tokenExpiry(east.password), issued.expiresAt, 'and as the token payload says');
  t.same(east.refreshAt, new Date(issued.expiresAt.getTime() - 6 * 3_600_000), 'refreshed 6 h before expiry');
  await source.token(group(EAST));
  t.equal(fake.ecrCalls().length, 2, 'a cached token makes no call');
});

t.test('a roleArn: AssumeRole in the registry region with the default chain, then ECR as that role', async (t) => {
  useEnv({ AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret' });
  const { source } = tokens();
  t.not(group(WEST, ROLE).key, group(WEST).key, 'a role is a token group of its own');
  await source.token(group(WEST, ROLE));
  await source.token(group(WEST, ROLE));
  t.match(fake.stsCalls(), [{ action: 'AssumeRole', roleArn: ROLE, region: 'eu-west-1', accessKeyId: STATIC_KEY }], 'one AssumeRole, signed with the static keys');
  t.match(fake.ecrCalls(), [{ region: 'eu-west-1', signedAsRole: ROLE }], 'ECR is asked with the role credentials');
});

t.test('IRSA: the web identity token file and AWS_ROLE_ARN, through the generic AWS_ENDPOINT_URL', async (t) => {
  const dir = t.testdir();
  const tokenFile = join(dir, 'token');
  await writeFile(tokenFile, 'eyJhbGciOiJSUzI1NiJ9.irsa-service-account-token.signature');
  const irsaRole = 'arn:aws:iam::123456789012:role/refresher';
  useEnv({ AWS_WEB_IDENTITY_TOKEN_FILE: tokenFile, AWS_ROLE_ARN: irsaRole, AWS_REGION: 'us-east-1' });
  delete process.env.AWS_ENDPOINT_URL_ECR;
  delete process.env.AWS_ENDPOINT_URL_STS;
  process.env.AWS_ENDPOINT_URL = fake.url;
  const { source } = tokens();
  await source.token(group(EAST));
  await source.token(group(WEST, ROLE));
  t.match(fake.stsCalls().filter((c) => c.action === 'AssumeRoleWithWebIdentity')[0], { roleArn: irsaRole, webIdentityToken: 'eyJhbGciOiJSUzI1NiJ9.irsa-service-account-token.signature' });
  t.match(fake.ecrCalls().find((c) => c.region === 'us-east-1'), { signedAsRole: irsaRole }, 'ECR in us-east-1 as the IRSA role');
  const assumed = fake.stsCalls().find((c) => c.action === 'AssumeRole');
  t.match(assumed, { roleArn: ROLE, signedAsRole: irsaRole }, 'the roleArn is assumed from the IRSA role');
  t.match(fake.ecrCalls().find((c) => c.region === 'eu-west-1'), { signedAsRole: ROLE });
});

t.test('a token is fetched again once refreshBefore ahead of its expiry (fake clock)', async (t) => {
  useEnv({ AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret' });
  let now = Date.now();
  const { source } = tokens({ now: () => now });
  const first = await source.token(group(EAST));
  now = first.refreshAt.getTime() - 1000;
  t.equal(await source.token(group(EAST)), first, 'just before refreshAt: the cached token');
  now = first.refreshAt.getTime();
  const second = await source.token(group(EAST));
  t.not(second.password, first.password, 'at refreshAt: a new token');
  t.equal(fake.ecrCalls().length, 2);
});

t.test('throttling: the SDK retries up to maxAttempts, then a throttled error for the caller to back off', async (t) => {
  useEnv({ AWS_ACCESS_KEY_ID: STATIC_KEY, AWS_SECRET_ACCESS_KEY: 'static-secret' });
  const { source, calls, captured } = tokens({ maxAttempts: 2, failureBackoffInitialMs: 50, failureBackoffMaxMs: 100 });
  fake.fail({ ...THROTTLING, count: Infinity });
  const error = await source.token(group(EAST)).catch((e: unknown) => e);
  t.ok(error instanceof EcrTokenError, 'an EcrTokenError');
  t.match(error, { throttled: true, code: 'ThrottlingException', message: /^ThrottlingException \(HTTP 400\): Rate exceeded/ });
  t.equal(fake.ecrCalls().length, 2, 'two attempts, no more');
  t.same(calls, ['GetAuthorizationToken:throttled']);
  t.ok(captured.lines.some((line) => line.includes('ECR GetAuthorizationToken failed')), 'logged');
  fake.clearFaults();
  t.equal(await source.token(group(EAST)).catch((e: unknown) => e), error, 'within the group backoff: the remembered error, without asking AWS');
  t.equal(fake.ecrCalls().length, 2);
  await new Promise((resolve) => setTimeout(resolve, 150));
  t.ok((await source.token(group(EAST))).password, 'after the backoff AWS is asked again');
  t.equal(fake.ecrCalls().length, 3);
});

t.test('the docker config document: one auths entry per registry, read back', (t) => {
  const text = dockerConfigJson(new Map([[EAST, 'p1'], [WEST, 'p2']]));
  t.same(JSON.parse(text), {
    auths: {
      [EAST]: { username: 'AWS', password: 'p1', auth: Buffer.from('AWS:p1').toString('base64') },
      [WEST]: { username: 'AWS', password: 'p2', auth: Buffer.from('AWS:p2').toString('base64') },
    },
  });
  t.same([...readDockerConfig(Buffer.from(text).toString('base64'))], [[EAST, 'p1'], [WEST, 'p2']]);
  t.same([...readDockerConfig(Buffer.from('not json').toString('base64'))], []);
  t.same([...readDockerConfig(undefined)], []);
  t.equal(tokenExpiry('not-a-token'), undefined);
  t.same(tokenExpiry(Buffer.from(JSON.stringify({ expiration: 1800000000 })).toString('base64')), new Date(1800000000 * 1000));
  t.end();
});
