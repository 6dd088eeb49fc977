"""An anthropic upstream with Anthropic's Workload Identity Federation
(auth {federation_rule_id, organization_id, identity_token_file,
service_account_id?, workspace_id?}) through the router: the platform's OIDC
token, read from its file at every exchange, is traded at
{base_url}/v1/oauth/token (RFC 7523 jwt-bearer, the federation beta) for a
short-lived access token, sent as Authorization: Bearer with the OAuth beta
beside the client's betas; cached per child until two minutes before it
expires, dropped on a 401. A refused exchange skips the upstream (CG0153).
The fake (fakes/anthropic_wif.py) checks the exchange and the bearer on its
own; the tests numbered 00 check that fake and need no httpd (-k fake)."""
import base64
import http.client
import json
import os
import re
import stat
import time

import pytest

from fakes.anthropic_wif import (DENIED, EXPIRED, FEDERATION_BETA, GRANT_TYPE, OAUTH_BETA,
                                 TOKEN_PATH, TOKEN_PREFIX, UNKNOWN, AnthropicWifFake)
from pyclaude.client import post, stream
from pyclaude.conf import GatewayConf
from test_730_providers import body, headers

RULE = 'fdrl_01ModClaudeGatewayTest0001'
ORG = '8e3f1a52-6c0d-4b7e-a9f4-2d15c7b8e603'
SVAC = 'svac_01ModClaudeGatewayTest0001'
WRKSPC = 'wrkspc_01ModClaudeGatewayTest'
API_KEY = 'sk-ant-api03-wif-' + 'w' * 32
OAUTH_TOKEN = 'sk-ant-oat01-static-' + 'o' * 32
CLIENT_BETA = 'claude-code-20250219'
UPSTREAM = 'claude-wif'
EXPECTED_TAGS = ['CG0123', 'CG0134', 'CG0135', 'CG0153']
# an httpd refusing to start on a policy (test 06)
START_TAGS = ['CG0100', 'CG0101', 'CG0102']
START_MATCHES = ['AH00016', 'Configuration Failed', r'upstreams\[0\]\.auth']


def hdrs(rec):
    """The headers a fake received: {lower name: [values]}."""
    out = {}
    for k, v in rec['headers']:
        out.setdefault(k, []).append(v)
    return out


def call(port, path, data, pairs):
    """POST data (bytes, or an object sent as JSON) with the headers exactly as
    listed, repeats included: (status, {header: value}, parsed JSON)."""
    raw = data if isinstance(data, bytes) else json.dumps(data).encode()
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.putrequest('POST', path)
    for k, v in pairs:
        conn.putheader(k, v)
    conn.putheader('content-length', str(len(raw)))
    conn.endheaders(raw)
    r = conn.getresponse()
    out = r.read()
    h = {k.lower(): v for k, v in r.getheaders()}
    conn.close()
    return r.status, h, json.loads(out)


EXCHANGE_HEADERS = [('content-type', 'application/json'), ('anthropic-beta', FEDERATION_BETA)]


def grant(fake, **over):
    """The exchange body the gateway must send to fake; a None value leaves
    that key out."""
    g = {'grant_type': GRANT_TYPE, 'assertion': fake.assertion, 'federation_rule_id': RULE,
         'organization_id': ORG}
    g.update(over)
    return {k: v for k, v in g.items() if v is not None}


def messages_body(**extra):
    b = {'model': 'claude-sonnet-4-5-20250929', 'max_tokens': 8,
         'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def bearer_headers(token, betas=CLIENT_BETA + ',' + OAUTH_BETA, **extra):
    h = {'authorization': 'Bearer ' + token}
    if betas is not None:
        h['anthropic-beta'] = betas
    h.update(extra)
    return h


def refused_oauth(reply, status, error, text=None):
    st, h, j = reply
    assert st == status, (st, j)
    assert set(j) == {'error', 'error_description'} and j['error'] == error, j
    assert h.get('cache-control') == 'no-store'
    if text is not None:
        assert text in j['error_description'], j


def refused(r, status, kind, text=None):
    assert r.status == status, (r.status, r.body)
    assert r.json['type'] == 'error' and r.json['error']['type'] == kind, r.json
    if text is not None:
        assert text in r.json['error']['message'], r.json


def claims(jwt):
    """The payload of a JWT, unverified."""
    part = jwt.split('.')[1]
    return json.loads(base64.urlsafe_b64decode(part + '=' * (-len(part) % 4)))


# ---- 00: the fake itself ------------------------------------------------------------------

@pytest.fixture
def own():
    fake = AnthropicWifFake(rule_id=RULE, organization_id=ORG).start()
    yield fake
    fake.stop()


def exchange(fake, data=None, pairs=EXCHANGE_HEADERS, path=TOKEN_PATH):
    return call(fake.port, path, grant(fake) if data is None else data, pairs)


def minted(fake):
    st, h, j = exchange(fake)
    assert st == 200, j
    return j['access_token']


def test_cg_780_00_fake_exchange_and_use(own):
    """A well-formed exchange mints a bearer that the Messages API takes with the OAuth beta."""
    st, h, j = exchange(own)
    assert st == 200, j
    assert set(j) == {'access_token', 'token_type', 'expires_in'}
    assert j['token_type'] == 'Bearer' and j['expires_in'] == 3600
    assert j['access_token'].startswith(TOKEN_PREFIX)
    assert h['cache-control'] == 'no-store' and h['content-type'] == 'application/json'
    token = j['access_token']
    ex = own.exchanges[0]
    assert ex['json'] == grant(own) and ex['status'] == 200 and ex['token'] == token
    assert ex['violations'] == []
    assert own.tokens == [token] and own.live(token)
    # JSON, SSE and count_tokens with the bearer
    r = post(own.port, '/v1/messages', messages_body(), headers=bearer_headers(token))
    assert r.status == 200, r.body
    assert r.json['type'] == 'message'
    rec = own.last
    assert rec['bearer'] == token and rec['betas'] == [CLIENT_BETA, OAUTH_BETA]
    assert rec['violations'] == []
    r = stream(own.port, '/v1/messages', messages_body(stream=True),
               headers=bearer_headers(token, betas=OAUTH_BETA))
    assert r.status == 200
    names = [e[1] for e in r.events]
    assert names[0] == 'message_start' and names[-1] == 'message_stop', names
    r = post(own.port, '/v1/messages/count_tokens', messages_body(),
             headers=bearer_headers(token, betas=f'{CLIENT_BETA}, {OAUTH_BETA}'))
    assert r.status == 200 and isinstance(r.json['input_tokens'], int), r.body
    # the betas over two header lines count together
    st, _, j = call(own.port, '/v1/messages', messages_body(),
                    [('content-type', 'application/json'), ('anthropic-version', '2023-06-01'),
                     ('authorization', 'Bearer ' + token), ('anthropic-beta', CLIENT_BETA),
                     ('anthropic-beta', OAUTH_BETA)])
    assert st == 200, j
    assert own.counts == {'exchange': 1, 'exchange-ok': 1}
    assert own.count == 4 and own.violations == []
    # the AnthropicFake's body checks and behaviours still apply
    raw = json.dumps({'model': 'claude-sonnet-4-5-20250929', 'messages': []}).encode()
    refused(post(own.port, '/v1/messages', raw, headers=bearer_headers(token)), 400,
            'invalid_request_error', 'max_tokens')
    refused(post(own.port, '/v1/messages', messages_body(_fake={'status': 529}),
                 headers=bearer_headers(token)), 529, 'overloaded_error')
    assert own.violations == ['max_tokens must be an integer']


def test_cg_780_00_fake_exchange_refusals(own):
    """Each malformed exchange refused in RFC 6749's shape and recorded; deny is no violation."""
    ok_body = grant(own)
    ct = ('content-type', 'application/json')
    beta = ('anthropic-beta', FEDERATION_BETA)
    cases = [
        (None, [ct, beta, ('x-api-key', API_KEY)], TOKEN_PATH, 400, 'invalid_request',
         'x-api-key'),
        (None, [ct, beta, ('authorization', 'Bearer ' + API_KEY)], TOKEN_PATH, 400,
         'invalid_request', 'authorization'),
        (None, [beta], TOKEN_PATH, 400, 'invalid_request', 'content-type'),
        (None, [('content-type', 'application/x-www-form-urlencoded'), beta], TOKEN_PATH, 400,
         'invalid_request', 'content-type'),
        (None, [ct], TOKEN_PATH, 400, 'invalid_request', 'anthropic-beta'),
        (None, [ct, ('anthropic-beta', FEDERATION_BETA + ',' + OAUTH_BETA)], TOKEN_PATH, 400,
         'invalid_request', 'anthropic-beta'),
        (None, [ct, beta, beta], TOKEN_PATH, 400, 'invalid_request', 'anthropic-beta'),
        (None, [ct, ('anthropic-beta', OAUTH_BETA)], TOKEN_PATH, 400, 'invalid_request',
         'anthropic-beta'),
        (None, [ct, beta], TOKEN_PATH + '?grant_type=x', 400, 'invalid_request', 'query'),
        (b'grant_type=x', [ct, beta], TOKEN_PATH, 400, 'invalid_request', 'not JSON'),
        ([ok_body], [ct, beta], TOKEN_PATH, 400, 'invalid_request', 'object'),
        (grant(own, organization_id=None), [ct, beta], TOKEN_PATH, 400, 'invalid_request',
         "missing ['organization_id']"),
        (grant(own, service_account_id=SVAC), [ct, beta], TOKEN_PATH, 400, 'invalid_request',
         "unexpected ['service_account_id']"),
        (grant(own, workspace_id='default'), [ct, beta], TOKEN_PATH, 400, 'invalid_request',
         "unexpected ['workspace_id']"),
        (grant(own, scope='user:inference'), [ct, beta], TOKEN_PATH, 400, 'invalid_request',
         "unexpected ['scope']"),
        (grant(own, organization_id=7), [ct, beta], TOKEN_PATH, 400, 'invalid_request',
         'not strings'),
        (grant(own, grant_type='client_credentials'), [ct, beta], TOKEN_PATH, 400,
         'unsupported_grant_type', None),
        (grant(own, federation_rule_id='fdrl_other'), [ct, beta], TOKEN_PATH, 401,
         'invalid_client', 'fdrl_other'),
        (grant(own, organization_id='00000000-0000-4000-8000-000000000000'), [ct, beta],
         TOKEN_PATH, 401, 'invalid_client', 'organization'),
        (grant(own, assertion='eyJhbGciOiJub25lIn0.e30.'), [ct, beta], TOKEN_PATH, 400,
         'invalid_grant', 'not a valid identity token'),
        (grant(own, assertion=own.assertion + '\n'), [ct, beta], TOKEN_PATH, 400,
         'invalid_grant', 'trailing newline'),
    ]
    for data, pairs, path, status, error, text in cases:
        refused_oauth(exchange(own, data, pairs, path), status, error, text)
    ex = own.exchanges
    assert len(ex) == len(cases)
    assert all(len(e['violations']) == 1 for e in ex), [e['violations'] for e in ex]
    assert all(own.assertion not in v for e in ex for v in e['violations'])
    assert own.counts == {'exchange': len(cases), 'exchange-refused': len(cases)}
    assert own.tokens == []
    # deny: a federation rule that does not match the token, not a violation
    own.reset()
    own.deny = True
    refused_oauth(exchange(own), 400, 'invalid_grant', DENIED)
    assert own.violations == [] and own.tokens == []
    assert own.counts == {'exchange': 1, 'exchange-refused': 1}
    # a malformed request is still a violation when denying
    refused_oauth(exchange(own, pairs=[ct]), 400, 'invalid_request', 'anthropic-beta')
    assert len(own.violations) == 1
    own.reset()
    assert own.deny is False
    assert exchange(own)[0] == 200


def test_cg_780_00_fake_optional_ids(own):
    """service_account_id and workspace_id are required iff the fake has them, and equal."""
    own.service_account_id, own.workspace_id = SVAC, WRKSPC
    full = grant(own, service_account_id=SVAC, workspace_id=WRKSPC)
    assert exchange(own, full)[0] == 200
    assert own.last is None  # exchanges are not Messages requests
    refused_oauth(exchange(own, grant(own, workspace_id=WRKSPC)), 400, 'invalid_request',
                  "missing ['service_account_id']")
    refused_oauth(exchange(own, dict(full, service_account_id='svac_other')), 400,
                  'invalid_grant', 'svac_other')
    refused_oauth(exchange(own, dict(full, workspace_id='default')), 400, 'invalid_grant',
                  'workspace_id default')
    own.service_account_id, own.workspace_id = None, 'default'
    assert exchange(own, grant(own, workspace_id='default'))[0] == 200
    assert [e['status'] for e in own.exchanges] == [200, 400, 400, 400, 200]
    assert len(own.violations) == 3


def test_cg_780_00_fake_messages_refusals(own):
    """No bearer, an unknown or expired one, an x-api-key, no OAuth beta: refused and recorded."""
    token = minted(own)
    raw = messages_body()
    refused(post(own.port, '/v1/messages', raw, headers={'anthropic-beta': OAUTH_BETA}),
            401, 'authentication_error', 'one Bearer access token required')
    refused(post(own.port, '/v1/messages', raw, headers={'x-api-key': API_KEY,
                                                          'anthropic-beta': OAUTH_BETA}),
            400, 'invalid_request_error', 'x-api-key')
    refused(post(own.port, '/v1/messages', raw,
                 headers=bearer_headers(token, **{'x-api-key': API_KEY})),
            400, 'invalid_request_error', 'x-api-key')
    refused(post(own.port, '/v1/messages', raw,
                 headers=bearer_headers(TOKEN_PREFIX + 'not-minted')),
            401, 'authentication_error', UNKNOWN)
    refused(post(own.port, '/v1/messages', raw, headers={'authorization': token,
                                                          'anthropic-beta': OAUTH_BETA}),
            401, 'authentication_error', 'not a Bearer')
    refused(post(own.port, '/v1/messages', raw, headers=bearer_headers(token, betas=None)),
            400, 'invalid_request_error', OAUTH_BETA)
    refused(post(own.port, '/v1/messages', raw,
                 headers=bearer_headers(token, betas=CLIENT_BETA)),
            400, 'invalid_request_error', OAUTH_BETA)
    st, _, j = call(own.port, '/v1/messages', raw,
                    [('content-type', 'application/json'), ('anthropic-version', '2023-06-01'),
                     ('authorization', 'Bearer ' + token), ('authorization', 'Bearer ' + token),
                     ('anthropic-beta', OAUTH_BETA)])
    assert st == 401 and j['error']['type'] == 'authentication_error', j
    assert len(own.violations) == 8 and own.count == 8
    assert post(own.port, '/v1/messages', raw, headers=bearer_headers(token)).status == 200
    # revoked behind the gateway's back
    own.expire_tokens()
    assert not own.live(token)
    refused(post(own.port, '/v1/messages', raw, headers=bearer_headers(token)), 401,
            'authentication_error', EXPIRED)
    assert own.violations[-1] == EXPIRED and own.last['bearer'] == token
    assert post(own.port, '/v1/messages', raw, headers=bearer_headers(minted(own))).status == 200
    # a short-lived token: expires_in as set, back to 3600 after reset
    own.ttl = 100
    assert exchange(own)[2]['expires_in'] == 100
    own.ttl = 1
    short = minted(own)
    time.sleep(1.1)
    refused(post(own.port, '/v1/messages', raw, headers=bearer_headers(short)), 401,
            'authentication_error', EXPIRED)
    own.reset()
    assert exchange(own)[2]['expires_in'] == 3600
    assert own.violations == [] and own.count == 0


def test_cg_780_00_fake_token_file_and_rotation(own, tmp_path):
    """The token file holds the assertion and a newline; a rotation accepts only the new one."""
    path = own.identity_token_file(str(tmp_path / 'token'))
    first = own.assertion
    with open(path) as f:
        assert f.read() == first + '\n'
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o644
    assert len(first.split('.')) == 3
    c = claims(first)
    assert c['sub'] == 'system:serviceaccount:claude:gateway' and c['iss'].startswith('https://')
    assert c['exp'] > time.time()
    assert exchange(own, grant(own, assertion=first))[0] == 200
    second = own.rotate_assertion(path)
    assert second != first and own.assertion == second
    with open(path) as f:
        assert f.read() == second + '\n'
    assert not os.path.exists(path + '.tmp')
    refused_oauth(exchange(own, grant(own, assertion=first)), 400, 'invalid_grant',
                  'no longer valid')
    assert exchange(own, grant(own, assertion=second))[0] == 200
    assert own.assertions == [first, second]
    third = own.rotate_assertion()  # the file is left as it is
    with open(path) as f:
        assert f.read() == second + '\n'
    assert own.assertion == third
    own.identity_token_file(path, newline=False)
    with open(path) as f:
        assert f.read() == third
    assert [e['status'] for e in own.exchanges] == [200, 400, 200]


# ---- through the gateway ------------------------------------------------------------------

@pytest.fixture(scope='module')
def wif(gen_dir):
    fake = AnthropicWifFake(rule_id=RULE, organization_id=ORG).start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _clean(env, wif):
    wif.reset()
    wif.service_account_id = wif.workspace_id = None
    yield
    for k in ('CLAUDE_TEST_WIF_KEY', 'CLAUDE_TEST_WIF_OAUTH'):
        env.extra_env.pop(k, None)
    env.error_log.ignore_recent(tags=EXPECTED_TAGS + START_TAGS, matches=START_MATCHES)
    assert not wif.violations, wif.violations


def token_file(gen_dir):
    return f'{gen_dir}/anthropic-identity-token'


def wif_auth(gen_dir, **extra):
    """The auth object of the upstream; extra adds keys, a None value drops one."""
    a = {'federation_rule_id': RULE, 'organization_id': f'"{ORG}"',
         'identity_token_file': token_file(gen_dir)}
    a.update(extra)
    return '{' + ', '.join(f'{k}: {v}' for k, v in a.items() if v is not None) + '}'


def install(env, pg, gen_dir, fake, auth=None, base_url=None):
    """One anthropic upstream with workload identity; the token file holds the
    fake's assertion. 0 when httpd runs."""
    fake.identity_token_file(token_file(gen_dir))
    env.extra_env.update(CLAUDE_TEST_WIF_KEY=API_KEY, CLAUDE_TEST_WIF_OAUTH=OAUTH_TOKEN)
    policy = f'{gen_dir}/anthropic-wif.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: {UPSTREAM}
    provider: anthropic
    base_url: {base_url or fake.url}
    auth: {auth or wif_auth(gen_dir)}
""")
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    return env.restart()


def ask(env, secret, rid, path='/v1/messages', **extra):
    return post(env.port, path, body(), headers=headers(secret, **dict(
        {'x-client-request-id': rid}, **extra)))


def betas(rec):
    """The betas the upstream received, in order (one header line required)."""
    h = hdrs(rec)
    assert len(h.get('anthropic-beta', [])) == 1, h.get('anthropic-beta')
    return [b.strip() for b in h['anthropic-beta'][0].split(',')]


def check_bearer(fake, rec):
    """A request carrying a live minted access token as its only credential."""
    assert not rec['violations'], rec['violations']
    h = hdrs(rec)
    assert 'x-api-key' not in h
    assert len(h['authorization']) == 1
    assert h['authorization'][0].startswith('Bearer ' + TOKEN_PREFIX)
    token = h['authorization'][0][len('Bearer '):]
    assert token in fake.tokens
    return token


def check_exchange(fake, ex, **optional):
    """An exchange exactly as Anthropic's SDKs send it."""
    assert not ex['violations'], ex['violations']
    assert ex['path'] == TOKEN_PATH and ex['query'] == ''
    h = hdrs(ex)
    assert h['content-type'][0].split(';')[0] == 'application/json'
    assert h['anthropic-beta'] == [FEDERATION_BETA]
    assert 'authorization' not in h and 'x-api-key' not in h
    assert ex['json'] == grant(fake, assertion=ex['json']['assertion'], **optional)


def ok(env, secret, fake, rid, **extra):
    r = ask(env, secret, rid, **extra)
    assert r.status == 200, r.body
    check_bearer(fake, fake.last)
    return fake.last


def no_secret_logged(env, fake):
    logs = [env.error_log.path, os.path.join(env.logs_dir, 'audit.json'), env.access_log_path]
    text = ''
    for p in logs:
        if os.path.exists(p):
            with open(p, errors='replace') as f:
                text += f.read()
    for s in fake.assertions + fake.tokens:
        assert s not in text
    # nor a recognisable piece of one (the log truncates long values)
    for s in fake.assertions:
        assert s.split('.')[2][:40] not in text
    for s in fake.tokens:
        assert s[:len(TOKEN_PREFIX) + 16] not in text


def log_mark(env):
    """Where the error log is now, for find_log: the lines of this test only."""
    return len(env.error_log.recent_lines())


def find_log(env, mark, pattern, timeout=5.0):
    """The lines written after mark that match pattern, waiting up to timeout
    for the first one."""
    rx = re.compile(pattern)
    end = time.monotonic() + timeout
    while True:
        hits = [x for x in env.error_log.recent_lines()[mark:] if rx.search(x)]
        if hits or time.monotonic() >= end:
            return hits
        time.sleep(0.1)


def gateway_error(r):
    """No token: 502 in Anthropic's envelope."""
    assert r.status == 502, r.body
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'api_error', r.json


def settled(pg, *rids, timeout=10.0):
    """Every one of these requests metered: their rows are written, none is
    left in a child that the next install stops."""
    ids = ', '.join(f"'{r}'" for r in rids)
    end = time.monotonic() + timeout
    while True:
        n = int(pg.psql(f'SELECT count(*) FROM claude_ledger WHERE request_id IN ({ids})') or 0)
        if n == len(rids) or time.monotonic() >= end:
            break
        time.sleep(0.05)
    assert n == len(rids), (n, rids)


def no_ledger_row(pg, rid):
    time.sleep(1.0)  # a row would be written in log_transaction, just after the answer
    assert pg.wait_value(f"SELECT count(*) FROM claude_ledger WHERE request_id = '{rid}'") \
        == '0'


def test_cg_780_01_exchange_and_use(env, pg, gen_dir, session_secret, wif):
    """Exchanged once per child; bearer and OAuth beta beside the client's on JSON, SSE, count."""
    fake = wif
    assert install(env, pg, gen_dir, fake) == 0
    mark = log_mark(env)
    r = ask(env, session_secret, 'wif-1', path='/v1/messages?beta=true')
    assert r.status == 200, r.body
    assert r.json['type'] == 'message' and r.json['content'][0]['text']
    rec = fake.last
    token = check_bearer(fake, rec)
    assert rec['path'] == '/v1/messages' and rec['query'] == 'beta=true'
    assert betas(rec) == [CLIENT_BETA, OAUTH_BETA]
    ex = fake.exchanges
    assert len(ex) == 1 and ex[0]['token'] == token
    check_exchange(fake, ex[0])
    # the file's content without its trailing newline
    assert ex[0]['json']['assertion'] == fake.assertion
    assert pg.wait_value("SELECT upstream || '|' || input_tokens || '|' || output_tokens "
                         "FROM claude_ledger WHERE request_id = 'wif-1'") == f'{UPSTREAM}|12|7'
    # streaming: Anthropic's SSE, relayed
    r = stream(env.port, '/v1/messages', body(stream=True),
               headers=headers(session_secret, **{'x-client-request-id': 'wif-2'}))
    assert r.status == 200
    assert r.headers['content-type'].startswith('text/event-stream')
    names = [e[1] for e in r.events]
    assert names[0] == 'message_start' and names[-1] == 'message_stop', names
    check_bearer(fake, fake.last)
    assert fake.last['json']['stream'] is True
    assert betas(fake.last) == [CLIENT_BETA, OAUTH_BETA]
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'wif-2'") \
        == UPSTREAM
    # count_tokens with the same bearer
    r = post(env.port, '/v1/messages/count_tokens', body(), headers=headers(session_secret))
    assert r.status == 200, r.body
    assert isinstance(r.json['input_tokens'], int)
    assert fake.last['path'] == '/v1/messages/count_tokens'
    check_bearer(fake, fake.last)
    # the client's OAuth beta is not repeated; its other betas are kept, in order
    rec = ok(env, session_secret, fake, 'wif-3',
             **{'anthropic-beta': f'{CLIENT_BETA},{OAUTH_BETA}'})
    assert betas(rec) == [CLIENT_BETA, OAUTH_BETA]
    rec = ok(env, session_secret, fake, 'wif-4',
             **{'anthropic-beta': f'{OAUTH_BETA}, {CLIENT_BETA}'})
    assert betas(rec) == [OAUTH_BETA, CLIENT_BETA]
    rec = ok(env, session_secret, fake, 'wif-5',
             **{'anthropic-beta': f'{CLIENT_BETA},context-1m-2025-08-07'})
    assert betas(rec) == [CLIENT_BETA, 'context-1m-2025-08-07', OAUTH_BETA]
    # a client sending no beta at all
    h = headers(session_secret, **{'x-client-request-id': 'wif-6'})
    del h['anthropic-beta']
    r = post(env.port, '/v1/messages', body(), headers=h)
    assert r.status == 200, r.body
    check_bearer(fake, fake.last)
    assert betas(fake.last) == [OAUTH_BETA]
    for i in range(4):
        ok(env, session_secret, fake, f'wif-7{i}')
    # cached: at most once per child (ServerLimit 2), every exchange a good one
    assert 1 <= fake.n('exchange') <= 2, fake.counts
    assert fake.n('exchange-ok') == fake.n('exchange')
    for ex in fake.exchanges:
        check_exchange(fake, ex)
    assert fake.count == 11
    exchanged = find_log(env, mark, rf'\[claude_gateway:info\] .*CG0154: upstream {UPSTREAM}: '
                         r'Anthropic workload identity token exchanged')
    assert 1 <= len(exchanged) <= fake.n('exchange'), exchanged  # once per child
    assert find_log(env, mark, r'CG01(35|53)', timeout=0) == []
    settled(pg, *[f'wif-{i}' for i in range(1, 7)], *[f'wif-7{i}' for i in range(4)])
    no_secret_logged(env, fake)


def test_cg_780_02_optional_ids(env, pg, gen_dir, session_secret, wif):
    """service_account_id and workspace_id are sent when configured, each alone too."""
    fake = wif
    fake.service_account_id, fake.workspace_id = SVAC, WRKSPC
    assert install(env, pg, gen_dir, fake, wif_auth(gen_dir, service_account_id=SVAC,
                                                    workspace_id=WRKSPC)) == 0
    ok(env, session_secret, fake, 'wif-ids-1')
    assert fake.exchanges, fake.counts
    for ex in fake.exchanges:
        check_exchange(fake, ex, service_account_id=SVAC, workspace_id=WRKSPC)
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'wif-ids-1'") \
        == UPSTREAM
    # the workspace "default" alone, no service account
    fake.reset()
    fake.service_account_id, fake.workspace_id = None, 'default'
    assert install(env, pg, gen_dir, fake, wif_auth(gen_dir, workspace_id='default')) == 0
    ok(env, session_secret, fake, 'wif-ids-2')
    for ex in fake.exchanges:
        check_exchange(fake, ex, workspace_id='default')
        assert 'service_account_id' not in ex['json']
    # the service account alone
    fake.reset()
    fake.service_account_id, fake.workspace_id = SVAC, None
    assert install(env, pg, gen_dir, fake, wif_auth(gen_dir, service_account_id=SVAC)) == 0
    ok(env, session_secret, fake, 'wif-ids-3')
    for ex in fake.exchanges:
        check_exchange(fake, ex, service_account_id=SVAC)
        assert 'workspace_id' not in ex['json']
    settled(pg, 'wif-ids-1', 'wif-ids-2', 'wif-ids-3')
    no_secret_logged(env, fake)


def test_cg_780_03_rotation_and_401(env, pg, gen_dir, session_secret, wif):
    """Token file rotated, access tokens revoked: at most one 401 per child, then the new one."""
    fake = wif
    assert install(env, pg, gen_dir, fake) == 0
    first = check_bearer(fake, ok(env, session_secret, fake, 'wif-rot-1'))
    old = fake.assertion
    before = len(fake.exchanges)
    new = fake.rotate_assertion(token_file(gen_dir))  # the old one is refused from now on
    fake.expire_tokens()
    replies = [ask(env, session_secret, f'wif-rot-2{i}') for i in range(4)]
    statuses = [r.status for r in replies]
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 401}, statuses
    assert statuses.count(401) <= 2, statuses  # one per child at most
    for r in replies:
        if r.status == 401:
            assert r.json['type'] == 'error', r.json
            assert r.json['error']['type'] == 'authentication_error', r.json
            assert old not in r.body.decode() and new not in r.body.decode()
    later = fake.exchanges[before:]
    assert 1 <= len(later) <= 2, [e['status'] for e in later]
    for ex in later:
        check_exchange(fake, ex)
        assert ex['json']['assertion'] == new and ex['status'] == 200
    token = check_bearer(fake, fake.last)
    assert token != first and fake.live(token)
    assert token in [e['token'] for e in later]
    # the only violations: the revoked tokens presented once per child
    assert set(fake.violations) <= {EXPIRED}, fake.violations
    assert len(fake.violations) <= 2, fake.violations
    ok(env, session_secret, fake, 'wif-rot-3')
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'wif-rot-3'") \
        == UPSTREAM
    settled(pg, 'wif-rot-1', 'wif-rot-3',
            *[f'wif-rot-2{i}' for i, st in enumerate(statuses) if st == 200])
    no_secret_logged(env, fake)
    fake.reset()  # the 401s were the point


def test_cg_780_04_short_lived(env, pg, gen_dir, session_secret, wif):
    """An access token valid less than two minutes is exchanged again at every request."""
    fake = wif
    fake.ttl = 100
    assert install(env, pg, gen_dir, fake) == 0
    recs = [ok(env, session_secret, fake, f'wif-short-{i}') for i in range(3)]
    assert fake.n('exchange') == 3 and fake.n('exchange-ok') == 3, fake.counts
    ex = fake.exchanges
    for e in ex:
        check_exchange(fake, e)
    # each request with the token its own exchange minted
    assert [r['bearer'] for r in recs] == [e['token'] for e in ex]
    assert len(set(e['token'] for e in ex)) == 3
    settled(pg, *[f'wif-short-{i}' for i in range(3)])
    no_secret_logged(env, fake)


def test_cg_780_05_refused(env, pg, gen_dir, session_secret, wif):
    """A refused exchange: 502, CG0153 with invalid_grant, no Messages request, no ledger row."""
    fake = wif
    fake.deny = True
    assert install(env, pg, gen_dir, fake) == 0
    mark = log_mark(env)
    gateway_error(ask(env, session_secret, 'wif-deny-1'))
    assert find_log(env, mark, rf'\[claude_gateway:error\] .*CG0153: upstream {UPSTREAM}: '
                    r'no Anthropic workload identity token: .*invalid_grant')
    assert find_log(env, mark, rf'CG0135: upstream {UPSTREAM}: ')
    assert fake.count == 0
    assert fake.n('exchange-refused') >= 1 and fake.n('exchange-ok') == 0, fake.counts
    for ex in fake.exchanges:
        check_exchange(fake, ex)
    assert find_log(env, mark, r'CG0154', timeout=0) == []
    no_ledger_row(pg, 'wif-deny-1')
    no_secret_logged(env, fake)
    # the file holds an identity token the endpoint no longer takes
    fake.reset()
    assert install(env, pg, gen_dir, fake) == 0
    stale = fake.assertion
    fake.rotate_assertion()  # the file keeps the old one
    mark = log_mark(env)
    gateway_error(ask(env, session_secret, 'wif-deny-2'))
    assert find_log(env, mark, rf'CG0153: upstream {UPSTREAM}: no Anthropic workload identity '
                    r'token: .*invalid_grant')
    assert fake.count == 0
    assert fake.n('exchange-refused') >= 1 and fake.n('exchange-ok') == 0, fake.counts
    assert [e['json']['assertion'] for e in fake.exchanges] == \
        [stale] * len(fake.exchanges)
    assert set(fake.violations) == \
        {'invalid_grant: assertion is an identity token no longer valid'}, fake.violations
    no_ledger_row(pg, 'wif-deny-2')
    no_secret_logged(env, fake)
    fake.reset()  # the refusals were the point


@pytest.mark.parametrize('auth,message', [
    pytest.param('{federation_rule_id: %s, identity_token_file: %s}' % (RULE, '{file}'),
                 'upstreams[0].auth.organization_id: Required', id='no organization_id'),
    pytest.param('{organization_id: "%s", identity_token_file: %s}' % (ORG, '{file}'),
                 'upstreams[0].auth.federation_rule_id: Required', id='no federation_rule_id'),
    pytest.param('{federation_rule_id: %s, organization_id: "%s"}' % (RULE, ORG),
                 'upstreams[0].auth.identity_token_file: Required', id='no identity_token_file'),
    pytest.param('{api_key: "${CLAUDE_TEST_WIF_KEY}", federation_rule_id: %s, '
                 'organization_id: "%s", identity_token_file: %s}' % (RULE, ORG, '{file}'),
                 'upstreams[0].auth: give api_key, oauth_token or federation_rule_id, only one',
                 id='with api_key'),
    pytest.param('{oauth_token: "${CLAUDE_TEST_WIF_OAUTH}", federation_rule_id: %s, '
                 'organization_id: "%s", identity_token_file: %s}' % (RULE, ORG, '{file}'),
                 'upstreams[0].auth: give api_key, oauth_token or federation_rule_id, only one',
                 id='with oauth_token'),
])
def test_cg_780_06_policy_refusals(env, pg, gen_dir, wif, auth, message):
    """An incomplete federation, or one beside a key, keeps the gateway from starting."""
    auth = auth.replace('{file}', token_file(gen_dir))
    assert install(env, pg, gen_dir, wif, auth) != 0, message
    assert message in env.last_output + open(env.error_log.path).read(), message
    rc, out = env.config_test()
    assert rc != 0 and message in out, out
    assert wif.n('exchange') == 0


def test_cg_780_06_non_https_refused(env, pg, gen_dir, session_secret, wif):
    """Plain http off loopback: the identity token is not sent (CG0153 non-https), 502."""
    fake = wif
    assert install(env, pg, gen_dir, fake, base_url='http://anthropic-wif.example.invalid') == 0
    mark = log_mark(env)
    gateway_error(ask(env, session_secret, 'wif-http-1'))
    assert find_log(env, mark, rf'CG0153: upstream {UPSTREAM}: no Anthropic workload identity '
                    r'token: .*non-https')
    assert fake.n('exchange') == 0 and fake.count == 0
    no_ledger_row(pg, 'wif-http-1')
    no_secret_logged(env, fake)


def test_cg_780_07_loopback_http_allowed(env, pg, gen_dir, session_secret, wif):
    """Plain http to localhost is loopback too: exchanged and used."""
    fake = wif
    assert install(env, pg, gen_dir, fake, base_url=f'http://localhost:{fake.port}') == 0
    ok(env, session_secret, fake, 'wif-lo-1')
    assert fake.n('exchange-ok') >= 1
    for ex in fake.exchanges:
        check_exchange(fake, ex)
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'wif-lo-1'") \
        == UPSTREAM
