// Which pull Secret a namespace should have, and for which registries: the webhook's opt-in label,
// excluded namespaces and pull-secret label (else the default), and the registries annotation.
import t from 'tap';
import { desiredPullSecret } from '../../src/refresher/desired.js';
import { parseConfig } from '../../src/webhook/config.js';

const EAST = '123456789012.dkr.ecr.us-east-1.amazonaws.com';
const WEST = '210987654321.dkr.ecr.eu-west-1.amazonaws.com';
const ROLE = 'arn:aws:iam::210987654321:role/ecr-pull';
const config = parseConfig({ defaults: { pullSecret: 'ecr-credentials' }, pullSecrets: { registries: [{ host: EAST }, { host: WEST, roleArn: ROLE }] } });
const IN = { 'buildkite-ecr-injector/inject': 'enabled' };
const hosts = (result: ReturnType<typeof desiredPullSecret>) => (result.kind === 'secret' ? result.registries.map((r) => [r.registry.host, r.roleArn]) : result);

t.test('no pull Secret where the webhook would inject none', (t) => {
  t.match(desiredPullSecret('gone', undefined, undefined, config), { kind: 'none', reason: 'namespace is gone' });
  t.match(desiredPullSecret('kube-system', IN, undefined, config), { kind: 'none', reason: /excluded/ });
  t.match(desiredPullSecret('team', {}, undefined, config), { kind: 'none', reason: /no buildkite-ecr-injector\/inject=enabled/ });
  t.match(desiredPullSecret('team', { 'buildkite-ecr-injector/inject': 'disabled' }, undefined, config), { kind: 'none' });
  t.match(desiredPullSecret('team', { ...IN, 'buildkite-ecr-injector/pull-secret': 'none' }, undefined, config), { kind: 'none', reason: /no pull Secret/ });
  t.match(desiredPullSecret('team', IN, undefined, parseConfig({ pullSecrets: { registries: [{ host: EAST }] } })), { kind: 'none' }, 'no label and no default');
  t.end();
});

t.test('the label names the Secret, else the default; the config lists the registries', (t) => {
  t.same(hosts(desiredPullSecret('team', IN, undefined, config)), [[EAST, undefined], [WEST, ROLE]]);
  t.match(desiredPullSecret('team', { ...IN, 'buildkite-ecr-injector/pull-secret': 'ecr-pull' }, undefined, config), { kind: 'secret', secret: 'ecr-pull' });
  t.match(desiredPullSecret('team', { ...IN, 'buildkite-ecr-injector/pull-secret': 'Not_A_Name' }, undefined, config), { kind: 'invalid', error: /is not a valid Secret name/ });
  t.match(desiredPullSecret('team', IN, undefined, parseConfig({ defaults: { pullSecret: 'ecr-credentials' } })), { kind: 'invalid', secret: 'ecr-credentials', error: /no registries: set pullSecrets.registries/ });
  t.end();
});

t.test('the registries annotation replaces the list; a listed host keeps its roleArn', (t) => {
  const annotate = (value: string) => ({ 'buildkite-ecr-injector/ecr-registries': value });
  const other = '999999999999.dkr.ecr.ap-south-1.amazonaws.com';
  t.same(hosts(desiredPullSecret('team', IN, annotate(` ${WEST.toUpperCase()} , ${other},${WEST}`), config)), [[WEST, ROLE], [other, undefined]], 'trimmed, lower-cased, de-duplicated');
  t.match(desiredPullSecret('team', IN, annotate('docker.io'), config), { kind: 'invalid', registries: ['docker.io'], error: /docker.io is not an ECR registry host/ });
  t.match(desiredPullSecret('team', IN, annotate(' , '), config), { kind: 'invalid', error: /names no registry/ });
  const prefixed = parseConfig({ labelPrefix: 'example.com', defaults: { pullSecret: 'p' } });
  t.same(hosts(desiredPullSecret('team', { 'example.com/inject': 'enabled' }, { 'example.com/ecr-registries': EAST }, prefixed)), [[EAST, undefined]], 'keys follow labelPrefix');
  t.end();
});
