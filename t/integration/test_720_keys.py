"""Service keys: created, listed, rotated and revoked through the admin API;
used as `Authorization: Bearer` and as `x-api-key` the way SDKs and Claude
Code's ANTHROPIC_AUTH_TOKEN send them; attributed in the ledger and the
audit log; their own model list and spend caps; expiry and revocation on
the next request; the secret never stored or logged."""
import datetime
import json
import time

import pytest
import requests

from pyclaude.client import post
from pyclaude.conf import GatewayConf


def body(model='claude-sonnet-4-5-20250929'):
    return json.dumps({'model': model, 'max_tokens': 16,
                       'messages': [{'role': 'user', 'content': 'hi'}]}).encode()


def use(env, secret, how='bearer', model='claude-sonnet-4-5-20250929', rid=None):
    h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01'}
    if how == 'bearer':
        h['authorization'] = 'Bearer ' + secret
    else:
        h['x-api-key'] = secret
    if rid:
        h['x-client-request-id'] = rid
    return post(env.port, '/v1/messages', body(model), headers=h)


class Admin:
    def __init__(self, env, key):
        self.base = env.mkurl('/v1/organizations/service_keys')
        self.h = {'x-api-key': key}

    def create(self, **fields):
        return requests.post(self.base, json=fields, headers=self.h, timeout=10)

    def get(self, path=''):
        return requests.get(self.base + path, headers=self.h, timeout=10)

    def post(self, path, **fields):
        return requests.post(self.base + path, json=fields, headers=self.h, timeout=10)


@pytest.fixture(autouse=True, scope='module')
def _install(env, pg, upstream, admin_keys, gen_dir):
    policy = f'{gen_dir}/keys-policy.yaml'
    with open(policy, 'w') as f:
        f.write('managed:\n  policies:\n    - match: {groups: [ci]}\n'
                '      cli: {availableModels: [sonnet, haiku]}\n')
    GatewayConf(env).add_database(pg.conninfo).add_session().add_admin(admin_keys) \
        .add(f'ClaudeGatewayPolicy {policy}') \
        .add('<Location /v1/organizations/service_keys>\n'
             '    SetHandler claude-gateway-keys\n</Location>') \
        .add_messages(upstream.url, dev_identity=None).install()
    assert env.restart() == 0
    env.error_log.ignore_recent(tags=['CG0140'])  # the policy leaves out Opus on purpose
    pg.psql('DELETE FROM claude_spend_limits')
    yield


def test_cg_720_01_create_use_attribute_revoke(env, pg, upstream, admin_keys, upstream_key):
    admin = Admin(env, admin_keys['write'])
    r = admin.create(name='ci-main', owner='ci@example.com', groups=['ci'])
    assert r.status_code == 200, r.text
    key = r.json()
    secret = key.pop('secret')
    assert secret.startswith('sk-cg-') and len(secret) == 6 + 48
    assert key['type'] == 'service_key' and key['id'].startswith('key_')
    assert key['groups'] == ['ci'] and key['models'] is None and key['revoked_at'] is None
    assert key['created_by'] == 'admin-key:ops-write'
    # only a hash is stored
    assert pg.psql("SELECT count(*) FROM claude_service_key_secrets "
                   f"WHERE hash = encode(sha256('{secret}'::bytea), 'hex')") == '1'
    assert secret not in pg.psql('SELECT string_agg(hash, \',\') FROM claude_service_key_secrets')
    # both ways SDKs send it; the upstream sees only the gateway's own key
    rid = 'key-use-' + key['id']  # unique: the ledger is shared by the whole run
    r = use(env, secret, 'bearer', rid=rid)
    assert r.status == 200, r.body
    assert dict(upstream.last['headers'])['x-api-key'] == upstream_key
    assert 'authorization' not in dict(upstream.last['headers'])
    assert use(env, secret, 'x-api-key').status == 200
    # attributed to the key in the ledger and the audit log
    principal = 'key:' + key['id']
    assert pg.wait_value(f"SELECT sub FROM claude_ledger WHERE request_id = '{rid}'") == \
        principal
    rec = env.audit_records(rid)[0]
    assert rec['user'] == principal and rec['decision'] == 'allowed'
    # listed and fetched without the secret
    listed = admin.get().json()['data']
    assert [k['id'] for k in listed if k['id'] == key['id']] and 'secret' not in listed[0]
    assert admin.get('/' + key['id']).json()['name'] == 'ci-main'
    # revoked: refused on the next request
    r = admin.post('/' + key['id'] + '/revoke')
    assert r.status_code == 200 and r.json()['revoked_at'] is not None
    r = use(env, secret)
    assert r.status == 401
    assert r.json['error'] == {'type': 'authentication_error', 'message': 'invalid token'}
    # every change is in the admin audit table
    actions = pg.psql("SELECT string_agg(action, ',' ORDER BY id) FROM claude_admin_audit "
                      f"WHERE target = '{key['id']}'")
    assert actions == 'service_key.create,service_key.revoke'
    # and the secret was never logged
    for path in (env.error_log.path, env.access_log_path, f'{env.logs_dir}/audit.json'):
        assert secret not in open(path, errors='replace').read()


def test_cg_720_02_model_list_narrower_than_groups(env, admin_keys):
    admin = Admin(env, admin_keys['write'])
    secret = admin.create(name='haiku-only', groups=['ci'], models=['haiku']).json()['secret']
    assert use(env, secret, model='claude-haiku-4-5-20251001').status == 200
    r = use(env, secret, model='claude-sonnet-4-5-20250929')
    assert r.status == 400
    assert r.json['error']['message'] == ("model claude-sonnet-4-5-20250929 is not in your "
                                          "role's availableModels allowlist")
    # and the groups' policy still applies: opus is allowed by neither
    assert use(env, secret, model='claude-opus-4-7').status == 400


def test_cg_720_03_expiry(env, admin_keys):
    admin = Admin(env, admin_keys['write'])
    soon = (datetime.datetime.now(datetime.timezone.utc) +
            datetime.timedelta(seconds=2)).isoformat()
    secret = admin.create(name='short', groups=['ci'], expires_at=soon).json()['secret']
    assert use(env, secret).status == 200
    time.sleep(2.5)
    assert use(env, secret).status == 401


def test_cg_720_04_rotation_grace(env, admin_keys):
    admin = Admin(env, admin_keys['write'])
    created = admin.create(name='rotating', groups=['ci']).json()
    old = created['secret']
    r = admin.post('/' + created['id'] + '/rotate', grace_seconds=2)
    assert r.status_code == 200
    new = r.json()['secret']
    assert new != old
    assert use(env, old).status == 200 and use(env, new).status == 200
    time.sleep(2.5)
    assert use(env, old).status == 401
    assert use(env, new).status == 200


def test_cg_720_05_key_scope_spend_cap(env, pg, admin_keys):
    admin = Admin(env, admin_keys['write'])
    created = admin.create(name='capped', groups=['ci']).json()
    pg.psql("INSERT INTO claude_spend_limits (id, scope_type, scope_id, period, amount_cents) "
            f"VALUES ('spl_keycap', 'user', 'key:{created['id']}', 'daily', 0)")
    r = use(env, created['secret'])
    assert r.status == 429 and r.json['error']['type'] == 'billing_error'


def test_cg_720_06_admin_auth(env, admin_keys, session_secret):
    r = requests.post(env.mkurl('/v1/organizations/service_keys'), json={'name': 'x'},
                      timeout=10)
    assert r.status_code == 401
    assert r.json()['error']['message'] == 'missing or invalid admin credentials'
    r = Admin(env, admin_keys['read']).create(name='x')
    assert r.status_code == 403
    assert r.json()['error']['message'] == 'requires write:service_keys'
    assert Admin(env, admin_keys['read']).get().status_code == 200
    r = Admin(env, admin_keys['write']).create(groups=['ci'])
    assert r.status_code == 400 and r.json()['error']['message'] == 'name: Required'
    r = Admin(env, admin_keys['write']).create(name='x', groups='ci')
    assert r.status_code == 400
    assert Admin(env, admin_keys['write']).get('/key_nope').status_code == 404
    # a made-up key with the prefix is refused like any bad token
    r = use(env, 'sk-cg-' + '0' * 48)
    assert r.status == 401
