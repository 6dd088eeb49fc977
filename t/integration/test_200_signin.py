"""Sign-in: the device flow of the reference gateway on real httpd, with
mod_auth_openidc as the relying party against the fake IdP, session tokens
on the API path, the refresh grant back to the IdP, and every error row of
the reference's token table."""
import base64
import hashlib
import hmac
import json
import re
import time

import jwt
import pytest
import requests

from pyclaude.client import post
from pyclaude.conf import GatewayConf

DEVICE_GRANT = 'urn:ietf:params:oauth:grant-type:device_code'
OIDC_HTTP_WARNINGS = [r'SHOULD be https', r'oidc_']


def message_body():
    return json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 8,
                       'messages': [{'role': 'user', 'content': 'hi'}]}).encode()


def token_post(env, **form):
    return requests.post(env.mkurl('/oauth/token'), data=form, timeout=15)


def device_authorize(env):
    r = requests.post(env.mkurl('/oauth/device_authorization'), data={'surface': 'claude_code'})
    assert r.status_code == 200, r.text
    return r.json()


def browser_approve(env, user_code, deny=False, origin=None):
    """What the user does in the browser: open the verification link, sign in
    at the IdP (auto-login), see the code, press the button."""
    s = requests.Session()
    r = s.get(env.mkurl(f'/device?user_code={user_code}'), timeout=15)
    assert r.status_code == 200, r.text
    assert user_code in r.text
    path = '/device/deny' if deny else '/device'
    r = s.post(env.mkurl(path), data={'user_code': user_code, 'step': 'approve'},
               headers={'Origin': origin or env.url}, timeout=15)
    assert r.status_code == 200
    return s, r


def login(env, wait=0):
    d = device_authorize(env)
    browser_approve(env, d['user_code'])
    time.sleep(wait)  # a first poll is never too early
    r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
    assert r.status_code == 200, r.text
    return r.json()


class TestSignIn:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, idp, oidc_client):
        GatewayConf(env).add_database(pg.conninfo).add_health() \
            .add_signin(idp.url, oidc_client['client_id']) \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)

    @pytest.fixture(autouse=True)
    def _reset(self, idp, upstream, pg):
        requests.post(idp.url + '/_fake/reset', timeout=5)
        upstream.reset()
        pg.psql('DELETE FROM claude_rate')

    def test_cg_200_01_discovery(self, env):
        r = requests.get(env.mkurl('/.well-known/oauth-authorization-server'))
        assert r.status_code == 200
        d = r.json()
        assert d['issuer'] == env.url
        assert d['device_authorization_endpoint'] == env.url + '/oauth/device_authorization'
        assert d['token_endpoint'] == env.url + '/oauth/token'
        assert d['revocation_endpoint'] == env.url + '/oauth/revoke'
        assert d['gateway_protocol_version'] == 1
        assert d['grant_types_supported'] == [DEVICE_GRANT, 'refresh_token']
        assert d['token_endpoint_auth_methods_supported'] == ['none']

    def test_cg_200_02_device_authorization_shape(self, env, pg):
        d = device_authorize(env)
        assert len(d['device_code']) == 43
        assert re.fullmatch(r'[BCDFGHJKMNPQRSTVWXYZ]{4}-[BCDFGHJKMNPQRSTVWXYZ]{4}', d['user_code'])
        assert d['verification_uri'] == env.url + '/device'
        assert d['verification_uri_complete'] == env.url + '/device?user_code=' + d['user_code']
        assert d['expires_in'] == 600 and d['interval'] == 5
        # only the hash of the device code is stored
        stored = pg.psql("SELECT device_hash FROM claude_device_grants WHERE user_code='%s'"
                         % d['user_code'].replace('-', ''))
        assert stored == hashlib.sha256(d['device_code'].encode()).hexdigest()
        assert d['device_code'] not in pg.psql('SELECT string_agg(device_hash, \',\') '
                                               'FROM claude_device_grants')

    def test_cg_200_03_full_flow_and_api_access(self, env, upstream, session_secret):
        tok = login(env)
        assert tok['token_type'] == 'Bearer' and tok['expires_in'] == 3600
        assert tok['refresh_token']
        claims = jwt.decode(tok['access_token'], session_secret, algorithms=['HS256'],
                            audience='claude-gateway')
        assert claims['sub'] == 'user-alice' and claims['email'] == 'alice@example.com'
        assert claims['groups'] == ['eng', 'claude-users']
        assert claims['exp'] - claims['iat'] == 3600
        header = jwt.get_unverified_header(tok['access_token'])
        assert header['kid'] == hashlib.sha256(session_secret.encode()).hexdigest()[:16]
        r = post(env.port, '/v1/messages', message_body(),
                 headers={'authorization': 'Bearer ' + tok['access_token'],
                          'x-client-request-id': 'signed-in-1'})
        assert r.status == 200
        rec = upstream.requests[-1]
        assert 'authorization' not in {k for k, _ in rec['headers']}
        line = env.access_log_line('signed-in-1')
        assert ' user-alice ' in line

    def test_cg_200_04_device_code_single_use(self, env):
        d = device_authorize(env)
        browser_approve(env, d['user_code'])
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 200
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 400 and r.json() == {'error': 'expired_token'}

    def test_cg_200_05_pending_then_slow_down(self, env):
        d = device_authorize(env)
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 400 and r.json() == {'error': 'authorization_pending'}
        assert r.headers['cache-control'] == 'no-store' and r.headers['pragma'] == 'no-cache'
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 429 and r.json() == {'error': 'slow_down'}

    def test_cg_200_06_denied(self, env):
        d = device_authorize(env)
        _, page = browser_approve(env, d['user_code'], deny=True)
        assert 'denied' in page.text
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.status_code == 400 and r.json() == {'error': 'access_denied'}
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.json() == {'error': 'expired_token'}

    @pytest.mark.parametrize('form,status,error', [
        ({'grant_type': 'password', 'username': 'x'}, 400, 'unsupported_grant_type'),
        ({'grant_type': DEVICE_GRANT}, 400, 'invalid_request'),
        ({'grant_type': DEVICE_GRANT, 'device_code': 'nope-' * 8}, 400, 'expired_token'),
        ({}, 400, 'invalid_request'),
    ])
    def test_cg_200_07_token_errors(self, env, form, status, error):
        r = token_post(env, **form)
        assert r.status_code == status and r.json() == {'error': error}

    def test_cg_200_08_token_json_body_is_invalid_request(self, env):
        r = requests.post(env.mkurl('/oauth/token'), json={'grant_type': DEVICE_GRANT})
        assert r.status_code == 400 and r.json() == {'error': 'invalid_request'}

    @pytest.mark.parametrize('headers', [
        {'Origin': 'https://evil.example'},
        {'Sec-Fetch-Site': 'cross-site', 'Origin': None},
        {},
    ])
    def test_cg_200_09_csrf_refused(self, env, headers):
        d = device_authorize(env)
        s = requests.Session()
        assert s.get(env.mkurl('/device?user_code=' + d['user_code'])).status_code == 200
        h = {k: v for k, v in headers.items() if v is not None}
        if 'Origin' not in headers:
            s.headers.pop('Origin', None)
        r = s.post(env.mkurl('/device'), data={'user_code': d['user_code'], 'step': 'approve'},
                   headers=h)
        assert r.status_code == 200
        assert 'came from another site and was blocked' in r.text
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.json() == {'error': 'authorization_pending'}

    def test_cg_200_10_unknown_code_page(self, env):
        _, r = browser_approve_unknown(env)
        assert 'That code was not recognized' in r.text

    def test_cg_200_11_page_shows_user_and_never_auto_approves(self, env, pg):
        d = device_authorize(env)
        s = requests.Session()
        r = s.get(env.mkurl('/device?user_code=' + d['user_code']))
        assert 'alice@example.com' in r.text and d['user_code'] in r.text
        assert "frame-ancestors 'none'" in r.headers['content-security-policy']
        assert r.headers['cache-control'] == 'no-store'
        status = pg.psql("SELECT status FROM claude_device_grants WHERE user_code='%s'"
                         % d['user_code'].replace('-', ''))
        assert status == 'pending'

    def test_cg_200_12_refresh_and_deprovision(self, env, idp, session_secret):
        tok = login(env)
        r = token_post(env, grant_type='refresh_token', refresh_token=tok['refresh_token'])
        assert r.status_code == 200, r.text
        new = r.json()
        assert new['refresh_token'] != tok['refresh_token']  # the IdP rotates
        claims = jwt.decode(new['access_token'], session_secret, algorithms=['HS256'],
                            audience='claude-gateway')
        assert claims['sub'] == 'user-alice'
        requests.post(idp.url + '/_fake/deprovision', json={'username': 'alice'}, timeout=5)
        r = token_post(env, grant_type='refresh_token', refresh_token=new['refresh_token'])
        assert r.status_code == 401 and r.json() == {'error': 'invalid_grant'}

    def test_cg_200_13_refresh_idp_down_is_503(self, env, idp):
        tok = login(env)
        requests.post(idp.url + '/_fake/fail', json={'token': 503}, timeout=5)
        r = token_post(env, grant_type='refresh_token', refresh_token=tok['refresh_token'])
        assert r.status_code == 503 and r.json() == {'error': 'temporarily_unavailable'}
        env.error_log.ignore_recent(tags=['CG0312', 'CG0310'])

    def test_cg_200_14_forged_tokens_refused(self, env, session_secret, upstream):
        now = int(time.time())
        good = {'sub': 'user-alice', 'aud': 'claude-gateway', 'iat': now, 'exp': now + 600}
        kid = hashlib.sha256(session_secret.encode()).hexdigest()[:16]
        valid = jwt.encode(good, session_secret, algorithm='HS256', headers={'kid': kid})

        def b64(d):
            return base64.urlsafe_b64encode(json.dumps(d).encode()).rstrip(b'=').decode()

        h, p, sig = valid.split('.')
        forged = {
            'alg-none': b64({'alg': 'none', 'typ': 'JWT'}) + '.' + p + '.',
            'wrong-key': jwt.encode(good, 'x' * 40, algorithm='HS256', headers={'kid': kid}),
            'unknown-kid': jwt.encode(good, session_secret, algorithm='HS256',
                                      headers={'kid': '0123456789abcdef'}),
            'tampered': h + '.' + b64(dict(good, sub='user-mallory')) + '.' + sig,
            'expired': jwt.encode(dict(good, iat=now - 7200, exp=now - 3600), session_secret,
                                  algorithm='HS256', headers={'kid': kid}),
            'wrong-aud': jwt.encode(dict(good, aud='other'), session_secret, algorithm='HS256',
                                    headers={'kid': kid}),
            'garbage': 'not.a.token',
        }
        r = post(env.port, '/v1/messages', message_body(),
                 headers={'authorization': 'Bearer ' + valid})
        assert r.status == 200
        for name, token in forged.items():
            r = post(env.port, '/v1/messages', message_body(),
                     headers={'authorization': 'Bearer ' + token})
            assert r.status == 401, name
            assert r.json['error'] == {'type': 'authentication_error', 'message': 'invalid token'}
        r = post(env.port, '/v1/messages', message_body(), headers={'x-client-request-id': 'nok-1'})
        assert r.status == 401
        rec = env.audit_records('nok-1')[-1]
        assert rec['decision'] == 'auth_failed' and rec['reason'] == 'no session token'
        assert rec['status'] == 401 and rec['path'] == '/v1/messages'
        r = post(env.port, '/v1/messages', message_body(),
                 headers={'authorization': 'Bearer ' + forged['expired'],
                          'x-client-request-id': 'nok-2'})
        rec = env.audit_records('nok-2')[-1]
        assert rec['decision'] == 'auth_failed' and 'expired' in rec['reason']
        assert forged['expired'] not in open(env.logs_dir + '/audit.json').read()

    def test_cg_200_15_device_rate_limit(self, env, pg):
        for _ in range(30):
            device_authorize(env)
        r = requests.post(env.mkurl('/oauth/device_authorization'), data={'surface': 'claude_code'})
        assert r.status_code == 429
        assert r.json()['error'] == 'slow_down'


class TestRevocation:

    @pytest.fixture(autouse=True, scope='class')
    def _class_scope(self, env, pg, upstream, idp, oidc_client, admin_keys):
        GatewayConf(env).add_database(pg.conninfo).add_admin(admin_keys) \
            .add_signin(idp.url, oidc_client['client_id'],
                        extra='ClaudeGatewayRevocationRefresh 0') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)

    @pytest.fixture(autouse=True)
    def _clean(self, pg):
        yield
        pg.psql('DELETE FROM claude_revocations')

    def _call(self, env, tok):
        return post(env.port, '/v1/messages', message_body(),
                    headers={'authorization': 'Bearer ' + tok['access_token']}).status

    def test_cg_200_30_admin_revocation_next_request(self, env, pg, idp, admin_keys):
        admin = {'x-api-key': admin_keys['write']}
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
        tok = login(env)
        assert self._call(env, tok) == 200
        # admin credentials with write access are required (the admin envelope)
        for headers, status, kind in (({}, 401, 'authentication_error'),
                                      ({'x-api-key': 'x' * 40}, 401, 'authentication_error'),
                                      ({'x-api-key': admin_keys['read']}, 403,
                                       'permission_error')):
            r = requests.post(env.mkurl('/admin/revocations'), json={'sub': 'user-alice'},
                              headers=headers)
            assert r.status_code == status and r.json()['error']['type'] == kind
            assert r.json()['request_id'] == r.headers['request-id']
        assert self._call(env, tok) == 200
        r = requests.post(env.mkurl('/admin/revocations'), headers=admin,
                          json={'sub': 'user-alice', 'reason': 'left the company'})
        assert r.status_code == 200 and r.json()['revoked'] is True
        assert self._call(env, tok) == 401  # the very next request
        listed = requests.get(env.mkurl('/admin/revocations'), headers=admin).json()['data']
        assert listed[0]['sub'] == 'user-alice' and listed[0]['reason'] == 'left the company'
        # lifting it lets a fresh sign-in through; the old token stays dead
        time.sleep(1.1)
        assert requests.delete(env.mkurl('/admin/revocations?sub=user-alice'),
                               headers=admin).status_code == 200
        pg.psql('DELETE FROM claude_rate')
        tok2 = login(env)
        assert self._call(env, tok2) == 200
        env.error_log.ignore_recent(tags=['CG0404', 'CG0403'])

    def test_cg_200_31_rfc7009_revokes_one_session(self, env, pg, idp):
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
        a, b = login(env), login(env, wait=0)  # second poll needs no wait: fresh code
        assert self._call(env, a) == 200 and self._call(env, b) == 200
        r = requests.post(env.mkurl('/oauth/revoke'), data={'token': a['access_token']})
        assert r.status_code == 200
        assert self._call(env, a) == 401
        assert self._call(env, b) == 200  # only that session
        # unknown tokens are fine per RFC 7009
        assert requests.post(env.mkurl('/oauth/revoke'), data={'token': 'zzz'}).status_code == 200
        # the client's /logout revokes its refresh token: no more refreshes with it
        r = requests.post(env.mkurl('/oauth/revoke'), data={
            'token': b['refresh_token'], 'token_type_hint': 'refresh_token'})
        assert r.status_code == 200
        r = token_post(env, grant_type='refresh_token', refresh_token=b['refresh_token'])
        assert r.status_code == 401 and r.json() == {'error': 'invalid_grant'}
        env.error_log.ignore_recent(tags=['CG0402'])

    def test_cg_200_32_cached_list_catches_up(self, env, pg, upstream, idp, oidc_client,
                                              admin_keys):
        GatewayConf(env).add_database(pg.conninfo).add_admin(admin_keys) \
            .add_signin(idp.url, oidc_client['client_id'],
                        extra='ClaudeGatewayRevocationRefresh 300') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
        tok = login(env)
        assert self._call(env, tok) == 200
        requests.post(env.mkurl('/admin/revocations'), json={'sub': 'user-alice'},
                      headers={'x-api-key': admin_keys['write']})
        time.sleep(0.4)
        assert self._call(env, tok) == 401
        env.error_log.ignore_recent(tags=['CG0404'])


def browser_approve_unknown(env):
    s = requests.Session()
    s.get(env.mkurl('/device'))
    r = s.post(env.mkurl('/device'), data={'user_code': 'BBBB-CCCC', 'step': 'approve'},
               headers={'Origin': env.url})
    return s, r


class TestSecretRotation:

    def test_cg_200_20_old_secret_still_verifies(self, env, pg, upstream, idp, oidc_client,
                                                 session_secret):
        old_kid = hashlib.sha256(session_secret.encode()).hexdigest()[:16]
        now = int(time.time())
        old = jwt.encode({'sub': 'user-alice', 'aud': 'claude-gateway', 'iat': now,
                          'exp': now + 600}, session_secret, algorithm='HS256',
                         headers={'kid': old_kid})
        pg.psql('DELETE FROM claude_revocations; DELETE FROM claude_rate')
        env.extra_env['CLAUDE_TEST_SESSION_SECRET_NEW'] = 'n' * 20 + session_secret[:20]
        conf = GatewayConf(env).add_database(pg.conninfo)
        conf.add_signin(idp.url, oidc_client['client_id'])
        conf.lines[-1] = conf.lines[-1].replace(
            'ClaudeGatewaySessionSecret env:CLAUDE_TEST_SESSION_SECRET',
            'ClaudeGatewaySessionSecret env:CLAUDE_TEST_SESSION_SECRET_NEW '
            'env:CLAUDE_TEST_SESSION_SECRET')
        conf.add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        r = post(env.port, '/v1/messages', message_body(),
                 headers={'authorization': 'Bearer ' + old})
        assert r.status == 200
        tok = login(env)
        assert jwt.get_unverified_header(tok['access_token'])['kid'] == hashlib.sha256(
            env.extra_env['CLAUDE_TEST_SESSION_SECRET_NEW'].encode()).hexdigest()[:16]
        assert hmac.compare_digest(tok['token_type'], 'Bearer')


class TestGates:

    def _install(self, env, pg, upstream, idp, oidc_client, extra):
        GatewayConf(env).add_database(pg.conninfo) \
            .add_signin(idp.url, oidc_client['client_id'], extra=extra) \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate')

    def test_cg_200_40_group_gate_refuses_sign_in(self, env, pg, upstream, idp, oidc_client):
        self._install(env, pg, upstream, idp, oidc_client, 'ClaudeGatewayAllowedGroups admins ops')
        d = device_authorize(env)
        s = requests.Session()
        r = s.get(env.mkurl('/device?user_code=' + d['user_code']))
        assert "aren't in a group that may use Claude Code" in r.text
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.json() == {'error': 'authorization_pending'}

    def test_cg_200_41_domain_and_group_gates_admit(self, env, pg, upstream, idp, oidc_client):
        self._install(env, pg, upstream, idp, oidc_client,
                      'ClaudeGatewayAllowedGroups eng\nClaudeGatewayAllowedEmailDomains example.com')
        tok = login(env)
        assert tok['access_token']

    def test_cg_200_42_domain_gate_applies_at_refresh(self, env, pg, upstream, idp, oidc_client):
        self._install(env, pg, upstream, idp, oidc_client, '')
        tok = login(env)
        self._install(env, pg, upstream, idp, oidc_client,
                      'ClaudeGatewayAllowedEmailDomains corp.example')
        r = token_post(env, grant_type='refresh_token', refresh_token=tok['refresh_token'])
        assert r.status_code == 401 and r.json() == {'error': 'invalid_grant'}

    def test_cg_200_43_bad_gate_config(self, env, idp, oidc_client, upstream):
        GatewayConf(env).add_signin(idp.url, oidc_client['client_id'],
                                    extra='ClaudeGatewayAllowedEmailDomains @example.com') \
            .add_messages(upstream.url).install()
        rc, out = env.config_test()
        assert rc != 0 and "'@example.com' is not a domain" in out


class TestTwoNodes:
    """Two httpd instances on one PostgreSQL: a login started on one node
    finishes on the other, and the session works on both."""

    def test_cg_200_50_login_across_nodes(self, env, gen_dir, pg, upstream, idp, oidc_client,
                                          upstream_key, session_secret):
        import os
        from pyclaude.env import HttpdEnv

        GatewayConf(env).add_database(pg.conninfo) \
            .add_signin(idp.url, oidc_client['client_id']) \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        other = HttpdEnv(os.path.join(gen_dir, 'node2'))
        other.extra_env.update(env.extra_env)
        other.error_log.add_ignored_tags(['AH01882', 'CG0002'])
        try:
            GatewayConf(other).add_database(pg.conninfo) \
                .add_signin(idp.url, oidc_client['client_id'], public_url=None) \
                .add_messages(upstream.url, dev_identity=None).install()
            assert other.restart() == 0
            requests.post(idp.url + '/_fake/reset', timeout=5)
            pg.psql('DELETE FROM claude_rate')
            r = requests.post(other.mkurl('/oauth/device_authorization'),
                              data={'surface': 'claude_code'})
            assert r.status_code == 200
            d = r.json()
            browser_approve(env, d['user_code'])
            r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
            assert r.status_code == 200, r.text
            tok = r.json()['access_token']
            for node in (env, other):
                r = post(node.port, '/v1/messages', message_body(),
                         headers={'authorization': 'Bearer ' + tok})
                assert r.status == 200
        finally:
            other.stop()
            other.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
            other.error_log.check()


class TestClaimMapping:

    @pytest.fixture(autouse=True)
    def _setup(self, env, pg, upstream, idp, oidc_client):
        GatewayConf(env).add_database(pg.conninfo) \
            .add_signin(idp.url, oidc_client['client_id'],
                        extra='ClaudeGatewayEmailClaim email upn\n'
                              'ClaudeGatewayGroupsClaim /realm_access/roles') \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
        yield
        requests.post(idp.url + '/_fake/reset', timeout=5)

    def test_cg_200_60_email_fallback_and_nested_groups(self, env, idp, session_secret):
        requests.post(idp.url + '/_fake/users', json={'username': 'carol', 'claims': {
            'sub': 'user-carol', 'upn': 'carol@example.com', 'email_verified': True,
            'name': 'Carol', 'realm_access': {'roles': ['ml', 'claude-users']}}})
        requests.post(idp.url + '/_fake/login_as', json={'username': 'carol'})
        tok = login(env)
        claims = jwt.decode(tok['access_token'], session_secret, algorithms=['HS256'],
                            audience='claude-gateway')
        assert claims['sub'] == 'user-carol' and claims['email'] == 'carol@example.com'
        assert claims['groups'] == ['ml', 'claude-users']
        # the same mapping at refresh, from the new id_token
        r = token_post(env, grant_type='refresh_token', refresh_token=tok['refresh_token'])
        claims = jwt.decode(r.json()['access_token'], session_secret, algorithms=['HS256'],
                            audience='claude-gateway')
        assert claims['groups'] == ['ml', 'claude-users']

    def test_cg_200_61_unverified_email_refused(self, env, idp):
        requests.post(idp.url + '/_fake/users', json={'username': 'dave', 'claims': {
            'sub': 'user-dave', 'email': 'dave@example.com', 'email_verified': False}})
        requests.post(idp.url + '/_fake/login_as', json={'username': 'dave'})
        d = device_authorize(env)
        r = requests.Session().get(env.mkurl('/device?user_code=' + d['user_code']))
        assert 'has not verified your email address' in r.text
        r = token_post(env, grant_type=DEVICE_GRANT, device_code=d['device_code'])
        assert r.json() == {'error': 'authorization_pending'}
