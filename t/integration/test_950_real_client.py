"""End to end with the real Claude Code client (npm @anthropic-ai/claude-code):
`/login` through the gateway and the fake IdP, then a prompt answered by the
fake upstream through the gateway, over loopback http and over https."""
import json
import os

import pytest
import requests

from pyclaude.claude_tmux import ClaudeTmux
from pyclaude.conf import GatewayConf

OIDC_HTTP_WARNINGS = [r'SHOULD be https', r'oidc_']


_CA = {}


def env_ca():
    return _CA.get('path', True)


def approver(base):
    def approve(user_code):
        s = requests.Session()
        r = s.get(f'{base}/device?user_code={user_code}', verify=env_ca(), timeout=15)
        assert user_code in r.text and 'alice@example.com' in r.text
        r = s.post(f'{base}/device', data={'user_code': user_code, 'step': 'approve'},
                   headers={'Origin': base}, verify=env_ca(), timeout=15)
        assert "You're signed in" in r.text
    return approve


@pytest.fixture
def client_env(env, pg, upstream, idp, oidc_client):
    _CA['path'] = env.tls_ca

    def setup(public_url):
        GatewayConf(env).add_database(pg.conninfo) \
            .add_signin(idp.url, oidc_client['client_id'], public_url=public_url) \
            .add_messages(upstream.url, dev_identity=None).install()
        assert env.restart() == 0
        env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS)
        requests.post(idp.url + '/_fake/reset', timeout=5)
        pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
        upstream.reset()
    return setup


def test_e2e_950_01_login_and_prompt_over_http(env, client_env, upstream, pg):
    base = f'http://127.0.0.1:{env.port}'
    client_env(base)
    claude = ClaudeTmux(base)
    try:
        claude.login(approver(base))
        creds = claude.credentials()
        assert creds['enterpriseGateway']['url'] == base
        assert creds['enterpriseGateway']['idpRefreshToken']
        claude.type('say hi')
        claude.wait_for(r'Hello from the fake Anthropic API', timeout=60)
        msgs = [r for r in upstream.requests if r['path'] == '/v1/messages']
        assert msgs and not any(r['violations'] for r in msgs)
        names = {k for r in msgs for k, _ in r['headers']}
        assert 'authorization' not in names and 'x-claude-code-session-id' not in names
        assert 'user-alice' in env.access_log_line('POST /v1/messages')
        # /logout uses the advertised revocation endpoint (RFC 7009)
        claude.type('/logout')
        line = env.access_log_line('POST /oauth/revoke', timeout=20)
        assert '" 200 ' in line
        revoked = int(pg.psql('SELECT (SELECT count(*) FROM claude_refresh_revocations) + '
                              '(SELECT count(*) FROM claude_session_revocations)'))
        assert revoked >= 1
    finally:
        claude.close()


def test_e2e_950_02_login_and_prompt_over_https(env, client_env, upstream, idp):
    base = env.tls_url
    if base + '/oauth/callback' not in idp.redirect_uris:
        idp.redirect_uris.append(base + '/oauth/callback')
    client_env(base)
    # the client trusts the run's CA like a company's private CA
    claude = ClaudeTmux(base, extra_env={'NODE_EXTRA_CA_CERTS': env.tls_ca})
    try:
        claude.login(approver(base))
        claude.type('say hi')
        claude.wait_for(r'Hello from the fake Anthropic API', timeout=60)
        pin = claude.credentials()['gatewayTrust']['127.0.0.1']
        assert pin != 'http-loopback' and len(pin.replace(':', '')) >= 64
    finally:
        claude.close()


def test_e2e_950_03_policy_reaches_the_real_client(env, pg, upstream, idp, oidc_client, gen_dir):
    """The client fetches /managed/settings after sign-in, and a model its
    policy leaves out is refused with the reference's message, which the
    client shows as an API error; nothing reaches the upstream for it."""
    base = f'http://127.0.0.1:{env.port}'
    policy = f'{gen_dir}/e2e-policy.yaml'
    with open(policy, 'w') as f:
        f.write('managed:\n  policies:\n    - match: {groups: [eng]}\n'
                '      cli:\n        availableModels: [claude-haiku-4-5]\n'
                '        permissions: {deny: ["WebFetch"]}\n')
    GatewayConf(env).add_database(pg.conninfo) \
        .add_signin(idp.url, oidc_client['client_id'], public_url=base) \
        .add_policy(policy) \
        .add_messages(upstream.url, dev_identity=None).install()
    assert env.restart() == 0
    env.error_log.ignore_recent(matches=OIDC_HTTP_WARNINGS, tags=['CG0140'])
    requests.post(idp.url + '/_fake/reset', timeout=5)
    pg.psql('DELETE FROM claude_rate; DELETE FROM claude_revocations')
    upstream.reset()
    seen = len(env.access_log_lines())  # earlier tests' clients polled too
    audit_path = f'{env.logs_dir}/audit.json'
    audit_seen = len(open(audit_path).readlines()) if os.path.exists(audit_path) else 0
    claude = ClaudeTmux(base)
    try:
        claude.login(approver(base))
        env.access_log_line('GET /managed/settings', timeout=30)
        fetches = [l for l in env.access_log_lines()[seen:] if 'GET /managed/settings' in l]
        assert all('user-alice' in l for l in fetches)
        assert any('" 200 ' in l for l in fetches), fetches
        # a later poll carries the checksum the client computed itself from
        # the settings it holds: a 304 proves it agrees with ours
        assert all('" 200 ' in l or '" 304 ' in l for l in fetches), fetches
        claude.type('say hi')
        claude.wait_for(r"not in your role's availableModels allowlist", timeout=90)
        refused = [json.loads(l) for l in open(audit_path).readlines()[audit_seen:]
                   if '"policy_denied"' in l]
        assert refused and all(r['user'] == 'user-alice' for r in refused)
        sent = [r['json']['model'] for r in upstream.requests if r['path'] == '/v1/messages']
        assert all('haiku' in m for m in sent), sent
    finally:
        claude.close()
