"""Rate limits (the policy's rate_limits): requests and tokens per minute
per principal and per group, counted across all children of the node
(store: node) or across nodes (store: postgres); the Anthropic 429
rate_limit_error with retry-after; recovery in the next minute."""
import hashlib
import json
import threading
import time

import jwt
import pytest
import requests

from pyclaude.client import post
from pyclaude.conf import GatewayConf


def token(secret, sub, groups=('eng',)):
    now = int(time.time())
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode({'sub': sub, 'email': f'{sub}@example.com', 'groups': list(groups),
                       'aud': 'claude-gateway', 'iat': now, 'exp': now + 600},
                      secret, algorithm='HS256', headers={'kid': kid})


def ask(env, secret, sub, groups=('eng',), path='/v1/messages'):
    body = json.dumps({'model': 'claude-sonnet-4-5-20250929', 'max_tokens': 16,
                       'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
    return post(env.port, path, body, headers={
        'authorization': 'Bearer ' + token(secret, sub, groups),
        'content-type': 'application/json', 'anthropic-version': '2023-06-01'})


def install(env, pg, upstream, gen_dir, store):
    policy = f'{gen_dir}/rl-{store}.yaml'
    with open(policy, 'w') as f:
        f.write(f'rate_limits:\n  requests_per_minute: 3\n  store: {store}\n'
                '  groups:\n    ops: {requests_per_minute: 5}\n    tok: {tokens_per_minute: 20}\n')
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}') \
        .add_messages(upstream.url, dev_identity=None).install()
    assert env.restart() == 0


def wait_minute_start(margin=8):
    """Tests that fill a minute start early in one, so it does not roll over."""
    left = 60 - time.time() % 60
    if left < margin:
        time.sleep(left + 0.2)


@pytest.fixture(autouse=True)
def _reset(pg, upstream):
    pg.psql('DELETE FROM claude_rate_minutes')
    upstream.reset()
    yield


@pytest.mark.parametrize('store', ['node', 'postgres'])
class TestRateLimits:

    def test_cg_710_01_requests_per_minute(self, env, pg, upstream, gen_dir, session_secret,
                                           store):
        install(env, pg, upstream, gen_dir, store)
        wait_minute_start()
        sub = f'u-rpm-{store}'
        assert [ask(env, session_secret, sub).status for _ in range(3)] == [200] * 3
        # count_tokens is not counted
        assert ask(env, session_secret, sub, path='/v1/messages/count_tokens').status == 200
        r = ask(env, session_secret, sub)
        assert r.status == 429
        assert r.json['type'] == 'error' and r.json['request_id'] == r.headers['x-request-id']
        assert r.json['error']['type'] == 'rate_limit_error'
        assert 1 <= int(r.headers['retry-after']) <= 60
        assert 'x-should-retry' not in r.headers
        assert upstream.count == 4  # 3 messages + 1 count_tokens
        rec = env.audit_records(r.headers['x-request-id'])[0]
        assert rec['decision'] == 'rate_limited'
        # another principal has its own budget
        assert ask(env, session_secret, f'u-other-{store}').status == 200

    def test_cg_710_02_concurrent_requests_counted_exactly(self, env, pg, upstream, gen_dir,
                                                           session_secret, store):
        install(env, pg, upstream, gen_dir, store)
        wait_minute_start()
        requests.post(upstream.url + '/_fake/default', json={'delay_ms': 200}, timeout=5)
        statuses = []
        lock = threading.Lock()

        def one():
            s = ask(env, session_secret, f'u-race-{store}').status
            with lock:
                statuses.append(s)
        try:
            threads = [threading.Thread(target=one) for _ in range(12)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
        finally:
            requests.post(upstream.url + '/_fake/default', json={}, timeout=5)
        assert statuses.count(200) == 3 and statuses.count(429) == 9, statuses

    def test_cg_710_03_group_and_tokens(self, env, pg, upstream, gen_dir, session_secret, store):
        install(env, pg, upstream, gen_dir, store)
        wait_minute_start()
        # ops together: 5 per minute, whoever sends them
        got = [ask(env, session_secret, f'u-carol-{store}', ('ops',)).status for _ in range(3)]
        got += [ask(env, session_secret, f'u-dave-{store}', ('ops',)).status for _ in range(3)]
        assert got == [200, 200, 200, 200, 200, 429], got
        # tokens: 19 per answer (12 in + 7 out) against 20 per minute
        sub = f'u-tok-{store}'
        assert ask(env, session_secret, sub, ('tok',)).status == 200
        time.sleep(0.3)  # tokens are counted once the answer was metered
        assert ask(env, session_secret, sub, ('tok',)).status == 200
        time.sleep(0.3)
        r = ask(env, session_secret, sub, ('tok',))
        assert r.status == 429 and 'tokens per minute' in r.json['error']['message']


def test_cg_710_10_recovers_in_the_next_minute(env, pg, upstream, gen_dir, session_secret):
    install(env, pg, upstream, gen_dir, 'node')
    wait_minute_start()
    for _ in range(3):
        assert ask(env, session_secret, 'u-recover').status == 200
    r = ask(env, session_secret, 'u-recover')
    assert r.status == 429
    time.sleep(int(r.headers['retry-after']) + 0.5)
    assert ask(env, session_secret, 'u-recover').status == 200
