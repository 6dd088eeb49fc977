"""Spend caps: admission against user, group and organization caps with
reservations, the reference's 429 and usage headers, the 32-way race bound,
count_tokens never blocked, and PostgreSQL failures (closed and open)."""
import calendar
import datetime
import hashlib
import json
import subprocess
import threading
import time

import jwt
import pytest

from pyclaude.client import post
from pyclaude.conf import GatewayConf

# fake usage per request, kept within what the body and max_tokens allow so
# the reservation's estimate bounds the real cost: 100 in + 500 out on
# Sonnet 4.5 = 100 * 3 + 500 * 15 = 7800 micro-USD (0.78 cents)
USAGE = {'input_tokens': 100, 'output_tokens': 500, 'cache_read_input_tokens': 0,
         'cache_creation_input_tokens': 0}
COST = 7800


def token(secret, sub='user-alice', email='alice@example.com', groups=('eng',)):
    now = int(time.time())
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode({'sub': sub, 'email': email, 'groups': list(groups),
                       'aud': 'claude-gateway', 'iat': now, 'exp': now + 600},
                      secret, algorithm='HS256', headers={'kid': kid})


def body(**extra):
    b = {'model': 'claude-sonnet-4-5-20250929', 'max_tokens': 500,
         'messages': [{'role': 'user', 'content': 'x' * 120}]}
    b.update(extra)
    return json.dumps(b).encode()


def ask(env, secret, path='/v1/messages', **kw):
    return post(env.port, path, body(), headers={
        'authorization': 'Bearer ' + token(secret, **kw), 'content-type': 'application/json',
        'anthropic-version': '2023-06-01'})


def set_limit(pg, scope_type, scope_id, period, cents):
    amount = 'NULL' if cents is None else str(cents)
    pg.psql("INSERT INTO claude_spend_limits (id, scope_type, scope_id, period, amount_cents) "
            f"VALUES ('spl_' || md5(random()::text), '{scope_type}', '{scope_id}', '{period}', "
            f"{amount}) ON CONFLICT (scope_type, scope_id, period) DO UPDATE SET "
            "amount_cents = EXCLUDED.amount_cents")


def settled(pg, sub='user-alice'):
    return int(pg.psql(f"SELECT coalesce(sum(cost_micro_usd), 0) FROM claude_ledger "
                       f"WHERE sub = '{sub}'"))


def wait_settled(pg, n, sub='user-alice', timeout=10):
    end = time.time() + timeout
    while time.time() < end:
        if int(pg.psql(f"SELECT count(*) FROM claude_ledger WHERE sub = '{sub}'")) >= n and \
                int(pg.psql("SELECT count(*) FROM claude_reservations")) == 0:
            return
        time.sleep(0.05)
    raise AssertionError('ledger rows did not settle')


def next_utc_midnight():
    now = datetime.datetime.now(datetime.timezone.utc)
    nxt = (now + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    return nxt


@pytest.fixture(autouse=True)
def _clean(pg, upstream):
    pg.psql('DELETE FROM claude_spend_limits; DELETE FROM claude_spend; '
            'DELETE FROM claude_reservations; DELETE FROM claude_ledger')
    upstream.reset()
    upstream_default(upstream, usage=USAGE)
    yield
    upstream.reset()  # the session's fake: later modules expect its defaults


def upstream_default(upstream, **behaviour):
    import requests
    requests.post(upstream.url + '/_fake/default', json=behaviour, timeout=5)


class TestCaps:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='16 2000').add_session() \
            .add('ClaudeSpendGroupLimitMode min') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0

    def test_cs_500_01_user_daily_cap_blocks_as_the_reference(self, env, pg, session_secret,
                                                             upstream):
        set_limit(pg, 'user', 'user-alice', 'daily', 3)  # 3 cents = 30000 micro-USD
        statuses = []
        for i in range(6):
            r = ask(env, session_secret)
            statuses.append(r.status)
            if r.status == 200:
                wait_settled(pg, statuses.count(200))
        # allowed while spent < cap: 0, 0.78, 1.56, 2.34 cents, then 3.12 >= 3
        assert statuses == [200, 200, 200, 200, 429, 429], statuses
        assert upstream.count == 4
        r = ask(env, session_secret)
        assert r.status == 429
        h = r.headers
        reset = next_utc_midnight()
        assert r.json == {'type': 'error', 'error': {
            'type': 'billing_error',
            'message': f'spend limit reached \u00b7 resets {reset:%b} {reset.day}'}}
        assert h['anthropic-ratelimit-unified-status'] == 'rejected'
        assert int(h['anthropic-ratelimit-unified-reset']) == calendar.timegm(reset.timetuple())
        assert h['anthropic-ratelimit-unified-overage-reset'] == \
            h['anthropic-ratelimit-unified-reset']
        assert h['anthropic-ratelimit-unified-overage-utilization'] == '1.04'  # 31200 / 30000
        assert h['anthropic-ratelimit-unified-overage-surpassed-threshold'] == '1'
        assert h['anthropic-ratelimit-unified-overage-period'] == 'daily'
        assert h['anthropic-ratelimit-unified-overage-disabled-reason'] == 'org_spend_cap_reached'
        assert h['x-should-retry'] == 'false'
        left = calendar.timegm(reset.timetuple()) - time.time()
        assert abs(int(h['retry-after']) - left) <= 2
        rec = env.audit_records(h['x-request-id'])[0]
        assert rec['decision'] == 'spend_blocked' and rec['status'] == 429
        # count_tokens is never blocked (nor metered)
        r = ask(env, session_secret, path='/v1/messages/count_tokens')
        assert r.status == 200
        # another user is not affected
        assert ask(env, session_secret, sub='user-bob', email='bob@example.com').status == 200

    def test_cs_500_02_allowed_answers_carry_usage_headers(self, env, pg, session_secret):
        set_limit(pg, 'user', 'user-alice', 'monthly', 4)  # 40000 micro-USD
        r = ask(env, session_secret)
        assert r.status == 200
        assert r.headers['anthropic-ratelimit-unified-status'] == 'allowed'
        assert r.headers['anthropic-ratelimit-unified-overage-utilization'] == '0'
        assert 'anthropic-ratelimit-unified-overage-surpassed-threshold' not in r.headers
        assert r.headers['anthropic-ratelimit-unified-representative-claim'] == 'overage'
        for n in (2, 3, 4):
            wait_settled(pg, n - 1)
            r = ask(env, session_secret)
        # 3 * 7800 = 23400 of 40000 before the fourth: 0.585 -> allowed
        wait_settled(pg, 4)
        r = ask(env, session_secret)  # 31200 / 40000 = 0.78 > 0.75
        assert r.status == 200
        assert r.headers['anthropic-ratelimit-unified-status'] == 'allowed_warning'
        assert r.headers['anthropic-ratelimit-unified-overage-status'] == 'allowed_warning'
        assert r.headers['anthropic-ratelimit-unified-overage-utilization'] == '0.78'
        assert r.headers['anthropic-ratelimit-unified-overage-surpassed-threshold'] == '0.75'
        # users with no cap get none of these headers
        r = ask(env, session_secret, sub='user-bob')
        assert not [k for k in r.headers if k.lower().startswith('anthropic-ratelimit')]

    def test_cs_500_03_group_and_org_caps(self, env, pg, session_secret):
        # org default per seat; the user's groups override it; min of groups
        set_limit(pg, 'organization', '', 'daily', 1)
        set_limit(pg, 'rbac_group', 'eng', 'daily', 100)
        set_limit(pg, 'rbac_group', 'ops', 'daily', 2)
        assert ask(env, session_secret, sub='u-org', groups=()).status == 200
        wait_settled(pg, 1, sub='u-org')
        assert ask(env, session_secret, sub='u-org', groups=()).status == 200   # 0.78 < 1
        wait_settled(pg, 2, sub='u-org')
        assert ask(env, session_secret, sub='u-org', groups=()).status == 429   # 1.56 >= 1
        # eng and ops: min is ops' 2 cents
        for n, expect in enumerate((200, 200, 200, 429)):
            assert ask(env, session_secret, sub='u-both', groups=('eng', 'ops')).status == expect
            if expect == 200:
                wait_settled(pg, n + 1, sub='u-both')
        # a user row shuts out group and org rows
        set_limit(pg, 'user', 'u-both', 'daily', None)
        assert ask(env, session_secret, sub='u-both', groups=('eng', 'ops')).status == 200

    def test_cs_500_04_max_mode(self, env, pg, session_secret, upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='16 2000').add_session() \
            .add('ClaudeSpendGroupLimitMode max') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        set_limit(pg, 'rbac_group', 'eng', 'weekly', 1)
        set_limit(pg, 'rbac_group', 'ops', 'weekly', 100)
        for _ in range(3):
            assert ask(env, session_secret, sub='u-max', groups=('eng', 'ops')).status == 200
        set_limit(pg, 'rbac_group', 'ops', 'weekly', None)  # unlimited wins in max mode
        assert ask(env, session_secret, sub='u-max', groups=('eng', 'ops')).status == 200
        GatewayConf(env).add_database(pg.conninfo, pool='16 2000').add_session() \
            .add('ClaudeSpendGroupLimitMode min') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0

    def test_cs_500_10_race_of_32_overshoots_by_less_than_one_request(self, env, pg,
                                                                      session_secret, upstream):
        """The reference pre-checks without reserving and lets all 32 through;
        here the settled total exceeds the cap by less than one request."""
        cap_cents = 5
        set_limit(pg, 'user', 'user-alice', 'daily', cap_cents)
        upstream_default(upstream, usage=USAGE, delay_ms=400)
        results = []
        lock = threading.Lock()

        def one():
            r = ask(env, session_secret)
            with lock:
                results.append(r.status)

        threads = [threading.Thread(target=one) for _ in range(32)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        ok = results.count(200)
        assert results.count(429) == 32 - ok and ok >= 1, results
        wait_settled(pg, ok)
        total = settled(pg)
        assert total == ok * COST
        overshoot = total - cap_cents * 10000
        print(f'race: {ok} of 32 admitted, settled {total} micro-USD, cap {cap_cents * 10000},'
              f' overshoot {overshoot} (one request costs {COST})')
        assert overshoot < COST
        # and the totals agree with the ledger rows
        day = pg.psql("SELECT micro_usd FROM claude_spend WHERE principal = 'user-alice' "
                      "AND period_key = to_char(now() at time zone 'utc', 'YYYY-MM-DD')")
        assert int(day) == total

    def test_cs_500_11_reservations_released_and_expired(self, env, pg, session_secret, upstream):
        set_limit(pg, 'user', 'user-alice', 'daily', 100)
        # an upstream error settles nothing and gives the hold back at once
        upstream_default(upstream, status=500)
        assert ask(env, session_secret).status == 500
        end = time.time() + 5
        while time.time() < end and pg.psql('SELECT count(*) FROM claude_reservations') != '0':
            time.sleep(0.05)
        assert pg.psql('SELECT count(*) FROM claude_reservations') == '0'
        # a crashed process's hold stops counting once expired
        upstream_default(upstream, usage=USAGE)
        pg.psql("INSERT INTO claude_reservations (request_id, principal, micro_usd, expires_at) "
                "VALUES ('dead-1', 'user-alice', 999999999, now() - interval '1 second'), "
                "('live-1', 'user-alice', 999999999, now() + interval '1 hour')")
        assert ask(env, session_secret).status == 429  # the live hold fills the cap
        pg.psql("DELETE FROM claude_reservations WHERE request_id = 'live-1'")
        assert ask(env, session_secret).status == 200
        assert pg.psql("SELECT count(*) FROM claude_reservations WHERE request_id = 'dead-1'") \
            == '0'

    def test_cs_500_13_leases_are_reserved_ahead(self, env, pg, session_secret):
        """A steady user's next lease is reserved by the ledger writer once half
        of the current one is taken, so no request waits for it; the totals
        stay exact and every unused micro-USD goes back."""
        set_limit(pg, 'user', 'user-alice', 'daily', 1000000)
        n = 48
        for _ in range(n):
            assert ask(env, session_secret).status == 200
        line = env.error_log.scan_recent(r'CS0404: next spend lease of user-alice reserved '
                                         r'ahead: \d+ micro-USD')
        assert line is not None, 'no lease was reserved ahead'
        wait_settled(pg, n)  # also: no reservation left once the leases are idle
        assert settled(pg) == n * COST
        day = pg.psql("SELECT micro_usd FROM claude_spend WHERE principal = 'user-alice' "
                      "AND period_key = to_char(now() at time zone 'utc', 'YYYY-MM-DD')")
        assert int(day) == n * COST

    def test_cs_500_12_fresh_batches_settle_as_row_by_row(self, env, pg):
        """The writer's own batches (rows appended, then claude_settle_sums
        with what cs_batch summed) leave totals, principals, reservations and
        leases as claude_settle does row by row; a batch holding a known
        entry fails whole (the writer then falls back to claude_settle) and
        changes nothing."""
        def lit(vals):
            def q(v):
                return '"' + str(v).replace('\\', '\\\\').replace('"', '\\"') + '"'
            return "'{" + ','.join('NULL' if v is None else q(v) for v in vals) + "}'"

        def settle_args(x, rows):
            cols = list(zip(*rows))
            return ', '.join([lit(c) + t for c, t in zip(cols, (
                '::text[]', '::text[]', '::bigint[]', '::text[]', '::text[]', '::text[]',
                '::text[]', '::text[]', '::text[]', '::integer[]', '::bigint[]', '::bigint[]',
                '::bigint[]', '::bigint[]', '::bigint[]', '::boolean[]'))])

        def rows_of(x):
            # entry, request, at_us, sub, email, groups, models..., status, tokens, cost, partial
            def r(n, sub, email, at, cost):
                return (f'{x}-e{n}', f'{x}-r{n}', at, f'{x}-{sub}', email, '["eng"]',
                        'claude-sonnet-4-5', 'claude-sonnet-4-5', 'anthropic', 200, 1, 2, 0, 0,
                        cost, 'f')
            return [r(1, 'a', 'a1@x', 1764500000000001, 100),
                    r(2, 'a', 'a2@x', 1764500000000003, 50),
                    r(3, 'b', 'b@x', 1764500000000002, 7),
                    r(4, 'b', 'b@x', 1764500000000004, 5)]
        day, week, month = '2026-11-30', '2026-W49', '2026-11'
        ENG = '["eng"]'
        for x in ('rr', 'fr'):
            pg.psql("INSERT INTO claude_reservations (request_id, principal, micro_usd, expires_at) "
                    f"VALUES ('{x}-L1', '{x}-a', 10000, now() + interval '1 hour'), "
                    f"('{x}-L2', '{x}-b', 300, now() + interval '1 hour'), "
                    f"('{x}-e4', '{x}-b', 900, now() + interval '1 hour')")
        rr = rows_of('rr')
        pg.psql(f"SELECT claude_settle({settle_args('rr', rr)}, "
                f"{lit([day] * 4)}::text[], {lit([week] * 4)}::text[], {lit([month] * 4)}::text[], "
                f"{lit(['rr-L1', 'rr-L1', 'rr-L2', None])}::text[], "
                f"{lit([1000, 2000, 300, None])}::bigint[], "
                "'{rr-L1}'::text[], '{500}'::bigint[])")
        fr = rows_of('fr')
        cols = ('entry_id, request_id, at, sub, email, groups, model_requested, model_served, '
                'upstream, status, input_tokens, output_tokens, cache_read_tokens, '
                'cache_write_tokens, cost_micro_usd, partial')
        values = ', '.join(
            f"('{r[0]}', '{r[1]}', timestamptz 'epoch' + {r[2]} * interval '1 microsecond', "
            f"'{r[3]}', '{r[4]}', '{r[5]}', '{r[6]}', '{r[7]}', '{r[8]}', {r[9]}, {r[10]}, "
            f"{r[11]}, {r[12]}, {r[13]}, {r[14]}, '{r[15]}')" for r in fr)
        sums = (f"SELECT claude_settle_sums("
                f"{lit(['fr-a'] * 3 + ['fr-b'] * 3)}::text[], "
                f"{lit([month, day, week] * 2)}::text[], "
                f"{lit([150] * 3 + [12] * 3)}::bigint[], "
                f"{lit(['fr-a', 'fr-b'])}::text[], {lit(['a2@x', 'b@x'])}::text[], "
                f"{lit([ENG, ENG])}::text[], "
                f"{lit(['fr-e4'])}::text[], {lit(['fr-L1', 'fr-L2'])}::text[], "
                f"{lit([3500, 300])}::bigint[])")
        # one psql -c string is one transaction, as the writer's COPY and sums are
        fresh = f"INSERT INTO claude_ledger ({cols}) VALUES {values}; {sums}"
        pg.psql(fresh)

        def state(x):
            return pg.psql(
                f"SELECT (SELECT string_agg(replace(principal, '{x}', '_') || ' ' || period_key "
                f"|| ' ' || micro_usd, ',' ORDER BY principal, period_key) FROM claude_spend "
                f"WHERE principal LIKE '{x}-%') || ' | ' || "
                f"(SELECT string_agg(replace(principal, '{x}', '_') || ' ' || email || ' ' || "
                f"groups::text, ',' ORDER BY principal) FROM claude_principals "
                f"WHERE principal LIKE '{x}-%') || ' | ' || "
                f"(SELECT coalesce(string_agg(replace(request_id, '{x}', '_') || ' ' || micro_usd, "
                f"',' ORDER BY request_id), '') FROM claude_reservations "
                f"WHERE request_id LIKE '{x}-%') || ' | ' || "
                f"(SELECT string_agg(replace(entry_id, '{x}', '_') || ' ' || at || ' ' || "
                f"cost_micro_usd, ',' ORDER BY entry_id) FROM claude_ledger "
                f"WHERE entry_id LIKE '{x}-%')")
        want = state('rr')
        assert '_-a 2026-11-30 150' in want and '_-L1 6500' in want and '_-L2' not in want
        assert 'a2@x' in want and '_-e4 ' not in want.split(' | ')[2]
        assert state('fr') == want
        # a known entry: the statement fails whole, nothing moves
        dup = fresh.replace(lit(['fr-e4']) + '::text[]', "'{}'::text[]")
        assert dup != fresh and 'fr-e1' in dup
        try:
            pg.psql(dup)
            raise AssertionError('a batch with known entries was taken')
        except subprocess.CalledProcessError as e:
            assert 'duplicate key' in e.stderr
        assert state('fr') == want


class TestCapsDatabaseDown:

    def test_cs_500_20_fail_closed_by_default(self, env, pg, session_secret, upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='4 500').add_session() \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        set_limit(pg, 'user', 'user-alice', 'daily', 100)
        set_limit(pg, 'user', 'user-carol', 'daily', 100)
        assert ask(env, session_secret).status == 200
        alice_ok = 1
        pg.stop()
        try:
            # alice may still be admitted from the lease her child holds (its
            # budget is reserved: her row waits in the journal); carol has
            # none, and nothing can be read
            alice_ok += ask(env, session_secret).status == 200
            r = ask(env, session_secret, sub='user-carol', email='carol@example.com')
            assert r.status == 429
            assert r.json == {'type': 'error', 'error': {'type': 'billing_error',
                                                         'message': 'spend limit unavailable'}}
            assert r.headers['anthropic-ratelimit-unified-overage-disabled-reason'] == \
                'fetch_error'
            assert 'retry-after' not in r.headers
            assert r.headers['x-should-retry'] == 'false'
        finally:
            pg.start()
            assert pg.wait_ready()
        assert ask(env, session_secret).status == 200
        # every row of alice's, the journaled one too, is settled once
        wait_settled(pg, alice_ok + 1)
        assert settled(pg) == (alice_ok + 1) * COST
        env.error_log.ignore_recent(tags=['CS0401', 'CS0402', 'CG0101', 'CG0103', 'CG0104',
                                          'CG0105', 'CS0302', 'CS0303', 'CS0304'])

    def test_cs_500_21_fail_open_journals_and_replays_exact_totals(self, env, pg, session_secret,
                                                                   upstream):
        GatewayConf(env).add_database(pg.conninfo, pool='4 500').add_session() \
            .add('ClaudeSpendOnError open') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        set_limit(pg, 'user', 'user-alice', 'daily', 1000)
        assert ask(env, session_secret).status == 200
        wait_settled(pg, 1)
        pg.stop()
        try:
            for _ in range(3):
                assert ask(env, session_secret).status == 200
        finally:
            pg.start()
            assert pg.wait_ready()
        assert ask(env, session_secret).status == 200  # replays the journal
        end = time.time() + 10
        while time.time() < end and pg.psql(
                "SELECT count(*) FROM claude_ledger WHERE sub = 'user-alice'") != '5':
            time.sleep(0.1)
        assert settled(pg) == 5 * COST
        totals = pg.psql("SELECT string_agg(micro_usd::text, ',') FROM claude_spend "
                         "WHERE principal = 'user-alice'")
        assert totals == ','.join([str(5 * COST)] * 3)
        env.error_log.ignore_recent(tags=['CS0401', 'CS0402', 'CG0101', 'CG0103', 'CG0104',
                                          'CG0105', 'CS0302', 'CS0303', 'CS0304'])


class TestPricing:
    """pricing.multiplier and pricing.overrides from the policy file, as the
    reference applies them: a row of the serving upstream, matched by the
    upstream's model string, the client's id, or the built-in model."""

    def test_cs_500_30_overrides_and_multiplier(self, env, pg, session_secret, upstream, gen_dir):
        policy = f'{gen_dir}/pricing.yaml'
        with open(policy, 'w') as f:
            f.write('upstreams:\n  - {name: direct, provider: anthropic}\n'
                    '  - {name: other, provider: anthropic}\n'
                    'pricing:\n  multiplier: 0.5\n  overrides:\n'
                    '    - {upstream: direct, model: claude-haiku-4-5, input: 2, output: 4.4,'
                    ' cache_read: 0.2, cache_write: 2.5}\n'
                    '    - {upstream: other, model: claude-sonnet-4-5, input: 100, output: 100,'
                    ' cache_read: 100, cache_write: 100}\n')
        GatewayConf(env).add_database(pg.conninfo).add_session() \
            .add(f'ClaudeGatewayPolicy {policy}') \
            .add_messages(upstream.url, dev_identity=None,
                          extra='    ClaudeGatewayUpstreamName direct').install()
        assert env.restart() == 0
        env.error_log.ignore_recent(tags=['CG0100'])
        # Sonnet: list price halved: (100 * 3 + 500 * 15) / 2 = 3900
        r = post(env.port, '/v1/messages', body(), headers={
            'authorization': 'Bearer ' + token(session_secret), 'x-client-request-id': 'price-1',
            'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status == 200
        # Haiku by its dated id: the row named by the built-in id, halved:
        # (100 * 2 + 500 * 4.4) / 2 = 1200
        r = post(env.port, '/v1/messages', body(model='claude-haiku-4-5-20251001'), headers={
            'authorization': 'Bearer ' + token(session_secret), 'x-client-request-id': 'price-2',
            'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status == 200
        assert pg.wait_value("SELECT cost_micro_usd FROM claude_ledger "
                             "WHERE request_id = 'price-1'") == '3900'
        assert pg.wait_value("SELECT cost_micro_usd FROM claude_ledger "
                             "WHERE request_id = 'price-2'") == '1200'
