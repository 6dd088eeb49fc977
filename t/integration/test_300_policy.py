"""Policy: ClaudeGatewayPolicy (the reference's gateway.yaml), /managed/settings,
/v1/models and the availableModels allowlist on /v1/messages, against real
httpd with session tokens minted as the sign-in flow mints them."""
import hashlib
import json
import os
import re
import time

import jwt
import pytest
import requests

from pyclaude.client import post
from pyclaude.conf import GatewayConf

HERE = os.path.dirname(os.path.abspath(__file__))

POLICY = """
upstreams:
  - name: direct
    provider: anthropic
    auth: {api_key: "${CLAUDE_TEST_UPSTREAM_KEY}"}
  - name: bedrock-eu
    provider: bedrock
    region: eu-west-1
models:
  - id: claude-custom-1
    label: Custom One
    description: a custom model routed to bedrock only
    upstream_model: {bedrock-eu: eu.anthropic.custom}
  - id: claude-custom-2
    label: Custom Two
    upstream_model: {direct: claude-haiku-4-5-20251001}
managed:
  policies:
    - match: {groups: [contractors]}
      cli:
        availableModels: [claude-haiku-4-5]
        permissions: {allow: [Read], deny: [WebFetch]}
        env: {FOO_FROM_GATEWAY: contractor}
    - match: {email_domain: example.com}
      cli:
        availableModels: [sonnet, claude-custom-1, claude-custom-2, claude-opus-4-7]
        permissions: {deny: ["Bash(rm -rf:*)"]}
        env: {FOO_FROM_GATEWAY: bar, "UNICODE": "caf\u00e9 \u2713"}
        cleanupPeriodDays: 30
    - match: {}
      cli:
        permissions: {deny: ["Read(./.env)"], defaultMode: plan}
        env: {DISABLE_UPDATES: "1"}
        hooks:
          PostToolUse:
            - matcher: "Edit|Write"
              hooks: [{type: command, command: /usr/local/bin/audit-edit.sh}]
"""

ALLOWED_UPSTREAM_HEADERS = re.compile(
    r'^(host|content-type|content-length|accept|accept-encoding|user-agent|x-api-key|'
    r'anthropic-beta|anthropic-version|x-stainless-[a-z-]+|connection)$')


def canonical_checksum(settings):
    """The client's checksum, recomputed independently of the gateway."""
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return 'sha256:' + hashlib.sha256(text.encode()).hexdigest()


def token(secret, sub='user-alice', email='alice@example.com', groups=('eng',), ttl=600):
    now = int(time.time())
    claims = {'sub': sub, 'email': email, 'groups': list(groups), 'aud': 'claude-gateway',
              'iat': now, 'exp': now + ttl}
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode(claims, secret, algorithm='HS256', headers={'kid': kid})


def body(model, **extra):
    b = {'model': model, 'max_tokens': 16, 'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def write_policy(gen_dir, text, name='policy.yaml'):
    path = os.path.join(gen_dir, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def policy_locations(conf):
    for path, handler in (('/managed/settings', 'claude-managed-settings'),
                          ('/v1/models', 'claude-models')):
        conf.add(f'<Location {path}>\n    AuthType claude-session\n    Require valid-user\n'
                 f'    SetHandler {handler}\n</Location>')
    return conf


class TestPolicy:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, gen_dir):
        path = write_policy(gen_dir, POLICY)
        conf = GatewayConf(env).add_database(pg.conninfo).add_session()
        conf.add(f'ClaudeGatewayPolicy {path}')
        policy_locations(conf)
        conf.add_messages(upstream.url, dev_identity=None, spend=False,
                          extra='    ClaudeGatewayUpstreamName direct')
        conf.install()
        assert env.restart() == 0
        # the sections httpd configures itself, and the default-model warning
        env.error_log.ignore_recent(tags=['CG0100', 'CG0140', 'CG0141'])

    def get(self, env, path, tok, **headers):
        h = {'authorization': 'Bearer ' + tok, 'user-agent': 'claude-cli/2.1.328 (external, cli)'}
        h.update(headers)
        return requests.get(env.mkurl(path), headers=h, timeout=10)

    def test_cg_300_01_managed_settings_per_group(self, env, session_secret):
        r = self.get(env, '/managed/settings', token(session_secret))
        assert r.status_code == 200
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert r.headers['x-cc-gateway-version'] == '2.1.328'
        assert 'User-Agent' in r.headers['vary']
        doc = r.json()
        assert set(doc) == {'uuid', 'checksum', 'settings'}
        s = doc['settings']
        # the example.com policy merged onto the match: {} base layer
        assert s['availableModels'] == ['sonnet', 'claude-custom-1', 'claude-custom-2',
                                        'claude-opus-4-7']
        assert s['permissions'] == {'deny': ['Read(./.env)', 'Bash(rm -rf:*)'],
                                    'defaultMode': 'plan'}
        assert s['env'] == {'DISABLE_UPDATES': '1', 'FOO_FROM_GATEWAY': 'bar',
                            'UNICODE': 'caf\u00e9 \u2713'}
        assert s['hooks']['PostToolUse'][0]['matcher'] == 'Edit|Write'
        assert s['cleanupPeriodDays'] == 30
        assert doc['checksum'] == canonical_checksum(s)
        assert doc['uuid'] == doc['checksum']
        assert r.headers['etag'] == '"%s"' % doc['checksum']

        r = self.get(env, '/managed/settings',
                     token(session_secret, sub='user-carol', email='carol@agency.org',
                           groups=('contractors',)))
        s = r.json()['settings']
        assert s['availableModels'] == ['claude-haiku-4-5']
        assert s['permissions'] == {'deny': ['Read(./.env)', 'WebFetch'], 'allow': ['Read'],
                                    'defaultMode': 'plan'}
        assert r.json()['checksum'] == canonical_checksum(s)

        # nobody special: the base layer alone
        r = self.get(env, '/managed/settings',
                     token(session_secret, sub='user-dan', email='dan@elsewhere.net', groups=()))
        assert r.status_code == 200
        assert 'availableModels' not in r.json()['settings']

    def test_cg_300_02_conditional_requests(self, env, session_secret):
        tok = token(session_secret)
        first = self.get(env, '/managed/settings', tok)
        etag = first.headers['etag']
        r = self.get(env, '/managed/settings', tok, **{'if-none-match': etag})
        assert r.status_code == 304
        assert r.content == b''
        assert 'etag' not in r.headers
        assert r.headers['x-cc-gateway-version'] == '2.1.328'
        r = self.get(env, '/managed/settings', tok, **{'if-none-match': 'W/' + etag})
        assert r.status_code == 304
        r = self.get(env, '/managed/settings', tok, **{'if-none-match': '"sha256:other", ' + etag})
        assert r.status_code == 304
        # "*" is answered as if absent, as the reference does
        r = self.get(env, '/managed/settings', tok, **{'if-none-match': '*'})
        assert r.status_code == 200 and r.headers['etag'] == etag
        r = self.get(env, '/managed/settings', tok, **{'if-none-match': '"sha256:stale"'})
        assert r.status_code == 200

    def test_cg_300_03_managed_settings_needs_a_session(self, env, session_secret):
        r = requests.get(env.mkurl('/managed/settings'), timeout=10)
        assert r.status_code == 401
        assert r.json()['error'] == {'type': 'authentication_error', 'message': 'invalid token'}
        r = self.get(env, '/managed/settings', token('x' * 40))
        assert r.status_code == 401

    def test_cg_300_04_models_filtered_by_policy(self, env, session_secret):
        r = self.get(env, '/v1/models', token(session_secret))
        assert r.status_code == 200
        doc = r.json()
        assert doc['has_more'] is False and doc['first_id'] is None and doc['last_id'] is None
        ids = [m['id'] for m in doc['data']]
        assert ids[:2] == ['claude-custom-1', 'claude-custom-2']
        assert doc['data'][0] == {'type': 'model', 'id': 'claude-custom-1',
                                  'display_name': 'Custom One',
                                  'description': 'a custom model routed to bedrock only'}
        assert 'claude-sonnet-4-5-20250929' in ids and 'claude-sonnet-4-6' in ids
        assert 'claude-opus-4-7' in ids
        assert not [i for i in ids if 'haiku' in i or 'opus-4-8' in i]
        r = self.get(env, '/v1/models', token(session_secret, sub='c', email='c@agency.org',
                                               groups=('contractors',)))
        assert [m['id'] for m in r.json()['data']] == ['claude-haiku-4-5-20251001']

    def test_cg_300_10_model_not_allowed(self, env, session_secret, upstream):
        before = upstream.count
        for path in ('/v1/messages', '/v1/messages/count_tokens'):
            r = post(env.port, path, body('claude-opus-4-1'),
                     headers={'authorization': 'Bearer ' + token(session_secret),
                              'anthropic-version': '2023-06-01'})
            assert r.status == 400
            assert r.json == {'type': 'error', 'request_id': r.headers['x-request-id'],
                              'error': {'type': 'invalid_request_error',
                                        'message': "model claude-opus-4-1 is not in your role's "
                                                   "availableModels allowlist"}}
        r = post(env.port, '/v1/messages', body('gpt-4'),
                 headers={'authorization': 'Bearer ' + token(session_secret)})
        assert r.json['error']['message'] == \
            "model gpt-4 is not in your role's availableModels allowlist"
        assert upstream.count == before
        rec = env.audit_records(r.headers['x-request-id'])[0]
        assert rec['decision'] == 'policy_denied' and rec['model'] == 'gpt-4'
        assert rec['status'] == 400

    def test_cg_300_11_model_mapped_for_the_upstream(self, env, session_secret, upstream):
        """claude-sonnet-4-5 goes up as its dated id, every other byte as sent."""
        raw = (b'{"model" : "claude-sonnet-4-5", "max_tokens":16,"temperature":0.7,'
               b'"messages":[{"role":"user","content":"model claude-sonnet-4-5"}]}')
        r = post(env.port, '/v1/messages?beta=true', raw,
                 headers={'authorization': 'Bearer ' + token(session_secret),
                          'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status == 200, r.body
        rec = upstream.last
        assert rec['query'] == 'beta=true'
        assert rec['json']['model'] == 'claude-sonnet-4-5-20250929'
        sent = raw.replace(b'"claude-sonnet-4-5",', b'"claude-sonnet-4-5-20250929",')
        assert rec['body_sha256'] == hashlib.sha256(sent).hexdigest()
        assert rec['body_len'] == len(sent)
        # already the upstream's id: forwarded byte for byte
        raw = body('claude-sonnet-4-5-20250929')
        r = post(env.port, '/v1/messages', raw,
                 headers={'authorization': 'Bearer ' + token(session_secret),
                          'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status == 200
        assert upstream.last['body_sha256'] == hashlib.sha256(raw).hexdigest()
        # one trailing [1m] hint is ignored by the allowlist
        r = post(env.port, '/v1/messages', body('claude-sonnet-4-6[1m]'),
                 headers={'authorization': 'Bearer ' + token(session_secret),
                          'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status == 200

    def test_cg_300_12_custom_models(self, env, session_secret, upstream):
        hdrs = {'authorization': 'Bearer ' + token(session_secret),
                'content-type': 'application/json', 'anthropic-version': '2023-06-01'}
        r = post(env.port, '/v1/messages', body('claude-custom-2'), headers=hdrs)
        assert r.status == 200
        assert upstream.last['json']['model'] == 'claude-haiku-4-5-20251001'
        # mapped only to an upstream this location does not proxy to: skipped
        before = upstream.count
        r = post(env.port, '/v1/messages', body('claude-custom-1'), headers=hdrs)
        assert r.status == 502
        assert r.json['error'] == {'type': 'api_error',
                                   'message': 'all upstreams failed (1 attempted)'}
        assert upstream.count == before
        env.error_log.ignore_recent(tags=['CG0110'])

    def test_cg_300_13_only_allowed_headers_reach_upstream(self, env, session_secret, upstream,
                                                         upstream_key):
        r = post(env.port, '/v1/messages', body('claude-sonnet-4-6'), headers={
            'authorization': 'Bearer ' + token(session_secret),
            'content-type': 'application/json', 'accept': 'application/json',
            'anthropic-version': '2023-06-01', 'anthropic-beta': 'claude-code-20250219',
            'anthropic-dangerous-direct-browser-access': 'true',
            'x-api-key': 'sk-ant-laptop-key', 'cookie': 'mod_auth_openidc_session=abc',
            'x-forwarded-for': '10.9.9.9', 'x-forwarded-host': 'evil', 'forwarded': 'for=x',
            'OIDC_CLAIM_email': 'mallory@example.com', 'oidc-claim-groups': 'admins',
            'x-app': 'cli', 'x-claude-code-session-id': 'sess-1', 'x-custom': 'secret',
            'x-stainless-os': 'Linux', 'proxy-authorization': 'Basic eA=='})
        assert r.status == 200
        rec = upstream.last
        names = sorted({k for k, _ in rec['headers']})
        assert [n for n in names if not ALLOWED_UPSTREAM_HEADERS.match(n)] == []
        got = dict(rec['headers'])
        assert got['x-api-key'] == upstream_key
        # dropped as the reference drops it: a browser CORS opt-in, meaningless upstream
        assert 'anthropic-dangerous-direct-browser-access' not in got
        assert got['anthropic-beta'] == 'claude-code-20250219'
        assert got['x-stainless-os'] == 'Linux'
        assert 'cookie' not in got and 'authorization' not in got

    def test_cg_300_14_no_policy_matched_is_404(self, env, session_secret, gen_dir, pg, upstream):
        path = write_policy(gen_dir, 'managed:\n  policies:\n    - match: {groups: [eng]}\n'
                                     '      cli: {env: {A: "1"}}\n', 'narrow.yaml')
        conf = GatewayConf(env).add_database(pg.conninfo).add_session()
        conf.add(f'ClaudeGatewayPolicy {path}')
        policy_locations(conf).install()
        # applied by a graceful restart: poll until the new generation answers
        assert env.graceful() == 0
        deadline = time.time() + 15
        while True:
            r = self.get(env, '/managed/settings', token(session_secret, groups=('ops',)))
            if r.status_code == 404 or time.time() > deadline:
                break
            time.sleep(0.1)
        assert r.status_code == 404
        assert r.json()['error'] == {'type': 'not_found_error', 'message': 'no policy matched'}
        assert r.headers['cache-control'] == 'no-store'
        assert r.headers['x-cc-gateway-version'] == '2.1.328'
        r = self.get(env, '/managed/settings', token(session_secret, groups=('ops', 'eng')))
        assert r.status_code == 200 and r.json()['settings'] == {'env': {'A': '1'}}

        # no ClaudeGatewayPolicy at all
        conf = GatewayConf(env).add_database(pg.conninfo).add_session()
        policy_locations(conf).install()
        assert env.restart() == 0
        r = self.get(env, '/managed/settings', token(session_secret))
        assert r.status_code == 404
        assert r.json()['error']['message'] == 'not configured'
        # every built-in model when nothing restricts
        r = self.get(env, '/v1/models', token(session_secret))
        ids = [m['id'] for m in r.json()['data']]
        assert 'claude-opus-4-7' in ids and 'claude-haiku-4-5-20251001' in ids


class TestPolicyValidation:
    """A bad policy fails `apachectl -t` naming the path; a good one loads."""

    @pytest.mark.parametrize('text,message', [
        ('managed:\n  policies:\n    - match: {groups: []}\n',
         'managed.policies[0].match.groups: must contain at least 1 element'),
        ('managed:\n  policies:\n    - match: {email_domain: "a,b.com"}\n',
         'managed.policies[0].match.email_domain: email_domain must be a bare domain'),
        ('managed:\n  polices: []\n', 'managed: Unrecognized key: "polices"'),
        ('models:\n  - {id: m, upstream_model: {nowhere: x}}\n',
         "models[0].upstream_model.nowhere: references unknown upstream 'nowhere'"),
        ('managed:\n  policies:\n    - cli: {availableModels: [a], mcpServers: {}}\n',
         'managed.policies[0].cli.mcpServers: mcpServers cannot be pushed'),
        ('managed:\n  policies:\n    - cli: {alwaysThinking: true}\n',
         'managed.policies[0].cli: Unrecognized key(s) in managed settings: "alwaysThinking"'),
        ('secret: ${CLAUDE_TEST_UNDEFINED_VAR}\n',
         'undefined env var in config: CLAUDE_TEST_UNDEFINED_VAR'),
        ('a: 1\na: 2\n', ":2:1: duplicate key 'a'"),
        ('dev: {}\n', '`dev:` was removed'),
    ])
    def test_cg_300_20_bad_policy_fails_config_test(self, env, gen_dir, text, message):
        path = write_policy(gen_dir, text, 'bad.yaml')
        GatewayConf(env).add(f'ClaudeGatewayPolicy {path}').install()
        rc, out = env.config_test()
        assert rc != 0
        assert 'ClaudeGatewayPolicy: ' + path in out
        assert message in out, out

    def test_cg_300_21_reference_example_loads(self, env, gen_dir, upstream):
        """The complete example of OFFICIAL-DOCS.md §4.1, unchanged but for the
        secret file path, loads; the sections httpd configures are named."""
        example = open(os.path.join(HERE, 'data', 'reference-gateway.yaml')).read()
        secret = write_policy(gen_dir, 'pg-password\n', 'pg-password')
        example = example.replace('/run/secrets/pg-password', secret)
        path = write_policy(gen_dir, example, 'reference.yaml')
        for var in ('OIDC_CLIENT_SECRET', 'GATEWAY_JWT_SECRET_NEW', 'GATEWAY_JWT_SECRET_OLD',
                    'GATEWAY_ADMIN_WRITE_KEY_TF', 'GATEWAY_ADMIN_READ_KEY', 'ANTHROPIC_API_KEY',
                    'OTEL_TOKEN', 'DD_API_KEY'):
            env.extra_env[var] = 'v' * 40
        GatewayConf(env).add(f'ClaudeGatewayPolicy {path}').install()
        rc, out = env.config_test()
        assert rc == 0, out
        for section in ('listen', 'oidc', 'session', 'store', 'admin'):
            assert re.search(r'CG0100: .*reference.yaml: %s: ' % section, out), section
        # read, not merely named: its destinations (https, headers) are valid
        assert not re.search(r'CG0100: .*reference.yaml: telemetry: ', out)
        # contractors' allowlist leaves out the client's default model
        assert 'CG0140' in out and 'managed.policies[0]' in out
