"""Claude Platform on AWS (provider anthropicAws) through the router: the
Messages API unchanged, sent to the workspace of the upstream
(anthropic-workspace-id) and signed with AWS Signature Version 4 for the
service aws-external-anthropic, with static keys, a session token or the AWS
default credential chain (auth {}); an api_key instead wins over AWS keys.
The fake (fakes/anthropic_aws.py) verifies every signature on its own; the
tests numbered 00 check that fake and need no httpd (-k fake). Every install
sets all the chain's variables, so nothing reaches a real metadata address
or ~/.aws."""
import hashlib
import http.client
import json
import time
from datetime import timedelta

import pytest

from fakes.anthropic_aws import BAD_TOKEN, SERVICE, AnthropicAwsFake, sign_request
from fakes.awscreds import AwsCredsFake
from fakes.bedrock import SIG_MISMATCH
from pyclaude.client import post, stream
from pyclaude.conf import GatewayConf
from test_730_providers import body, headers
from test_740_aws_chain import CHAIN_VARS, no_secret_logged

REGION = 'us-west-2'
WORKSPACE = 'wrkspc_01ModClaudeGatewayTest'
AKID = 'AKIAMODCLAUDECPA0001'
SECRET = 'cpa/secret+access/key0123456789abcdef'
TOKEN = 'cpa-session-token/with+slash=='
WRONG = 'cpa/not+the/secret0123456789abcdefgh'
API_KEY = 'sk-ant-api03-cpa-' + 'c' * 32
SIGNED = ['anthropic-version', 'anthropic-workspace-id', 'content-type', 'host',
          'x-amz-content-sha256', 'x-amz-date']
EXPECTED_TAGS = ['CG0123', 'CG0134', 'CG0135', 'CG0142', 'CG0144']

STATIC = '{aws_access_key_id: %s, aws_secret_access_key: "${CLAUDE_TEST_CPA_SECRET}"}' % AKID


def hdrs(rec):
    """The headers the fake received: {lower name: [values]}."""
    out = {}
    for k, v in rec['headers']:
        out.setdefault(k, []).append(v)
    return out


def messages_body(**extra):
    b = {'model': 'claude-sonnet-4-5-20250929', 'max_tokens': 8,
         'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def raw_post(port, path, raw, pairs):
    """POST with the headers exactly as listed, repeats included."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=10)
    conn.putrequest('POST', path)
    for k, v in pairs:
        conn.putheader(k, v)
    conn.putheader('content-length', str(len(raw)))
    conn.endheaders(raw)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return r.status, json.loads(data)


def refused(r, status, kind, text=None):
    assert r.status == status, (r.status, r.body)
    assert r.json['type'] == 'error' and r.json['error']['type'] == kind, r.json
    if text is not None:
        assert text in r.json['error']['message'], r.json


# ---- 00: the fake itself ------------------------------------------------------------------

@pytest.fixture
def own():
    fake = AnthropicAwsFake(access_key_id=AKID, secret_access_key=SECRET, region=REGION,
                            workspace_id=WORKSPACE).start()
    yield fake
    fake.stop()


def test_cg_770_00_fake_sigv4_accepted(own):
    """A request signed as the gateway signs it passes, query included, and is recorded."""
    raw = messages_body()
    h = sign_request(own.url + '/v1/messages', raw, AKID, SECRET, REGION, WORKSPACE)
    r = post(own.port, '/v1/messages', raw, headers=h)
    assert r.status == 200, r.body
    assert r.json['type'] == 'message'
    rec = own.last
    assert rec['violations'] == []
    assert rec['auth_kind'] == 'sigv4' and rec['signed_headers'] == SIGNED
    assert dict(rec['headers'])['x-amz-content-sha256'] == hashlib.sha256(raw).hexdigest()
    h = sign_request(own.url + '/v1/messages?beta=true', raw, AKID, SECRET, REGION, WORKSPACE)
    assert post(own.port, '/v1/messages?beta=true', raw, headers=h).status == 200
    assert own.last['query'] == 'beta=true' and own.last['violations'] == []
    # signed without the query, sent with it
    h = sign_request(own.url + '/v1/messages', raw, AKID, SECRET, REGION, WORKSPACE)
    refused(post(own.port, '/v1/messages?beta=true', raw, headers=h), 403, 'permission_error',
            SIG_MISMATCH)


def test_cg_770_00_fake_sigv4_refusals(own):
    """Wrong region, service, workspace, key, secret, date, body hash or signed set: refused."""
    raw = messages_body()
    url = own.url + '/v1/messages'
    stale = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() - 3600))

    def signed(**kw):
        args = dict(access_key=AKID, secret=SECRET, region=REGION, workspace_id=WORKSPACE)
        args.update(kw)
        return sign_request(url, raw, **args)

    def send(h, data=raw):
        return post(own.port, '/v1/messages', data, headers=h)

    cases = [
        (signed(region='us-east-1'), raw, 403, 'permission_error', 'valid region'),
        (signed(service='bedrock'), raw, 403, 'permission_error', f"service: '{SERVICE}'"),
        (signed(workspace_id='wrkspc_other'), raw, 403, 'permission_error', 'wrkspc_other'),
        (signed(secret=WRONG), raw, 403, 'permission_error', SIG_MISMATCH),
        (signed(access_key='AKIAOTHER'), raw, 403, 'permission_error', BAD_TOKEN),
        (signed(amz_date=stale), raw, 403, 'permission_error', 'Signature expired'),
        # the body changed on the way: its hash is not the declared one
        (signed(), messages_body(max_tokens=9), 400, 'invalid_request_error',
         'x-amz-content-sha256'),
        # a declared hash that is not the body's, signed consistently
        (signed(content_sha256=hashlib.sha256(b'{}').hexdigest()), raw, 400,
         'invalid_request_error', 'x-amz-content-sha256'),
        (signed(extra={'x-amz-content-sha256': None}), raw, 403, 'permission_error',
         'must list x-amz-content-sha256'),
        (dict(signed(workspace_id=None), **{'anthropic-workspace-id': WORKSPACE}), raw, 403,
         'permission_error', 'must list anthropic-workspace-id'),
        (dict(signed(), **{'anthropic-version': '2024-01-01'}), raw, 403, 'permission_error',
         SIG_MISMATCH),
        (signed(session_token='unexpected-token'), raw, 403, 'permission_error', BAD_TOKEN),
        (dict(signed(), **{'x-api-key': API_KEY}), raw, 400, 'invalid_request_error',
         'x-api-key and an Authorization'),
        ({'anthropic-workspace-id': WORKSPACE}, raw, 401, 'authentication_error',
         'no credential'),
        ({'anthropic-workspace-id': WORKSPACE, 'authorization': 'Bearer ' + API_KEY}, raw, 401,
         'authentication_error', 'not an AWS Signature'),
    ]
    for h, data, status, kind, text in cases:
        refused(send(h, data), status, kind, text)
    recs = own.requests
    assert len(recs) == len(cases)
    assert all(len(rec['violations']) == 1 for rec in recs), [r['violations'] for r in recs]
    assert recs[0]['auth_kind'] == 'sigv4' and recs[0]['signed_headers'] == SIGNED
    # the gateway's own bearer beside a signature: two Authorization headers
    h = signed()
    status, j = raw_post(own.port, '/v1/messages', raw,
                         list(h.items()) + [('authorization', 'Bearer client-session')])
    assert status == 400 and 'more than one Authorization' in j['error']['message']
    # any x-amz-date is fine with max_skew None (fixed test vectors)
    own.max_skew = None
    assert send(signed(amz_date=stale)).status == 200


def test_cg_770_00_fake_session_token_and_rotation(own):
    """The session token must be sent and signed; the expected credentials can be rotated."""
    raw = messages_body()
    url = own.url + '/v1/messages'
    own.session_token = TOKEN
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE, session_token=TOKEN)
    r = post(own.port, '/v1/messages', raw, headers=h)
    assert r.status == 200, r.body
    assert own.last['signed_headers'] == sorted(SIGNED + ['x-amz-security-token'])
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE)
    refused(post(own.port, '/v1/messages', raw, headers=h), 403, 'permission_error', BAD_TOKEN)
    h['x-amz-security-token'] = TOKEN  # sent but not signed
    refused(post(own.port, '/v1/messages', raw, headers=h), 403, 'permission_error', BAD_TOKEN)
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE, session_token=TOKEN + 'x')
    refused(post(own.port, '/v1/messages', raw, headers=h), 403, 'permission_error', BAD_TOKEN)
    own.access_key_id, own.secret_access_key, own.session_token = 'ASIANEW', 'new/secret', 'new-t'
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE, session_token=TOKEN)
    refused(post(own.port, '/v1/messages', raw, headers=h), 403, 'permission_error', BAD_TOKEN)
    h = sign_request(url, raw, 'ASIANEW', 'new/secret', REGION, WORKSPACE, session_token='new-t')
    assert post(own.port, '/v1/messages', raw, headers=h).status == 200


def test_cg_770_00_fake_api_key_and_workspace(own):
    """x-api-key alone, never beside AWS signing headers; one workspace header, the right one."""
    raw = messages_body()
    ws = {'anthropic-workspace-id': WORKSPACE}
    refused(post(own.port, '/v1/messages', raw, headers=dict(ws, **{'x-api-key': API_KEY})),
            401, 'authentication_error', 'invalid x-api-key')  # the fake takes no key yet
    own.api_key = API_KEY
    r = post(own.port, '/v1/messages', raw, headers=dict(ws, **{'x-api-key': API_KEY}))
    assert r.status == 200, r.body
    assert own.last['auth_kind'] == 'api_key' and own.last['signed_headers'] is None
    assert own.last['violations'] == []
    refused(post(own.port, '/v1/messages', raw, headers=dict(ws, **{'x-api-key': 'sk-other'})),
            401, 'authentication_error')
    refused(post(own.port, '/v1/messages', raw,
                 headers=dict(ws, **{'x-api-key': API_KEY, 'x-amz-date': '20260101T000000Z'})),
            400, 'invalid_request_error', 'x-amz-date')
    refused(post(own.port, '/v1/messages', raw, headers={'x-api-key': API_KEY}),
            400, 'invalid_request_error', 'anthropic-workspace-id header is required')
    refused(post(own.port, '/v1/messages', raw,
                 headers={'x-api-key': API_KEY, 'anthropic-workspace-id': 'wrkspc_other'}),
            403, 'permission_error', 'wrkspc_other')
    status, j = raw_post(own.port, '/v1/messages', raw,
                         [('content-type', 'application/json'),
                          ('anthropic-version', '2023-06-01'), ('x-api-key', API_KEY),
                          ('anthropic-workspace-id', WORKSPACE),
                          ('anthropic-workspace-id', 'wrkspc_client')])
    assert status == 400 and 'more than one anthropic-workspace-id' in j['error']['message']
    # a signature is still accepted when the fake also takes a key
    h = sign_request(own.url + '/v1/messages', raw, AKID, SECRET, REGION, WORKSPACE)
    assert post(own.port, '/v1/messages', raw, headers=h).status == 200


def test_cg_770_00_fake_messages_stream_and_count(own):
    """Behind the signature the Anthropic fake answers: SSE, count_tokens, its body checks."""
    url = own.url + '/v1/messages'
    raw = messages_body(stream=True)
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE)
    r = stream(own.port, '/v1/messages', raw, headers=h)
    assert r.status == 200
    names = [e[1] for e in r.events]
    assert names[0] == 'message_start' and names[-1] == 'message_stop', names
    raw = messages_body()
    h = sign_request(url + '/count_tokens', raw, AKID, SECRET, REGION, WORKSPACE)
    r = post(own.port, '/v1/messages/count_tokens', raw, headers=h)
    assert r.status == 200 and isinstance(r.json['input_tokens'], int), r.body
    raw = json.dumps({'model': 'claude-sonnet-4-5-20250929', 'messages': []}).encode()
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE)
    refused(post(own.port, '/v1/messages', raw, headers=h), 400, 'invalid_request_error',
            'max_tokens')
    raw = messages_body(_fake={'status': 529})
    h = sign_request(url, raw, AKID, SECRET, REGION, WORKSPACE)
    refused(post(own.port, '/v1/messages', raw, headers=h), 529, 'overloaded_error')
    assert [v for rec in own.requests for v in rec['violations']] == \
        ['max_tokens must be an integer']


# ---- through the gateway ------------------------------------------------------------------

@pytest.fixture(scope='module')
def cpa(gen_dir):
    creds = AwsCredsFake().start()
    fake = AnthropicAwsFake(access_key_id=AKID, secret_access_key=SECRET, region=REGION,
                            workspace_id=WORKSPACE).start()
    yield creds, fake
    creds.stop()
    fake.stop()


def expect(fake, c):
    """The fake accepts only these AWS credentials from now on."""
    fake.access_key_id, fake.secret_access_key, fake.session_token = \
        c['id'], c['secret'], c['token']


def violations(fake):
    return [v for rec in fake.requests for v in rec['violations']]


@pytest.fixture(autouse=True)
def _clean(env, cpa):
    creds, fake = cpa
    creds.reset()
    fake.reset()
    expect(fake, {'id': AKID, 'secret': SECRET, 'token': None})
    fake.api_key = None
    yield
    for k in CHAIN_VARS:
        env.extra_env.pop(k, None)
    env.error_log.ignore_recent(tags=EXPECTED_TAGS)
    assert not creds.violations, creds.violations
    assert not violations(fake), violations(fake)


def install(env, pg, gen_dir, fake, auth, **chain):
    for k in CHAIN_VARS:
        env.extra_env[k] = ''  # empty is unset for the chain: nothing inherited
    env.extra_env.update(AWS_SHARED_CREDENTIALS_FILE=f'{gen_dir}/no-such-credentials',
                         AWS_CONFIG_FILE=f'{gen_dir}/no-such-config',
                         AWS_EC2_METADATA_DISABLED='true')
    env.extra_env.update(chain)
    env.extra_env.update(CLAUDE_TEST_CPA_SECRET=SECRET, CLAUDE_TEST_CPA_TOKEN=TOKEN,
                         CLAUDE_TEST_CPA_WRONG=WRONG, CLAUDE_TEST_CPA_KEY=API_KEY)
    policy = f'{gen_dir}/anthropic-aws.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: claude-aws
    provider: anthropicAws
    region: {REGION}
    workspace_id: {WORKSPACE}
    base_url: {fake.url}
    auth: {auth}
""")
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    assert env.restart() == 0


def ask(env, secret, rid, path='/v1/messages', **extra):
    return post(env.port, path, body(), headers=headers(secret, **dict(
        {'x-client-request-id': rid}, **extra)))


def check_signed(rec, akid=AKID, token=None):
    """A request signed for aws-external-anthropic in REGION, nothing of the client's."""
    assert not rec['violations'], rec['violations']
    assert rec['auth_kind'] == 'sigv4'
    h = hdrs(rec)
    assert 'x-api-key' not in h
    assert len(h['authorization']) == 1
    assert h['authorization'][0].startswith(
        f'AWS4-HMAC-SHA256 Credential={akid}/'), h['authorization']
    assert f'/{REGION}/{SERVICE}/aws4_request,' in h['authorization'][0]
    assert h['anthropic-workspace-id'] == [WORKSPACE]
    assert h['x-amz-content-sha256'] == [rec['body_sha256']]
    signed = rec['signed_headers']
    assert signed == sorted(signed) and set(SIGNED) <= set(signed), signed
    if token is None:
        assert 'x-amz-security-token' not in h
    else:
        assert h['x-amz-security-token'] == [token]
        assert 'x-amz-security-token' in signed


def ok(env, secret, fake, rid, **extra):
    r = ask(env, secret, rid, **extra)
    assert r.status == 200, r.body
    return fake.last


def test_cg_770_01_static_keys(env, pg, gen_dir, session_secret, cpa):
    """Static keys: JSON, SSE and count_tokens signed for aws-external-anthropic and metered."""
    creds, fake = cpa
    install(env, pg, gen_dir, fake, STATIC)
    # a workspace of the client's choosing never reaches the upstream
    r = post(env.port, '/v1/messages?beta=true', body(),
             headers=headers(session_secret, **{'x-client-request-id': 'cpa-1',
                                                'anthropic-workspace-id': 'wrkspc_client'}))
    assert r.status == 200, r.body
    assert r.json['type'] == 'message' and r.json['content'][0]['text']
    rec = fake.last
    check_signed(rec)
    assert rec['path'] == '/v1/messages' and rec['query'] == 'beta=true'
    assert rec['json']['model'] == 'claude-sonnet-4-5-20250929'  # first-party ids
    assert hdrs(rec)['anthropic-beta'] == ['claude-code-20250219']
    assert pg.wait_value("SELECT upstream || '|' || input_tokens || '|' || output_tokens "
                         "FROM claude_ledger WHERE request_id = 'cpa-1'") == 'claude-aws|12|7'
    # streaming: Anthropic's SSE, relayed
    r = stream(env.port, '/v1/messages', body(stream=True),
               headers=headers(session_secret, **{'x-client-request-id': 'cpa-2'}))
    assert r.status == 200
    assert r.headers['content-type'].startswith('text/event-stream')
    names = [e[1] for e in r.events]
    assert names[0] == 'message_start' and names[-1] == 'message_stop', names
    assert 'content_block_delta' in names
    check_signed(fake.last)
    assert fake.last['json']['stream'] is True
    assert pg.wait_value("SELECT upstream || '|' || input_tokens || '|' || output_tokens "
                         "FROM claude_ledger WHERE request_id = 'cpa-2'") == 'claude-aws|12|7'
    # count_tokens, signed for its own path
    r = post(env.port, '/v1/messages/count_tokens', body(), headers=headers(session_secret))
    assert r.status == 200, r.body
    assert isinstance(r.json['input_tokens'], int)
    assert fake.last['path'] == '/v1/messages/count_tokens'
    check_signed(fake.last)
    assert creds.counts == {}
    no_secret_logged(env, SECRET)


def test_cg_770_02_session_token(env, pg, gen_dir, session_secret, cpa):
    """Static keys with aws_session_token: x-amz-security-token sent and signed."""
    creds, fake = cpa
    expect(fake, {'id': AKID, 'secret': SECRET, 'token': TOKEN})
    install(env, pg, gen_dir, fake,
            '{aws_access_key_id: %s, aws_secret_access_key: "${CLAUDE_TEST_CPA_SECRET}", '
            'aws_session_token: "${CLAUDE_TEST_CPA_TOKEN}"}' % AKID)
    check_signed(ok(env, session_secret, fake, 'cpa-token-1'), token=TOKEN)
    no_secret_logged(env, SECRET, TOKEN)


def test_cg_770_03_chain_environment(env, pg, gen_dir, session_secret, cpa):
    """auth {}: AWS_ACCESS_KEY_ID and friends, before the metadata service is asked."""
    creds, fake = cpa
    c = {'id': 'AKIACPAENVIRONMENT', 'secret': 'cpa-env/secret+key', 'token': 'cpa-env-token'}
    expect(fake, c)
    install(env, pg, gen_dir, fake, '{}', AWS_ACCESS_KEY_ID=c['id'],
            AWS_SECRET_ACCESS_KEY=c['secret'], AWS_SESSION_TOKEN=c['token'],
            AWS_EC2_METADATA_DISABLED='', AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url)
    check_signed(ok(env, session_secret, fake, 'cpa-env-1'), akid=c['id'], token=c['token'])
    assert creds.n('imds-token') == 0 and creds.n('imds-creds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'cpa-env-1'") \
        == 'claude-aws'
    no_secret_logged(env, c['secret'], c['token'])


def test_cg_770_04_api_key_wins(env, pg, gen_dir, session_secret, cpa):
    """auth {api_key}: x-api-key, no signature; also when AWS keys are given beside it."""
    creds, fake = cpa
    fake.api_key = API_KEY
    for i, auth in enumerate(['{api_key: "${CLAUDE_TEST_CPA_KEY}"}',
                              '{api_key: "${CLAUDE_TEST_CPA_KEY}", aws_access_key_id: %s, '
                              'aws_secret_access_key: "${CLAUDE_TEST_CPA_SECRET}"}' % AKID]):
        install(env, pg, gen_dir, fake, auth)
        rec = ok(env, session_secret, fake, f'cpa-key-{i}')
        assert not rec['violations'], rec['violations']
        assert rec['auth_kind'] == 'api_key' and rec['signed_headers'] is None
        h = hdrs(rec)
        assert h['x-api-key'] == [API_KEY]
        assert h['anthropic-workspace-id'] == [WORKSPACE]
        assert 'authorization' not in h
        assert not [k for k in h if k.startswith('x-amz-')], h
        assert pg.wait_value("SELECT upstream FROM claude_ledger "
                             f"WHERE request_id = 'cpa-key-{i}'") == 'claude-aws'
    no_secret_logged(env, API_KEY, SECRET)


def test_cg_770_05_wrong_secret(env, pg, gen_dir, session_secret, cpa):
    """A wrong secret: the upstream's 403 reaches the client in Anthropic's envelope, and
    neither secret is logged."""
    creds, fake = cpa
    install(env, pg, gen_dir, fake,
            '{aws_access_key_id: %s, aws_secret_access_key: "${CLAUDE_TEST_CPA_WRONG}"}' % AKID)
    r = ask(env, session_secret, 'cpa-wrong-1')
    assert r.status == 403, r.body
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'permission_error', r.json
    assert WRONG not in r.body.decode() and SECRET not in r.body.decode()
    assert fake.count == 1
    assert fake.last['auth_kind'] == 'sigv4' and fake.last['violations'] == [SIG_MISMATCH]
    assert creds.counts == {}  # static keys: the chain is not asked after a 403
    no_secret_logged(env, WRONG, SECRET)
    fake.reset()  # the violation was the point


def test_cg_770_06_chain_imds_rotated_and_revoked(env, pg, gen_dir, session_secret, cpa):
    """auth {} on EC2: IMDSv2 credentials, cached while fresh; revoked behind our back, the
    upstream's 403 makes the next request look again."""
    creds, fake = cpa
    expect(fake, creds.rotate('ASIACPAIMDSFIRST', timedelta(hours=6)))
    install(env, pg, gen_dir, fake, '{}', AWS_EC2_METADATA_DISABLED='',
            AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url + '/')
    first = ok(env, session_secret, fake, 'cpa-imds-1')
    check_signed(first, akid='ASIACPAIMDSFIRST', token=creds.creds['token'])
    fetched = creds.n('imds-creds')
    assert fetched >= 1 and creds.n('imds-unauthorized') == 0
    for i in range(4):
        check_signed(ok(env, session_secret, fake, f'cpa-imds-2{i}'), akid='ASIACPAIMDSFIRST',
                     token=creds.creds['token'])
    assert creds.n('imds-creds') <= 2  # at most once per child: cached
    fetched = creds.n('imds-creds')
    old = dict(creds.creds)
    # revoked: the fake takes only new credentials, which IMDS now hands out
    expect(fake, {'id': 'ASIACPAIMDSSECOND', 'secret': 'second/secret', 'token': 'second-t'})
    creds.creds = {'id': 'ASIACPAIMDSSECOND', 'secret': 'second/secret', 'token': 'second-t',
                   'expires': old['expires']}
    replies = [ask(env, session_secret, f'cpa-imds-3{i}') for i in range(6)]
    statuses = [r.status for r in replies]
    assert statuses[-1] == 200, statuses
    assert set(statuses) <= {200, 403}, statuses
    for r in replies:
        if r.status == 403:
            assert r.json['type'] == 'error' and r.json['error']['type'] == 'permission_error'
    assert creds.n('imds-creds') > fetched
    check_signed(fake.last, akid='ASIACPAIMDSSECOND', token='second-t')
    assert set(violations(fake)) <= {BAD_TOKEN}, violations(fake)
    no_secret_logged(env, old['secret'], old['token'], 'second/secret', 'second-t')
    fake.reset()  # the 403s were the point
