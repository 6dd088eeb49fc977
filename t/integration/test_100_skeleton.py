"""The walking skeleton: /healthz, /readyz, and /v1/messages proxied through
mod_proxy_http with the body replayed byte-identical, client credentials
stripped, the upstream key set server-side, and SSE streamed unbuffered."""
import glob
import hashlib
import json
import os
import subprocess
import time

import jwt

import pytest
import requests

from pyclaude.client import post, post_expect_continue, stream
from pyclaude.conf import GatewayConf
from pyclaude.env import HTTPD, TOP


def message_body(size=None, **extra):
    """A valid Messages request, padded to about `size` bytes."""
    body = {'model': 'claude-sonnet-4-5', 'max_tokens': 64,
            'messages': [{'role': 'user', 'content': 'hi'}]}
    body.update(extra)
    raw = json.dumps(body).encode()
    if size and size > len(raw):
        body['messages'][0]['content'] = 'x' * (size - len(raw) + 2)
        raw = json.dumps(body).encode()
    return raw


def header(rec, name):
    vals = [v for k, v in rec['headers'] if k == name]
    return vals[0] if vals else None


class TestHealth:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='4 500').add_health() \
            .add_messages(upstream.url).install()
        assert env.restart() == 0

    def test_cg_100_01_healthz(self, env):
        r = requests.get(env.mkurl('/healthz'))
        assert r.status_code == 200
        assert r.text == 'ok'
        assert r.headers['content-type'] == 'text/plain;charset=utf-8'
        assert r.headers['x-content-type-options'] == 'nosniff'
        assert r.headers['x-frame-options'] == 'DENY'
        assert r.headers['referrer-policy'] == 'no-referrer'
        assert len(r.headers['x-request-id']) == 36

    def test_cg_100_02_readyz(self, env):
        r = requests.get(env.mkurl('/readyz'))
        assert r.status_code == 200
        assert r.text == 'ready'

    def test_cg_100_03_readyz_503_when_postgres_stops(self, env, pg):
        assert requests.get(env.mkurl('/readyz')).status_code == 200
        pg.stop()
        try:
            r = requests.get(env.mkurl('/readyz'), timeout=10)
            assert r.status_code == 503
            assert r.text == 'store unavailable'
            # healthz says the process is up, whatever the store does
            assert requests.get(env.mkurl('/healthz')).status_code == 200
        finally:
            pg.start()
            assert pg.wait_ready()
        # pooled connections died with the server; a fresh one is made
        assert requests.get(env.mkurl('/readyz')).status_code == 200
        env.error_log.ignore_recent(tags=['CG0101', 'CG0201', 'CG0105'])

    def test_cg_100_05_schema_applied_automatically(self, env, pg, upstream):
        """A fresh database gets the schema from the first connection."""
        pg.psql('DROP DATABASE IF EXISTS claude_fresh', db='postgres')
        pg.psql('CREATE DATABASE claude_fresh', db='postgres')
        fresh = pg.conninfo.replace(f'dbname={pg.dbname}', 'dbname=claude_fresh')
        GatewayConf(env).add_database(fresh).add_health().add_messages(upstream.url).install()
        assert env.restart() == 0
        try:
            assert requests.get(env.mkurl('/readyz')).status_code == 200
            assert pg.psql('SELECT string_agg(version::text, \',\' ORDER BY version) '
                           'FROM claude_migrations', db='claude_fresh') == ','.join(
                str(i + 1) for i in range(len(glob.glob(os.path.join(TOP, 'sql', '*.sql')))))
            assert pg.psql("SELECT count(*) FROM information_schema.tables WHERE table_name IN "
                           "('claude_device_grants', 'claude_rate', 'claude_revocations')",
                           db='claude_fresh') == '3'
        finally:
            GatewayConf(env).add_database(pg.conninfo, pool='4 500').add_health() \
                .add_messages(upstream.url).install()
            assert env.restart() == 0

    def test_cg_100_04_dev_identity_is_announced(self, env):
        assert env.error_log.scan_recent(r'CG0002: ClaudeGatewayDevIdentity is set', timeout=1) \
            or any('CG0002' in line for line in open(env.error_log.path))


class TestProxy:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo).add_health().add_session() \
            .add_messages(upstream.url, max_body=2 * 1024 * 1024).install()
        assert env.restart() == 0

    @pytest.fixture(autouse=True)
    def _reset(self, upstream):
        upstream.reset()

    @pytest.mark.parametrize('size', [1024, 1024 * 1024])
    @pytest.mark.parametrize('framing', ['content-length', 'chunked'])
    def test_cg_100_10_body_byte_identical(self, env, upstream, upstream_key, size, framing):
        # an id the upstream knows as is: no mapping, so the bytes go up unchanged
        body = message_body(size, model='claude-sonnet-4-5-20250929')
        r = post(env.port, '/v1/messages', body, chunked=(framing == 'chunked'))
        assert r.status == 200, r.body
        rec = upstream.requests[-1]
        assert rec['body_sha256'] == hashlib.sha256(body).hexdigest()
        assert rec['body_len'] == len(body)
        # de-chunked: the upstream always gets an exact length
        assert rec['framing'] == 'content-length'
        assert header(rec, 'x-api-key') == upstream_key
        assert not rec['violations']

    def test_cg_100_11_expect_100_continue(self, env, upstream):
        body = message_body(64 * 1024, model='claude-sonnet-4-5-20250929')
        first, r = post_expect_continue(env.port, '/v1/messages', body)
        assert first.startswith('HTTP/1.1 100')
        assert r.status == 200
        rec = upstream.requests[-1]
        assert rec['body_sha256'] == hashlib.sha256(body).hexdigest()
        assert header(rec, 'expect') is None

    def test_cg_100_12_client_credentials_never_reach_upstream(self, env, upstream, upstream_key,
                                                               session_secret):
        now = int(time.time())
        session = jwt.encode({'sub': 'user-bob', 'aud': 'claude-gateway', 'iat': now,
                              'exp': now + 300}, session_secret, algorithm='HS256')
        r = post(env.port, '/v1/messages?beta=true', message_body(), headers={
            'authorization': 'Bearer ' + session,
            'x-api-key': 'client-supplied-key',
            'cookie': 'session=abc',
            'x-forwarded-for': '10.9.9.9',
            'x-claude-code-session-id': 'sess-123',
            'x-random-header': 'zzz',
            'anthropic-beta': 'claude-code-20250219',
            'x-stainless-lang': 'js',
            'user-agent': 'claude-cli/2.1.328 (external, cli)',
        })
        assert r.status == 200
        rec = upstream.requests[-1]
        names = {k for k, _ in rec['headers']}
        assert rec['query'] == 'beta=true'
        assert header(rec, 'x-api-key') == upstream_key
        for forbidden in ('authorization', 'cookie', 'x-forwarded-for', 'x-forwarded-host',
                          'x-claude-code-session-id', 'x-random-header', 'accept-encoding'):
            assert forbidden not in names, forbidden
        assert header(rec, 'anthropic-beta') == 'claude-code-20250219'
        assert header(rec, 'x-stainless-lang') == 'js'
        assert header(rec, 'user-agent').startswith('claude-cli/2.1.328 (external, cli) mod_claude/')
        raw = json.dumps(rec['headers'])
        assert 'client-supplied-key' not in raw and session not in raw

    def test_cg_100_15_client_connection_header_honoured(self, env, upstream, upstream_key):
        """The client's Connection header decides keep-alive as with any vhost
        (an HTTP/1.0 client such as `ab -k` keeps its connection only when
        it asks), and goes no further than Apache: the headers it names as
        hop-by-hop cannot take away what the gateway sets."""
        import socket as sk

        def exchange(s, version, connection, rid):
            raw = message_body(model='claude-sonnet-4-5-20250929')
            s.sendall(b'POST /v1/messages HTTP/%s\r\nHost: x\r\ncontent-type: application/json\r\n'
                      b'anthropic-version: 2023-06-01\r\nx-client-request-id: %s\r\n'
                      b'connection: %s\r\ncontent-length: %d\r\n\r\n'
                      % (version, rid, connection, len(raw)) + raw)
            got = b''
            while b'\r\n\r\n' not in got:
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
            head, body = got.split(b'\r\n\r\n', 1)
            lines = head.decode().split('\r\n')
            hdrs = {k.strip().lower(): v.strip()
                    for k, v in (x.split(':', 1) for x in lines[1:])}
            while len(body) < int(hdrs['content-length']):
                chunk = s.recv(65536)
                assert chunk, body
                body += chunk
            assert lines[0].split()[1] == '200', (lines, body)
            return hdrs

        s = sk.create_connection(('127.0.0.1', env.port), timeout=10)
        try:
            # the second one on the same connection, naming headers
            for i, conn in enumerate((b'keep-alive', b'Keep-Alive, x-api-key, content-type')):
                hdrs = exchange(s, b'1.0', conn, b'ka10-%d' % i)
                assert hdrs.get('connection', '').lower() == 'keep-alive', hdrs
        finally:
            s.close()
        for rec in upstream.requests[-2:]:
            names = {k for k, _ in rec['headers']}
            assert 'keep-alive' not in names
            assert header(rec, 'connection') in (None, 'keep-alive', 'Keep-Alive')
            assert header(rec, 'x-api-key') == upstream_key
            assert header(rec, 'content-type') == 'application/json'
        s = sk.create_connection(('127.0.0.1', env.port), timeout=10)
        try:
            hdrs = exchange(s, b'1.1', b'close', b'close11')
            assert hdrs.get('connection', '').lower() == 'close', hdrs
            assert s.recv(1) == b''  # closed by the server, as asked
        finally:
            s.close()

    def test_cg_100_16_pipelined_requests(self, env, upstream):
        """Two requests written at once on one connection: the body read in
        fixups takes only its own bytes, and both are answered in order."""
        import socket as sk
        raws = [message_body(model='claude-sonnet-4-5-20250929', metadata={'user_id': f'p{i}'})
                for i in range(2)]
        wire = b''.join(b'POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json'
                        b'\r\nanthropic-version: 2023-06-01\r\nx-client-request-id: pipe-%d\r\n'
                        b'content-length: %d\r\n\r\n' % (i, len(raw)) + raw
                        for i, raw in enumerate(raws))
        s = sk.create_connection(('127.0.0.1', env.port), timeout=10)
        got = b''
        try:
            s.sendall(wire)
            while got.count(b'x-request-id: pipe-') < 2 or not got.endswith(b'}'):
                chunk = s.recv(65536)
                assert chunk, got
                got += chunk
        finally:
            s.close()
        assert got.count(b'HTTP/1.1 200 OK') == 2, got
        assert got.index(b'x-request-id: pipe-0') < got.index(b'x-request-id: pipe-1')
        bodies = [r['body_sha256'] for r in upstream.requests[-2:]]
        assert bodies == [hashlib.sha256(raw).hexdigest() for raw in raws]

    def test_cg_100_13_count_tokens_and_request_id(self, env, upstream):
        r = post(env.port, '/v1/messages/count_tokens?beta=true', message_body(),
                 headers={'x-client-request-id': 'myreq-001'})
        assert r.status == 200
        assert 'input_tokens' in r.json
        assert r.headers['x-request-id'] == 'myreq-001'
        rec = upstream.requests[-1]
        assert rec['path'] == '/v1/messages/count_tokens'
        assert rec['query'] == 'beta=true'

    def test_cg_100_14_provider_headers_replaced(self, env, upstream):
        body = message_body(_fake={'headers': {
            'request-id': 'req_upstream_1', 'anthropic-organization-id': 'org-secret',
            'anthropic-ratelimit-requests-remaining': '7', 'x-custom-resp': 'kept'}})
        r = post(env.port, '/v1/messages', body, headers={'x-client-request-id': 'rid-14'})
        assert r.status == 200
        assert r.headers['request-id'] == 'rid-14'
        assert r.headers['x-request-id'] == 'rid-14'
        assert 'anthropic-organization-id' not in r.headers
        assert 'anthropic-ratelimit-requests-remaining' not in r.headers
        assert r.headers['x-custom-resp'] == 'kept'

    @pytest.mark.parametrize('body,message', [
        (b'{not json', 'invalid JSON'),
        (b'[1,2]', 'request body must be a JSON object'),
        (b'{"max_tokens":1}', 'model is required'),
        (b'{"model":42}', 'model must be a string'),
        (b'{"model":"claude-haiku-4-5","model":"claude-opus-4-1"}', 'invalid JSON'),
    ])
    def test_cg_100_20_bad_bodies_refused(self, env, upstream, body, message):
        rid = 'bad-' + hashlib.sha256(body).hexdigest()[:12]
        r = post(env.port, '/v1/messages', body, headers={'x-client-request-id': rid})
        assert r.status == 400
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert r.json == {'type': 'error', 'request_id': rid,
                          'error': {'type': 'invalid_request_error', 'message': message}}
        rec = env.audit_records(rid)[-1]
        assert rec['decision'] == 'invalid_request' and rec['reason'] == message
        assert upstream.requests == []

    def test_cg_100_21_body_over_limit(self, env, upstream):
        body = message_body(3 * 1024 * 1024)
        r = post(env.port, '/v1/messages', body)
        assert r.status == 413
        r = post(env.port, '/v1/messages', body, chunked=True)
        assert r.status == 413
        assert upstream.requests == []

    def test_cg_100_22_get_is_not_found(self, env, upstream):
        r = requests.get(env.mkurl('/v1/messages'))
        assert r.status_code == 404
        assert r.text == 'not found'
        assert upstream.requests == []

    def test_cg_100_23_no_session_is_401_json(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo).add_messages(upstream.url, dev_identity=None) \
            .install()
        assert env.restart() == 0
        try:
            r = post(env.port, '/v1/messages', message_body(),
                     headers={'authorization': 'Bearer garbage'})
            assert r.status == 401
            assert r.headers['content-type'] == 'application/json;charset=utf-8'
            assert r.headers['www-authenticate'] == 'Bearer'
            assert r.json['error'] == {'type': 'authentication_error', 'message': 'invalid token'}
            assert r.json['request_id'] == r.headers['x-request-id']
            assert upstream.requests == []
        finally:
            GatewayConf(env).add_database(pg.conninfo).add_health() \
                .add_messages(upstream.url, max_body=2 * 1024 * 1024).install()
            assert env.restart() == 0


class TestStreaming:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo).add_messages(upstream.url).install()
        assert env.restart() == 0

    def test_cg_100_30_sse_timing_preserved(self, env, upstream):
        body = message_body(stream=True, _fake={'events': 4, 'pace_ms': 300, 'split': True})
        r = stream(env.port, '/v1/messages', body)
        assert r.status == 200
        assert r.headers['content-type'].startswith('text/event-stream')
        names = [n for _, n, _ in r.events]
        assert names[0] == 'message_start' and names[-1] == 'message_stop'
        deltas = [t for t, n, _ in r.events if n == 'content_block_delta']
        assert len(deltas) == 4
        # each paced event arrives on its own, not all at the end
        gaps = [b - a for a, b in zip(deltas, deltas[1:])]
        assert all(g > 0.2 for g in gaps), gaps
        assert r.events[-1][0] - deltas[0] > 0.5

    def test_cg_100_31_usage_in_access_log(self, env, upstream, pg):
        body = message_body(_fake={'usage': {'input_tokens': 1000, 'output_tokens': 500,
                                             'cache_read_input_tokens': 30,
                                             'cache_creation_input_tokens': 20}})
        r = post(env.port, '/v1/messages', body, headers={'x-client-request-id': 'usage-json-1'})
        assert r.status == 200
        body = message_body(stream=True, _fake={'usage': {'input_tokens': 2000,
                                                          'output_tokens': 800}})
        r = stream(env.port, '/v1/messages', body, headers={'x-client-request-id': 'usage-sse-1'})
        assert r.status == 200
        json_line = env.access_log_line('usage-json-1')
        assert 'in=1000 out=500 cache_read=30 cache_write=20 partial=0' in json_line
        assert 'user-alice' in json_line
        sse_line = env.access_log_line('usage-sse-1')
        assert 'in=2000 out=800' in sse_line and 'partial=0' in sse_line
        # the ledger: one row per metered request, integer micro-USD at list price
        row = pg.wait_value("SELECT sub, model_requested, input_tokens, output_tokens, "
                      "cache_read_tokens, cache_write_tokens, cost_micro_usd, partial, status, "
                      "upstream, groups::text FROM claude_ledger WHERE request_id = 'usage-json-1'")
        assert row == ('user-alice|claude-sonnet-4-5|1000|500|30|20|10584|f|200|'
                       f'{upstream.url}|["eng", "claude-users"]'), row
        row = pg.wait_value("SELECT input_tokens, output_tokens, cost_micro_usd, partial "
                      "FROM claude_ledger WHERE request_id = 'usage-sse-1'")
        assert row == '2000|800|18000|f'
        # the request's time, to the microsecond the gateway saw it (COPY's binary
        # timestamps count from 2000-01-01): within the test's own minute
        age = pg.psql("SELECT extract(epoch FROM now() - at) FROM claude_ledger "
                      "WHERE request_id = 'usage-json-1'")
        assert 0 <= float(age) < 60, age
        rec = env.audit_records('usage-json-1')[-1]
        assert rec['decision'] == 'allowed' and rec['user'] == 'user-alice'
        assert rec['model'] == 'claude-sonnet-4-5' and rec['input_tokens'] == '1000'
        assert rec['cache_read_tokens'] == '30' and rec['status'] == 200

    def test_cg_100_32_truncated_stream_is_partial(self, env, upstream, pg):
        body = message_body(stream=True, _fake={'events': 5, 'disconnect_after': 3,
                                                'usage': {'input_tokens': 700}})
        r = stream(env.port, '/v1/messages', body, headers={'x-client-request-id': 'usage-cut-1'})
        assert r.status == 200
        assert 'message_stop' not in [n for _, n, _ in r.events]
        line = env.access_log_line('usage-cut-1')
        assert 'in=700' in line and 'partial=1' in line
        assert pg.wait_value("SELECT input_tokens, partial FROM claude_ledger "
                       "WHERE request_id = 'usage-cut-1'") == '700|t'

        # mod_proxy reports the broken backend; that is the point of the test
        env.error_log.ignore_recent(tags=['AH01102', 'AH01110'], matches=[r'proxy.*error reading'])


class TestLedgerJournal:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='4 500').add_messages(upstream.url) \
            .add('ClaudeSpendOnError open').install()
        assert env.restart() == 0

    def test_cs_100_70_postgres_blip_loses_no_debit(self, env, pg, upstream):
        """With ClaudeSpendOnError open, requests go on while PostgreSQL is
        down; their ledger rows wait in the journal."""
        journal = os.path.join(env.logs_dir, 'claude-spend.journal')
        assert post(env.port, '/v1/messages', message_body(),
                    headers={'x-client-request-id': 'blip-0'}).status == 200
        end = time.time() + 5  # the row is written after the answer went out
        while time.time() < end and pg.psql(
                "SELECT count(*) FROM claude_ledger WHERE request_id = 'blip-0'") != '1':
            time.sleep(0.05)
        pg.stop()
        try:
            for i in (1, 2):
                r = post(env.port, '/v1/messages', message_body(),
                         headers={'x-client-request-id': f'blip-{i}'})
                assert r.status == 200  # metering never fails the user's request
            end = time.time() + 5
            while time.time() < end and not ('blip-1' in open(journal).read() and
                                             'blip-2' in open(journal).read()):
                time.sleep(0.1)
            text = open(journal).read()
            assert 'blip-1' in text and 'blip-2' in text
        finally:
            pg.start()
            assert pg.wait_ready()
        assert post(env.port, '/v1/messages', message_body(),
                    headers={'x-client-request-id': 'blip-3'}).status == 200
        end = time.time() + 10
        while time.time() < end and os.path.getsize(journal) > 0:
            time.sleep(0.1)
        assert os.path.getsize(journal) == 0
        end = time.time() + 5
        while time.time() < end and pg.psql(
                "SELECT count(*) FROM claude_ledger WHERE request_id LIKE 'blip-%'") != '4':
            time.sleep(0.05)
        rows = pg.psql("SELECT string_agg(request_id, ',' ORDER BY request_id) FROM claude_ledger "
                       "WHERE request_id LIKE 'blip-%'")
        assert rows == 'blip-0,blip-1,blip-2,blip-3'
        env.error_log.ignore_recent(tags=['CS0302', 'CS0303', 'CS0304', 'CG0101', 'CG0103',
                                          'CG0104', 'CG0105', 'CS0401', 'CS0402'])


    def test_cs_100_71_a_killed_child_loses_no_debit(self, env, pg, upstream):
        """Rows queued for the ledger writer are also in the child's spool
        file; when the child dies before writing them (SIGKILL, while the
        ledger is locked), the next child moves them to the journal and the
        writer replays them."""
        import signal
        spool = os.path.join(env.logs_dir, 'claude-spend.journal.spool')
        assert post(env.port, '/v1/messages', message_body(),
                    headers={'x-client-request-id': 'kill-0'}).status == 200
        assert pg.wait_value("SELECT string_agg(request_id, ',') FROM claude_ledger "
                             "WHERE request_id = 'kill-0'") == 'kill-0'
        # hold the ledger so the writers block on it
        locker = subprocess.Popen(
            ['psql', '-X', '-q', '-d', pg.conninfo, '-c',
             'BEGIN; LOCK TABLE claude_ledger IN ACCESS EXCLUSIVE MODE; SELECT pg_sleep(60);'],
            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        try:
            end = time.time() + 10
            while time.time() < end and pg.psql(
                    "SELECT count(*) FROM pg_locks WHERE relation = 'claude_ledger'::regclass "
                    "AND mode = 'AccessExclusiveLock' AND granted") != '1':
                time.sleep(0.05)
            for i in (1, 2, 3):
                assert post(env.port, '/v1/messages', message_body(),
                            headers={'x-client-request-id': f'kill-{i}'}).status == 200

            def spooled():
                text = ''
                for name in os.listdir(spool):
                    with open(os.path.join(spool, name)) as f:
                        text += f.read()
                return text
            end = time.time() + 5
            while time.time() < end and not all(f'kill-{i}' in spooled() for i in (1, 2, 3)):
                time.sleep(0.05)
            assert all(f'kill-{i}' in spooled() for i in (1, 2, 3))
            children = subprocess.run(['pgrep', '-P', str(env._pid())], capture_output=True,
                                      text=True).stdout.split()
            assert children
            for c in children:
                os.kill(int(c), signal.SIGKILL)
        finally:
            locker.kill()
            locker.wait()
        end = time.time() + 20
        while time.time() < end and pg.psql(
                "SELECT count(*) FROM claude_ledger WHERE request_id LIKE 'kill-%'") != '4':
            time.sleep(0.1)
        rows = pg.psql("SELECT string_agg(request_id, ',' ORDER BY request_id) FROM claude_ledger "
                       "WHERE request_id LIKE 'kill-%'")
        assert rows == 'kill-0,kill-1,kill-2,kill-3'
        # the dead children's spool files are gone, the journal is empty again
        assert not [n for n in os.listdir(spool) if int(n.split('.')[0]) in map(int, children)]
        # new children's schema migrations wait for the lock too, and time out
        env.error_log.ignore_recent(tags=['CS0308', 'CS0304', 'CS0303', 'AH00050', 'CG0105'],
                                    matches=[r'exit signal Killed', r'NOTICE:'])


    def test_cs_100_72_a_torn_spool_row_spoils_no_other(self, env, pg, upstream):
        """Spool files are mapped: the unused part is zero bytes, and a child
        killed in the middle of a copy leaves a torn row. Recovery takes the
        whole rows around it and skips the torn one."""
        import json as _json
        spool = os.path.join(env.logs_dir, 'claude-spend.journal.spool')
        now_us = int(time.time() * 1e6)
        day = time.strftime('%Y-%m-%d', time.gmtime())

        def line(n):
            return (_json.dumps([f'torn-entry-{n}', f'torn-{n}', 'user-torn', None, '[]',
                                 'claude-sonnet-4-5', 'claude-sonnet-4-5', 'anthropic', '200',
                                 '1', '2', '0', '0', '33', 'f', day, None, None, str(now_us),
                                 None, None]) + '\n').encode()
        pid = 4194000  # beyond pid_max's default: no such process
        while os.path.exists(f'/proc/{pid}'):
            pid += 1
        torn = line(2)[:40]
        data = line(1) + b'\0' * 100 + torn + b'\0' * 57 + line(3) + b'\0' * 4096
        with open(os.path.join(spool, f'{pid}.0'), 'wb') as f:
            f.write(data)
        # the other spool of that process was emptied: zeros only, nothing to move
        with open(os.path.join(spool, f'{pid}.1'), 'wb') as f:
            f.truncate(1 << 20)
        end = time.time() + 20
        while time.time() < end and pg.psql(
                "SELECT count(*) FROM claude_ledger WHERE request_id LIKE 'torn-%'") != '2':
            time.sleep(0.1)
        assert pg.psql("SELECT string_agg(request_id, ',' ORDER BY request_id) FROM "
                       "claude_ledger WHERE request_id LIKE 'torn-%'") == 'torn-1,torn-3'
        assert not os.path.exists(os.path.join(spool, f'{pid}.0'))
        end = time.time() + 10
        while time.time() < end and os.path.exists(os.path.join(spool, f'{pid}.1')):
            time.sleep(0.1)
        assert not os.path.exists(os.path.join(spool, f'{pid}.1'))
        # one file had rows, so one warning
        moved = [ln for ln in open(env.error_log.path, errors='replace')
                 if 'CS0308' in ln and f'process {pid},' in ln]
        assert len(moved) == 1, moved
        env.error_log.ignore_recent(tags=['CS0308', 'CS0304'])


    def test_cs_100_73_a_batch_meeting_a_known_entry_is_settled_row_by_row(self, env, pg,
                                                                          upstream):
        """Should the ledger already hold an entry of a batch, its COPY fails
        whole; the writer then settles the batch with claude_settle, which
        counts only new rows (CS0313). A trigger fakes the clash once (a
        sequence, which no rollback undoes)."""
        pg.psql("CREATE SEQUENCE IF NOT EXISTS clash_once; "
                "CREATE OR REPLACE FUNCTION clash_once() RETURNS trigger LANGUAGE plpgsql AS $$ "
                "BEGIN IF NEW.request_id = 'clash-1' AND nextval('clash_once') = 1 THEN "
                "RAISE unique_violation USING MESSAGE = 'duplicate key (test)'; END IF; "
                "RETURN NEW; END $$; "
                "CREATE TRIGGER clash_once BEFORE INSERT ON claude_ledger FOR EACH ROW "
                "EXECUTE FUNCTION clash_once()")
        try:
            assert post(env.port, '/v1/messages', message_body(),
                        headers={'x-client-request-id': 'clash-1'}).status == 200
            assert pg.wait_value("SELECT string_agg(request_id, ',') FROM claude_ledger "
                                 "WHERE request_id = 'clash-1'", timeout=10) == 'clash-1'
            assert pg.psql("SELECT last_value FROM clash_once") == '2'
            assert env.error_log.scan_recent(r'CS0313.*settled row by row') is not None
        finally:
            pg.psql("DROP TRIGGER IF EXISTS clash_once ON claude_ledger; "
                    "DROP FUNCTION IF EXISTS clash_once(); DROP SEQUENCE IF EXISTS clash_once")


class TestStreamLifecycle:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo).add_messages(upstream.url).install()
        assert env.restart() == 0

    def test_cg_100_60_graceful_restart_keeps_streams(self, env, upstream):
        import threading
        result = {}

        def run():
            result['r'] = stream(env.port, '/v1/messages', message_body(
                stream=True, _fake={'events': 8, 'pace_ms': 250}),
                headers={'x-client-request-id': 'graceful-1'})
        t = threading.Thread(target=run)
        t.start()
        time.sleep(0.6)
        assert env.graceful() == 0
        t.join(timeout=30)
        names = [n for _, n, _ in result['r'].events]
        assert names.count('content_block_delta') == 8 and names[-1] == 'message_stop'
        assert 'partial=0' in env.access_log_line('graceful-1')
        assert env.is_live()
        env.error_log.ignore_recent(matches=[r'AH00493', r'SIGUSR1'])

    def test_cg_100_61_client_abort_still_metered(self, env, upstream):
        import socket as sk
        s = sk.create_connection(('127.0.0.1', env.port))
        raw = message_body(stream=True, _fake={'events': 6, 'pace_ms': 300,
                                                'usage': {'input_tokens': 321}})
        s.sendall(b'POST /v1/messages HTTP/1.1\r\nHost: x\r\ncontent-type: application/json\r\n'
                  b'anthropic-version: 2023-06-01\r\nx-client-request-id: abort-1\r\n'
                  b'content-length: %d\r\n\r\n' % len(raw) + raw)
        got = b''
        while b'content_block_delta' not in got:
            got += s.recv(4096)
        s.close()  # the developer hit Ctrl-C
        line = env.access_log_line('abort-1', timeout=10)
        assert 'in=321' in line and 'partial=1' in line

    def test_cs_100_63_unknown_model_fallback_price_warned_once(self, env, upstream, pg):
        for i in range(3):
            r = post(env.port, '/v1/messages', message_body(model='acme-private-model'),
                     headers={'x-client-request-id': f'unknown-{i}'})
            assert r.status == 200
        cost = pg.wait_value("SELECT cost_micro_usd FROM claude_ledger "
                             "WHERE request_id = 'unknown-2'")
        assert cost == '235'  # 12 in x $5 + 7 out x $25 per MTok, rounded up
        time.sleep(0.2)
        # this module's lines only: earlier modules may have warned of other
        # models (the server restarts between modules, so its memory of what
        # it warned about does not outlive them)
        warned = [x for x in env.error_log.recent_lines() if 'CS0220' in x]
        assert len(warned) == 1 and 'acme-private-model' in warned[0], warned
        env.error_log.ignore_recent(tags=['CS0220'])

    def test_cg_100_62_upstream_errors_relayed(self, env, upstream):
        for status, etype in ((529, 'overloaded_error'), (429, 'rate_limit_error'),
                              (500, 'api_error')):
            r = post(env.port, '/v1/messages', message_body(_fake={'status': status}))
            assert r.status == status
            assert r.json['error']['type'] == etype


class TestRequireGroup:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        conf = GatewayConf(env).add_database(pg.conninfo)
        conf.add_messages(upstream.url)
        conf.lines[-1] = conf.lines[-1].replace('    Require valid-user',
                                                '    Require claude-group admins ops')
        conf.add('<Location /v1/messages/count_tokens>\n    Require claude-group eng\n'
                 '</Location>')
        conf.install()
        assert env.restart() == 0

    def test_cg_100_80_require_claude_group(self, env, upstream):
        upstream.reset()
        # alice is in eng and claude-users: not admins or ops
        r = post(env.port, '/v1/messages', message_body(),
                 headers={'x-client-request-id': 'grp-1'})
        assert r.status == 403
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert r.json['error']['type'] == 'permission_error'
        assert r.json['request_id'] == 'grp-1'
        rec = env.audit_records('grp-1')[-1]
        assert rec['decision'] == 'group_denied' and rec['reason'] == 'admins ops'
        assert upstream.requests == []
        r = post(env.port, '/v1/messages/count_tokens', message_body())
        assert r.status == 200
        env.error_log.ignore_recent(tags=['AH01631'])  # authz_core logs each refusal


class TestTls:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo).add_health().add_messages(upstream.url) \
            .install()
        assert env.restart() == 0

    def test_cg_100_50_gateway_over_tls(self, env, upstream):
        r = requests.get(env.tls_url + '/healthz', verify=env.tls_ca)
        assert r.status_code == 200
        assert r.headers['strict-transport-security'] == 'max-age=31536000; includeSubDomains'
        assert 'strict-transport-security' not in requests.get(env.mkurl('/healthz')).headers
        r = requests.post(env.tls_url + '/v1/messages', data=message_body(stream=True),
                          headers={'content-type': 'application/json',
                                   'anthropic-version': '2023-06-01'}, verify=env.tls_ca)
        assert r.status_code == 200
        assert 'event: message_stop' in r.text


class TestConfig:

    def test_cg_100_40_missing_key_fails_config_test(self, env, pg, upstream):
        GatewayConf(env).add_messages(upstream.url, key_ref='env:CLAUDE_TEST_NO_SUCH_VAR').install()
        rc, out = env.config_test()
        assert rc != 0
        assert 'ClaudeGatewayUpstreamKey: environment variable CLAUDE_TEST_NO_SUCH_VAR is not set' in out

    def test_cg_100_41_inline_key_refused(self, env, upstream):
        GatewayConf(env).add_messages(upstream.url, key_ref='sk-ant-inline').install()
        rc, out = env.config_test()
        assert rc != 0
        assert 'never inline' in out
        assert 'sk-ant-inline' not in out

    def test_cg_100_42_key_from_file(self, env, upstream, upstream_key, gen_dir):
        path = os.path.join(gen_dir, 'upstream.key')
        with open(path, 'w') as f:
            f.write(upstream_key + '\n')
        GatewayConf(env).add_messages(upstream.url, key_ref=f'file:{path}').install()
        assert env.restart() == 0
        upstream.reset()
        r = post(env.port, '/v1/messages', message_body())
        assert r.status == 200
        assert header(upstream.requests[-1], 'x-api-key') == upstream_key

    def test_cg_100_43_bad_max_body(self, env, upstream):
        GatewayConf(env).add_messages(upstream.url, max_body='12abc').install()
        rc, out = env.config_test()
        assert rc != 0
        assert "ClaudeGatewayMaxBody: '12abc' is not a byte count" in out

    def test_cg_100_44_spend_needs_gateway(self, env, gen_dir):
        """mod_claude_spend refuses to start without mod_claude_gateway."""
        env.stop()
        conf = os.path.join(env.conf_dir, 'httpd.conf')
        with open(conf) as f:
            text = f.read()
        alt = os.path.join(env.conf_dir, 'nogw.conf')
        with open(alt, 'w') as f:
            f.write('\n'.join('LogLevel warn' if x.startswith('LogLevel') else x
                              for x in text.splitlines()
                              if 'claude_gateway_module' not in x and 'Include' not in x))
        r = subprocess.run([HTTPD, '-d', env.root, '-f', alt, '-X', '-k', 'start'],
                           capture_output=True, text=True, timeout=20, env=env._env())
        assert r.returncode != 0
        out = r.stdout + r.stderr
        if os.path.exists(env.error_log.path):
            with open(env.error_log.path) as f:
                out += f.read()
        assert 'CS0001: mod_claude_spend needs mod_claude_gateway' in out, out[-2000:]
        env.error_log.ignore_recent(tags=['CS0001'], matches=['AH00016', 'Configuration Failed'])
