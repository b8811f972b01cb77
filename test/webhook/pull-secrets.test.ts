// The core's part of the pull-Secret refresher: ECR host names and role ARNs, the `pullSecrets`
// config section, and the status annotation with the webhook's judgement of it.
import t from 'tap';
import { ConfigError, parseConfig } from '../../src/webhook/config.js';
import { parseRegistryHost, roleArnPartition } from '../../src/webhook/ecr-registry.js';
import { assessPullSecret, formatPullSecretStatus, parsePullSecretStatus, type PullSecretStatus } from '../../src/webhook/pull-secret-status.js';

t.test('registry hosts name account, region, partition and FIPS', (t) => {
  t.same(parseRegistryHost('123456789012.dkr.ecr.us-east-1.amazonaws.com'), {
    host: '123456789012.dkr.ecr.us-east-1.amazonaws.com', account: '123456789012', region: 'us-east-1', partition: 'aws', fips: false,
  });
  t.same(parseRegistryHost(' 123456789012.DKR.ECR.cn-north-1.amazonaws.com.cn '), {
    host: '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', account: '123456789012', region: 'cn-north-1', partition: 'aws-cn', fips: false,
  });
  t.same(parseRegistryHost('123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com'), {
    host: '123456789012.dkr.ecr-fips.us-gov-west-1.amazonaws.com', account: '123456789012', region: 'us-gov-west-1', partition: 'aws-us-gov', fips: true,
  });
  t.equal(parseRegistryHost('123456789012.dkr.ecr.ap-southeast-7.amazonaws.com')?.region, 'ap-southeast-7');
  for (const bad of [
    'docker.io',
    'https://123456789012.dkr.ecr.us-east-1.amazonaws.com',
    '12345678901.dkr.ecr.us-east-1.amazonaws.com',
    '123456789012.dkr.ecr.us-east-1.amazonaws.com.cn',
    '123456789012.dkr.ecr.cn-north-1.amazonaws.com',
    '123456789012.dkr.ecr-fips.cn-north-1.amazonaws.com.cn',
    '123456789012.dkr.ecr.us-east-1.amazonaws.com/repo',
    'public.ecr.aws',
  ]) {
    t.equal(parseRegistryHost(bad), undefined, `${bad} is not an ECR registry host`);
  }
  t.equal(roleArnPartition('arn:aws:iam::210987654321:role/ecr-pull'), 'aws');
  t.equal(roleArnPartition('arn:aws-cn:iam::210987654321:role/path/ecr-pull'), 'aws-cn');
  t.equal(roleArnPartition('arn:aws:iam::210987654321:user/ecr-pull'), undefined);
  t.equal(roleArnPartition('arn:aws:sts::210987654321:role/x'), undefined);
  t.end();
});

t.test('pullSecrets: defaults, the issue example, and every mistake named', (t) => {
  t.same(parseConfig({}).pullSecrets, { registries: [], refreshBeforeMs: 6 * 3_600_000 }, 'no registries, 6 h by default');
  const config = parseConfig({
    pullSecrets: {
      registries: [
        { host: '123456789012.dkr.ecr.us-east-1.amazonaws.com' },
        { host: '210987654321.DKR.ECR.eu-west-1.amazonaws.com', roleArn: 'arn:aws:iam::210987654321:role/ecr-pull' },
      ],
      refreshBefore: '1h30m',
    },
  });
  t.same(config.pullSecrets, {
    registries: [
      { host: '123456789012.dkr.ecr.us-east-1.amazonaws.com' },
      { host: '210987654321.dkr.ecr.eu-west-1.amazonaws.com', roleArn: 'arn:aws:iam::210987654321:role/ecr-pull' },
    ],
    refreshBeforeMs: 90 * 60_000,
  });
  t.ok(Object.isFrozen(config.pullSecrets.registries[1]), 'frozen like the rest of the config');
  const problems: [unknown, RegExp][] = [
    [{ refreshBefore: '12h' }, /pullSecrets\.refreshBefore: must be more than 0 and less than 12h/],
    [{ refreshBefore: '0s' }, /pullSecrets\.refreshBefore: must be more than 0/],
    [{ refreshBefore: '6' }, /pullSecrets\.refreshBefore: must be a duration such as "6h"/],
    [{ refreshBefore: 6 }, /pullSecrets\.refreshBefore: /],
    [{ registries: [{ host: 'docker.io' }] }, /pullSecrets\.registries\.0\.host: must be an ECR registry host/],
    [{ registries: [{ host: '123456789012.dkr.ecr.us-east-1.amazonaws.com', roleArn: 'ecr-pull' }] }, /pullSecrets\.registries\.0\.roleArn: must be an IAM role ARN/],
    [{ registries: [{ host: '123456789012.dkr.ecr.cn-north-1.amazonaws.com.cn', roleArn: 'arn:aws:iam::123456789012:role/x' }] }, /pullSecrets\.registries\.0\.roleArn: roleArn must be in the same AWS partition/],
    [{ registries: [{ host: '123456789012.dkr.ecr.us-east-1.amazonaws.com' }, { host: '123456789012.dkr.ecr.us-east-1.amazonaws.com' }] }, /pullSecrets\.registries: lists a host twice/],
    [{ registries: [{ host: '123456789012.dkr.ecr.us-east-1.amazonaws.com', region: 'us-east-1' }] }, /pullSecrets\.registries\.0: Unrecognized key/],
    [{ registry: [] }, /pullSecrets: Unrecognized key/],
  ];
  for (const [pullSecrets, message] of problems) {
    t.throws(() => parseConfig({ pullSecrets }), ConfigError, JSON.stringify(pullSecrets));
    t.throws(() => parseConfig({ pullSecrets }), { message }, JSON.stringify(pullSecrets));
  }
  t.end();
});

const NOW = new Date('2026-12-02T12:00:00.000Z');
const ready: PullSecretStatus = {
  secret: 'ecr-credentials',
  registries: ['123456789012.dkr.ecr.us-east-1.amazonaws.com'],
  state: 'ready',
  expiresAt: '2026-12-02T20:00:00.000Z',
  refreshedAt: '2026-12-02T08:00:00.000Z',
};

t.test('the status annotation round-trips with a stable key order', (t) => {
  const text = formatPullSecretStatus({ error: 'x', refreshedAt: ready.refreshedAt, state: 'failing', registries: ready.registries, secret: 'ecr-credentials' });
  t.equal(text, '{"secret":"ecr-credentials","registries":["123456789012.dkr.ecr.us-east-1.amazonaws.com"],"state":"failing","refreshedAt":"2026-12-02T08:00:00.000Z","error":"x"}');
  t.same(parsePullSecretStatus(formatPullSecretStatus(ready)), ready);
  for (const bad of [undefined, '', 'not json', '[]', 'null', '{"secret":"a","registries":[],"state":"great"}', '{"secret":"a","registries":[1],"state":"ready"}', '{"registries":[],"state":"ready"}']) {
    t.equal(parsePullSecretStatus(bad), undefined, `${bad} is not a status`);
  }
  t.end();
});

t.test('the webhook warns about expired, failing and unmanaged pull Secrets only', (t) => {
  const assess = (status: PullSecretStatus, secret = 'ecr-credentials', now = NOW) => assessPullSecret(formatPullSecretStatus(status), secret, now);
  t.equal(assess(ready), undefined, 'a fresh Secret: no warning');
  t.equal(assessPullSecret(undefined, 'ecr-credentials', NOW), undefined, 'no refresher: no warning');
  t.equal(assessPullSecret('{garbage', 'ecr-credentials', NOW), undefined, 'an unreadable status: no warning');
  t.equal(assess(ready, 'other-secret'), undefined, 'a status about another Secret says nothing about this one');
  t.match(assess(ready, 'ecr-credentials', new Date('2026-12-02T20:00:00.000Z')), { problem: 'expired', warning: /ecr-credentials expired at 2026-12-02T20:00:00.000Z/ });
  t.match(assess({ ...ready, state: 'failing', error: 'AccessDenied' }), { problem: 'failing', warning: /refresh failing .*valid until 2026-12-02T20:00:00.000Z/ });
  t.match(assess({ ...ready, state: 'failing', error: 'AccessDenied' }, 'ecr-credentials', new Date('2026-12-03T00:00:00.000Z')), { problem: 'expired' }, 'expired wins over failing');
  t.match(assess({ secret: 'ecr-credentials', registries: [], state: 'failing', error: 'no token' }), { problem: 'failing', warning: /refresh failing \(see namespace annotation\)$/ });
  t.match(assess({ secret: 'ecr-credentials', registries: [], state: 'unmanaged', error: 'not ours' }), { problem: 'unmanaged' });
  t.end();
});
