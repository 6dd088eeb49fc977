"""claude_json as one mod_log_config item (%^CJ, cg_audit.c) against the
LogFormat string of ~40 items it replaced, on the same server: every request
writes one line in each log. For ASCII values the two lines must be the same
byte for byte but for latency_us (mod_log_config keeps %D's end time to
itself, the item reads the clock again); every new line must parse as JSON,
also when a note holds a quote, a control character, non-ASCII or invalid
UTF-8, where the old line did not parse."""
import hashlib
import json
import os
import re
import socket
import time

import jwt
import pytest
import requests

from fakes.otlp import OtlpFake
from pyclaude.client import post, stream
from pyclaude.conf import GatewayConf

import test_200_signin as signin

# conf/claude-gateway-log.conf's claude_json before %^CJ, verbatim
LEGACY_FORMAT = (
    r'{\"request_id\":\"%<{claude-request-id}n\",\"time\":%{sec}t,\"client\":\"%a\",'
    r'\"user\":\"%<{claude-user}n\",\"email\":\"%<{claude-email}n\",'
    r'\"groups\":\"%<{claude-groups}n\",\"method\":\"%m\",\"path\":\"%U\",'
    r'\"model\":\"%<{claude-model}n\",\"model_served\":\"%<{claude-model-served}n\",'
    r'\"status\":%>s,\"decision\":\"%<{claude-decision}n\",\"reason\":\"%<{claude-reason}n\",'
    r'\"input_tokens\":\"%<{claude-usage-in}n\",\"output_tokens\":\"%<{claude-usage-out}n\",'
    r'\"cache_read_tokens\":\"%<{claude-usage-cache-read}n\",'
    r'\"cache_write_tokens\":\"%<{claude-usage-cache-write}n\",'
    r'\"partial\":\"%<{claude-usage-partial}n\",\"cost_micro_usd\":\"%<{claude-cost-micro-usd}n\",'
    r'\"latency_us\":%D,\"bytes_out\":%B}')

FIELDS = ['request_id', 'time', 'client', 'user', 'email', 'groups', 'method', 'path', 'model',
          'model_served', 'status', 'decision', 'reason', 'input_tokens', 'output_tokens',
          'cache_read_tokens', 'cache_write_tokens', 'partial', 'cost_micro_usd', 'latency_us',
          'bytes_out']
LATENCY_RE = re.compile(r'"latency_us":(\d+),')

POLICY = """
managed:
  policies:
    - match: {{groups: [contractors]}}
      cli:
        availableModels: [claude-haiku-4-5]
    - match: {{email_domain: example.com}}
      cli:
        availableModels: [claude-sonnet-4-5, claude-haiku-4-5, claude-opus-4-7]
telemetry:
  forward_to:
    - url: {sink}
      metrics: true
      logs: true
      traces: true
"""

TELEMETRY_LOCATION = """<LocationMatch "^/v1/(metrics|logs|traces)$">
    AuthType claude-session
    Require valid-user
    SetHandler claude-telemetry
</LocationMatch>"""


def token(secret, iss, sub='user-alice', email='alice@example.com', groups=('eng',)):
    now = int(time.time())
    claims = {'sub': sub, 'email': email, 'groups': list(groups), 'aud': 'claude-gateway',
              'iat': now, 'exp': now + 600, 'iss': iss}
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode(claims, secret, algorithm='HS256', headers={'kid': kid})


def body(model='claude-sonnet-4-5', **extra):
    b = {'model': model, 'max_tokens': 16, 'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def raw_get(port, target):
    """A GET with the request target sent as is (requests would re-quote it)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=10)
    s.sendall(f'GET {target} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n'.encode())
    data = b''
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        data += chunk
    s.close()
    return int(data.split(b' ', 2)[1])


@pytest.fixture(scope='module')
def sink():
    c = OtlpFake().start()
    yield c
    c.stop()


class TestAuditJson:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, idp, oidc_client, gen_dir, sink):
        # caps left by earlier modules would refuse the metered requests
        pg.psql('DELETE FROM claude_spend_limits; DELETE FROM claude_reservations')
        self.__class__.legacy = os.path.join(env.logs_dir, 'audit-legacy.json')
        self.__class__.item = os.path.join(env.logs_dir, 'audit-item.json')
        for p in (self.legacy, self.item):
            if os.path.exists(p):
                os.unlink(p)
        policy = os.path.join(gen_dir, 'audit-json.yaml')
        with open(policy, 'w') as f:
            f.write(POLICY.format(sink=sink.url))
        conf = GatewayConf(env).add_database(pg.conninfo).add_health()
        conf.add_signin(idp.url, oidc_client['client_id'], public_url=env.url)
        conf.add_policy(policy)
        conf.add(TELEMETRY_LOCATION)
        conf.add_messages(upstream.url, dev_identity=None)
        conf.add(f'LogFormat "{LEGACY_FORMAT}" claude_json_legacy')
        conf.add(f'CustomLog "{self.legacy}" claude_json_legacy')
        conf.add(f'CustomLog "{self.item}" claude_json')
        conf.install()
        assert env.restart() == 0
        env.error_log.ignore_recent(tags=['CG0101', 'CG0140'],
                                    matches=signin.OIDC_HTTP_WARNINGS +
                                    [r'availableModels leaves out'])
        yield
        env.stop()  # before the sink goes: the relay would report it down

    @pytest.fixture(autouse=True)
    def _reset(self, idp, upstream, pg):
        requests.post(idp.url + '/_fake/reset', timeout=5)
        upstream.reset()
        pg.psql('DELETE FROM claude_rate')

    def lines(self, path):
        if not os.path.exists(path):
            return []
        with open(path, 'rb') as f:
            return f.read().splitlines()

    def settled(self, start):
        """The lines written since `start` (line counts), once both logs hold
        as many and stop growing: log_transaction runs after the answer."""
        end = time.monotonic() + 15
        last = None
        while True:
            old, new = self.lines(self.legacy)[start[0]:], self.lines(self.item)[start[1]:]
            now = (len(old), len(new))
            if now == last and now[0] == now[1]:
                return old, new
            assert time.monotonic() < end, f'the logs did not settle: {now}'
            last = now
            time.sleep(0.3)

    def mark(self):
        return len(self.lines(self.legacy)), len(self.lines(self.item))

    def test_cg_620_01_same_line_as_the_format_string(self, env, session_secret, upstream,
                                                      sink):
        start = self.mark()
        tok = token(session_secret, env.url)
        auth = {'authorization': 'Bearer ' + tok}
        # allowed, with usage, non-streamed and streamed; a stream cut short
        r = post(env.port, '/v1/messages', body(), headers=dict(auth, **{
            'x-client-request-id': 'cj-allowed'}))
        assert r.status == 200, r.body
        r = post(env.port, '/v1/messages', body(stream=True), headers=auth)
        assert r.status == 200 and b'message_stop' in r.body
        r = stream(env.port, '/v1/messages', body(stream=True, _fake={'disconnect_after': 4}),
                   headers=auth)
        assert r.status == 200
        r = post(env.port, '/v1/messages', body(_fake={'usage': {
            'cache_read_input_tokens': 100, 'cache_creation_input_tokens': 20}}), headers=auth)
        assert r.status == 200
        # refused: by policy, bad and missing credentials (answered through an
        # internal redirect to the error handler), invalid body, upstream error
        contractor = token(session_secret, env.url, sub='user-bob', email='bob@vendor.example',
                           groups=('contractors',))
        r = post(env.port, '/v1/messages', body(),
                 headers={'authorization': 'Bearer ' + contractor})
        assert r.status == 400 and b'availableModels' in r.body
        r = post(env.port, '/v1/messages', body(), headers={'authorization': 'Bearer forged'})
        assert r.status == 401
        r = post(env.port, '/v1/messages', body())
        assert r.status == 401
        r = post(env.port, '/v1/messages', b'{"max_tokens":1}', headers=auth)
        assert r.status == 400
        r = post(env.port, '/v1/messages', body(_fake={'status': 529}), headers=auth)
        assert r.status == 529
        # telemetry: relayed, refused, not found
        r = post(env.port, '/v1/metrics', b'{"resourceMetrics":[]}', headers=auth)
        assert r.status == 200
        r = post(env.port, '/v1/logs', b'{"resourceLogs":[]}')
        assert r.status == 401
        assert requests.get(env.mkurl('/v1/traces'), headers=auth, timeout=10).status_code == 404
        # not the gateway's: health, a plain 404, a quote in the path
        assert requests.get(env.mkurl('/healthz'), timeout=10).status_code == 200
        assert raw_get(env.port, '/nothing-here') == 404
        assert raw_get(env.port, '/quote%22and%5cback') == 404
        # sign-in: device authorization, the browser's steps through
        # mod_auth_openidc and the IdP, the token poll before and after
        d = signin.device_authorize(env)
        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 400
        signin.browser_approve(env, d['user_code'])
        r = signin.token_post(env, grant_type=signin.DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 200, r.text
        r = signin.token_post(env, grant_type='refresh_token', refresh_token='forged-refresh')
        assert r.status_code == 401

        old, new = self.settled(start)
        # the stream cut short: mod_proxy_http says so
        env.error_log.ignore_recent(tags=['AH01102', 'AH01110'],
                                    matches=[r'proxy.*error reading'])
        assert len(new) >= 20, new
        decisions = set()
        for line in new:
            rec = json.loads(line)
            assert list(rec) == FIELDS, line
            assert all(isinstance(rec[k], int) for k in ('time', 'status', 'latency_us',
                                                         'bytes_out')), line
            decisions.add(rec['decision'])
        assert {'allowed', 'policy_denied', 'auth_failed', 'invalid_request',
                'telemetry_accepted', 'device_authorized', 'token_pending', 'device_approved',
                'token_minted', 'token_denied', '-'} <= decisions, decisions
        partial = [json.loads(x) for x in new if b'"partial":"1"' in x]
        assert len(partial) == 1 and partial[0]['input_tokens'] == '12'
        assert any(json.loads(x)['cache_read_tokens'] == '100' for x in new)
        assert any(json.loads(x)['request_id'] == 'cj-allowed' for x in new)
        quoted = [json.loads(x) for x in new if b'/quote' in x]
        assert quoted[0]['path'] == '/quote"and\\back'

        # line by line, in whatever order two threads logged them: the same
        # bytes once latency_us is set aside, which differs by microseconds
        def split(line):
            m = LATENCY_RE.search(line.decode())
            assert m, line
            return LATENCY_RE.sub('"latency_us":0,', line.decode()), int(m.group(1))
        olds, news = sorted(map(split, old)), sorted(map(split, new))
        assert [t for t, _ in olds] == [t for t, _ in news]
        for (text, a), (_, b) in zip(olds, news):
            assert abs(a - b) < 500000, text
        for line in old:
            json.loads(line)  # ASCII values: the old line was JSON too

    def test_cg_620_02_odd_values_stay_json(self, env, session_secret, upstream):
        """A quote, a backslash, control characters, non-ASCII and invalid
        UTF-8 in notes and in the path: the old line is no JSON (\\xhh), the
        new one is and says what was there."""
        start = self.mark()
        email = 'o"dd\\one\x01\tcaf\u00e9@odd.example'
        model = 'claude-"odd\nmodel\u00e9'
        tok = token(session_secret, env.url, sub='user-odd', email=email, groups=('odd',))
        r = post(env.port, '/v1/messages', body(model), headers={
            'authorization': 'Bearer ' + tok, 'x-client-request-id': 'cj-odd'})
        assert r.status == 200, r.body
        assert raw_get(env.port, '/odd%01%ff%22x') == 404

        old, new = self.settled(start)
        # a model without a list price (and no served name it would accept)
        env.error_log.ignore_recent(tags=['CS0220'])
        assert len(new) == 2, new
        recs = {json.loads(x)['request_id']: (json.loads(x), x) for x in new}
        rec, line = recs['cj-odd']
        assert rec['email'] == email and rec['user'] == 'user-odd'
        # mod_claude_spend records a served model of printable ASCII only
        assert rec['model'] == model and rec['model_served'] == '-'
        assert rec['decision'] == 'allowed' and rec['status'] == 200
        assert b'\\u0001\\u0009caf\xc3\xa9' in line  # controls escaped, UTF-8 as is
        rec, line = recs['-']
        assert rec['path'] == '/odd\x01\ufffd"x' and rec['status'] == 404
        for line in old:
            with pytest.raises(ValueError):
                json.loads(line)
            assert b'\\x' in line
