"""Spend admin API (/v1/organizations/...), GET /api/oauth/usage and admin
authentication, on real httpd with the shipped conf/claude-spend-admin.conf,
against the reference gateway's captures 27 and 70-88: every key set, key
order, value format, status and message."""
import datetime
import hashlib
import json
import os
import re
import time
import uuid

import jwt
import pytest
import requests

from pyclaude.conf import GatewayConf
from pyclaude.env import TOP

BASE = '/v1/organizations/spend_limits'
ID_RE = re.compile(r'^spl_[0-9a-f]{32}$')
REQ_RE = re.compile(r'^req_[0-9a-f]{32}$')
TIME_MS_RE = re.compile(r'^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$')
OIDC_HTTP_WARNINGS = [r'SHOULD be https', r'oidc_']

# Response bodies of the reference gateway (shared/reference/captures).
CAPTURE = {
    '27': '{"extra_usage":{"is_enabled":true,"monthly_limit":null,"used_credits":2,'
          '"utilization":null,"currency":"USD","daily":{"limit":null,"used_credits":2,'
          '"utilization":null},"weekly":{"limit":null,"used_credits":2,"utilization":null}},'
          '"limits":[]}',
    '70': '{"type":"error","error":{"type":"authentication_error","message":"missing or '
          'invalid admin credentials"},"request_id":"req_929ad069261348d98282c192debbc770"}',
    '71': '{"data":[],"has_more":false,"first_id":null,"last_id":null}',
    '72': '{"type":"error","error":{"type":"permission_error","message":"requires '
          'write:spend_limits"},"request_id":"req_85736dbefd75406b9c57d9c4b0c13fec"}',
    '73': '{"type":"spend_limit","id":"spl_c36ea743e51f41e9a75f444a7b5d192e","created_at":'
          '"2026-11-23T16:38:22.614Z","updated_at":"2026-11-23T16:38:22.614Z","scope":{"type":'
          '"user","user_id":"user-alice"},"amount":"5","currency":"USD","period":"daily"}',
    '74': '{"type":"spend_limit","id":"spl_ece1dc46dd854074b5103e21a67cb675","created_at":'
          '"2026-11-23T16:38:22.637Z","updated_at":"2026-11-23T16:38:22.637Z","scope":{"type":'
          '"rbac_group","rbac_group_id":"eng"},"amount":"100000","currency":"USD","period":'
          '"monthly","pooled_budget":{"amount":"500000","paused":false,"currency":"USD",'
          '"period_to_date_spend":"0"}}',
    '75': '{"type":"spend_limit","id":"spl_9ea7bd5e2ad84101a61957334d510df2","created_at":'
          '"2026-11-23T16:38:22.658Z","updated_at":"2026-11-23T16:38:22.658Z","scope":{"type":'
          '"organization"},"amount":"9999999","currency":"USD","period":"weekly"}',
    '76': '{"type":"error","error":{"type":"invalid_request_error","message":"scope.user_id: '
          'Required"},"request_id":"req_9277cb115c494f2d8eaa70e45435ce45"}',
    '82': '{"extra_usage":{"is_enabled":true,"monthly_limit":5,"used_credits":5,"utilization":'
          '120,"currency":"USD"},"limits":[{"kind":"spend","group":"daily","percent":120,'
          '"resets_at":"2026-11-24T00:00:00.000Z","severity":"critical","is_active":true},'
          '{"kind":"spend","group":"weekly","percent":0,"resets_at":"2026-11-30T00:00:00.000Z",'
          '"severity":"normal","is_active":false},{"kind":"spend","group":"monthly","percent":0,'
          '"resets_at":"2026-12-01T00:00:00.000Z","severity":"normal","is_active":false}]}',
    '84': '{"data":[{"scope":{"type":"user","user_id":"user-alice"},"groups":["eng","admins"],'
          '"actor":{"type":"user_actor","user_id":"user-alice","name":"Alice Example",'
          '"email_address":"alice@example.com","deleted":false},"amount":"5","currency":"USD",'
          '"period":"daily","source":{"type":"user","user_id":"user-alice"},"spend_limit_id":'
          '"spl_c36ea743e51f41e9a75f444a7b5d192e","period_to_date_spend":"6"},{"scope":{"type":'
          '"user","user_id":"user-alice"},"groups":["eng","admins"],"actor":{"type":"user_actor",'
          '"user_id":"user-alice","name":"Alice Example","email_address":"alice@example.com",'
          '"deleted":false},"amount":"9999999","currency":"USD","period":"weekly","source":'
          '{"type":"organization"},"spend_limit_id":"spl_9ea7bd5e2ad84101a61957334d510df2",'
          '"period_to_date_spend":"6"},{"scope":{"type":"user","user_id":"user-alice"},"groups":'
          '["eng","admins"],"actor":{"type":"user_actor","user_id":"user-alice","name":'
          '"Alice Example","email_address":"alice@example.com","deleted":false},"amount":'
          '"100000","currency":"USD","period":"monthly","source":{"type":"rbac_group",'
          '"rbac_group_id":"eng"},"spend_limit_id":"spl_ece1dc46dd854074b5103e21a67cb675",'
          '"period_to_date_spend":"6"}],"next_page":null}',
    '85': '{"data":[{"type":"audit_event","id":"3","created_at":"2026-11-23T16:38:22.658Z",'
          '"actor":"admin-key:ops-write","action":"spend_limit.upsert","target_id":'
          '"spl_9ea7bd5e2ad84101a61957334d510df2","before":null,"after":{"id":'
          '"spl_9ea7bd5e2ad84101a61957334d510df2","scope":{"type":"organization"},"amount":'
          '"9999999","period":"weekly","currency":"USD","created_at":"2026-11-23T16:38:22.658Z",'
          '"updated_at":"2026-11-23T16:38:22.658Z"},"reason":null},{"type":"audit_event","id":'
          '"2","created_at":"2026-11-23T16:38:22.637Z","actor":"oidc:user-alice","action":'
          '"spend_limit.upsert","target_id":"spl_ece1dc46dd854074b5103e21a67cb675","before":null,'
          '"after":{"id":"spl_ece1dc46dd854074b5103e21a67cb675","scope":{"type":"rbac_group",'
          '"rbac_group_id":"eng"},"amount":"100000","period":"monthly","currency":"USD",'
          '"created_at":"2026-11-23T16:38:22.637Z","updated_at":"2026-11-23T16:38:22.637Z",'
          '"pooled_budget":{"amount":"500000","paused":false}},"reason":null},{"type":'
          '"audit_event","id":"1","created_at":"2026-11-23T16:38:22.614Z","actor":'
          '"admin-key:ops-write","action":"spend_limit.upsert","target_id":'
          '"spl_c36ea743e51f41e9a75f444a7b5d192e","before":null,"after":{"id":'
          '"spl_c36ea743e51f41e9a75f444a7b5d192e","scope":{"type":"user","user_id":"user-alice"},'
          '"amount":"5","period":"daily","currency":"USD","created_at":"2026-11-23T16:38:22.614Z",'
          '"updated_at":"2026-11-23T16:38:22.614Z"},"reason":null}],"has_more":false}',
    '86': '{"data":[{"starting_at":"2026-11-01T00:00:00Z","ending_at":"2026-11-24T00:00:00Z",'
          '"group":{"product":null,"model":null,"context_window":null,"inference_geo":null,'
          '"speed":null,"slack_channel_id":null,"claude_tag_category":null,"claude_tag_user_id":'
          'null,"rbac_group_id":null,"workspace_id":null,"service_tier":null,"user_profile_id":'
          'null,"agent_id":null,"environment_id":null,"deployment_id":null,"session_id":null,'
          '"actor":null,"actor_type":null,"api_key_id":null,"cost_type":null,"token_type":null},'
          '"cost":{"currency":"USD","amount":"6.000000","list_amount":"6.000000","requests":'
          'null}}],"has_more":false,"next_page":null,"data_refreshed_at":'
          '"2026-11-23T16:38:33.758Z"}',
    '86b': '{"type":"error","error":{"type":"invalid_request_error","message":"group_by[]: must '
           'be actor or rbac_group_id; the gateway records spend per user per day only"},'
           '"request_id":"req_37f8eb1299da43f083263479e3689fda"}',
    '88': '{"type":"spend_limit_deleted","id":"spl_c36ea743e51f41e9a75f444a7b5d192e"}',
}


def capture(n):
    return json.loads(CAPTURE[n])


def assert_shape(got, want, path='$'):
    """Same keys in the same order and the same JSON types, recursively (the
    first element of arrays); values are the tests' business."""
    if isinstance(want, dict):
        assert isinstance(got, dict), f'{path}: {got!r} is not an object'
        assert list(got) == list(want), f'{path}: keys {list(got)} != {list(want)}'
        for k in want:
            assert_shape(got[k], want[k], f'{path}.{k}')
    elif isinstance(want, list):
        assert isinstance(got, list), f'{path}: {got!r} is not an array'
        if want and got:
            assert_shape(got[0], want[0], f'{path}[0]')
    elif want is None:
        assert got is None, f'{path}: {got!r} is not null'
    else:
        assert type(got) is type(want), f'{path}: {got!r} is not like {want!r}'


def token(secret, sub='user-admin', email='admin@example.com', groups=('admins',), ttl=600):
    now = int(time.time())
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode({'sub': sub, 'email': email, 'groups': list(groups),
                       'aud': 'claude-gateway', 'iat': now, 'exp': now + ttl},
                      secret, algorithm='HS256', headers={'kid': kid})


def utcnow():
    return datetime.datetime.now(datetime.timezone.utc)


def period_keys(t=None):
    t = t or utcnow()
    iso = t.isocalendar()
    return t.strftime('%Y-%m-%d'), f'{iso[0]}-W{iso[1]:02d}', t.strftime('%Y-%m')


def period_ends(t=None):
    t = t or utcnow()
    day = (t + datetime.timedelta(days=1)).replace(hour=0, minute=0, second=0, microsecond=0)
    week = (t + datetime.timedelta(days=7 - t.weekday())).replace(hour=0, minute=0, second=0,
                                                                  microsecond=0)
    month = (t.replace(day=28) + datetime.timedelta(days=4)).replace(day=1, hour=0, minute=0,
                                                                       second=0, microsecond=0)
    fmt = '%Y-%m-%dT%H:%M:%S.000Z'
    return day.strftime(fmt), week.strftime(fmt), month.strftime(fmt)


def set_spend(pg, principal, day=0, week=0, month=0):
    for key, micro in zip(period_keys(), (day, week, month)):
        pg.psql(f"INSERT INTO claude_spend (principal, period_key, micro_usd) VALUES "
                f"('{principal}', '{key}', {micro}) ON CONFLICT (principal, period_key) "
                f"DO UPDATE SET micro_usd = EXCLUDED.micro_usd")


def set_principal(pg, principal, email, name, groups):
    pg.psql(f"INSERT INTO claude_principals (principal, email, name, groups) VALUES "
            f"('{principal}', '{email}', '{name}', '{json.dumps(groups)}') "
            f"ON CONFLICT (principal) DO UPDATE SET email = EXCLUDED.email, "
            f"name = EXCLUDED.name, groups = EXCLUDED.groups")


def clean(pg):
    pg.psql('DELETE FROM claude_spend_limits; DELETE FROM claude_admin_audit; '
            'DELETE FROM claude_spend; DELETE FROM claude_principals; '
            'DELETE FROM claude_reservations; DELETE FROM claude_pooled_spend; '
            'DELETE FROM claude_ledger')


def install(env, pg, admin_keys, extra=''):
    conf = GatewayConf(env).add_database(pg.conninfo).add_session().add_admin(admin_keys)
    if extra:
        conf.add(extra)
    conf.add(f'Include {TOP}/conf/claude-spend-admin.conf')
    conf.install()
    assert env.restart() == 0


class Admin:
    """A small client of the admin API."""

    def __init__(self, env, key=None, bearer=None):
        self.env = env
        self.headers = {}
        if key:
            self.headers['x-api-key'] = key
        if bearer:
            self.headers['authorization'] = 'Bearer ' + bearer

    def get(self, path, params=None):
        return requests.get(self.env.mkurl(path), params=params, headers=self.headers,
                            timeout=10)

    def post(self, body, path=BASE):
        data = body if isinstance(body, (str, bytes)) else json.dumps(body)
        return requests.post(self.env.mkurl(path), data=data, timeout=10,
                             headers=dict(self.headers, **{'content-type': 'application/json'}))

    def delete(self, path):
        return requests.delete(self.env.mkurl(path), headers=self.headers, timeout=10)


def assert_error(r, status, kind, message):
    assert r.status_code == status, r.text
    assert r.headers['content-type'] == 'application/json;charset=utf-8'
    assert REQ_RE.match(r.headers['request-id'])
    body = r.json()
    assert_shape(body, capture('70'))
    assert body == {'type': 'error', 'error': {'type': kind, 'message': message},
                    'request_id': r.headers['request-id']}
    assert 'cache-control' not in r.headers


USER_DAILY = {'scope': {'type': 'user', 'user_id': 'user-alice'}, 'amount': '5',
              'period': 'daily'}
GROUP_MONTHLY = {'scope': {'type': 'rbac_group', 'rbac_group_id': 'eng'}, 'amount': '100000',
                 'period': 'monthly', 'pooled_budget': {'amount': '500000'}}
ORG_WEEKLY = {'scope': {'type': 'organization'}, 'amount': '9999999', 'period': 'weekly'}


class TestAdminApi:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, admin_keys):
        install(env, pg, admin_keys)
        clean(pg)

    @pytest.fixture
    def w(self, env, admin_keys):
        return Admin(env, key=admin_keys['write'])

    @pytest.fixture
    def ro(self, env, admin_keys):
        return Admin(env, key=admin_keys['read'])

    def test_cs_400_01_authentication(self, env, pg, admin_keys, session_secret):
        clean(pg)
        # capture 70: no credentials
        r = requests.get(env.mkurl(BASE))
        assert_error(r, 401, 'authentication_error', 'missing or invalid admin credentials')
        assert r.headers['x-content-type-options'] == 'nosniff'
        assert r.headers['x-frame-options'] == 'DENY'
        assert r.headers['x-request-id']
        # a wrong key, and a wrong key with an admin session: x-api-key decides alone
        admin_session = token(session_secret)
        for h in ({'x-api-key': 'y' * 45}, {'x-api-key': admin_keys['write'][:-1]},
                  {'x-api-key': 'y' * 45, 'authorization': 'Bearer ' + admin_session},
                  {'authorization': 'Bearer garbage'},
                  {'authorization': 'Basic ' + admin_keys['write']}):
            r = requests.get(env.mkurl(BASE), headers=h)
            assert_error(r, 401, 'authentication_error', 'missing or invalid admin credentials')
        # capture 71: a read key lists
        r = Admin(env, key=admin_keys['read']).get(BASE)
        assert r.status_code == 200
        assert r.json() == capture('71') and list(r.json()) == list(capture('71'))
        assert r.headers['cache-control'] == 'no-store'
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert REQ_RE.match(r.headers['request-id'])
        # capture 72: but may not write
        ro = Admin(env, key=admin_keys['read'])
        r = ro.post(dict(USER_DAILY, amount='3'))
        assert_error(r, 403, 'permission_error', 'requires write:spend_limits')
        assert_shape(r.json(), capture('72'))
        r = ro.delete(BASE + '/spl_' + '0' * 32)
        assert_error(r, 403, 'permission_error', 'requires write:spend_limits')
        assert pg.psql('SELECT count(*) FROM claude_spend_limits') == '0'
        # sessions: an admin group writes, others are refused, expired ones too
        r = Admin(env, bearer=admin_session).post(GROUP_MONTHLY)
        assert r.status_code == 200, r.text
        for tok in (token(session_secret, sub='user-bob', groups=('eng',)),
                    token(session_secret, ttl=-120),
                    token('another-secret-of-at-least-32-chars!!')):
            r = Admin(env, bearer=tok).get(BASE)
            assert_error(r, 401, 'authentication_error', 'missing or invalid admin credentials')
        # unknown paths and methods, after authentication
        assert_error(requests.get(env.mkurl('/v1/organizations/users')), 401,
                     'authentication_error', 'missing or invalid admin credentials')
        w = Admin(env, key=admin_keys['write'])
        assert_error(w.get('/v1/organizations/users'), 404, 'not_found_error', 'not found')
        assert_error(w.delete(BASE), 404, 'not_found_error', 'not found')
        # the audit trail names who did it
        assert pg.psql('SELECT actor FROM claude_admin_audit') == 'oidc:user-admin'

    def test_cs_400_02_create_shapes(self, env, pg, w):
        clean(pg)
        for body, n in ((USER_DAILY, '73'), (GROUP_MONTHLY, '74'), (ORG_WEEKLY, '75')):
            r = w.post(body)
            assert r.status_code == 200, r.text
            got, want = r.json(), capture(n)
            assert_shape(got, want)
            assert ID_RE.match(got['id'])
            assert TIME_MS_RE.match(got['created_at']) and got['created_at'] == got['updated_at']
            for k in ('type', 'scope', 'amount', 'currency', 'period', 'pooled_budget'):
                assert got.get(k) == want.get(k), k
            assert 'cache-control' not in r.headers
            assert REQ_RE.match(r.headers['request-id'])
        # defaults: monthly, USD; null is unlimited; currency USD accepted
        r = w.post({'scope': {'type': 'user', 'user_id': 'user-bob'}, 'amount': None,
                    'currency': 'USD'})
        assert r.status_code == 200
        assert r.json()['amount'] is None and r.json()['period'] == 'monthly'
        assert pg.psql("SELECT amount_cents IS NULL, created_by FROM claude_spend_limits "
                       "WHERE scope_id = 'user-bob'") == 't|admin-key:ops-write'
        # a pooled budget's spend to date comes from the group's pot
        pg.psql(f"INSERT INTO claude_pooled_spend (rbac_group_id, period_key, micro_usd) "
                f"VALUES ('eng', '{period_keys()[2]}', 1234567)")
        r = w.get(BASE, params={'scope_type': 'rbac_group'})
        assert r.json()['data'][0]['pooled_budget'] == {
            'amount': '500000', 'paused': False, 'currency': 'USD',
            'period_to_date_spend': '123'}

    @pytest.mark.parametrize('body,message', [
        ({'scope': {'type': 'user'}, 'amount': '1.5'}, 'scope.user_id: Required'),  # capture 76
        ({'scope': {'type': 'user', 'user_id': 'x'}, 'amount': '5',
          'pooled_budget': {'amount': '10'}},
         'Pooled budget fields can only be set on a group-level limit'),  # capture 77
        ({'scope': {'type': 'user', 'user_id': 'x'}}, 'amount: Required'),
        ({'scope': {'type': 'rbac_group'}, 'amount': '5'}, 'scope.rbac_group_id: Required'),
        ({'amount': '5'}, 'scope: Required'),
        ({'scope': {'type': 'team'}, 'amount': '5'},
         'scope.type: must be user, rbac_group or organization'),
        ({'scope': {'type': 'organization'}, 'amount': '1.5'},
         'amount: must be a string of 1 to 18 digits (whole cents) or null'),
        ({'scope': {'type': 'organization'}, 'amount': 5},
         'amount: must be a string of 1 to 18 digits (whole cents) or null'),
        ({'scope': {'type': 'organization'}, 'amount': '1' * 19},
         'amount: must be a string of 1 to 18 digits (whole cents) or null'),
        ({'scope': {'type': 'organization'}, 'amount': '5', 'period': 'yearly'},
         'period: must be daily, weekly or monthly'),
        ({'scope': {'type': 'organization'}, 'amount': '5', 'currency': 'EUR'},
         'currency: only USD is supported'),
        ({'scope': {'type': 'rbac_group', 'rbac_group_id': 'eng'}, 'amount': '5',
          'period': 'weekly', 'pooled_budget': {'amount': '10'}},
         'Pooled budgets are monthly only: set period to monthly'),
        ({'scope': {'type': 'rbac_group', 'rbac_group_id': 'eng'}, 'amount': '5',
          'pooled_budget': {'amount': 10}},
         'pooled_budget.amount: must be a string of 1 to 18 digits (whole cents)'),
        ('{"scope":', 'invalid JSON body'),
        ('[1]', 'invalid JSON body'),
        ('', 'invalid JSON body'),
    ])
    def test_cs_400_03_validation(self, env, pg, w, body, message):
        before = pg.psql('SELECT count(*) FROM claude_spend_limits')
        r = w.post(body)
        assert_error(r, 400, 'invalid_request_error', message)
        if message == 'scope.user_id: Required':
            assert_shape(r.json(), capture('76'))
        assert pg.psql('SELECT count(*) FROM claude_spend_limits') == before

    def test_cs_400_04_upsert_keeps_id_and_audits(self, env, pg, w, ro):
        clean(pg)
        first = w.post(USER_DAILY).json()
        time.sleep(0.01)
        r = w.post(dict(USER_DAILY, amount='7'))
        second = r.json()
        assert second['id'] == first['id']
        assert second['created_at'] == first['created_at']
        assert second['updated_at'] > first['updated_at']
        assert second['amount'] == '7'
        assert pg.psql("SELECT count(*) FROM claude_spend_limits") == '1'
        # capture 85: newest first, before and after in the same transaction
        r = ro.get(BASE + '/audit')
        assert r.status_code == 200 and r.headers['cache-control'] == 'no-store'
        events = r.json()
        assert list(events) == ['data', 'has_more'] and events['has_more'] is False
        e2, e1 = events['data']
        assert_shape(e1, capture('85')['data'][2])  # a first upsert: before is null
        assert list(e2) == list(e1)
        assert int(e2['id']) > int(e1['id'])
        assert e1['before'] is None and e1['after']['amount'] == '5'
        assert e2['action'] == 'spend_limit.upsert' and e2['target_id'] == first['id']
        assert e2['actor'] == 'admin-key:ops-write' and e2['reason'] is None
        assert_shape(e2['after'], capture('85')['data'][2]['after'])
        assert e2['before'] == e1['after']
        assert e2['after']['amount'] == '7' and e2['after']['id'] == first['id']
        assert e2['after']['updated_at'] == second['updated_at']
        assert TIME_MS_RE.match(e2['created_at'])
        # a group limit's audit form carries its pooled budget, as capture 85
        w.post(GROUP_MONTHLY)
        after = ro.get(BASE + '/audit', params={'limit': 1}).json()['data'][0]['after']
        assert_shape(after, capture('85')['data'][1]['after'])
        # replacing it without a pooled budget drops the pool
        r = w.post(dict(GROUP_MONTHLY, pooled_budget=None))
        assert 'pooled_budget' not in r.json()

    def test_cs_400_05_get_and_delete(self, env, pg, w, ro):
        clean(pg)
        created = w.post(USER_DAILY).json()
        r = ro.get(f'{BASE}/{created["id"]}')
        assert r.status_code == 200 and r.json() == created
        assert r.headers['cache-control'] == 'no-store'
        assert_shape(r.json(), capture('73'))
        missing = 'spl_' + '0' * 32
        assert_error(ro.get(f'{BASE}/{missing}'), 404, 'not_found_error', 'spend limit not found')
        assert_error(w.delete(f'{BASE}/{missing}'), 404, 'not_found_error',
                     'spend limit not found')
        # capture 88
        r = w.delete(f'{BASE}/{created["id"]}')
        assert r.status_code == 200
        assert r.json() == {'type': 'spend_limit_deleted', 'id': created['id']}
        assert_shape(r.json(), capture('88'))
        assert_error(ro.get(f'{BASE}/{created["id"]}'), 404, 'not_found_error',
                     'spend limit not found')
        ev = ro.get(BASE + '/audit', params={'limit': 1}).json()['data'][0]
        assert ev['action'] == 'spend_limit.delete' and ev['target_id'] == created['id']
        assert ev['after'] is None and ev['before']['amount'] == '5'
        assert ev['before']['id'] == created['id']

    def test_cs_400_06_paging(self, env, pg, w, ro):
        clean(pg)
        ids = []
        for i in range(5):
            body = ({'scope': {'type': 'organization'}, 'amount': str(i), 'period': 'daily'}
                    if i == 2 else
                    {'scope': {'type': 'user', 'user_id': f'user-{i}'}, 'amount': str(i)})
            ids.append(w.post(body).json()['id'])
        page = ro.get(BASE, params={'limit': 2}).json()  # capture 78
        assert [x['id'] for x in page['data']] == ids[:2]
        assert page['has_more'] is True
        assert page['first_id'] == ids[0] and page['last_id'] == ids[1]
        assert list(page) == ['data', 'has_more', 'first_id', 'last_id']
        page = ro.get(BASE, params={'limit': 2, 'after_id': ids[1]}).json()
        assert [x['id'] for x in page['data']] == ids[2:4] and page['has_more'] is True
        page = ro.get(BASE, params={'limit': 2, 'after_id': ids[3]}).json()
        assert [x['id'] for x in page['data']] == ids[4:] and page['has_more'] is False
        page = ro.get(BASE, params={'limit': 2, 'before_id': ids[4]}).json()
        assert [x['id'] for x in page['data']] == ids[2:4] and page['has_more'] is True
        assert page['first_id'] == ids[2] and page['last_id'] == ids[3]
        page = ro.get(BASE, params={'limit': 2, 'before_id': ids[2]}).json()
        assert [x['id'] for x in page['data']] == ids[:2] and page['has_more'] is False
        page = ro.get(BASE, params={'after_id': ids[4]}).json()
        assert page == capture('71')
        page = ro.get(BASE, params={'scope_type': 'organization'}).json()
        assert [x['id'] for x in page['data']] == [ids[2]]
        page = ro.get(BASE, params={'scope_type': 'user', 'after_id': ids[1]}).json()
        assert [x['id'] for x in page['data']] == [ids[3], ids[4]]
        # the default page is 20, the largest 1000
        pg.psql("INSERT INTO claude_spend_limits (id, scope_type, scope_id, period, amount_cents) "
                "SELECT 'spl_' || md5(g::text), 'user', 'bulk-' || g, 'daily', g "
                "FROM generate_series(1, 30) g")
        page = ro.get(BASE).json()
        assert len(page['data']) == 20 and page['has_more'] is True
        page = ro.get(BASE, params={'limit': 1000}).json()
        assert len(page['data']) == 35 and page['has_more'] is False
        for params, message in (
                ({'limit': 0}, 'limit: must be an integer from 1 to 1000'),
                ({'limit': 1001}, 'limit: must be an integer from 1 to 1000'),
                ({'limit': 'ten'}, 'limit: must be an integer from 1 to 1000'),
                ({'scope_type': 'team'}, 'scope_type: must be organization, rbac_group or user'),
                ({'after_id': ids[0], 'before_id': ids[1]},
                 'after_id and before_id are mutually exclusive'),
                ({'after_id': 'spl_' + 'f' * 32}, 'after_id: no spend limit has this id'),
                ({'before_id': 'nope'}, 'before_id: no spend limit has this id')):
            assert_error(ro.get(BASE, params=params), 400, 'invalid_request_error', message)

    def test_cs_400_07_audit_paging(self, env, pg, w, ro):
        clean(pg)
        for i in range(5):
            w.post({'scope': {'type': 'user', 'user_id': f'audit-{i}'}, 'amount': str(i)})
        events = ro.get(BASE + '/audit', params={'limit': 3}).json()
        assert [e['target_id'] for e in events['data']] == [
            pg.psql(f"SELECT id FROM claude_spend_limits WHERE scope_id = 'audit-{i}'")
            for i in (4, 3, 2)]
        assert events['has_more'] is True
        rest = ro.get(BASE + '/audit', params={'after_id': events['data'][-1]['id']}).json()
        assert [e['after']['scope']['user_id'] for e in rest['data']] == ['audit-1', 'audit-0']
        assert rest['has_more'] is False
        assert_error(ro.get(BASE + '/audit', params={'after_id': 'abc'}), 400,
                     'invalid_request_error', 'after_id: must be the numeric id of an audit event')
        assert_error(ro.get(BASE + '/audit', params={'limit': 0}), 400,
                     'invalid_request_error', 'limit: must be an integer from 1 to 1000')


class TestEffective:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, admin_keys):
        install(env, pg, admin_keys)

    @pytest.fixture(autouse=True)
    def _data(self, env, pg, admin_keys):
        """The captures' world: alice with a daily user cap, the org's weekly
        default, the eng group's monthly cap, 5.985 cents spent."""
        clean(pg)
        w = Admin(env, key=admin_keys['write'])
        self.ids = {'user': w.post(USER_DAILY).json()['id'],
                    'org': w.post(ORG_WEEKLY).json()['id'],
                    'eng': w.post(GROUP_MONTHLY).json()['id']}
        set_principal(pg, 'user-alice', 'alice@example.com', 'Alice Example', ['eng', 'admins'])
        set_spend(pg, 'user-alice', 59850, 59850, 59850)
        self.ro = Admin(env, key=admin_keys['read'])
        self.w = w

    def effective(self, **params):
        r = self.ro.get(BASE + '/effective', params=params)
        assert r.status_code == 200, r.text
        assert r.headers['cache-control'] == 'no-store'
        return r.json()

    def test_cs_400_10_effective_as_capture(self, env, pg):
        for doc in (self.effective(user_id='user-alice'), self.effective()):  # 84, 84b
            want = capture('84')
            assert_shape(doc, want)
            for got, exp in zip(doc['data'], want['data']):
                for k in ('scope', 'groups', 'actor', 'amount', 'currency', 'period', 'source',
                          'period_to_date_spend'):
                    assert got[k] == exp[k], k
            assert [x['spend_limit_id'] for x in doc['data']] == [
                self.ids['user'], self.ids['org'], self.ids['eng']]
            assert doc['next_page'] is None
        # nothing was reserved by looking
        assert pg.psql('SELECT count(*) FROM claude_reservations') == '0'

    def test_cs_400_11_group_limit_mode(self, env, pg, admin_keys):
        # a second group: min picks the smaller cap
        admins = self.w.post({'scope': {'type': 'rbac_group', 'rbac_group_id': 'admins'},
                              'amount': '50000'}).json()['id']
        monthly = self.effective(user_id='user-alice')['data'][2]
        assert monthly['amount'] == '50000' and monthly['spend_limit_id'] == admins
        assert monthly['source'] == {'type': 'rbac_group', 'rbac_group_id': 'admins'}
        install(env, pg, admin_keys, extra='ClaudeSpendGroupLimitMode max')
        try:
            monthly = self.effective(user_id='user-alice')['data'][2]
            assert monthly['amount'] == '100000' and monthly['spend_limit_id'] == self.ids['eng']
            # max treats an unlimited group cap as the largest
            self.w.post({'scope': {'type': 'rbac_group', 'rbac_group_id': 'admins'},
                         'amount': None})
            monthly = self.effective(user_id='user-alice')['data'][2]
            assert monthly['amount'] is None and monthly['spend_limit_id'] == admins
            # a user row shuts groups out
            self.w.post({'scope': {'type': 'user', 'user_id': 'user-alice'}, 'amount': '42'})
            monthly = self.effective(user_id='user-alice')['data'][2]
            assert monthly['amount'] == '42'
            assert monthly['source'] == {'type': 'user', 'user_id': 'user-alice'}
        finally:
            install(env, pg, admin_keys)

    def test_cs_400_12_effective_filters_and_pages(self, env, pg):
        set_principal(pg, 'user-bob', 'bob@example.com', 'Bob Builder', ['sales'])
        set_spend(pg, 'user-bob', 990000, 990000, 990000)
        # a principal never seen: org default only, no identity
        doc = self.effective(user_id='user-zed')
        assert [x['amount'] for x in doc['data']] == [None, '9999999', None]
        assert doc['data'][1]['source'] == {'type': 'organization'}
        assert doc['data'][0]['actor'] == {'type': 'user_actor', 'user_id': 'user-zed',
                                           'name': None, 'email_address': None, 'deleted': False}
        assert doc['data'][0]['groups'] == [] and doc['data'][0]['period_to_date_spend'] == '0'
        # several users, ascending; period[] filters rows
        doc = self.effective(**{'user_ids[]': ['user-bob', 'user-alice'], 'period[]': 'weekly'})
        assert [(x['scope']['user_id'], x['period']) for x in doc['data']] == [
            ('user-alice', 'weekly'), ('user-bob', 'weekly')]
        assert doc['data'][1]['period_to_date_spend'] == '99'
        # without user ids: those with spend; q over sub, email and name
        assert {x['scope']['user_id'] for x in self.effective()['data']} == {'user-alice',
                                                                              'user-bob'}
        assert {x['scope']['user_id'] for x in self.effective(q='BUILDER')['data']} == {
            'user-bob'}
        assert {x['scope']['user_id'] for x in self.effective(q='alice@')['data']} == {
            'user-alice'}
        assert self.effective(q='nobody')['data'] == []
        # sort=spend_desc with one period; pages by next_page
        doc = self.effective(**{'sort': 'spend_desc', 'period[]': 'daily', 'limit': 1})
        assert [x['scope']['user_id'] for x in doc['data']] == ['user-bob']
        assert doc['next_page'] is not None
        doc = self.effective(**{'sort': 'spend_desc', 'period[]': 'daily', 'limit': 1,
                                'page': doc['next_page']})
        assert [x['scope']['user_id'] for x in doc['data']] == ['user-alice']
        assert doc['next_page'] is None
        for params, message in (
                ({'sort': 'spend_desc'}, 'sort=spend_desc needs exactly one period[]'),
                ({'sort': 'name'}, 'sort: must be spend_desc'),
                ({'period[]': 'hourly'}, 'period[]: must be daily, weekly or monthly'),
                ({'limit': '0'}, 'limit: must be an integer from 1 to 1000'),
                ({'page': 'zzz'}, 'page: not a next_page value of this API')):
            assert_error(self.ro.get(BASE + '/effective', params=params), 400,
                         'invalid_request_error', message)


class TestUsage:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, admin_keys):
        install(env, pg, admin_keys)

    def usage(self, env, secret, **kw):
        return requests.get(env.mkurl('/api/oauth/usage'), timeout=10,
                            headers={'authorization': 'Bearer ' + token(secret, **kw)})

    def test_cs_400_20_usage_without_caps(self, env, pg, session_secret):
        clean(pg)
        set_spend(pg, 'user-carol', day=25000, week=35000, month=45999)
        r = self.usage(env, session_secret, sub='user-carol', groups=('eng',))
        assert r.status_code == 200, r.text
        assert r.headers['cache-control'] == 'no-store'
        assert r.headers['content-type'] == 'application/json;charset=utf-8'
        assert r.headers['x-request-id']
        doc = r.json()
        assert_shape(doc, capture('27'))
        assert doc == {'extra_usage': {
            'is_enabled': True, 'monthly_limit': None, 'used_credits': 4, 'utilization': None,
            'currency': 'USD', 'daily': {'limit': None, 'used_credits': 2, 'utilization': None},
            'weekly': {'limit': None, 'used_credits': 3, 'utilization': None}}, 'limits': []}
        # no spend at all
        doc = self.usage(env, session_secret, sub='user-new').json()
        assert doc['extra_usage']['used_credits'] == 0 and doc['limits'] == []

    def test_cs_400_21_usage_with_caps(self, env, pg, session_secret, admin_keys):
        clean(pg)
        w = Admin(env, key=admin_keys['write'])
        w.post(dict(USER_DAILY, scope={'type': 'user', 'user_id': 'user-carol'}))
        w.post(ORG_WEEKLY)
        w.post(GROUP_MONTHLY)
        set_spend(pg, 'user-carol', 59850, 59850, 59850)
        r = self.usage(env, session_secret, sub='user-carol', groups=('eng',))
        assert r.status_code == 200 and r.headers['cache-control'] == 'no-store'
        doc = r.json()
        want = capture('82')
        assert_shape(doc, want)
        assert doc['extra_usage'] == want['extra_usage']
        day, week, month = period_ends()
        assert [(x['group'], x['percent'], x['resets_at'], x['severity'], x['is_active'])
                for x in doc['limits']] == [('daily', 120, day, 'critical', True),
                                            ('weekly', 0, week, 'normal', False),
                                            ('monthly', 0, month, 'normal', False)]
        # under every cap: the fullest is described; only capped periods are listed
        pg.psql("DELETE FROM claude_spend_limits WHERE scope_type = 'user'")
        set_spend(pg, 'user-carol', 59850, 59850, 80000 * 10000)
        doc = self.usage(env, session_secret, sub='user-carol', groups=('eng',)).json()
        assert doc['extra_usage'] == {'is_enabled': True, 'monthly_limit': 100000,
                                      'used_credits': 80000, 'utilization': 80,
                                      'currency': 'USD'}
        assert [(x['group'], x['severity'], x['is_active']) for x in doc['limits']] == [
            ('weekly', 'normal', False), ('monthly', 'warning', True)]
        # another group's user sees only the org default
        doc = self.usage(env, session_secret, sub='user-dan', groups=('sales',)).json()
        assert [x['group'] for x in doc['limits']] == ['weekly']
        assert pg.psql('SELECT count(*) FROM claude_reservations') == '0'

    def test_cs_400_22_usage_needs_a_session(self, env, session_secret):
        r = requests.get(env.mkurl('/api/oauth/usage'))
        assert r.status_code == 401
        assert r.json()['error'] == {'type': 'authentication_error', 'message': 'invalid token'}
        r = requests.post(env.mkurl('/api/oauth/usage'),
                          headers={'authorization': 'Bearer ' + token(session_secret)})
        assert r.status_code == 404


class TestCost:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, admin_keys):
        install(env, pg, admin_keys)

    def ledger(self, pg, sub, email, groups, micro, at='now()'):
        pg.psql("INSERT INTO claude_ledger (entry_id, request_id, at, sub, email, groups, "
                "model_requested, model_served, status, input_tokens, output_tokens, "
                "cache_read_tokens, cache_write_tokens, cost_micro_usd, partial) VALUES "
                f"('{uuid.uuid4().hex}', 'req-{uuid.uuid4().hex}', {at}, '{sub}', '{email}', "
                f"'{json.dumps(groups)}', 'claude-sonnet-4-5', 'claude-sonnet-4-5-20250929', 200, "
                f"1, 1, 0, 0, {micro}, false)")

    def cost(self, ro, **params):
        return ro.get('/v1/organizations/analytics/cost', params=params)

    def test_cs_400_30_cost_report(self, env, pg, admin_keys):
        clean(pg)
        ro = Admin(env, key=admin_keys['read'])
        self.ledger(pg, 'user-alice', 'alice@example.com', ['eng', 'admins'], 40000)
        self.ledger(pg, 'user-alice', 'alice@example.com', ['eng', 'admins'], 5000)
        self.ledger(pg, 'user-bob', 'bob@example.com', ['eng'], 20000)
        self.ledger(pg, 'user-carol', 'carol@example.com', [], 10001)
        # outside the range
        self.ledger(pg, 'user-alice', 'alice@example.com', ['eng'], 999999,
                    at="now() - interval '400 days'")
        start = utcnow().replace(day=1, hour=0, minute=0, second=0, microsecond=0)
        if utcnow() - start < datetime.timedelta(minutes=1):
            start -= datetime.timedelta(days=1)  # keep "now" rows inside the range
        starting_at = start.strftime('%Y-%m-%dT%H:%M:%SZ')
        r = self.cost(ro, starting_at=starting_at)
        assert r.status_code == 200, r.text
        assert r.headers['cache-control'] == 'no-store'
        doc = r.json()
        assert_shape(doc, capture('86'))
        item = doc['data'][0]
        assert len(doc['data']) == 1
        assert item['starting_at'] == starting_at
        tomorrow = (utcnow() + datetime.timedelta(days=1)).strftime('%Y-%m-%dT00:00:00Z')
        assert item['ending_at'] == tomorrow
        assert item['group'] == capture('86')['data'][0]['group']
        assert item['cost'] == {'currency': 'USD', 'amount': '7.500100',
                                'list_amount': '7.500100', 'requests': None}
        assert doc['has_more'] is False and doc['next_page'] is None
        assert TIME_MS_RE.match(doc['data_refreshed_at'])

        doc = self.cost(ro, starting_at=starting_at, **{'group_by[]': 'actor'}).json()
        assert [(x['group']['actor']['user_id'], x['group']['actor']['email_address'],
                 x['group']['actor_type'], x['cost']['amount']) for x in doc['data']] == [
            ('user-alice', 'alice@example.com', 'user_actor', '4.500000'),
            ('user-bob', 'bob@example.com', 'user_actor', '2.000000'),
            ('user-carol', 'carol@example.com', 'user_actor', '1.000100')]
        for x in doc['data']:
            assert_shape(x['group'], dict(capture('86')['data'][0]['group'],
                                          actor={'type': '', 'user_id': '', 'email_address': ''},
                                          actor_type=''))

        doc = self.cost(ro, starting_at=starting_at, **{'group_by[]': 'rbac_group_id'}).json()
        assert [(x['group']['rbac_group_id'], x['cost']['amount']) for x in doc['data']] == [
            ('admins', '4.500000'), ('eng', '6.500000'), (None, '1.000100')]
        assert all(x['group']['actor'] is None for x in doc['data'])

        doc = self.cost(ro, starting_at=starting_at,
                        **{'group_by[]': ['actor', 'rbac_group_id']}).json()
        assert [(x['group']['actor']['user_id'], x['group']['rbac_group_id'])
                for x in doc['data']] == [('user-alice', 'admins'), ('user-alice', 'eng'),
                                          ('user-bob', 'eng'), ('user-carol', None)]

        # an empty range still totals, at zero; grouped, it has no rows
        doc = self.cost(ro, starting_at='2020-01-01T00:00:00Z',
                        ending_at='2020-01-02T00:00:00Z').json()
        assert doc['data'][0]['cost']['amount'] == '0.000000'
        assert doc['data'][0]['ending_at'] == '2020-01-02T00:00:00Z'
        doc = self.cost(ro, starting_at='2020-01-01', ending_at='2020-01-02',
                        **{'group_by[]': 'actor'}).json()
        assert doc['data'] == []

        r = self.cost(ro, starting_at=starting_at, **{'group_by[]': 'user'})  # capture 86b
        assert_error(r, 400, 'invalid_request_error', capture('86b')['error']['message'])
        for params, message in (
                ({}, 'starting_at: Required'),
                ({'starting_at': 'last week'},
                 'starting_at: must be an RFC 3339 time such as 2026-11-01T00:00:00Z'),
                ({'starting_at': starting_at, 'ending_at': '2026-13-01T00:00:00Z'},
                 'ending_at: must be an RFC 3339 time such as 2026-11-24T00:00:00Z'),
                ({'starting_at': '2026-11-02T00:00:00Z', 'ending_at': '2026-11-01T00:00:00Z'},
                 'ending_at: must be after starting_at')):
            assert_error(self.cost(ro, **params), 400, 'invalid_request_error', message)
        assert_error(requests.get(env.mkurl('/v1/organizations/analytics/cost')), 401,
                     'authentication_error', 'missing or invalid admin credentials')


class TestConfig:

    def _refused(self, env, pg, directive):
        GatewayConf(env).add_database(pg.conninfo).add(directive).install()
        rc, out = env.config_test()
        assert rc != 0
        return out

    def test_cs_400_40_admin_key_directives(self, env, pg, gen_dir, admin_keys):
        short = os.path.join(gen_dir, 'admin-short.key')
        with open(short, 'w') as f:
            f.write('too-short\n')
        out = self._refused(env, pg, f'ClaudeGatewayAdminKey write ops file:{short}')
        assert 'ClaudeGatewayAdminKey ops: the key from file:' in out
        assert 'shorter than 32 characters' in out and 'too-short' not in out
        out = self._refused(env, pg, 'ClaudeGatewayAdminKey write ops ' + 'k' * 40)
        assert 'never inline' in out and 'k' * 40 not in out
        out = self._refused(env, pg, f'ClaudeGatewayAdminKey admin ops file:{short}')
        assert "ClaudeGatewayAdminKey: 'admin' is neither read nor write" in out
        out = self._refused(env, pg, 'ClaudeGatewayAdminKey write ops env:CLAUDE_TEST_NO_SUCH')
        assert 'environment variable CLAUDE_TEST_NO_SUCH is not set' in out
        out = self._refused(env, pg, f'ClaudeGatewayAdminKey write ops file:{admin_keys["write_file"]}\n'
                                     f'ClaudeGatewayAdminKey read ops file:{admin_keys["read_file"]}')
        assert "ClaudeGatewayAdminKey: the id 'ops' is given twice" in out
        out = self._refused(env, pg, f'ClaudeGatewayAdminKey write a file:{admin_keys["write_file"]}\n'
                                     f'ClaudeGatewayAdminKey read b file:{admin_keys["write_file"]}')
        assert 'ClaudeGatewayAdminKey b: the same key as a' in out
        out = self._refused(env, pg, f'ClaudeGatewayAdminKey write "bad id" '
                                     f'file:{admin_keys["write_file"]}')
        assert "the id 'bad id' is not 1 to 64 of [A-Za-z0-9._-]" in out
        assert admin_keys['write'] not in out and admin_keys['read'] not in out


class TestBrowserAdmin:
    """An admin signed in by mod_auth_openidc on the location: the groups
    claim it passes must hold an admin group."""

    def _install(self, env, pg, idp, oidc_client, admin_keys, groups):
        GatewayConf(env).add_database(pg.conninfo).add_admin(admin_keys, groups=groups) \
            .add_signin(idp.url, oidc_client['client_id']) \
            .add('<Location /browser/revocations>\n    AuthType openid-connect\n'
                 '    Require valid-user\n    SetHandler claude-gateway-admin-revocations\n'
                 '</Location>').install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        requests.post(idp.url + '/_fake/reset', timeout=5)

    def test_cg_400_50_oidc_admin_group(self, env, pg, idp, oidc_client, admin_keys):
        pg.psql('DELETE FROM claude_revocations')
        self._install(env, pg, idp, oidc_client, admin_keys, groups=('claude-users',))
        s = requests.Session()
        r = s.get(env.mkurl('/browser/revocations'), timeout=15)
        assert r.status_code == 200, r.text
        assert r.json() == {'data': []}
        r = s.post(env.mkurl('/browser/revocations'), json={'sub': 'user-bob'}, timeout=15)
        assert r.status_code == 200 and r.json()['revoked'] is True
        assert env.error_log.scan_recent(r'CG0404: user user-bob revoked by oidc:user-alice')
        pg.psql('DELETE FROM claude_revocations')
        env.error_log.ignore_recent(tags=['CG0404'])

    def test_cg_400_51_oidc_user_not_admin(self, env, pg, idp, oidc_client, admin_keys):
        self._install(env, pg, idp, oidc_client, admin_keys, groups=('claude-admins',))
        r = requests.Session().get(env.mkurl('/browser/revocations'), timeout=15)
        assert_error(r, 401, 'authentication_error', 'missing or invalid admin credentials')
