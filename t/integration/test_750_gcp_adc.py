"""Vertex with auth {}: Google application default credentials, in
google-auth's order (the file GOOGLE_APPLICATION_CREDENTIALS names, gcloud's
well-known file, the GCE metadata server), against the Vertex fake, whose
token endpoint checks the service account's JWT grant and the gcloud user's
refresh grant, and a strict fake of the metadata server (fakes/gcemeta.py).
Every test sets all the chain's variables: HOME is an empty directory, and
GCE_METADATA_HOST names the fake, so nothing reaches a real metadata address
or ~/.config/gcloud."""
import json
import os
import re
import time

import pytest

from fakes.gcemeta import GceMetadataFake
from fakes.vertex import VertexFake
from pyclaude.client import post
from test_730_providers import body, headers

CHAIN_VARS = ('GOOGLE_APPLICATION_CREDENTIALS', 'CLOUDSDK_CONFIG', 'HOME', 'GCE_METADATA_HOST',
              'GCE_METADATA_ROOT', 'NO_GCE_CHECK')
WELL_KNOWN = 'application_default_credentials.json'


@pytest.fixture(scope='module')
def gcp(gen_dir):
    vtx = VertexFake(project='proj-1', location='us-east5').start()
    meta = GceMetadataFake(vtx).start()
    yield vtx, meta
    meta.stop()
    vtx.stop()


@pytest.fixture(autouse=True)
def _clean(env, gcp):
    vtx, meta = gcp
    vtx.reset()
    meta.reset()
    yield
    for k in CHAIN_VARS:
        env.extra_env.pop(k, None)
    env.error_log.ignore_recent(tags=['CG0123', 'CG0134', 'CG0135', 'CG0145', 'CG0147'])
    assert not meta.violations, meta.violations
    grants = [v for q in vtx.requests if q['path'] == '/token' for v in q['violations']]
    assert not grants, grants


def install(env, pg, gen_dir, gcp, **chain):
    vtx, meta = gcp
    home = f'{gen_dir}/gcp-empty-home'  # never holds a .config/gcloud
    os.makedirs(home, exist_ok=True)
    for k in CHAIN_VARS:
        env.extra_env[k] = ''  # empty is unset for the chain: nothing inherited
    # by default no files and no metadata server (and were it asked anyway,
    # the fake would answer and count it): each test adds its source
    env.extra_env.update(HOME=home, GCE_METADATA_HOST=meta.host, NO_GCE_CHECK='true')
    env.extra_env.update(chain)
    policy = f'{gen_dir}/gcp-adc.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: vertex
    provider: vertex
    region: us-east5
    project_id: proj-1
    base_url: {vtx.url}
    auth: {{}}
""")
    from pyclaude.conf import GatewayConf
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    assert env.restart() == 0


def ask(env, secret, rid):
    return post(env.port, '/v1/messages', body(),
                headers=headers(secret, **{'x-client-request-id': rid}))


def ok(env, secret, vtx, rid):
    r = ask(env, secret, rid)
    assert r.status == 200, r.body
    rec = vtx.last
    assert rec['path'] != '/token' and not rec['violations'], rec['violations']
    return rec


def refused(env, secret, rid):
    """No credentials: 502 in the Anthropic envelope."""
    r = ask(env, secret, rid)
    assert r.status == 502, r.body
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'api_error'
    return r


def failure(env, pattern, after=0, timeout=5.0):
    """The first CG0145 line past the first `after` ones matching pattern, or None."""
    rx = re.compile(r'CG0145: Could not load Google application default credentials: ' + pattern)
    end = time.monotonic() + timeout
    while True:
        lines = [x for x in env.error_log.recent_lines() if 'CG0145' in x][after:]
        hit = next((x for x in lines if rx.search(x)), None)
        if hit is not None or time.monotonic() >= end:
            return hit
        time.sleep(0.1)


def failures(env):
    return len([x for x in env.error_log.recent_lines() if 'CG0145' in x])


def no_secret_logged(env, *secrets):
    text = open(env.error_log.path, errors='replace').read()
    for s in secrets:
        assert s not in text


def test_cg_750_01_credentials_file_first(env, pg, gen_dir, session_secret, gcp):
    """GOOGLE_APPLICATION_CREDENTIALS naming a service account wins over the
    metadata server: one JWT grant serves the requests, the server is not asked."""
    vtx, meta = gcp
    sa = vtx.service_account_json(f'{gen_dir}/adc-sa.json')
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=sa, NO_GCE_CHECK='')
    for i in range(3):
        rec = ok(env, session_secret, vtx, f'adc-sa-{i}')
        assert rec['user_project'] is None
    assert vtx.grants['refresh_token'] == 0
    assert 1 <= vtx.grants['jwt-bearer'] <= 2  # once per child that served a request
    assert meta.n('token') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'adc-sa-0'") \
        == 'vertex'
    assert env.error_log.scan_recent(r'CG0146: Google credentials from the ') is not None
    key_line = vtx.service_account()['private_key'].splitlines()[1]
    no_secret_logged(env, key_line, *vtx.tokens)


def test_cg_750_02_authorized_user_and_quota_project(env, pg, gen_dir, session_secret, gcp):
    """gcloud user credentials: the refresh grant, once for both requests, and
    the file's quota project sent as x-goog-user-project."""
    vtx, meta = gcp
    au = vtx.authorized_user_json(f'{gen_dir}/adc-user.json', quota_project='quota-proj-7')
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=au)
    for i in range(2):
        rec = ok(env, session_secret, vtx, f'adc-user-{i}')
        assert rec['user_project'] == 'quota-proj-7'
    assert vtx.grants['jwt-bearer'] == 0
    assert 1 <= vtx.grants['refresh_token'] <= 2  # once per child that served a request
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'adc-user-1'") \
        == 'vertex'
    no_secret_logged(env, vtx.client_secret, vtx.refresh_token, *vtx.tokens)


def test_cg_750_03_gcloud_well_known_file(env, pg, gen_dir, session_secret, gcp):
    """gcloud's file: in CLOUDSDK_CONFIG, else in $HOME/.config/gcloud; found,
    it is used before the metadata server (configured, not asked)."""
    vtx, meta = gcp
    config = f'{gen_dir}/gcloud-config'
    os.makedirs(config, exist_ok=True)
    vtx.authorized_user_json(f'{config}/{WELL_KNOWN}')
    install(env, pg, gen_dir, gcp, CLOUDSDK_CONFIG=config, NO_GCE_CHECK='')
    rec = ok(env, session_secret, vtx, 'adc-wk-1')
    assert rec['user_project'] is None  # no quota_project_id in the file
    assert vtx.grants['refresh_token'] >= 1 and vtx.grants['jwt-bearer'] == 0
    assert meta.n('token') == 0
    # the same place under HOME, here with a service account in it
    home = f'{gen_dir}/gcloud-home'
    os.makedirs(f'{home}/.config/gcloud', exist_ok=True)
    vtx.service_account_json(f'{home}/.config/gcloud/{WELL_KNOWN}')
    vtx.reset()
    install(env, pg, gen_dir, gcp, HOME=home, NO_GCE_CHECK='')
    ok(env, session_secret, vtx, 'adc-wk-2')
    assert vtx.grants['jwt-bearer'] >= 1 and vtx.grants['refresh_token'] == 0
    assert meta.n('token') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'adc-wk-2'") \
        == 'vertex'
    no_secret_logged(env, vtx.client_secret, vtx.refresh_token, *vtx.tokens)


def test_cg_750_04_metadata_server_cached_and_refetched(env, pg, gen_dir, session_secret, gcp):
    """The metadata server: its token is kept (an hour's is fetched once per
    child); after a 401 from Vertex the next request fetches a new one."""
    vtx, meta = gcp
    install(env, pg, gen_dir, gcp, NO_GCE_CHECK='')
    for i in range(8):
        ok(env, session_secret, vtx, f'adc-gce-1{i}')
    assert 1 <= meta.n('token') <= 2  # once per child that served a request
    assert vtx.grants == {'jwt-bearer': 0, 'refresh_token': 0}
    assert env.error_log.scan_recent(r'CG0146: Google credentials from the .*metadata') \
        is not None
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'adc-gce-10'") \
        == 'vertex'
    # revoked behind our back: Vertex says 401, and the request after fetches anew
    vtx.expire_tokens()
    n = meta.n('token')
    statuses = [ask(env, session_secret, f'adc-gce-2{i}').status for i in range(4)]
    assert statuses[-1] == 200, statuses
    assert len([s for s in statuses if s != 200]) <= 2, statuses  # one 401 per child at most
    assert n + 1 <= meta.n('token') <= n + 2
    no_secret_logged(env, *vtx.tokens)


def test_cg_750_05_short_lived_metadata_token(env, pg, gen_dir, session_secret, gcp):
    """A token with less than 3 min 45 s to live is not kept: each request
    fetches its own. The server found through GCE_METADATA_ROOT this time."""
    vtx, meta = gcp
    meta.ttl = 200
    install(env, pg, gen_dir, gcp, NO_GCE_CHECK='', GCE_METADATA_HOST='',
            GCE_METADATA_ROOT=meta.host)
    for i in range(3):
        ok(env, session_secret, vtx, f'adc-short-{i}')
    assert meta.n('token') == 3  # one per request, whichever child served it


def test_cg_750_06_metadata_imposter_and_no_gce_check(env, pg, gen_dir, session_secret, gcp):
    """An answer without Metadata-Flavor: Google is not believed: 502, the
    reason in the error log (CG0145), and the chain is not asked again for
    five seconds. NO_GCE_CHECK (any case, or 1) keeps the server unasked."""
    vtx, meta = gcp
    meta.imposter = True
    install(env, pg, gen_dir, gcp, NO_GCE_CHECK='')
    refused(env, session_secret, 'adc-imposter-1')
    assert failure(env, r'.*Metadata-Flavor') is not None
    asked = meta.n('token')
    assert asked >= 1
    refused(env, session_secret, 'adc-imposter-2')
    assert meta.n('token') <= asked + 1  # at most the other child's first look
    assert vtx.count == 0
    no_secret_logged(env, *vtx.tokens)
    assert pg.wait_value("SELECT count(*) FROM claude_ledger "
                         "WHERE request_id LIKE 'adc-imposter-%'") == '0'
    for flag in ('True', '1'):
        meta.reset()
        install(env, pg, gen_dir, gcp, NO_GCE_CHECK=flag)
        before = failures(env)
        refused(env, session_secret, f'adc-nogce-{flag}')
        assert failure(env, '', after=before) is not None
        assert meta.n('token') == 0, flag
    assert vtx.count == 0


def test_cg_750_07_bad_file_is_no_fall_through(env, pg, gen_dir, session_secret, gcp):
    """A file the chain cannot use fails it, as in google-auth: an AWS-sourced
    external_account file is not supported, a missing file is named, a broken
    well-known file too; neither the next file nor the metadata server is asked."""
    vtx, meta = gcp
    config = f'{gen_dir}/gcloud-config-good'  # a usable well-known file behind it
    os.makedirs(config, exist_ok=True)
    vtx.authorized_user_json(f'{config}/{WELL_KNOWN}')
    ext = f'{gen_dir}/adc-external.json'
    with open(ext, 'w') as f:
        json.dump({'type': 'external_account',
                   'audience': '//iam.googleapis.com/projects/123456789/locations/global/'
                               'workloadIdentityPools/ci-pool/providers/ci-provider',
                   'subject_token_type': 'urn:ietf:params:oauth:token-type:jwt',
                   'token_url': 'https://sts.googleapis.com/v1/token',
                   # sourced from AWS: not supported (test_755 covers the supported kinds)
                   'credential_source': {'environment_id': 'aws1',
                                         'regional_cred_verification_url':
                                             'https://sts.{region}.amazonaws.com?Action='
                                             'GetCallerIdentity&Version=2011-06-15'},
                   'universe_domain': 'googleapis.com'}, f, indent=2)
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=ext, CLOUDSDK_CONFIG=config,
            NO_GCE_CHECK='')
    refused(env, session_secret, 'adc-bad-1')
    assert failure(env, r'.*not supported') is not None
    assert meta.n('token') == 0 and vtx.grants == {'jwt-bearer': 0, 'refresh_token': 0}
    missing = f'{gen_dir}/no-such-adc.json'
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=missing,
            CLOUDSDK_CONFIG=config, NO_GCE_CHECK='')
    refused(env, session_secret, 'adc-bad-2')
    assert failure(env, '.*' + re.escape(missing)) is not None
    assert meta.n('token') == 0 and vtx.grants == {'jwt-bearer': 0, 'refresh_token': 0}
    # present but broken: the well-known file fails the chain as well
    broken = f'{gen_dir}/gcloud-config-broken'
    os.makedirs(broken, exist_ok=True)
    with open(f'{broken}/{WELL_KNOWN}', 'w') as f:
        f.write('{"type": "authorized_user", "client_id": ')
    install(env, pg, gen_dir, gcp, CLOUDSDK_CONFIG=broken, NO_GCE_CHECK='')
    before = failures(env)
    refused(env, session_secret, 'adc-bad-3')
    assert failure(env, '', after=before) is not None
    assert meta.n('token') == 0 and vtx.count == 0
    assert pg.wait_value("SELECT count(*) FROM claude_ledger WHERE request_id LIKE 'adc-bad-%'") \
        == '0'
