"""Vertex with auth {} and an "external_account" credentials file: workload
identity federation (google-auth's identity pool credentials). The subject
token, read anew at every fetch from a file or a URL, is exchanged at
Google's STS for a federated token; when the file names a service account
to impersonate, generateAccessToken turns that into the account's token,
else the federated token itself goes to Vertex. Against the strict fake of
fakes/gcpsts.py (STS, IAM Credentials, a subject token URL), the Vertex
fake (which takes only the tokens meant for it: never a federated one), and
the metadata fake, which must never be asked. The chain's variables are set
as in test_750, every one of them per install."""
import json
import os
import re
import time
from datetime import datetime, timezone
from urllib.parse import urlencode

import pytest
import requests

from fakes.gcemeta import GceMetadataFake
from fakes.gcpsts import (ACCESS_TOKEN_TYPE, FORM, JWT_TYPE, SAML2_TYPE, SCOPE, TOKEN_EXCHANGE,
                          GoogleStsFake)
from fakes.vertex import ANTHROPIC_VERSION, VertexFake
from test_750_gcp_adc import CHAIN_VARS as ADC_VARS
from test_750_gcp_adc import WELL_KNOWN, ask, failure, failures, ok, refused
from test_750_gcp_adc import install as adc_install

# google-auth runs an executable source only with this set: set in one test
# to show that even then it is refused
EXTRA_VARS = ('GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES',)
CHAIN_VARS = ADC_VARS + EXTRA_VARS
NO_GRANTS = {'jwt-bearer': 0, 'refresh_token': 0}
MODEL_PATH = '/v1/projects/proj-1/locations/us-east5/publishers/anthropic/models/' \
    'claude-sonnet-4-5:rawPredict'


@pytest.fixture(scope='module')
def gcp(gen_dir):
    vtx = VertexFake(project='proj-1', location='us-east5').start()
    meta = GceMetadataFake(vtx).start()
    sts = GoogleStsFake(vtx).start()
    yield vtx, meta, sts
    sts.stop()
    meta.stop()
    vtx.stop()


@pytest.fixture(autouse=True)
def _clean(env, gcp):
    vtx, meta, sts = gcp
    vtx.reset()
    meta.reset()
    sts.reset()
    yield
    for k in CHAIN_VARS:
        env.extra_env.pop(k, None)
    env.error_log.ignore_recent(tags=['CG0123', 'CG0134', 'CG0135', 'CG0145', 'CG0147'])
    assert not meta.violations, meta.violations
    assert not sts.violations, sts.violations
    # Vertex refuses a token it did not mint (a federated one) as unknown;
    # only tests that expire its tokens may see an expired one refused
    bad = [v for q in vtx.requests for v in q['violations'] if v != 'expired bearer token']
    assert not bad, bad


# ---- helpers ---------------------------------------------------------------------------------

def install(env, pg, gen_dir, gcp, **chain):
    """test_750's policy and chain variables (every one set, '' = unset),
    plus EXTRA_VARS unset unless given."""
    vtx, meta, _ = gcp
    for k in EXTRA_VARS:
        env.extra_env[k] = ''
    adc_install(env, pg, gen_dir, (vtx, meta), **chain)


def bearer(rec):
    """The token a Vertex request carried."""
    auth = [v for k, v in rec['headers'] if k == 'authorization']
    assert len(auth) == 1 and auth[0].startswith('Bearer '), auth
    return auth[0][7:]


def no_secret_logged(env, sts, vtx):
    """No subject, federated or access token, whole or its tail, in the error log."""
    text = open(env.error_log.path, errors='replace').read()
    for s in sts.secret_values + vtx.tokens:
        assert s not in text and s[-32:] not in text, s[:12]


def ledger(pg, rid):
    return pg.wait_value(f"SELECT upstream FROM claude_ledger WHERE request_id = '{rid}'")


def none_in_ledger(pg, prefix):
    return pg.wait_value("SELECT count(*) FROM claude_ledger "
                         f"WHERE request_id LIKE '{prefix}%'") == '0'


# what google-auth sends, to check the fake itself

def exchange_form(sts, **over):
    f = {'grant_type': TOKEN_EXCHANGE, 'audience': sts.audience, 'scope': SCOPE,
         'requested_token_type': ACCESS_TOKEN_TYPE, 'subject_token': sts.subject_token,
         'subject_token_type': sts.subject_token_type}
    f.update(over)
    return {k: v for k, v in f.items() if v is not None}


def sts_post(sts, form, ctype=FORM, headers=None, raw=None, method='POST'):
    h = {'content-type': ctype}
    h.update(headers or {})
    data = raw if raw is not None else (json.dumps(form) if ctype == 'application/json'
                                        else urlencode(form))
    return requests.request(method, sts.token_url, data=data, headers=h, timeout=5)


def iam_post(sts, token, body=None, email=None, ctype='application/json', method='POST'):
    h = {'content-type': ctype}
    if token is not None:
        h['authorization'] = 'Bearer ' + token
    if body is None:
        body = {'scope': [SCOPE], 'lifetime': '3600s'}
    data = body if isinstance(body, (str, bytes)) else json.dumps(body)
    return requests.request(method, sts.impersonation_url(email), data=data, headers=h,
                            timeout=5)


def vertex_call(vtx, token):
    return requests.post(vtx.url + MODEL_PATH, timeout=5,
                         json={'anthropic_version': ANTHROPIC_VERSION, 'max_tokens': 8,
                               'messages': [{'role': 'user', 'content': 'hi'}]},
                         headers={'authorization': 'Bearer ' + token})


def federated(sts):
    r = sts_post(sts, exchange_form(sts))
    assert r.status_code == 200, r.text
    return r.json()['access_token']


def parse_rfc3339(s):
    m = re.fullmatch(r'(\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)(\.\d{1,9})?Z', s)
    assert m, s
    return datetime.strptime(m.group(1), '%Y-%m-%dT%H:%M:%S').replace(
        tzinfo=timezone.utc).timestamp()


# ---- the fake itself (no httpd): -k fake -------------------------------------------------------

def test_cg_755_00_fake_exchange_and_impersonation(gcp):
    """STS answers; its federated token is refused at Vertex, taken by generateAccessToken."""
    vtx, _, sts = gcp
    was = sts.issued
    r = sts_post(sts, exchange_form(sts))
    assert r.status_code == 200, r.text
    assert r.headers['content-type'].startswith('application/json')
    j = r.json()
    assert set(j) == {'access_token', 'issued_token_type', 'token_type', 'expires_in'}
    assert (j['issued_token_type'], j['token_type'], j['expires_in']) == \
        (ACCESS_TOKEN_TYPE, 'Bearer', 3599)
    fed = j['access_token']
    assert sts.issued['federated'] == was['federated'] + [fed] and fed not in vtx.tokens
    assert vertex_call(vtx, fed).status_code == 401
    now = time.time()
    r = iam_post(sts, fed)
    assert r.status_code == 200, r.text
    j = r.json()
    assert set(j) == {'accessToken', 'expireTime'}
    assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ', j['expireTime'])
    assert abs(parse_rfc3339(j['expireTime']) - (now + 3599)) < 5
    assert j['accessToken'] in vtx.tokens
    assert sts.issued['impersonated'] == was['impersonated'] + [j['accessToken']]
    assert vertex_call(vtx, j['accessToken']).status_code == 200
    # lifetime is optional, any up to an hour; the fraction when asked for
    sts.fractional = True
    for body in ({'scope': [SCOPE]}, {'scope': [SCOPE], 'lifetime': '1800.5s'}):
        r = iam_post(sts, fed, body)
        assert r.status_code == 200, r.text
        assert re.fullmatch(r'\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{9}Z', r.json()['expireTime'])
    # without impersonation STS's own token is good at Vertex
    sts.impersonate = False
    r = sts_post(sts, exchange_form(sts))
    tok = r.json()['access_token']
    assert sts.issued['sts-vertex'] == was['sts-vertex'] + [tok] and tok in vtx.tokens
    assert vertex_call(vtx, tok).status_code == 200
    assert (sts.n('sts'), sts.n('impersonate'), sts.n('subject')) == (2, 3, 0)
    seen = sts.seen('sts')
    assert [q['status'] for q in seen] == [200, 200]
    assert seen[0]['subject_token'] == sts.subject_token
    assert seen[0]['form']['audience'] == [sts.audience]
    assert [q['bearer'] for q in sts.seen('impersonate')] == [fed] * 3
    assert not sts.violations
    # the federated token refused at Vertex was this test's doing
    assert [v for q in vtx.requests for v in q['violations']] == ['unknown bearer token']
    vtx.reset()


@pytest.mark.parametrize('case,status,error', [
    ('json body', 400, 'invalid_request'),
    ('extra field', 400, 'invalid_request'),
    ('repeated field', 400, 'invalid_request'),
    ('scope missing', 400, 'invalid_request'),
    ('client authentication', 400, 'invalid_request'),
    ('grant type', 400, 'unsupported_grant_type'),
    ('requested token type', 400, 'invalid_request'),
    ('scope widened', 400, 'invalid_scope'),
    ('subject token type', 400, 'invalid_request'),
    ('other audience', 400, 'invalid_grant'),
    ('old subject token', 400, 'invalid_grant'),
    ('unknown subject token', 400, 'invalid_grant'),
    ('saml2 not url-encoded', 400, 'invalid_grant'),
    ('GET', 405, None),
])
def test_cg_755_00_fake_sts_strict(gcp, case, status, error):
    """What google-auth would not send to STS is refused as STS does: a violation, no token."""
    vtx, _, sts = gcp
    was = sts.issued
    form, kw = exchange_form(sts), {}
    if case == 'json body':
        kw['ctype'] = 'application/json'
    elif case == 'extra field':
        form['options'] = json.dumps({'userProject': 'proj-1'})
    elif case == 'repeated field':
        kw['raw'] = urlencode(form) + '&scope=' + SCOPE
    elif case == 'scope missing':
        del form['scope']
    elif case == 'client authentication':
        kw['headers'] = {'authorization': 'Basic Y2xpZW50OnNlY3JldA=='}
    elif case == 'grant type':
        form['grant_type'] = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
    elif case == 'requested token type':
        form['requested_token_type'] = 'urn:ietf:params:oauth:token-type:id_token'
    elif case == 'scope widened':
        form['scope'] = SCOPE + ' https://www.googleapis.com/auth/iam'
    elif case == 'subject token type':
        form['subject_token_type'] = SAML2_TYPE
    elif case == 'other audience':
        form['audience'] = sts.audience.replace('gateway-oidc', 'other-provider')
    elif case == 'old subject token':
        sts.rotate_subject_token()
    elif case == 'unknown subject token':
        form['subject_token'] = form['subject_token'][:-4] + 'AAAA'
    elif case == 'saml2 not url-encoded':
        sts.subject_token_type = SAML2_TYPE
        tok = sts.rotate_subject_token()
        assert '+' in tok and '/' in tok and tok.endswith('=')
        form = exchange_form(sts)
        kw['raw'] = urlencode({k: v for k, v in form.items() if k != 'subject_token'}) + \
            '&subject_token=' + tok
    elif case == 'GET':
        kw['method'] = 'GET'
    r = sts_post(sts, form, **kw)
    assert r.status_code == status, r.text
    if error is not None:
        assert r.json()['error'] == error and r.json()['error_description']
    assert len(sts.violations) == 1, sts.violations
    assert sts.issued['federated'] == was['federated']
    assert sts.issued['sts-vertex'] == was['sts-vertex']
    assert sts.n('sts') == 1 and sts.seen('sts')[0]['status'] == status
    sts.pop_violations()


@pytest.mark.parametrize('case,status', [
    ('no bearer', 401),
    ('a Vertex token', 401),
    ('expired federated token', 401),
    ('other account', 403),
    ('a form', 400),
    ('scope as a string', 400),
    ('scope widened', 400),
    ('scope missing', 400),
    ('delegates', 400),
    ('lifetime too long', 400),
    ('lifetime not a duration', 400),
    ('GET', 404),
])
def test_cg_755_00_fake_impersonation_strict(gcp, case, status):
    """generateAccessToken refuses what google-auth would not send, Google-shaped."""
    vtx, _, sts = gcp
    token, kw = federated(sts), {}
    was = sts.issued
    if case == 'no bearer':
        token = None
    elif case == 'a Vertex token':
        token = vtx.mint(600)
    elif case == 'expired federated token':
        sts.expire_federated()
    elif case == 'other account':
        kw['email'] = f'intruder@{vtx.project}.iam.gserviceaccount.com'
    elif case == 'a form':
        kw['ctype'], kw['body'] = FORM, urlencode({'scope': SCOPE, 'lifetime': '3600s'})
    elif case == 'scope as a string':
        kw['body'] = {'scope': SCOPE, 'lifetime': '3600s'}
    elif case == 'scope widened':
        kw['body'] = {'scope': [SCOPE, 'https://www.googleapis.com/auth/iam']}
    elif case == 'scope missing':
        kw['body'] = {'lifetime': '3600s'}
    elif case == 'delegates':
        kw['body'] = {'scope': [SCOPE], 'delegates': []}
    elif case == 'lifetime too long':
        kw['body'] = {'scope': [SCOPE], 'lifetime': '7200s'}
    elif case == 'lifetime not a duration':
        kw['body'] = {'scope': [SCOPE], 'lifetime': 3600}
    elif case == 'GET':
        kw['method'], kw['body'] = 'GET', ''
    r = iam_post(sts, token, **kw)
    assert r.status_code == status, r.text
    e = r.json()['error']
    assert e['code'] == status and e['message']
    assert e['status'] == {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED',
                           403: 'PERMISSION_DENIED', 404: 'NOT_FOUND'}[status]
    assert len(sts.violations) == 1, sts.violations
    assert sts.issued['impersonated'] == was['impersonated']
    sts.pop_violations()


def test_cg_755_00_fake_subject_url(gcp):
    """The subject token URL: its query and header required; text or JSON."""
    vtx, _, sts = gcp
    was = sts.issued
    url = sts.subject_url
    assert url == sts.url + '/subject?' + sts.subject_query
    r = requests.get(url, headers={'Metadata': 'True'}, timeout=5)
    assert r.status_code == 200 and r.text == sts.subject_token
    assert r.headers['content-type'].startswith('text/plain')
    sts.subject_format = 'json'
    r = requests.get(url, headers={'metadata': 'True'}, timeout=5)
    assert r.status_code == 200 and r.json()['access_token'] == sts.subject_token
    sts.subject_field = 'id_token'
    assert requests.get(url, headers={'Metadata': 'True'}, timeout=5).json()['id_token'] == \
        sts.subject_token
    assert sts.n('subject') == 3 and not sts.violations
    for kw in ({}, {'headers': {'Metadata': 'False'}},
               {'headers': {'Metadata': 'True'}, 'url': sts.url + '/subject'},
               {'headers': {'Metadata': 'True'}, 'method': 'POST'}):
        r = requests.request(kw.get('method', 'GET'), kw.get('url', url),
                             headers=kw.get('headers'), timeout=5)
        assert r.status_code in (400, 405), kw
        assert len(sts.pop_violations()) == 1, kw
    assert requests.get(sts.url + '/latest/meta-data/', timeout=5).status_code == 404
    assert sts.n('other') == 1 and len(sts.pop_violations()) == 1
    assert sts.n('sts') == 0 and sts.issued['federated'] == was['federated']


def test_cg_755_00_fake_external_account_files(gcp, gen_dir):
    """The credentials and subject files as written and rotated; reset() restores defaults."""
    vtx, _, sts = gcp
    cred, subject = f'{gen_dir}/fake-wif.json', f'{gen_dir}/fake-wif-subject'
    assert sts.external_account(cred, subject_path=subject) == cred
    j = json.load(open(cred))
    assert j == {'universe_domain': 'googleapis.com', 'type': 'external_account',
                 'audience': sts.audience, 'subject_token_type': JWT_TYPE,
                 'token_url': sts.url + '/v1/token',
                 'credential_source': {'file': subject, 'format': {'type': 'text'}},
                 'service_account_impersonation_url':
                     f'{sts.url}/v1/projects/-/serviceAccounts/{sts.sa_email}'
                     ':generateAccessToken'}
    assert sts.audience.startswith('//iam.googleapis.com/projects/')
    assert sts.impersonate is True
    assert open(subject).read() == sts.subject_token + '\n'
    old = sts.subject_token
    new = sts.rotate_subject_token()
    assert new != old and open(subject).read() == new + '\n'
    assert sts.issued['subject'][-2:] == [old, new]
    # a JSON subject file, SAML2, no impersonation, a quota project
    sts.external_account(cred, subject_path=subject, fmt='json', impersonate=False,
                         token_type=SAML2_TYPE, quota_project='quota-proj-9')
    j = json.load(open(cred))
    assert 'service_account_impersonation_url' not in j and sts.impersonate is False
    assert j['quota_project_id'] == 'quota-proj-9' and j['subject_token_type'] == SAML2_TYPE
    assert j['credential_source']['format'] == {'type': 'json',
                                                'subject_token_field_name': 'access_token'}
    assert json.load(open(subject))['access_token'] == sts.subject_token
    assert '+' in sts.subject_token and '/' in sts.subject_token
    # a URL source
    sts.external_account(cred, source='url', fmt='json')
    src = json.load(open(cred))['credential_source']
    assert src == {'url': sts.subject_url, 'headers': {'Metadata': 'True'},
                   'format': {'type': 'json', 'subject_token_field_name': 'access_token'}}
    assert sts.subject_format == 'json'
    # a source given whole, an audience and an account of someone else
    sts.external_account(cred, credential_source={'executable': {'command': '/bin/true'}},
                         audience='//iam.googleapis.com/x', sa_email='x@y.iam.gserviceaccount.com')
    j = json.load(open(cred))
    assert j['credential_source'] == {'executable': {'command': '/bin/true'}}
    assert j['audience'] == '//iam.googleapis.com/x'
    assert j['service_account_impersonation_url'].endswith(
        '/serviceAccounts/x@y.iam.gserviceaccount.com:generateAccessToken')
    sts.ttl, sts.fractional = 60, True
    sts.reset()
    assert (sts.ttl, sts.impersonate, sts.fractional, sts.subject_token_type,
            sts.subject_format, sts.subject_field, sts.subject_headers) == \
        (3599, True, False, JWT_TYPE, 'text', 'access_token', {'Metadata': 'True'})
    assert sts.subject_token.count('.') == 2 and sts.subject_token not in (old, new)
    before = open(subject).read()
    sts.rotate_subject_token()  # reset forgot the file: it stays as it was
    assert open(subject).read() == before
    assert (sts.counts, sts.requests, sts.violations) == ({}, [], [])


# ---- the gateway -----------------------------------------------------------------------------

def test_cg_755_01_file_source_impersonated(env, pg, gen_dir, session_secret, gcp):
    """File source, impersonated: Vertex gets the account's token; one exchange per child."""
    vtx, meta, sts = gcp
    subject = f'{gen_dir}/wif-oidc-token'
    cred = sts.external_account(f'{gen_dir}/wif-file.json', subject_path=subject)
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred, NO_GCE_CHECK='')
    for i in range(4):
        rec = ok(env, session_secret, vtx, f'gwif-file-{i}')
        assert bearer(rec) in sts.issued['impersonated']
        assert rec['user_project'] is None
    assert 1 <= sts.n('sts') <= 2  # once per child that served a request
    assert sts.n('impersonate') == sts.n('sts')
    assert sts.n('subject') == 0 and meta.n('token') == 0 and vtx.grants == NO_GRANTS
    for q in sts.seen('sts'):
        assert q['status'] == 200 and q['subject_token'] == sts.subject_token
        assert q['form']['subject_token_type'] == [JWT_TYPE]
    fed = sts.issued['federated']
    for q in sts.seen('impersonate'):
        assert q['status'] == 200 and q['bearer'] in fed
    assert not set(fed) & set(vtx.tokens)  # Vertex would refuse STS's token
    assert ledger(pg, 'gwif-file-0') == 'vertex'
    assert env.error_log.scan_recent(
        r'CG0146: Google credentials from the .*GOOGLE_APPLICATION_CREDENTIALS') is not None
    no_secret_logged(env, sts, vtx)


def test_cg_755_02_url_source_json_unimpersonated(env, pg, gen_dir, session_secret, gcp):
    """URL source with its header, JSON format, unimpersonated: STS's token, quota project."""
    vtx, meta, sts = gcp
    was = sts.issued
    cred = sts.external_account(f'{gen_dir}/wif-url.json', source='url', fmt='json',
                                impersonate=False, quota_project='quota-proj-9')
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred)
    for i in range(3):
        rec = ok(env, session_secret, vtx, f'gwif-url-{i}')
        assert bearer(rec) in sts.issued['sts-vertex']
        assert rec['user_project'] == 'quota-proj-9'
    assert 1 <= sts.n('sts') <= 2  # once per child that served a request
    assert sts.n('subject') == sts.n('sts')  # the URL asked for each exchange
    assert sts.n('impersonate') == 0 and sts.issued['federated'] == was['federated']
    for q in sts.seen('subject'):
        assert q['status'] == 200 and q['query'] == sts.subject_query
        assert ('metadata', 'True') in q['headers']
    for q in sts.seen('sts'):
        assert q['status'] == 200 and q['subject_token'] == sts.subject_token
    assert meta.n('token') == 0 and vtx.grants == NO_GRANTS
    assert ledger(pg, 'gwif-url-2') == 'vertex'
    no_secret_logged(env, sts, vtx)


def test_cg_755_03_rotated_subject_token_read_anew(env, pg, gen_dir, session_secret, gcp):
    """A rotated SAML2 subject file is read anew at the fetch after a 401, never the old one."""
    vtx, meta, sts = gcp
    sts.fractional = True  # expireTime with nanoseconds
    subject = f'{gen_dir}/wif-saml-assertion'
    cred = sts.external_account(f'{gen_dir}/wif-rotate.json', subject_path=subject,
                                token_type=SAML2_TYPE)
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred)
    for i in range(2):
        ok(env, session_secret, vtx, f'gwif-rot-1{i}')
    n = sts.n('sts')
    assert 1 <= n <= 2 and sts.n('impersonate') == n
    old = sts.subject_token
    new = sts.rotate_subject_token()
    assert new != old and open(subject).read().strip() == new
    vtx.expire_tokens()  # revoked behind our back: Vertex says 401
    # STS now takes only the new subject token: the old one would be a violation
    statuses = [ask(env, session_secret, f'gwif-rot-2{i}').status for i in range(4)]
    assert statuses[-1] == 200, statuses
    assert len([s for s in statuses if s != 200]) <= 2, statuses  # one 401 per child at most
    assert n + 1 <= sts.n('sts') <= n + 2
    assert [q['subject_token'] for q in sts.seen('sts')[n:]] == [new] * (sts.n('sts') - n)
    assert all(q['status'] == 200 for q in sts.seen('sts'))
    assert bearer(vtx.last) in sts.issued['impersonated']
    assert ledger(pg, 'gwif-rot-23') == 'vertex'
    no_secret_logged(env, sts, vtx)


def test_cg_755_04_sts_refuses(env, pg, gen_dir, session_secret, gcp):
    """STS refuses (another provider's audience): 502, CG0145 invalid_grant, Vertex not asked."""
    vtx, meta, sts = gcp
    other = sts.audience.replace('gateway-oidc', 'other-provider')
    assert other != sts.audience
    cred = sts.external_account(f'{gen_dir}/wif-audience.json',
                                subject_path=f'{gen_dir}/wif-audience-token', audience=other)
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred, NO_GCE_CHECK='')
    before = failures(env)
    refused(env, session_secret, 'gwif-aud-1')
    assert failure(env, r'.*invalid_grant', after=before) is not None
    assert sts.n('sts') >= 1 and sts.n('impersonate') == 0
    violations = sts.pop_violations()  # provoked: the audience
    assert violations and all('invalid_grant' in v for v in violations), violations
    assert vtx.count == 0 and meta.n('token') == 0
    assert none_in_ledger(pg, 'gwif-aud-')
    no_secret_logged(env, sts, vtx)


def test_cg_755_05_impersonation_refused(env, pg, gen_dir, session_secret, gcp):
    """generateAccessToken refuses (403 PERMISSION_DENIED): 502, CG0145, Vertex not asked."""
    vtx, meta, sts = gcp
    cred = sts.external_account(f'{gen_dir}/wif-intruder.json',
                                subject_path=f'{gen_dir}/wif-intruder-token',
                                sa_email=f'intruder@{vtx.project}.iam.gserviceaccount.com')
    install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred, NO_GCE_CHECK='')
    before = failures(env)
    refused(env, session_secret, 'gwif-imp-1')
    assert failure(env, r'.*(PERMISSION_DENIED|403)', after=before) is not None
    assert sts.n('sts') >= 1 and sts.n('impersonate') >= 1
    assert all(q['status'] == 200 for q in sts.seen('sts'))
    violations = sts.pop_violations()  # provoked: the account
    assert violations and all('impersonating intruder@' in v for v in violations), violations
    assert vtx.count == 0 and meta.n('token') == 0
    assert none_in_ledger(pg, 'gwif-imp-')
    no_secret_logged(env, sts, vtx)


def test_cg_755_06_unsupported_sources_no_fall_through(env, pg, gen_dir, session_secret, gcp):
    """AWS and executable sources: 502, CG0145 not supported, nothing asked, nothing run."""
    vtx, meta, sts = gcp
    config = f'{gen_dir}/gcloud-config-wif'  # a usable well-known file behind it
    os.makedirs(config, exist_ok=True)
    vtx.authorized_user_json(f'{config}/{WELL_KNOWN}')
    marker = f'{gen_dir}/wif-executable-ran'
    aws = {'environment_id': 'aws1',
           'region_url': sts.url + '/latest/meta-data/placement/availability-zone',
           'url': sts.url + '/latest/meta-data/iam/security-credentials',
           'regional_cred_verification_url':
               'https://sts.{region}.amazonaws.com?Action=GetCallerIdentity&Version=2011-06-15',
           'imdsv2_session_token_url': sts.url + '/latest/api/token'}
    executable = {'executable': {'command': f'/usr/bin/touch {marker}', 'timeout_millis': 5000,
                                 'output_file': f'{gen_dir}/wif-executable-out.json'}}
    for name, source, token_type in (
            ('aws', aws, 'urn:ietf:params:aws:token-type:aws4_request'),
            ('exec', executable, JWT_TYPE)):
        info = sts.credentials(credential_source=source)
        info['subject_token_type'] = token_type
        cred = f'{gen_dir}/wif-{name}.json'
        with open(cred, 'w') as f:
            json.dump(info, f, indent=2)
        install(env, pg, gen_dir, gcp, GOOGLE_APPLICATION_CREDENTIALS=cred,
                CLOUDSDK_CONFIG=config, NO_GCE_CHECK='',
                GOOGLE_EXTERNAL_ACCOUNT_ALLOW_EXECUTABLES='1')
        before = failures(env)
        refused(env, session_secret, f'gwif-{name}-1')
        assert failure(env, r'.*not supported', after=before) is not None, name
        assert meta.n('token') == 0 and vtx.grants == NO_GRANTS, name
        assert sts.requests == [], name
    assert not os.path.exists(marker)
    assert vtx.count == 0
    assert none_in_ledger(pg, 'gwif-aws-') and none_in_ledger(pg, 'gwif-exec-')
