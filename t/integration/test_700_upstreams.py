"""Upstreams with failover (ClaudeGatewayRoute On): the policy's upstreams in
order, failover before the first byte on 5xx/429/401/403/404, timeouts and
connection errors, the reference's choice when every upstream fails
(captures 100-104), groups and models, the circuit breaker, metering
through the router, and keep-alive connections to the upstream reused."""
import hashlib
import json
import threading
import time

import jwt
import pytest
import requests

from fakes.anthropic import AnthropicFake
from pyclaude.client import post, stream
from pyclaude.conf import GatewayConf
from pyclaude.ports import free_port

KEY1 = 'sk-ant-up1-' + 'a' * 24
KEY2 = 'sk-ant-up2-' + 'b' * 24


def token(secret, sub='user-alice', groups=('eng',)):
    now = int(time.time())
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode({'sub': sub, 'email': f'{sub}@example.com', 'groups': list(groups),
                       'aud': 'claude-gateway', 'iat': now, 'exp': now + 600},
                      secret, algorithm='HS256', headers={'kid': kid})


def body(model='claude-sonnet-4-5', **extra):
    b = {'model': model, 'max_tokens': 32, 'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def headers(secret, **kw):
    return {'authorization': 'Bearer ' + token(secret, **kw), 'content-type': 'application/json',
            'anthropic-version': '2023-06-01'}


def script(fake, *behaviours):
    requests.post(fake.url + '/_fake/script', json=list(behaviours), timeout=5)


@pytest.fixture(scope='module')
def ups():
    up1 = AnthropicFake(api_key=KEY1).start()
    up2 = AnthropicFake(api_key=KEY2).start()
    yield up1, up2
    up1.stop()
    up2.stop()


def install(env, pg, gen_dir, up1, up2, extra_up1='', extra_up2='', extra_conf='',
            timeout_ms=1500, breaker='0'):
    env.extra_env['CLAUDE_TEST_UP1_KEY'] = KEY1
    env.extra_env['CLAUDE_TEST_UP2_KEY'] = KEY2
    policy = f'{gen_dir}/upstreams.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: up1
    provider: anthropic
    base_url: {up1.url}
    auth: {{api_key: "${{CLAUDE_TEST_UP1_KEY}}"}}
    headers: {{x-up-static: one}}
{extra_up1}
  - name: up2
    provider: anthropic
    base_url: {up2.url}
    auth: {{api_key: "${{CLAUDE_TEST_UP2_KEY}}"}}
{extra_up2}
models:
  - id: claude-only-up2
    upstream_model: {{up2: claude-haiku-4-5-20251001}}
""")
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}') \
        .add(f'ClaudeGatewayCircuitBreaker {breaker}') \
        .add(extra_conf) \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             f'    ClaudeGatewayUpstreamTimeout {timeout_ms}\n</Location>').install()
    assert env.restart() == 0


@pytest.fixture(autouse=True)
def _reset(ups):
    for u in ups:
        u.reset()
    yield


class TestFailover:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, gen_dir, ups):
        install(env, pg, gen_dir, *ups)

    @pytest.mark.parametrize('status', [500, 529, 429, 401, 403, 404])
    def test_cg_700_01_fails_over(self, env, session_secret, ups, status):
        up1, up2 = ups
        script(up1, {'status': status})
        r = post(env.port, '/v1/messages?beta=true', body(), headers=headers(session_secret))
        assert r.status == 200, r.body
        assert up1.count == 1 and up2.count == 1
        rec = up2.last
        assert rec['query'] == 'beta=true'
        assert dict(rec['headers'])['x-api-key'] == KEY2  # each upstream its own key
        assert rec['json']['model'] == 'claude-sonnet-4-5-20250929'  # mapped per upstream
        assert not rec['violations']
        env.error_log.ignore_recent(tags=['CG0123'])

    @pytest.mark.parametrize('status', [400, 413])
    def test_cg_700_02_client_errors_returned_at_once(self, env, session_secret, ups, status):
        up1, up2 = ups
        script(up1, {'status': status})
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == status
        assert r.json['error']['message'] == f'fake: status {status}'
        assert up2.count == 0

    def test_cg_700_03_both_429_relays_the_last(self, env, session_secret, ups):
        up1, up2 = ups
        script(up1, {'status': 429})
        script(up2, {'status': 429, 'headers': {'retry-after': '7'},
                     'error_body': {'type': 'error', 'error': {
                         'type': 'rate_limit_error', 'message': 'rate limited at up2'}}})
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == 429
        assert r.json == {'type': 'error', 'error': {'type': 'rate_limit_error',
                                                     'message': 'rate limited at up2'}}
        assert r.headers['retry-after'] == '7'

    @pytest.mark.parametrize('status', [500, 529])
    def test_cg_700_04_all_failed_is_502(self, env, session_secret, ups, status):
        up1, up2 = ups
        script(up1, {'status': status})
        script(up2, {'status': status})
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == 502
        assert r.json == {'type': 'error', 'request_id': r.headers['x-request-id'],
                          'error': {'type': 'api_error',
                                    'message': 'all upstreams failed (2 attempted)'}}
        rec = env.audit_records(r.headers['x-request-id'])[0]
        assert rec['decision'] == 'upstream_failed'

    def test_cg_700_05_stream_fails_over_before_the_first_byte(self, env, session_secret, ups):
        up1, up2 = ups
        script(up1, {'status': 500})
        r = stream(env.port, '/v1/messages', body(stream=True), headers=headers(session_secret))
        assert r.status == 200
        names = [e[1] for e in r.events]
        assert names[0] == 'message_start' and names[-1] == 'message_stop'
        assert up1.count == 1 and up2.count == 1

    def test_cg_700_06_hang_costs_the_ttfb_limit(self, env, session_secret, ups):
        up1, up2 = ups
        script(up1, {'hang': True})
        t0 = time.monotonic()
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        took = time.monotonic() - t0
        assert r.status == 200
        assert 1.4 <= took < 4, took
        script(up1, {'hang': True})
        script(up2, {'hang': True})
        t0 = time.monotonic()
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        took = time.monotonic() - t0
        assert r.status == 502
        assert 2.9 <= took < 6, took
        env.error_log.ignore_recent(tags=['CG0123'])

    def test_cg_700_07_custom_model_only_where_mapped(self, env, session_secret, ups):
        up1, up2 = ups
        r = post(env.port, '/v1/messages', body('claude-only-up2'),
                 headers=headers(session_secret))
        assert r.status == 200
        assert up1.count == 0 and up2.last['json']['model'] == 'claude-haiku-4-5-20251001'

    def test_cg_700_08_metered_through_the_router(self, env, session_secret, ups, pg):
        up1, up2 = ups
        script(up1, {'status': 503})
        r = post(env.port, '/v1/messages', body(),
                 headers=dict(headers(session_secret), **{'x-client-request-id': 'route-1'}))
        assert r.status == 200
        row = pg.wait_value("SELECT upstream || '|' || input_tokens || '|' || output_tokens "
                            "FROM claude_ledger WHERE request_id = 'route-1'")
        assert row == 'up2|12|7'
        # the upstream's own request id and org never reach the client
        assert 'anthropic-organization-id' not in r.headers
        assert r.headers['request-id'] == r.headers['x-request-id']
        env.error_log.ignore_recent(tags=['CG0123'])

    def test_cg_700_09_connection_refused_fails_over(self, env, pg, gen_dir, session_secret, ups):
        up1, up2 = ups

        class Dead:
            url = f'http://127.0.0.1:{free_port()}'
        install(env, pg, gen_dir, Dead, up2)
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == 200 and up2.count == 1
        env.error_log.ignore_recent(tags=['CG0123'])
        install(env, pg, gen_dir, *ups)


class TestGroupsAndBreaker:

    def test_cg_700_20_groups_and_models(self, env, pg, gen_dir, session_secret, ups):
        up1, up2 = ups
        install(env, pg, gen_dir, up1, up2, extra_up1='    groups: [eng]',
                extra_up2='    groups: [ops]\n    models: ["claude-haiku-*"]')
        # ops may only use up2, and up2 serves only Haiku
        r = post(env.port, '/v1/messages', body('claude-haiku-4-5'),
                 headers=headers(session_secret, groups=('ops',)))
        assert r.status == 200, r.body
        assert up1.count == 0 and up2.count == 1
        r = post(env.port, '/v1/messages', body('claude-sonnet-4-5'),
                 headers=headers(session_secret, groups=('ops',)))
        assert r.status == 502
        assert r.json['error']['message'] == 'all upstreams failed (2 attempted)'
        # no upstream for this user's groups at all
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret, groups=('hr',)))
        assert r.status == 400
        assert r.json['error']['message'] == ("you aren't in a group that can use this gateway. "
                                              "Ask your administrator to add you to one")

    def test_cg_700_21_circuit_breaker_opens_and_closes(self, env, pg, gen_dir, session_secret,
                                                        ups):
        up1, up2 = ups
        install(env, pg, gen_dir, up1, up2, breaker='2 2')
        requests.post(up1.url + '/_fake/default', json={'status': 500}, timeout=5)
        try:
            for _ in range(6):
                assert post(env.port, '/v1/messages', body(),
                            headers=headers(session_secret)).status == 200
            # one child: opened after two failures, then up1 is skipped
            assert up1.count <= 4, up1.count  # two per child (ServerLimit 2)
            assert up2.count == 6
            log = open(env.error_log.path).read()
            assert 'CG0120' in log
            seen = up1.count
            for _ in range(3):
                post(env.port, '/v1/messages', body(), headers=headers(session_secret))
            assert up1.count == seen  # still open: no request reaches it
        finally:
            requests.post(up1.url + '/_fake/default', json={}, timeout=5)
        time.sleep(2.2)
        # half-open: one trial request finds up1 healthy and closes the circuit
        for _ in range(4):
            post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert up1.count > seen
        assert 'CG0121' in open(env.error_log.path).read()
        env.error_log.ignore_recent(tags=['CG0120', 'CG0121', 'CG0122', 'CG0123'])


def count_connections(fake):
    """The TCP connections the fake accepts from now on: [n]."""
    seen = [0]
    accept = fake.httpd.verify_request

    def verify(request, client_address):
        with fake.lock:
            seen[0] += 1
        return accept(request, client_address)
    fake.httpd.verify_request = verify
    return seen


class TestConnectionReuse:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, gen_dir, ups):
        install(env, pg, gen_dir, *ups)

    def test_cg_700_30_keepalive_connections_reused(self, env, session_secret, ups):
        """Rounds of 12 requests at once (the fake holds each 100 ms, so they
        overlap): the connections of a round go back to the child's pool and
        the next round finds them. With libcurl's default cache size (5 for
        the whole share) each round opened ~7 new ones: ~60 in all."""
        up1, up2 = ups
        n, rounds = 12, 8
        requests.post(up1.url + '/_fake/default', json={'delay_ms': 100}, timeout=5)
        opened = count_connections(up1)
        statuses = []
        start = threading.Barrier(n)

        def client():
            for _ in range(rounds):
                start.wait(timeout=30)
                r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
                with up1.lock:
                    statuses.append(r.status)
        try:
            threads = [threading.Thread(target=client) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join(timeout=60)
        finally:
            del up1.httpd.verify_request
        assert statuses == [200] * (n * rounds), statuses
        assert up1.count == n * rounds and up2.count == 0
        # at most one connection per request at once, per child (ServerLimit 2)
        assert opened[0] <= 2 * n, opened[0]

    def test_cg_700_32_client_connection_header_stays_here(self, env, session_secret, ups):
        """The client's Connection header is for Apache alone: the router
        neither sends it nor closes its pooled connection because of it."""
        up1, up2 = ups
        post(env.port, '/v1/messages', body(), headers=headers(session_secret))  # warm
        opened = count_connections(up1)
        try:
            for conn in ('close', 'keep-alive, x-api-key'):
                r = post(env.port, '/v1/messages', body(),
                         headers=dict(headers(session_secret), connection=conn))
                assert r.status == 200
                h = dict(up1.last['headers'])
                assert 'connection' not in h and h['x-api-key'] == KEY1, h
        finally:
            del up1.httpd.verify_request
        assert opened[0] <= 1, opened[0]

    def test_cg_700_31_nothing_of_a_request_stays_in_the_handle(self, env, session_secret, ups):
        """The handles are reused: a request's headers, key and body are its
        own, never the previous one's."""
        up1, up2 = ups
        r = post(env.port, '/v1/messages', body(max_tokens=999, metadata={'user_id': 'a' * 300}),
                 headers=dict(headers(session_secret), **{'anthropic-beta': 'first-only'}))
        assert r.status == 200
        assert dict(up1.last['headers'])['anthropic-beta'] == 'first-only'
        assert up1.last['json']['metadata'] == {'user_id': 'a' * 300}
        for _ in range(3):
            r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
            assert r.status == 200
            rec = up1.last
            h = dict(rec['headers'])
            assert 'anthropic-beta' not in h
            assert h['x-api-key'] == KEY1
            assert rec['json']['max_tokens'] == 32 and 'metadata' not in rec['json']
            assert not rec['violations']
        # a failover in between: up2's key and body, then up1's again
        script(up1, {'status': 500})
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == 200 and dict(up2.last['headers'])['x-api-key'] == KEY2
        r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
        assert r.status == 200 and dict(up1.last['headers'])['x-api-key'] == KEY1
        env.error_log.ignore_recent(tags=['CG0123'])
