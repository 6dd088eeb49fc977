"""Telemetry: the OTLP/HTTP ingest and relay of the reference (PROTOCOL.md §10,
captures 29-31), with the identity stamped from the verified session; the
OTEL env of /managed/settings (capture 24); the gateway's own metrics; and an
audit line for every sign-in decision. Real httpd, strict fake collectors."""
import gzip
import hashlib
import json
import os
import time

import jwt
import pytest
import requests

from fakes.otlp import LOGS_REQ, METRICS_REQ, TRACES_REQ, OtlpFake, attrs, encode
from pyclaude.client import post
from pyclaude.conf import GatewayConf
from pyclaude.ports import free_port

import test_200_signin as signin

SINK_SECRET = 'sinksecret-' + hashlib.sha256(os.urandom(8)).hexdigest()[:12]
SIGNALS = ('metrics', 'logs', 'traces')


def kv(k, v):
    return {'key': k, 'value': {'stringValue': v}}


# what the real client sends (capture 111), claiming to be someone else
CLAIMED = [kv('identity.source', 'gateway-oidc'), kv('user.id', 'mallory'),
           kv('user.email', 'mallory@evil.example'), kv('user.groups', 'admins'),
           kv('service.name', 'claude-code'), kv('service.version', '2.1.328'),
           {'key': 'tags', 'value': {'arrayValue': {'values': [{'stringValue': 'a'},
                                                               {'intValue': 3}]}}}]

METRICS = {'resourceMetrics': [{'resource': {'attributes': CLAIMED, 'droppedAttributesCount': 2},
                                'scopeMetrics': [{
                                    'scope': {'name': 'com.anthropic.claude_code',
                                              'version': '2.1.328'},
                                    'metrics': [{'name': 'claude_code.token.usage',
                                                 'unit': 'tokens',
                                                 'sum': {'dataPoints': [{
                                                     'asInt': 42,
                                                     'timeUnixNano': '1795451875944000000',
                                                     'attributes': [kv('type', 'input')]}],
                                                     'aggregationTemporality': 1,
                                                     'isMonotonic': True}}]}]}]}
LOGS = {'resourceLogs': [{'resource': {'attributes': CLAIMED},
                          'scopeLogs': [{'scope': {'name': 'com.anthropic.claude_code.events'},
                                         'logRecords': [{'body': {'stringValue': 'claude_code.'
                                                                                 'user_prompt'},
                                                         'attributes': [kv('prompt',
                                                                           '<REDACTED>')]}]}]}]}
TRACES = {'resourceSpans': [{'resource': {'attributes': CLAIMED},
                             'scopeSpans': [{'scope': {'name': 'com.anthropic.claude_code'},
                                             'spans': [{'name': 'claude_code.request',
                                                        'traceId': '11' * 16,
                                                        'spanId': '22' * 8}]}]}]}
BODIES = {'metrics': (METRICS, METRICS_REQ), 'logs': (LOGS, LOGS_REQ),
          'traces': (TRACES, TRACES_REQ)}
# OFFICIAL-DOCS.md §3.8's JSON fixture, with a claimed identity added
JSON_FIXTURE = {'resourceMetrics': [{'resource': {'attributes': [
    kv('service.name', 'probe'), kv('user.id', 'mallory')]}, 'scopeMetrics': [{
        'scope': {'name': 'probe'}, 'metrics': [{
            'name': 'claude_code.token.usage', 'unit': 'tokens', 'sum': {
                'dataPoints': [{'asInt': '42', 'timeUnixNano': '1700000000000000000',
                                'attributes': [kv('type', 'input')]}],
                'aggregationTemporality': 2, 'isMonotonic': True}}]}]}]}

STAMPED = {'user.id': 'user-alice', 'user.email': 'alice@example.com',
           'user.groups': 'eng,admins', 'identity.source': 'mod_claude-session'}

TELEMETRY_LOCATION = """<LocationMatch "^/v1/(metrics|logs|traces)$">
    AuthType claude-session
    Require valid-user
    SetHandler claude-telemetry{extra}
</LocationMatch>"""


def token(secret, iss, sub='user-alice', email='alice@example.com', groups=('eng', 'admins')):
    now = int(time.time())
    claims = {'sub': sub, 'email': email, 'groups': list(groups), 'aud': 'claude-gateway',
              'iat': now, 'exp': now + 600}
    if iss:
        claims['iss'] = iss
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode(claims, secret, algorithm='HS256', headers={'kid': kid})


def canonical_checksum(settings):
    text = json.dumps(settings, sort_keys=True, separators=(',', ':'), ensure_ascii=False)
    return 'sha256:' + hashlib.sha256(text.encode()).hexdigest()


def write(gen_dir, name, text):
    path = os.path.join(gen_dir, name)
    with open(path, 'w') as f:
        f.write(text)
    return path


def export(env, signal, body, tok=None, ct='application/x-protobuf', **headers):
    h = {'content-type': ct}
    if tok:
        h['authorization'] = 'Bearer ' + tok
    h.update(headers)
    t0 = time.monotonic()
    r = post(env.port, '/v1/' + signal, body, headers=h)
    return r, time.monotonic() - t0


def resources(export_rec, signal):
    key = {'metrics': 'resourceMetrics', 'logs': 'resourceLogs', 'traces': 'resourceSpans'}[signal]
    return export_rec['decoded'].get(key, [])


def client_exports(col, signal):
    """What a collector received from clients (not the gateway's own metrics)."""
    return [e for e in col.received(signal)
            if any(attrs(r.get('resource', {}).get('attributes')).get('service.name') !=
                   'mod_claude' for r in resources(e, signal))]


def own_points(col, name):
    return [p for p in col.metric_points(name) if p['resource'].get('service.name') == 'mod_claude']


@pytest.fixture(scope='module')
def collectors():
    a = OtlpFake(required_headers={'x-sink-auth': SINK_SECRET}).start()
    b = OtlpFake().start()
    yield a, b
    a.stop()
    b.stop()


POLICY = """
managed:
  policies:
    - match: {{email_domain: example.com}}
      cli:
        availableModels: [claude-sonnet-4-5, claude-haiku-4-5, claude-custom-1]
        env: {{FOO_FROM_GATEWAY: bar}}
        permissions: {{deny: ["Bash(rm -rf:*)"]}}
telemetry:
  forward_to:
    - url: {a}/
      headers: {{x-sink-auth: "${{CLAUDE_TEST_SINK_SECRET}}"}}
      metrics: true
      logs: true
    - url: {b}
      metrics: false
      traces: true
  resource_attributes: {{deployment.environment: loopback-test}}
"""


class TestRelay:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, gen_dir, collectors):
        a, b = collectors
        env.extra_env['CLAUDE_TEST_SINK_SECRET'] = SINK_SECRET
        # caps left by earlier modules would refuse the metered request
        pg.psql('DELETE FROM claude_spend_limits; DELETE FROM claude_reservations')
        path = write(gen_dir, 'telemetry.yaml', POLICY.format(a=a.url, b=b.url))
        conf = GatewayConf(env).add_database(pg.conninfo).add_session()
        conf.add(f'ClaudeGatewayPublicURL {env.url}')
        conf.add('ClaudeGatewayTelemetryInterval 1')
        conf.add_policy(path)
        conf.add(TELEMETRY_LOCATION.format(extra='\n    ClaudeGatewayMaxBody 65536'))
        conf.add_messages(upstream.url, dev_identity=None)
        conf.install()
        assert env.restart() == 0
        # the policy of capture 24 leaves out the client's default model
        env.error_log.ignore_recent(tags=['CG0101', 'CG0140'],
                                    matches=[r'availableModels leaves out'])
        yield
        env.stop()  # before the collectors go: the gateway would report them down
        # the drops of test 06, summed up once more as the children exit
        env.error_log.ignore_recent(tags=['CG0701'])

    @pytest.fixture(autouse=True)
    def _reset(self, collectors):
        for c in collectors:
            c.reset()

    def tok(self, env, session_secret, **kw):
        return token(session_secret, env.url, **kw)

    def test_cg_610_01_no_bearer_is_401(self, env):
        """Capture 31: no session, no relay."""
        r, _ = export(env, 'traces', b'{"resourceSpans":[]}', ct='application/json')
        assert r.status == 401
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert r.json == {'type': 'error', 'request_id': r.headers['x-request-id'],
                          'error': {'type': 'authentication_error', 'message': 'invalid token'}}
        r, _ = export(env, 'metrics', b'', tok='not-a-token')
        assert r.status == 401

    def test_cg_610_02_metrics_protobuf_stamped(self, env, session_secret, collectors):
        """Capture 29: 200, empty body; the export reaches the collector with
        the session's identity, whatever the client claimed, and the rest as
        sent."""
        a, b = collectors
        r, _ = export(env, 'metrics', encode(METRICS, METRICS_REQ), self.tok(env, session_secret))
        assert r.status == 200 and r.body == b''
        assert r.headers['content-length'] == '0'
        assert 'content-type' not in r.headers
        assert r.headers['x-content-type-options'] == 'nosniff'
        assert a.wait_for(lambda c: client_exports(c, 'metrics'))
        rec = client_exports(a, 'metrics')[0]
        assert a.violations == []
        headers = dict(rec['headers'])
        assert headers['content-type'] == 'application/x-protobuf'
        assert headers['user-agent'].startswith('mod_claude/')
        assert 'authorization' not in headers
        res = resources(rec, 'metrics')
        assert len(res) == 1
        got = attrs(res[0]['resource']['attributes'])
        assert {k: got[k] for k in STAMPED} == STAMPED
        assert got['service.name'] == 'claude-code' and got['tags'] == ['a', 3]
        names = [x['key'] for x in res[0]['resource']['attributes']]
        assert names.count('user.id') == 1 and names.count('identity.source') == 1
        assert res[0]['resource']['droppedAttributesCount'] == 2
        assert res[0]['scopeMetrics'] == METRICS['resourceMetrics'][0]['scopeMetrics']
        # the second destination takes traces only
        time.sleep(0.5)
        assert client_exports(b, 'metrics') == []
        rec = env.audit_records(r.headers['x-request-id'])[0]
        assert rec['decision'] == 'telemetry_accepted' and rec['user'] == 'user-alice'

    def test_cg_610_03_metrics_json_stamped(self, env, session_secret, collectors):
        a, _ = collectors
        r, _ = export(env, 'metrics', json.dumps(JSON_FIXTURE).encode(),
                      self.tok(env, session_secret), ct='application/json')
        assert r.status == 200 and r.body == b''
        assert a.wait_for(lambda c: client_exports(c, 'metrics'))
        rec = client_exports(a, 'metrics')[0]
        assert rec['content_type'] == 'application/json'
        got = rec['decoded']['resourceMetrics'][0]
        assert attrs(got['resource']['attributes']) == dict(STAMPED, **{'service.name': 'probe'})
        assert got['scopeMetrics'] == JSON_FIXTURE['resourceMetrics'][0]['scopeMetrics']

    def test_cg_610_04_signal_flags(self, env, session_secret, collectors):
        """logs to the first destination only, traces to the second only."""
        a, b = collectors
        tok = self.tok(env, session_secret)
        for signal in ('logs', 'traces'):
            body, schema = BODIES[signal]
            r, _ = export(env, signal, encode(body, schema), tok)
            assert r.status == 200
        assert a.wait_for(lambda c: c.received('logs'))
        assert b.wait_for(lambda c: c.received('traces'))
        time.sleep(0.5)
        assert b.received('logs') == [] and a.received('traces') == []
        for col, signal in ((a, 'logs'), (b, 'traces')):
            res = resources(col.received(signal)[0], signal)[0]
            got = attrs(res['resource']['attributes'])
            assert {k: got[k] for k in STAMPED} == STAMPED
        logs = resources(a.received('logs')[0], 'logs')[0]
        assert logs['scopeLogs'] == LOGS['resourceLogs'][0]['scopeLogs']
        spans = resources(b.received('traces')[0], 'traces')[0]
        assert spans['scopeSpans'] == TRACES['resourceSpans'][0]['scopeSpans']
        assert a.violations == [] and b.violations == []

    def test_cg_610_05_gzip(self, env, session_secret, collectors):
        """A gzip export is stamped and goes on gzip-encoded."""
        a, _ = collectors
        body = gzip.compress(encode(LOGS, LOGS_REQ))
        r, _ = export(env, 'logs', body, self.tok(env, session_secret),
                      **{'content-encoding': 'gzip'})
        assert r.status == 200
        assert a.wait_for(lambda c: c.received('logs'))
        rec = a.received('logs')[0]
        assert dict(rec['headers'])['content-encoding'] == 'gzip'
        got = attrs(resources(rec, 'logs')[0]['resource']['attributes'])
        assert got['user.id'] == 'user-alice'

    def test_cg_610_06_unparsable_dropped_not_forwarded(self, env, session_secret, collectors):
        a, _ = collectors
        tok = self.tok(env, session_secret)
        for body, ct in ((b'\x0a\xff\xff\xff\xff\x0f', 'application/x-protobuf'),
                         (b'{"resource_metrics":[]}', 'application/json'),
                         (b'hello', 'text/plain')):
            r, _ = export(env, 'metrics', body, tok, ct=ct)
            assert r.status == 200  # as the reference: the client never sees the relay
        assert env.error_log.scan_recent(r'CG0702: telemetry: a metrics export of user-alice')
        time.sleep(1)
        assert client_exports(a, 'metrics') == []
        assert a.violations == []
        env.error_log.ignore_recent(tags=['CG0702'])

    def test_cg_610_07_limits_and_methods(self, env, session_secret):
        tok = self.tok(env, session_secret)
        r, _ = export(env, 'metrics', b'\x00' * 70000, tok)
        assert r.status == 413 and r.body == b'payload too large'
        r = requests.get(env.mkurl('/v1/metrics'), headers={'authorization': 'Bearer ' + tok},
                         timeout=10)
        assert r.status_code == 404 and r.text == 'not found'

    def test_cg_610_08_own_metrics(self, env, session_secret, collectors, upstream):
        """Requests through the gateway show up as its own delta metrics, with
        the names Claude Code uses where they mean the same."""
        a, _ = collectors
        upstream.reset()  # default answers: 12 tokens in, 7 out
        tok = self.tok(env, session_secret)
        body = json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 16,
                           'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
        r = post(env.port, '/v1/messages', body, headers={'authorization': 'Bearer ' + tok})
        assert r.status == 200, r.body
        denied = body.replace(b'claude-sonnet-4-5', b'claude-opus-4-1')
        r = post(env.port, '/v1/messages', denied, headers={'authorization': 'Bearer ' + tok})
        assert r.status == 400

        def seen(c):
            return own_points(c, 'claude_code.token.usage') and \
                own_points(c, 'mod_claude.policy.denials')
        assert a.wait_for(seen, timeout=15)
        tokens = {p['attrs']['type']: p for p in own_points(a, 'claude_code.token.usage')}
        assert int(tokens['input']['asInt']) == 12 and int(tokens['output']['asInt']) == 7
        p = tokens['input']
        assert p['attrs']['user.id'] == 'user-alice'
        assert p['attrs']['user.email'] == 'alice@example.com'
        assert p['attrs']['model'].startswith('claude-sonnet-4-5')
        assert p['kind'] == 'sum'
        res = p['resource']
        assert res['service.name'] == 'mod_claude' and res['service.instance.id']
        assert res['deployment.environment'] == 'loopback-test'
        assert int(p['timeUnixNano']) > int(p['startTimeUnixNano']) > 0
        cost = own_points(a, 'claude_code.cost.usage')
        assert cost and cost[0]['asDouble'] > 0
        denial = own_points(a, 'mod_claude.policy.denials')[0]
        assert denial['attrs']['model'] == 'claude-opus-4-1' and int(denial['asInt']) == 1
        assert a.wait_for(lambda c: own_points(c, 'mod_claude.request.duration'))
        hist = own_points(a, 'mod_claude.request.duration')[0]
        assert hist['kind'] == 'histogram' and int(hist['count']) >= 1
        reqs = own_points(a, 'mod_claude.requests')
        assert {p['attrs'].get('decision') for p in reqs} >= {'allowed', 'policy_denied'}
        for e in a.received('metrics'):
            for rm in resources(e, 'metrics'):
                for sm in rm.get('scopeMetrics', []):
                    for m in sm.get('metrics', []):
                        if 'sum' in m and sm.get('scope', {}).get('name') == 'mod_claude':
                            assert m['sum']['aggregationTemporality'] == 1  # delta

    def test_cg_610_09_managed_settings_env(self, env, session_secret):
        """Capture 24: the OTEL env in front of the policy's own, the checksum
        that of the result."""
        r = requests.get(env.mkurl('/managed/settings'),
                         headers={'authorization': 'Bearer ' + self.tok(env, session_secret),
                                  'user-agent': 'claude-cli/2.1.328 (external, cli)'}, timeout=10)
        assert r.status_code == 200
        doc = r.json()
        s = doc['settings']
        assert list(s) == ['availableModels', 'env', 'permissions']
        assert list(s['env'].items()) == [
            ('CLAUDE_CODE_ENABLE_TELEMETRY', '1'), ('OTEL_METRICS_EXPORTER', 'otlp'),
            ('OTEL_LOGS_EXPORTER', 'otlp'), ('OTEL_TRACES_EXPORTER', 'otlp'),
            ('OTEL_EXPORTER_OTLP_ENDPOINT', env.url),
            ('OTEL_EXPORTER_OTLP_PROTOCOL', 'http/protobuf'),
            ('OTEL_RESOURCE_ATTRIBUTES', 'deployment.environment=loopback-test'),
            ('FOO_FROM_GATEWAY', 'bar')]
        assert doc['checksum'] == canonical_checksum(s) == doc['uuid']
        assert r.headers['etag'] == '"%s"' % doc['checksum']
        # the client's If-None-Match with that checksum: 304
        r = requests.get(env.mkurl('/managed/settings'),
                         headers={'authorization': 'Bearer ' + self.tok(env, session_secret),
                                  'if-none-match': '"%s"' % doc['checksum']}, timeout=10)
        assert r.status_code == 304

    def test_cg_610_10_graceful_restart(self, env, session_secret, collectors):
        """Old children join their relay thread as they go; the new ones relay."""
        a, _ = collectors
        tok = self.tok(env, session_secret)
        for _ in range(5):
            r, _ = export(env, 'logs', encode(LOGS, LOGS_REQ), tok)
            assert r.status == 200
        assert env.graceful() == 0
        time.sleep(1)
        a.reset()
        deadline = time.monotonic() + 15
        while not a.received('logs') and time.monotonic() < deadline:
            r, _ = export(env, 'logs', encode(LOGS, LOGS_REQ), tok)
            assert r.status == 200
            time.sleep(0.3)
        assert a.received('logs')
        assert a.violations == []
        # the graceful restart pass re-reads the policy (its default-model warning)
        env.error_log.ignore_recent(tags=['CG0101', 'CG0140'],
                                    matches=[r'availableModels leaves out'])


class TestSlowAndDownCollectors:
    """A collector that is down and one that takes 5 s per export: the client
    is answered at once all the same; a full queue drops and says so."""

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, gen_dir):
        self.__class__.slow = OtlpFake().start()
        self.slow.fail = {'delay_ms': 5000, 'count': 1000}
        down = free_port()  # held, never listening: refuses
        path = write(gen_dir, 'telemetry-slow.yaml',
                     'telemetry:\n  forward_to:\n'
                     f'    - {{url: "http://127.0.0.1:{down}", logs: true}}\n'
                     f'    - {{url: "{self.slow.url}", logs: true}}\n')
        conf = GatewayConf(env).add_database(pg.conninfo).add_session()
        conf.add(f'ClaudeGatewayPolicy {path}')
        conf.add('ClaudeGatewayTelemetryInterval Off')
        conf.add('ClaudeGatewayTelemetryQueue 4 2')
        conf.add('ClaudeGatewayTelemetryTimeout 8000')
        conf.add('ClaudeGatewayTelemetryBreaker 2 60')
        conf.add(TELEMETRY_LOCATION.format(extra=''))
        conf.install()
        assert env.restart() == 0
        yield
        env.stop()  # in-flight transfers to the slow collector are abandoned
        self.slow.stop()
        env.error_log.ignore_recent(tags=['CG0701', 'CG0703'])

    def test_cg_610_20_latency_unchanged(self, env, session_secret):
        tok = token(session_secret, None)
        body = encode(LOGS, LOGS_REQ)
        times = []
        for _ in range(20):
            r, dt = export(env, 'logs', body, tok)
            assert r.status == 200
            times.append(dt)
        assert max(times) < 1.0, times
        # the down one opens its breaker after 2 failures in a row
        assert env.error_log.scan_recent(
            r'CG0703: telemetry.forward_to\[0\] \(127.0.0.1:\d+\): 2 failures in a row', 10)
        # 2 transfers and 4 queued exports at most: the rest were dropped, and counted
        line = env.error_log.scan_recent(r'CG0701: telemetry: .*queue full [1-9]', 15)
        assert line is not None
        dropped = int(line.split('queue full ')[1].split(',')[0])
        assert dropped >= 10, line
        env.error_log.ignore_recent(tags=['CG0701', 'CG0703'])


class TestSignInAudit:
    """Every sign-in decision is an audit line (claude_json), and no line holds
    a token or a device code."""

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, idp, oidc_client):
        GatewayConf(env).add_database(pg.conninfo).add_health() \
            .add_signin(idp.url, oidc_client['client_id']) \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=signin.OIDC_HTTP_WARNINGS)

    @pytest.fixture(autouse=True)
    def _reset(self, idp, pg):
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate')

    def audit(self, env, r):
        recs = env.audit_records(r.headers['x-request-id'])
        assert len(recs) == 1, recs
        return recs[0]

    def test_cg_610_30_sign_in_decisions(self, env, gen_dir):
        r = requests.post(env.mkurl('/oauth/device_authorization'), data={}, timeout=10)
        assert r.status_code == 200
        d = r.json()
        rec = self.audit(env, r)
        assert rec['decision'] == 'device_authorized'
        assert rec['reason'] == 'user_code ' + d['user_code']

        s, page = signin.browser_approve(env, d['user_code'])
        rec = self.audit(env, page)
        assert rec['decision'] == 'device_approved' and rec['user'] == 'user-alice'
        assert rec['email'] == 'alice@example.com'
        assert rec['reason'] == 'user_code ' + d['user_code']

        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 200
        tok = r.json()
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_minted' and rec['user'] == 'user-alice'
        assert d['user_code'] in rec['reason']

        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d['device_code'])
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_denied' and rec['reason'] == 'expired_token'

        r = signin.token_post(env, grant_type='refresh_token', refresh_token=tok['refresh_token'])
        assert r.status_code == 200
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_refreshed' and rec['user'] == 'user-alice'
        refreshed = r.json()

        r = signin.token_post(env, grant_type='refresh_token', refresh_token='forged-refresh')
        assert r.status_code == 401
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_denied' and rec['reason'].startswith('invalid_grant')

        r = requests.post(env.mkurl('/oauth/revoke'), data={'token': tok['access_token']},
                          timeout=10)
        assert r.status_code == 200
        rec = self.audit(env, r)
        assert rec['decision'] == 'revoked' and rec['user'] == 'user-alice'

        # a denied device: the page and the poll
        d2 = signin.device_authorize(env)
        s, page = signin.browser_approve(env, d2['user_code'], deny=True)
        rec = self.audit(env, page)
        assert rec['decision'] == 'device_denied' and rec['user'] == 'user-alice'
        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d2['device_code'])
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_denied' and rec['reason'].startswith('access_denied')

        # a poll before anyone decided
        d3 = signin.device_authorize(env)
        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d3['device_code'])
        rec = self.audit(env, r)
        assert rec['decision'] == 'token_pending' and rec['reason'] == 'authorization_pending'

        # never a secret in the audit log
        text = open(os.path.join(env.logs_dir, 'audit.json')).read()
        for secret in (d['device_code'], d2['device_code'], d3['device_code'], tok['access_token'],
                       tok['refresh_token'], refreshed['access_token']):
            assert secret not in text
