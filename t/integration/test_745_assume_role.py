"""Bedrock with assume_role: {role_arn, external_id, session_name}. The
gateway takes its base credentials (static keys, or the default chain with
auth {}), calls STS AssumeRole signed with them, and signs Bedrock requests
with the role's temporary credentials, kept per role session (with
session_name each user has their own) until five minutes before they expire.
Against the STS fake of fakes/awscreds.py, which verifies the AssumeRole
signature and form, and the Bedrock fake, made here to accept exactly the
role credentials STS handed out."""
import hashlib
import threading
import time
import xml.etree.ElementTree as ET
from datetime import timedelta
from urllib.parse import quote

import jwt
import pytest

from fakes import bedrock as bd
from fakes.awscreds import STS_NS, AwsCredsFake
from fakes.bedrock import BedrockFake
from pyclaude.client import post
from pyclaude.conf import GatewayConf
from test_730_providers import body
from test_740_aws_chain import CHAIN_VARS

ROLE_ARN = 'arn:aws:iam::123456789012:role/bedrock-invoke'
EXTERNAL_ID = 'acme:gateway/ext=1'  # characters the form must percent-encode
BASE = {'id': 'AKIAGATEWAYBASE0', 'secret': 'gateway/base+secret/key0123456789', 'token': None}
BASE_SECRET_VAR = 'CLAUDE_TEST_AWS_BASE_SECRET'
FORM = 'application/x-www-form-urlencoded'
INVALID_TOKEN = 'The security token included in the request is invalid.'
NS = '{%s}' % STS_NS


class RoleBedrock(BedrockFake):
    """The Bedrock fake, accepting the credentials of every role session the
    STS fake minted (BedrockFake's own check, with that session's keys), and
    nothing else: not the base keys, not a session in .revoked, not an
    expired one. Each request's record names its session (rec['role_session'])."""

    def __init__(self, sts, **kw):
        self.sts = sts
        self.revoked = set()
        self._sig_lock = threading.Lock()
        super().__init__(**kw)

    def check_signature(self, method, raw_path, headers, body, rec):
        auth = headers.get('authorization') or ''
        key = auth.partition('Credential=')[2].split('/')[0] or None
        s = self.sts.session(key) if key else None
        rec['role_session'] = s
        if s is not None and s['id'] in self.revoked:
            return 403, 'UnrecognizedClientException', INVALID_TOKEN
        if s is not None and s['expires'].timestamp() <= time.time():
            return 403, 'ExpiredTokenException', 'The security token included in the request ' \
                'is expired'
        with self._sig_lock:  # BedrockFake checks the one credential set it holds
            if s is None:
                self.access_key_id, self.secret_access_key, self.session_token = \
                    '(no role session)', 'x', None
            else:
                self.access_key_id, self.secret_access_key, self.session_token = \
                    s['id'], s['secret'], s['token']
            return super().check_signature(method, raw_path, headers, body, rec)


@pytest.fixture(scope='module')
def aws(gen_dir):
    sts = AwsCredsFake().start()
    bed = RoleBedrock(sts, region='us-east-1').start()
    yield sts, bed
    sts.stop()
    bed.stop()


@pytest.fixture(autouse=True)
def _clean(env, aws):
    sts, bed = aws
    sts.reset()
    sts.base = dict(BASE)
    bed.reset()
    bed.revoked.clear()
    yield
    for k in CHAIN_VARS + (BASE_SECRET_VAR,):
        env.extra_env.pop(k, None)
    assert not sts.violations, sts.violations
    env.error_log.ignore_recent(
        tags=['CG0123', 'CG0134', 'CG0135', 'CG0142', 'CG0151', 'CG0152',
              'CG0100', 'CG0101', 'CG0102'],
        matches=['AH00016', 'Configuration Failed', 'assume_role'])


# ---- helpers ---------------------------------------------------------------------------------

def token(secret, sub='user-alice', email='alice@example.com'):
    now = int(time.time())
    claims = {'sub': sub, 'groups': ['eng'], 'aud': 'claude-gateway', 'iat': now,
              'exp': now + 600}
    if email is not None:
        claims['email'] = email
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode(claims, secret, algorithm='HS256', headers={'kid': kid})


def ask(env, secret, rid, sub='user-alice', email='alice@example.com'):
    return post(env.port, '/v1/messages', body(), headers={
        'authorization': 'Bearer ' + token(secret, sub, email),
        'anthropic-beta': 'claude-code-20250219', 'x-client-request-id': rid})


def ok(env, secret, bed, rid, **user):
    r = ask(env, secret, rid, **user)
    assert r.status == 200, r.body
    rec = bed.last
    assert not rec['violations'], rec['violations']
    assert rec['role_session'] is not None
    return rec


def header(rec, name):
    vals = [v for k, v in rec['headers'] if k == name]
    return vals[0] if vals else None


def signed_by_role(rec):
    """The Bedrock request carries the role session's token, signed."""
    s = rec['role_session']
    assert s is not None
    assert header(rec, 'x-amz-security-token') == s['token']
    assert 'x-amz-security-token' in rec['signed_headers']
    return s


def install(env, pg, gen_dir, aws, assume, auth=None, **chain):
    """A policy with one Bedrock upstream taking the role; 0 when httpd runs.
    auth: the upstream's auth (default: the static base keys, the secret by
    env reference); chain: variables of the default chain, every other one
    unset."""
    sts, bed = aws
    for k in CHAIN_VARS:
        env.extra_env[k] = ''  # empty is unset for the chain: nothing inherited
    env.extra_env.update(AWS_SHARED_CREDENTIALS_FILE=f'{gen_dir}/no-such-credentials',
                         AWS_CONFIG_FILE=f'{gen_dir}/no-such-config',
                         AWS_EC2_METADATA_DISABLED='true', AWS_ENDPOINT_URL_STS=sts.url)
    env.extra_env[BASE_SECRET_VAR] = BASE['secret']
    env.extra_env.update(chain)
    if auth is None:
        auth = (f'{{aws_access_key_id: {BASE["id"]}, '
                f'aws_secret_access_key: "${{{BASE_SECRET_VAR}}}"}}')
    policy = f'{gen_dir}/assume-role.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: bedrock
    provider: bedrock
    region: us-east-1
    base_url: {bed.url}
    auth: {auth}
    assume_role: {assume}
""")
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    return env.restart()


def no_secret_logged(env, sts, *more):
    """Neither the base secret nor any role session's secret or token."""
    text = open(env.error_log.path, errors='replace').read()
    for s in [BASE['secret']] + [x for c in sts.sessions for x in (c['secret'], c['token'])] + \
            list(more):
        assert s not in text, s


def sts_post(sts, form, base=None, region='us-east-1', service='sts', ctype=FORM, extra=None,
             signed=True, tamper=None):
    """POST / to the STS fake as an AWS SDK does: the form, signed with base."""
    raw = form if isinstance(form, bytes) else \
        '&'.join(f'{k}={quote(v, safe="-_.~")}' for k, v in form.items()).encode()
    base = base or BASE
    h = {'content-type': ctype}
    if signed:
        h = bd.sign_headers('POST', sts.url + '/', raw, base['id'], base['secret'], region,
                            service=service, session_token=base.get('token'),
                            extra={'content-type': ctype})
    h.update(extra or {})
    return post(sts.port, '/', tamper if tamper is not None else raw, headers=h)


def assume_form(**over):
    f = {'Action': 'AssumeRole', 'Version': '2011-06-15', 'RoleArn': ROLE_ARN,
         'RoleSessionName': 'mod_claude', 'DurationSeconds': '3600'}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def sts_error(r):
    e = ET.fromstring(r.body).find(NS + 'Error')
    return e.find(NS + 'Code').text


# ---- the STS fake itself (no httpd): -k fake ------------------------------------------------

def test_cg_745_00_fake_assume_role_answers(aws):
    """A signed AssumeRole gets STS's XML and fresh role credentials, recorded per session."""
    sts, _ = aws
    sts.base = {'id': 'ASIABASE', 'secret': 'b/secret', 'token': 'base-token=='}
    sts.external_id = EXTERNAL_ID
    r = sts_post(sts, assume_form(RoleSessionName='alice@example.com', ExternalId=EXTERNAL_ID),
                 base=sts.base)
    assert r.status == 200, r.body
    assert r.headers['content-type'] == 'text/xml'
    res = ET.fromstring(r.body).find(NS + 'AssumeRoleResult')
    c = res.find(NS + 'Credentials')
    got = {k: c.find(NS + k).text for k in ('AccessKeyId', 'SecretAccessKey', 'SessionToken',
                                             'Expiration')}
    s = sts.sessions[0]
    assert got == {'AccessKeyId': s['id'], 'SecretAccessKey': s['secret'],
                   'SessionToken': s['token'],
                   'Expiration': s['expires'].strftime('%Y-%m-%dT%H:%M:%SZ')}
    assert s['name'] == 'alice@example.com' and s['external_id'] == EXTERNAL_ID
    assert res.find(NS + 'AssumedRoleUser/' + NS + 'Arn').text == \
        'arn:aws:sts::123456789012:assumed-role/bedrock-invoke/alice@example.com'
    a = sts.assume_requests[0]
    assert a['status'] == 200 and a['access_key'] == 'ASIABASE'
    assert a['signed_headers'] == ['content-type', 'host', 'x-amz-date', 'x-amz-security-token']
    assert a['form']['ExternalId'] == EXTERNAL_ID
    r = sts_post(sts, assume_form(RoleSessionName='bob@example.com', ExternalId=EXTERNAL_ID),
                 base=sts.base)
    assert r.status == 200
    assert [c['name'] for c in sts.sessions] == ['alice@example.com', 'bob@example.com']
    assert sts.sessions[1]['id'] != s['id'] and sts.session(s['id'])['name'] == s['name']
    assert sts.n('assume-role') == 2 and sts.n('sts') == 2
    # the web identity exchange is as it was: unsigned
    r = post(sts.port, '/', f'Action=AssumeRoleWithWebIdentity&Version=2011-06-15&RoleArn='
             f'{quote(sts.role_arn, safe="")}&RoleSessionName=s&WebIdentityToken='
             f'{sts.web_token}'.encode(), headers={'content-type': FORM})
    assert r.status == 200 and sts.creds['id'].encode() in r.body
    assert sts.n('assume-role') == 2 and sts.n('sts') == 3


@pytest.mark.parametrize('case,status,code', [
    ('unsigned', 403, 'MissingAuthenticationToken'),
    ('wrong secret', 403, 'SignatureDoesNotMatch'),
    ('wrong key', 403, 'InvalidClientTokenId'),
    ('tampered body', 403, 'SignatureDoesNotMatch'),
    ('bedrock scope', 403, 'SignatureDoesNotMatch'),
    ('other region', 403, 'SignatureDoesNotMatch'),
    ('token missing', 403, 'InvalidClientTokenId'),
    ('unsigned x-amz header', 403, 'SignatureDoesNotMatch'),
    ('json body', 400, 'InvalidParameterValue'),
    ('extra field', 400, 'InvalidParameterValue'),
    ('repeated field', 400, 'InvalidParameterValue'),
    ('session name with space', 400, 'ValidationError'),
    ('session name too long', 400, 'ValidationError'),
    ('session name too short', 400, 'ValidationError'),
    ('duration too long for the role', 400, 'ValidationError'),
    ('duration too short', 400, 'ValidationError'),
    ('wrong version', 400, 'ValidationError'),
    ('external id missing', 403, 'AccessDenied'),
    ('external id wrong', 403, 'AccessDenied'),
    ('external id not expected', 403, 'AccessDenied'),
    ('other role', 403, 'AccessDenied'),
])
def test_cg_745_00_fake_assume_role_strict(aws, case, status, code):
    """What an SDK would not send is refused as STS refuses it, and is a violation."""
    sts, _ = aws
    with_token = {'id': 'ASIABASE', 'secret': 'b/secret', 'token': 'base-token=='}
    sts.external_id = None if case == 'external id not expected' else EXTERNAL_ID
    form = assume_form(ExternalId=EXTERNAL_ID)
    kw = {}
    if case == 'unsigned':
        kw['signed'] = False
    elif case == 'wrong secret':
        kw['base'] = dict(BASE, secret='not-the-secret')
    elif case == 'wrong key':
        kw['base'] = dict(BASE, id='AKIASOMEONEELSE')
    elif case == 'tampered body':
        kw['tamper'] = '&'.join(f'{k}={quote(v, safe="")}' for k, v in
                                assume_form(ExternalId=EXTERNAL_ID,
                                            RoleSessionName='admin').items()).encode()
    elif case == 'bedrock scope':
        kw['service'] = 'bedrock'
    elif case == 'other region':
        kw['region'] = 'us-west-2'
    elif case == 'token missing':
        sts.base = with_token
        kw['base'] = dict(with_token, token=None)
    elif case == 'unsigned x-amz header':
        kw['extra'] = {'x-amz-security-token': 'added-after-signing'}
    elif case == 'json body':
        kw['ctype'] = 'application/json'
    elif case == 'extra field':
        form['Policy'] = '{}'
    elif case == 'repeated field':
        form = '&'.join(f'{k}={quote(v, safe="")}' for k, v in form.items()).encode() + \
            b'&RoleSessionName=again'
    elif case == 'session name with space':
        form['RoleSessionName'] = 'alice smith'
    elif case == 'session name too long':
        form['RoleSessionName'] = 'a' * 65
    elif case == 'session name too short':
        form['RoleSessionName'] = 'a'
    elif case == 'duration too long for the role':
        form['DurationSeconds'] = '7200'
    elif case == 'duration too short':
        form['DurationSeconds'] = '899'
    elif case == 'wrong version':
        form['Version'] = '2012-01-01'
    elif case == 'external id missing':
        del form['ExternalId']
    elif case == 'external id wrong':
        form['ExternalId'] = 'acme:other'
    elif case == 'other role':
        form['RoleArn'] = 'arn:aws:iam::123456789012:role/admin'
    r = sts_post(sts, form, **kw)
    assert (r.status, sts_error(r)) == (status, code), r.body
    assert len(sts.violations) == 1, sts.violations
    assert sts.sessions == []
    sts.violations.clear()


def test_cg_745_00_fake_deny_is_a_scenario(aws):
    """deny: AccessDenied without violation; every valid session name is accepted."""
    sts, _ = aws
    sts.deny = True
    r = sts_post(sts, assume_form())
    assert (r.status, sts_error(r)) == (403, 'AccessDenied')
    assert ROLE_ARN in r.body.decode() and BASE['secret'] not in r.body.decode()
    sts.deny = False
    for name in ('ab', 'a' * 64, 'x+y=z,w.v@u_t-s', 'mod_claude'):
        assert sts_post(sts, assume_form(RoleSessionName=name)).status == 200, name
    assert sts_post(sts, assume_form(DurationSeconds=None)).status == 200
    assert sts.assume_requests[0]['code'] == 'AccessDenied'
    assert sts.n('assume-role') == 6


# ---- the gateway ------------------------------------------------------------------------------

def test_cg_745_01_static_keys_assume_the_role(env, pg, gen_dir, session_secret, aws):
    """Static keys sign AssumeRole (ExternalId sent); the role's kept credentials sign Bedrock."""
    sts, bed = aws
    sts.external_id = EXTERNAL_ID
    assert install(env, pg, gen_dir, aws,
                   f'{{role_arn: "{ROLE_ARN}", external_id: "{EXTERNAL_ID}"}}') == 0
    rec = ok(env, session_secret, bed, 'ar-static-1')
    assert sts.n('assume-role') == 1 and sts.n('sts') == 1
    a = sts.assume_requests[0]
    assert a['status'] == 200 and a['access_key'] == BASE['id']
    assert a['form'] == {'Action': 'AssumeRole', 'Version': '2011-06-15', 'RoleArn': ROLE_ARN,
                         'RoleSessionName': 'mod_claude', 'DurationSeconds': '3600',
                         'ExternalId': EXTERNAL_ID}
    assert {'content-type', 'host', 'x-amz-date'} <= set(a['signed_headers'])
    assert 'x-amz-security-token' not in a['signed_headers']
    assert 'x-amz-security-token' not in dict(a['headers'])
    s = signed_by_role(rec)
    assert s['id'] == sts.sessions[0]['id'] and s['name'] == 'mod_claude'
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'ar-static-1'") \
        == 'bedrock'
    # kept: at most one more AssumeRole, by the other child
    for i in range(4):
        assert signed_by_role(ok(env, session_secret, bed, f'ar-static-2{i}'))['name'] == \
            'mod_claude'
    assert 1 <= sts.n('assume-role') <= 2
    assert all(a['status'] == 200 for a in sts.assume_requests)
    no_secret_logged(env, sts)


def test_cg_745_02_session_name_per_user(env, pg, gen_dir, session_secret, aws):
    """session_name email/sub: a role session per user, named as STS allows, else mod_claude."""
    sts, bed = aws
    assert install(env, pg, gen_dir, aws,
                   f'{{role_arn: "{ROLE_ARN}", session_name: email}}') == 0
    users = [('user-alice', 'alice@example.com'), ('user-bob', 'bob@example.com')]
    for rnd in range(2):
        for sub, email in users if rnd == 0 else reversed(users):
            rec = ok(env, session_secret, bed, f'ar-email-{sub}-{rnd}', sub=sub, email=email)
            s = signed_by_role(rec)
            assert s['name'] == email, (sub, s)
    assert sorted(set(sts.session_names())) == ['alice@example.com', 'bob@example.com']
    assert sts.n('assume-role') <= 4  # once per user and child
    assert pg.wait_value("SELECT sub FROM claude_ledger WHERE request_id = 'ar-email-user-bob-1'") \
        == 'user-bob'
    rec = ok(env, session_secret, bed, 'ar-email-odd', sub='user-carol',
             email="carol o'neil+ai@example.com")
    assert signed_by_role(rec)['name'] == 'carol-o-neil+ai@example.com'
    rec = ok(env, session_secret, bed, 'ar-email-none', sub='user-dave', email=None)
    assert signed_by_role(rec)['name'] == 'mod_claude'

    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}", session_name: sub}}') == 0
    for sub, want in [('github|user:42', 'github-user-42'), ('user-alice', 'user-alice'),
                      ('u' + 'x' * 80, 'u' + 'x' * 63)]:
        rec = ok(env, session_secret, bed, f'ar-sub-{want[:8]}', sub=sub, email='e@example.com')
        assert signed_by_role(rec)['name'] == want, sub
    assert all(a['status'] == 200 for a in sts.assume_requests)
    no_secret_logged(env, sts)


def test_cg_745_03_base_from_default_chain(env, pg, gen_dir, session_secret, aws):
    """auth {}: the chain's session credentials sign AssumeRole, their token signed too."""
    sts, bed = aws
    base = {'id': 'ASIACHAINBASE0', 'secret': 'chain/base+secret+key', 'token':
            'chain-base-session-token=='}
    sts.base = base
    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}"}}', auth='{}',
                   AWS_ACCESS_KEY_ID=base['id'], AWS_SECRET_ACCESS_KEY=base['secret'],
                   AWS_SESSION_TOKEN=base['token']) == 0
    rec = ok(env, session_secret, bed, 'ar-chain-1')
    a = sts.assume_requests[0]
    assert a['status'] == 200 and a['access_key'] == base['id']
    assert dict(a['headers'])['x-amz-security-token'] == base['token']
    assert 'x-amz-security-token' in a['signed_headers']
    assert 'ExternalId' not in a['form']
    s = signed_by_role(rec)
    assert s['id'] != base['id'] and s['token'] != base['token']
    assert sts.n('imds-token') == 0 and sts.n('imds-creds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'ar-chain-1'") \
        == 'bedrock'
    no_secret_logged(env, sts, base['secret'], base['token'])


def test_cg_745_04_refresh_near_expiry_and_after_403(env, pg, gen_dir, session_secret, aws):
    """Near expiry every request assumes again; after Bedrock's 403 the next one does."""
    sts, bed = aws
    sts.role_lifetime = timedelta(minutes=4)
    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}"}}') == 0
    keys = [signed_by_role(ok(env, session_secret, bed, f'ar-expiry-{i}'))['id']
            for i in range(3)]
    assert sts.n('assume-role') == 3
    assert len(set(keys)) == 3 and keys[-1] == sts.sessions[-1]['id']

    sts.role_lifetime = timedelta(hours=1)
    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}"}}') == 0  # fresh children
    ok(env, session_secret, bed, 'ar-revoke-0')
    before = sts.n('assume-role')
    bed.revoked.update(s['id'] for s in sts.sessions)  # revoked behind the gateway's back
    statuses = [ask(env, session_secret, f'ar-revoke-{i + 1}').status for i in range(6)]
    assert statuses[-1] == 200, statuses
    assert sts.n('assume-role') > before
    s = signed_by_role(bed.last)
    assert s['id'] not in bed.revoked
    assert not bed.last['violations']
    no_secret_logged(env, sts)


def test_cg_745_05_sts_denies(env, pg, gen_dir, session_secret, aws):
    """STS denies: 502 envelope, CG0151 with role and code, Bedrock untouched, no ledger row."""
    sts, bed = aws
    sts.deny = True
    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}"}}') == 0
    r = ask(env, session_secret, 'ar-deny-1')
    assert r.status == 502, r.body
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'api_error'
    assert BASE['secret'].encode() not in r.body
    assert env.error_log.scan_recent(
        r'CG0151: AssumeRole arn:aws:iam::123456789012:role/bedrock-invoke for upstream '
        r'bedrock failed: .*AccessDenied') is not None
    assert env.error_log.scan_recent(r'CG0135: upstream bedrock') is not None
    assert sts.n('assume-role') >= 1
    assert all(a['code'] == 'AccessDenied' for a in sts.assume_requests)
    assert bed.count == 0
    no_secret_logged(env, sts)
    # allowed again (the trust policy fixed): not remembered as refused for long
    sts.deny = False
    end = time.monotonic() + 8
    while True:
        r = ask(env, session_secret, 'ar-deny-2')
        if r.status == 200 or time.monotonic() > end:
            break
        time.sleep(1)
    assert r.status == 200, r.body
    signed_by_role(bed.last)
    assert pg.wait_value("SELECT count(*) FROM claude_ledger WHERE request_id = 'ar-deny-1'") \
        == '0'  # asked after the later requests' rows were written
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'ar-deny-2'") \
        == 'bedrock'


@pytest.mark.parametrize('assume,auth,message', [
    pytest.param('{external_id: x}', None, 'upstreams[0].assume_role.role_arn: Required',
                 id='no role_arn'),
    pytest.param(f'{{role_arn: "{ROLE_ARN}", session_name: name}}', None,
                 "upstreams[0].assume_role.session_name: Invalid enum value. "
                 "Expected 'email' | 'sub'", id='session_name name'),
    pytest.param(f'{{role_arn: "{ROLE_ARN}", duration: 900}}', None,
                 'upstreams[0].assume_role: Unrecognized key: "duration"', id='unknown key'),
    pytest.param(f'{{role_arn: "{ROLE_ARN}"}}', '{aws_bearer_token: bedrock-api-key-0123}',
                 'upstreams[0].assume_role: a role is assumed with AWS keys, not with '
                 'aws_bearer_token', id='with a bearer token'),
])
def test_cg_745_06_policy_refusals(env, pg, gen_dir, aws, assume, auth, message):
    """A malformed assume_role keeps the gateway from starting, the field named."""
    assert install(env, pg, gen_dir, aws, assume, auth=auth) != 0, message
    assert message in env.last_output + open(env.error_log.path).read(), message
    rc, out = env.config_test()
    assert rc != 0 and message in out, out


def test_cg_745_07_refresh_refused_keeps_current(env, pg, gen_dir, session_secret, aws):
    """A refused refresh keeps the still-valid role credentials in use (CG0152)."""
    sts, bed = aws
    sts.role_lifetime = timedelta(minutes=4)  # every request asks for a refresh
    assert install(env, pg, gen_dir, aws, f'{{role_arn: "{ROLE_ARN}"}}') == 0
    first = signed_by_role(ok(env, session_secret, bed, 'ar-keep-1'))
    n = sts.n('assume-role')
    sts.deny = True
    statuses = [ask(env, session_secret, f'ar-keep-2{i}').status for i in range(3)]
    assert 200 in statuses, statuses  # (a second child without credentials would fail)
    assert sts.n('assume-role') > n
    assert [s['id'] for s in sts.sessions] == [first['id']]  # none minted since
    assert signed_by_role(bed.last)['id'] == first['id']
    assert bed.count == 1 + statuses.count(200)  # a refused one never reached Bedrock
    assert env.error_log.scan_recent(
        r'CG0152: AssumeRole arn:aws:iam::123456789012:role/bedrock-invoke for upstream '
        r'bedrock not refreshed .*AccessDenied') is not None
    no_secret_logged(env, sts)
