"""Foundry with auth {use_azure_ad: true}: a Microsoft Entra token for
https://cognitiveservices.azure.com, from the server-side sources of
azure-identity's DefaultAzureCredential in its order (a service principal's
secret or certificate, workload identity's federated token, the App Service /
Container Apps identity endpoint, the VM's instance metadata service), against a
strict fake of those endpoints (fakes/azureid.py) whose tokens the Foundry
fake takes until they expire. Every test sets all the chain's variables:
AZURE_AUTHORITY_HOST and AZURE_POD_IDENTITY_AUTHORITY_HOST name the fake
(whose IMDS has no identity unless a test gives it one), so nothing reaches
login.microsoftonline.com or 169.254.169.254."""
import os
import re
import time

import pytest

from fakes import azureid as az
from fakes.azureid import AzureIdentityFake
from fakes.foundry import FoundryFake
from pyclaude.client import post
from test_730_providers import body, headers

CHAIN_VARS = ('AZURE_TENANT_ID', 'AZURE_CLIENT_ID', 'AZURE_CLIENT_SECRET',
              'AZURE_CLIENT_CERTIFICATE_PATH', 'AZURE_CLIENT_CERTIFICATE_PASSWORD',
              'AZURE_CLIENT_SEND_CERTIFICATE_CHAIN', 'AZURE_FEDERATED_TOKEN_FILE',
              'AZURE_AUTHORITY_HOST', 'IDENTITY_ENDPOINT', 'IDENTITY_HEADER',
              'AZURE_POD_IDENTITY_AUTHORITY_HOST')


@pytest.fixture(scope='module')
def azure(gen_dir):
    fdy = FoundryFake(api_key=None).start()  # Entra tokens only
    idf = AzureIdentityFake(fdy).start()
    yield idf, fdy
    idf.stop()
    fdy.stop()


@pytest.fixture(autouse=True)
def _clean(env, azure):
    idf, fdy = azure
    idf.reset()
    idf.has_identity = False  # a VM without managed identity, unless a test gives it one
    fdy.reset()
    yield
    for k in CHAIN_VARS:
        env.extra_env.pop(k, None)
    env.error_log.ignore_recent(tags=['CG0123', 'CG0134', 'CG0135', 'CG0148', 'CG0150'])
    assert not idf.violations, idf.violations


def install(env, pg, gen_dir, azure, **chain):
    idf, fdy = azure
    for k in CHAIN_VARS:
        env.extra_env[k] = ''  # empty is unset for the chain: nothing inherited
    # by default no source but an IMDS without identity; were the token
    # endpoint asked anyway, the fake would answer and count it
    env.extra_env.update(AZURE_AUTHORITY_HOST=idf.url, AZURE_POD_IDENTITY_AUTHORITY_HOST=idf.url)
    env.extra_env.update(chain)
    policy = f'{gen_dir}/foundry-entra.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: foundry
    provider: foundry
    resource: unused
    base_url: {fdy.url}/anthropic
    auth: {{use_azure_ad: true}}
""")
    from pyclaude.conf import GatewayConf
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    assert env.restart() == 0


def service_principal(idf, **over):
    """The variables of a service principal with a secret."""
    return dict(dict(AZURE_TENANT_ID=idf.tenant_id, AZURE_CLIENT_ID=idf.client_id,
                     AZURE_CLIENT_SECRET=idf.client_secret), **over)


def write_token_file(path, token):
    """As the kubelet does: the new content in place at once, no newline."""
    with open(path + '.tmp', 'w') as f:
        f.write(token)
    os.replace(path + '.tmp', path)
    return path


def ask(env, secret, rid):
    return post(env.port, '/v1/messages', body(),
                headers=headers(secret, **{'x-client-request-id': rid}))


def ok(env, secret, fdy, rid):
    """A request served with a live Entra token, and nothing else, as the credential."""
    r = ask(env, secret, rid)
    assert r.status == 200, r.body
    rec = fdy.last
    assert not rec['violations'], rec['violations']
    assert rec['credential'] == 'entra'
    h = dict(rec['headers'])
    assert h['authorization'][len('Bearer '):] in fdy.tokens
    assert 'x-api-key' not in h and 'api-key' not in h
    return rec


def refused(env, secret, rid):
    """No token: 502 in the Anthropic envelope."""
    r = ask(env, secret, rid)
    assert r.status == 502, r.body
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'api_error'
    return r


def failure(env, pattern, after=0, timeout=5.0):
    """The first CG0148 line past the first `after` ones matching pattern, or None."""
    rx = re.compile(r'CG0148: Could not get a Microsoft Entra token: ' + pattern)
    end = time.monotonic() + timeout
    while True:
        lines = [x for x in env.error_log.recent_lines() if 'CG0148' in x][after:]
        hit = next((x for x in lines if rx.search(x)), None)
        if hit is not None or time.monotonic() >= end:
            return hit
        time.sleep(0.1)


def failures(env):
    return len([x for x in env.error_log.recent_lines() if 'CG0148' in x])


def no_secret_logged(env, idf, fdy, *more):
    text = open(env.error_log.path, errors='replace').read()
    for s in (idf.client_secret, idf.federated_token, idf.identity_header, *fdy.tokens, *more):
        assert s not in text


def test_cg_760_01_service_principal_secret(env, pg, gen_dir, session_secret, azure):
    """A service principal's secret wins over managed identity: one grant per child."""
    idf, fdy = azure
    idf.has_identity = True  # there, and not asked
    install(env, pg, gen_dir, azure, IDENTITY_ENDPOINT=idf.identity_endpoint,
            IDENTITY_HEADER=idf.identity_header, **service_principal(idf))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-sp-{i}')
    assert 1 <= idf.n('entra-secret') <= 2  # once per child that served a request
    assert idf.n('entra') == idf.n('entra-secret')
    assert idf.n('appservice') == 0 and idf.n('imds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-sp-0'") \
        == 'foundry'
    assert env.error_log.scan_recent(r'CG0149: Microsoft Entra token from the ') is not None
    no_secret_logged(env, idf, fdy)


def test_cg_760_02_workload_identity_file_reread(env, pg, gen_dir, session_secret, azure):
    """Workload identity: the file's content is the assertion, read again at each fetch."""
    idf, fdy = azure
    path = write_token_file(f'{gen_dir}/azure-federated-token', idf.federated_token)
    # the authority with a trailing slash, as some set it
    install(env, pg, gen_dir, azure, AZURE_TENANT_ID=idf.tenant_id,
            AZURE_CLIENT_ID=idf.client_id, AZURE_FEDERATED_TOKEN_FILE=path,
            AZURE_AUTHORITY_HOST=idf.url + '/')
    for i in range(2):
        ok(env, session_secret, fdy, f'entra-wi-1{i}')
    assert 1 <= idf.n('entra-assertion') <= 2 and idf.n('entra-secret') == 0
    assert idf.n('imds') == 0
    # the kubelet rotates the file; the old token is no longer taken, nor
    # the Entra tokens it bought: the fetch after Foundry's 401 sends the new one
    write_token_file(path, idf.rotate_federated_token())
    fdy.expire_tokens()
    n = idf.n('entra')
    statuses = [ask(env, session_secret, f'entra-wi-2{i}').status for i in range(4)]
    assert statuses[-1] == 200, statuses
    assert len([s for s in statuses if s != 200]) <= 2, statuses  # one 401 per child at most
    assert n + 1 <= idf.n('entra') <= n + 2
    assert idf.n('entra') == idf.n('entra-assertion')  # the fake refused no old assertion
    ok(env, session_secret, fdy, 'entra-wi-3')
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-wi-3'") \
        == 'foundry'
    no_secret_logged(env, idf, fdy)


def test_cg_760_03_app_service_user_assigned(env, pg, gen_dir, session_secret, azure):
    """App Service identity for AZURE_CLIENT_ID; a secretless service principal doesn't block it."""
    idf, fdy = azure
    idf.has_identity = True  # there, and not asked
    install(env, pg, gen_dir, azure, AZURE_TENANT_ID=idf.tenant_id,
            AZURE_CLIENT_ID=idf.client_id, IDENTITY_ENDPOINT=idf.identity_endpoint,
            IDENTITY_HEADER=idf.identity_header)
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-app-{i}')
    assert 1 <= idf.n('appservice') <= 2  # once per child that served a request
    asked = idf.seen('appservice')
    assert all(r['status'] == 200 for r in asked)
    assert all(r['params'].get('client_id') == [idf.client_id] for r in asked)
    assert idf.n('entra') == 0 and idf.n('imds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-app-2'") \
        == 'foundry'
    assert env.error_log.scan_recent(r'CG0149: Microsoft Entra token from the ') is not None
    no_secret_logged(env, idf, fdy)


def test_cg_760_04_imds_cached_and_refetched(env, pg, gen_dir, session_secret, azure):
    """IMDS: the token is kept (once per child), and fetched anew after a 401 from Foundry."""
    idf, fdy = azure
    idf.has_identity = True
    install(env, pg, gen_dir, azure)
    for i in range(6):
        ok(env, session_secret, fdy, f'entra-imds-1{i}')
    assert 1 <= idf.n('imds') <= 2  # once per child that served a request
    assert all('client_id' not in r['params'] for r in idf.seen('imds'))  # system-assigned
    assert idf.n('entra') == 0 and idf.n('appservice') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-imds-10'") \
        == 'foundry'
    # revoked behind our back: Foundry says 401, and the request after fetches anew
    fdy.expire_tokens()
    n = idf.n('imds')
    statuses = [ask(env, session_secret, f'entra-imds-2{i}').status for i in range(4)]
    assert statuses[-1] == 200, statuses
    assert len([s for s in statuses if s != 200]) <= 2, statuses  # one 401 per child at most
    assert n + 1 <= idf.n('imds') <= n + 2
    ok(env, session_secret, fdy, 'entra-imds-3')
    no_secret_logged(env, idf, fdy)


def test_cg_760_05_short_lived_token(env, pg, gen_dir, session_secret, azure):
    """A token with less than five minutes to live is not kept: each request fetches one."""
    idf, fdy = azure
    idf.ttl = 200
    install(env, pg, gen_dir, azure, **service_principal(idf))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-short-{i}')
    assert idf.n('entra-secret') == 3  # one per request, whichever child served it


def test_cg_760_06_nothing_found(env, pg, gen_dir, session_secret, azure):
    """No source: 502, the reasons in CG0148, no new look for 5 s, nothing sent to Foundry."""
    idf, fdy = azure
    install(env, pg, gen_dir, azure)
    refused(env, session_secret, 'entra-none-1')
    assert failure(env, r'.*Identity not found') is not None
    asked = idf.n('imds')
    assert asked >= 1
    t0 = time.monotonic()
    r = ask(env, session_secret, 'entra-none-2')
    if time.monotonic() - t0 < 4:  # same child, within the five seconds
        assert r.status == 502
    assert idf.n('imds') <= asked + 1  # at most the other child's first look
    assert idf.n('entra') == 0 and idf.n('appservice') == 0
    assert fdy.count == 0
    assert pg.wait_value("SELECT count(*) FROM claude_ledger "
                         "WHERE request_id LIKE 'entra-none-%'") == '0'
    # a certificate without AZURE_TENANT_ID is not a service principal (a
    # good one: were it used, the fake would grant): named, skipped, and
    # the next sources asked
    cert = os.path.join(gen_dir, 'azure-sp-cert-notenant.pem')
    os.chmod(idf.certificate_pem(cert), 0o644)
    idf.reset()
    idf.has_identity = False
    install(env, pg, gen_dir, azure, AZURE_CLIENT_ID=idf.client_id,
            AZURE_CLIENT_CERTIFICATE_PATH=cert)
    before = failures(env)
    refused(env, session_secret, 'entra-none-3')
    assert failure(env, r'.*AZURE_CLIENT_CERTIFICATE_PATH.*Identity not found',
                   after=before) is not None
    assert idf.n('entra') == 0 and idf.n('imds') >= 1
    assert all(r['params'].get('client_id') == [idf.client_id] for r in idf.seen('imds'))
    assert fdy.count == 0
    no_secret_logged(env, idf, fdy)


def test_cg_760_07_wrong_secret_ends_the_chain(env, pg, gen_dir, session_secret, azure):
    """A service principal Entra refuses ends the chain: 502, CG0148, IMDS not asked."""
    idf, fdy = azure
    idf.has_identity = True  # would answer, were the chain to fall through
    wrong = 'Wr0ng8Q~' + idf.client_secret[8:]
    install(env, pg, gen_dir, azure, **service_principal(idf, AZURE_CLIENT_SECRET=wrong))
    refused(env, session_secret, 'entra-wrong-1')
    line = failure(env, r'.*invalid_client')
    assert line is not None
    assert wrong not in line
    # Entra's description spans lines (Trace ID, Correlation ID): one log line all the same
    assert not [x for x in env.error_log.recent_lines()
                if x.lstrip().startswith(('Trace ID', 'Correlation ID', 'Timestamp'))]
    t0 = time.monotonic()
    r = ask(env, session_secret, 'entra-wrong-2')
    if time.monotonic() - t0 < 4:  # same child, within the five seconds
        assert r.status == 502
    assert 1 <= idf.n('entra') <= 2  # at most the other child's first look
    assert idf.n('entra-secret') == 0
    assert idf.n('imds') == 0 and idf.n('appservice') == 0
    assert fdy.count == 0
    assert pg.wait_value("SELECT count(*) FROM claude_ledger "
                         "WHERE request_id LIKE 'entra-wrong-%'") == '0'
    provoked = idf.pop_violations()
    assert provoked and all('wrong client_secret' in v for v in provoked), provoked
    no_secret_logged(env, idf, fdy, wrong)


def test_cg_760_08_refresh_failure_keeps_the_current_token(env, pg, gen_dir, session_secret,
                                                           azure):
    """A refresh failing while the token is valid: CG0150, and the current token serves."""
    idf, fdy = azure
    idf.ttl = 200  # due for refresh at every request, valid for minutes
    install(env, pg, gen_dir, azure, **service_principal(idf))
    for i in range(4):
        ok(env, session_secret, fdy, f'entra-keep-1{i}')
    idf.entra_down = True
    statuses = []
    for i in range(8):  # a child holding a token serves; one without has none
        statuses.append(ask(env, session_secret, f'entra-keep-2{i}').status)
        if statuses[-1] == 200:
            break
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 502}, statuses
    assert fdy.last['credential'] == 'entra' and not fdy.last['violations']
    assert env.error_log.scan_recent(r'CG0150') is not None
    assert pg.wait_value("SELECT upstream FROM claude_ledger "
                         f"WHERE request_id = 'entra-keep-2{len(statuses) - 1}'") == 'foundry'
    no_secret_logged(env, idf, fdy)


# --- a service principal's certificate ------------------------------------------------

def certificate_principal(idf, path, **over):
    """The variables of a service principal with a certificate (no secret)."""
    return dict(dict(AZURE_TENANT_ID=idf.tenant_id, AZURE_CLIENT_ID=idf.client_id,
                     AZURE_CLIENT_CERTIFICATE_PATH=path), **over)


def readable(path):
    """The file as a deployment leaves it for the server's user (the children
    run as www-data)."""
    os.chmod(path, 0o644)
    return path


def key_material(*certs):
    """What of a certificate's key must never reach the log: its PEM lines
    in both encodings."""
    return [x for c in certs for fmt in ('pkcs8', 'rsa') for x in c.key_lines(fmt)]


def assertions_seen(idf):
    """The certificate assertions the token endpoint took (header and claims)."""
    return [r['assertion'] for r in idf.seen('entra') if r['status'] == 200]


def test_cg_760_09_certificate(env, pg, gen_dir, session_secret, azure):
    """A service principal's certificate (PEM, either order): a new signed assertion per grant."""
    idf, fdy = azure
    cert = idf.certificate
    idf.has_identity = True  # there, and not asked
    # certificate first, then an RSA (PKCS#1) key, as `cat cert.pem key.pem` makes
    path = readable(idf.certificate_pem(f'{gen_dir}/azure-sp-cert.pem', order='cert-first',
                                        key_format='rsa'))
    install(env, pg, gen_dir, azure, **certificate_principal(idf, path))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-cert-1{i}')
    assert 1 <= idf.n('entra-certificate') <= 2  # once per child that served a request
    assert idf.n('entra') == idf.n('entra-certificate')
    assert idf.n('imds') == 0 and idf.n('appservice') == 0
    url = f'{idf.url}/{idf.tenant_id}/oauth2/v2.0/token'
    for r in idf.seen('entra'):
        assert sorted(r['params']) == ['client_assertion', 'client_assertion_type', 'client_id',
                                       'grant_type', 'scope']
    for a in assertions_seen(idf):
        assert a['header']['alg'] == 'RS256' and a['header']['x5t'] == cert.x5t
        assert 'x5c' not in a['header']  # not asked for
        assert a['claims']['aud'] == url
        assert a['claims']['iss'] == a['claims']['sub'] == idf.client_id
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-cert-10'") \
        == 'foundry'
    assert env.error_log.scan_recent(r'CG0149: Microsoft Entra token from the ') is not None
    no_secret_logged(env, idf, fdy, *key_material(cert), *idf.assertions)
    # the key first (PKCS#8), with the bag attributes `openssl pkcs12 -nodes`
    # writes; tokens too short-lived to keep: each request signs anew, a new
    # jti each time (the fake refuses a replay)
    idf.reset()
    idf.has_identity = True
    idf.ttl = 200
    path = readable(idf.certificate_pem(f'{gen_dir}/azure-sp-cert-keyfirst.pem',
                                        order='key-first', key_format='pkcs8',
                                        bag_attributes=True))
    install(env, pg, gen_dir, azure, **certificate_principal(idf, path))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-cert-2{i}')
    assert idf.n('entra-certificate') == 3 and idf.n('entra') == 3
    assert len({a['claims']['jti'] for a in assertions_seen(idf)}) == 3
    assert idf.n('imds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-cert-22'") \
        == 'foundry'
    no_secret_logged(env, idf, fdy, *key_material(cert), *idf.assertions)


def test_cg_760_10_send_certificate_chain(env, pg, gen_dir, session_secret, azure):
    """Subject name/issuer: AZURE_CLIENT_SEND_CERTIFICATE_CHAIN=true puts the certificate in x5c."""
    idf, fdy = azure
    cert = idf.certificate
    idf.require_x5c = True
    path = readable(idf.certificate_pem(f'{gen_dir}/azure-sp-cert-sni.pem'))
    # without the variable no x5c: Entra can't tie the certificate to the app
    install(env, pg, gen_dir, azure, **certificate_principal(idf, path))
    refused(env, session_secret, 'entra-sni-1')
    assert failure(env, r'.*invalid_client') is not None
    provoked = idf.pop_violations()
    assert provoked and all('x5c missing' in v for v in provoked), provoked
    assert idf.n('entra-certificate') == 0 and idf.n('imds') == 0
    idf.reset()
    idf.require_x5c = True
    install(env, pg, gen_dir, azure,
            **certificate_principal(idf, path, AZURE_CLIENT_SEND_CERTIFICATE_CHAIN='true'))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-sni-2{i}')
    assert 1 <= idf.n('entra-certificate') <= 2 and idf.n('entra') == idf.n('entra-certificate')
    for a in assertions_seen(idf):
        assert a['header']['x5c'] == [cert.x5c] and a['header']['x5t'] == cert.x5t
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'entra-sni-20'") \
        == 'foundry'
    no_secret_logged(env, idf, fdy, *key_material(cert), *idf.assertions)


def test_cg_760_11_certificate_refused(env, pg, gen_dir, session_secret, azure):
    """A PFX, an encrypted key, a certificate Entra doesn't know: 502, CG0148, the chain ends."""
    idf, fdy = azure
    cert = idf.certificate
    password = 'Pfx-' + os.urandom(6).hex()
    stranger = az.Certificate(common_name='not-registered')
    for n, (how, path, extra, pattern) in enumerate([
            ('PKCS#12', idf.pfx(f'{gen_dir}/azure-sp-cert.pfx', password),
             dict(AZURE_CLIENT_CERTIFICATE_PASSWORD=password), r'.*(not supported|PEM)'),
            ('encrypted key', idf.encrypted_pem(f'{gen_dir}/azure-sp-cert-enc.pem', password),
             dict(AZURE_CLIENT_CERTIFICATE_PASSWORD=password),
             r'.*(?i:not supported|encrypted)'),
            ('unknown certificate', stranger.pem(f'{gen_dir}/azure-sp-cert-stranger.pem'), {},
             r'.*invalid_client')]):
        idf.reset()
        idf.has_identity = True  # would answer, were the chain to fall through
        install(env, pg, gen_dir, azure,
                **certificate_principal(idf, readable(path), **extra))
        before = failures(env)
        refused(env, session_secret, f'entra-certbad-{n}')
        line = failure(env, pattern, after=before)
        assert line is not None, (how, [x for x in env.error_log.recent_lines()
                                        if 'CG0148' in x][before:])
        assert password not in line
        assert idf.n('imds') == 0 and idf.n('appservice') == 0, how
        assert idf.n('entra-certificate') == 0, how
        assert fdy.count == 0, how
        if how == 'unknown certificate':  # Entra was asked, and said no
            assert 1 <= idf.n('entra') <= 2
            provoked = idf.pop_violations()
            assert provoked and all('x5t' in v for v in provoked), provoked
        else:  # refused before anything was sent
            assert idf.n('entra') == 0, how
    assert pg.wait_value("SELECT count(*) FROM claude_ledger "
                         "WHERE request_id LIKE 'entra-certbad-%'") == '0'
    no_secret_logged(env, idf, fdy, password, *key_material(cert, stranger), *idf.assertions)


def test_cg_760_12_secret_wins_over_certificate(env, pg, gen_dir, session_secret, azure):
    """A client secret and a certificate both set: the secret is used, no assertion signed."""
    idf, fdy = azure
    signed = len(idf.assertions)
    # a good certificate: were it used, the fake would grant it (and count it)
    path = readable(idf.certificate_pem(f'{gen_dir}/azure-sp-cert-both.pem'))
    install(env, pg, gen_dir, azure, **service_principal(idf, AZURE_CLIENT_CERTIFICATE_PATH=path))
    for i in range(3):
        ok(env, session_secret, fdy, f'entra-both-{i}')
    assert 1 <= idf.n('entra-secret') <= 2 and idf.n('entra') == idf.n('entra-secret')
    assert idf.n('entra-certificate') == 0 and len(idf.assertions) == signed
    for r in idf.seen('entra'):
        assert 'client_secret' in r['params'] and 'client_assertion' not in r['params']
    assert idf.n('imds') == 0
    no_secret_logged(env, idf, fdy, *key_material(idf.certificate))
