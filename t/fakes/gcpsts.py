"""GoogleStsFake: Google workload identity federation, strict: what an
"external_account" credentials file (google-auth's identity pool
credentials) makes a client ask.

One server plays three things, each checking what google-auth sends:
- Google's Security Token Service (token_url = .token_url = .url +
  '/v1/token'): POST, a form (application/x-www-form-urlencoded, no
  Authorization header: the pool needs no client authentication, no
  parameter twice, none unknown) of exactly grant_type =
  urn:ietf:params:oauth:grant-type:token-exchange, audience = .audience,
  scope = https://www.googleapis.com/auth/cloud-platform,
  requested_token_type = urn:ietf:params:oauth:token-type:access_token,
  subject_token = .subject_token (URL-encoded: a SAML2 subject token is
  standard base64, '+', '/' and '=') and subject_token_type =
  .subject_token_type. The answer is {access_token, issued_token_type,
  token_type: Bearer, expires_in: .ttl}: with .impersonate False a token
  minted by the Vertex fake given at construction (VertexFake.mint), good
  at Vertex; with .impersonate True (the default) a federated token only
  this fake knows (.federated_tokens), refused by Vertex and good for one
  thing: the Authorization of generateAccessToken. A refusal is STS's
  {error, error_description} with 400: invalid_request,
  unsupported_grant_type, invalid_scope, and invalid_grant for a subject
  token that is not the current one or an audience other than .audience
  (the subject token's aud names .audience's provider; an unknown provider
  would be invalid_target).
- IAM Service Account Credentials (service_account_impersonation_url =
  .impersonation_url(): .url + '/v1/projects/-/serviceAccounts/{email}:
  generateAccessToken'): POST, Authorization: Bearer with a live federated
  token of this STS (else 401 UNAUTHENTICATED), email = .sa_email (else 403
  PERMISSION_DENIED, what IAM says when the pool's principal may not act as
  that account), content-type application/json, a JSON object of exactly
  scope: [cloud-platform] (a list) and optionally lifetime "Ns" (more than
  0, at most 3600 seconds, as an account without the extended-lifetime
  policy allows); else 400 INVALID_ARGUMENT. The
  answer is {accessToken: a Vertex token valid .ttl seconds, expireTime:
  RFC 3339 UTC of then}, with nine fractional digits when .fractional is
  set. Errors are Google's {error: {code, message, status}}.
- A subject token URL (credential_source url = .subject_url, as Azure's
  instance metadata service is used with a query): GET /subject with
  exactly the query .subject_query and every header of .subject_headers
  ({'Metadata': 'True'} by default, the value exact, the name in any case;
  else 400 "Required metadata header not specified"); the answer is
  .subject_token, as text/plain (.subject_format 'text') or as JSON
  {<.subject_field>: token, ...} ('json').
Anything else is 404. Every request is counted per endpoint in .counts
('sts', 'impersonate', 'subject', 'other'; n(what) reads one) and logged in
.requests ({endpoint, method, path, query, status, ...}: for STS the form
and the subject_token received, for generateAccessToken the bearer and the
body, for the subject URL the headers); a refused one is recorded in
.violations, take provoked ones with pop_violations(). .issued lists what
went out: 'subject' tokens made, 'federated' STS tokens, 'sts-vertex' Vertex
tokens STS handed out directly, 'impersonated' Vertex tokens from
generateAccessToken (for checking which token Vertex saw), kept across
reset() as the Vertex fake keeps its tokens; secret_values is all of
them, which no log may hold.

external_account(path, ...) writes the credentials file pointing at this
fake (and the subject token file of a file source); rotate_subject_token()
makes a new subject token, the only one STS accepts from then on, and
rewrites that subject file (atomically, as a kubelet does). reset() clears
counts, log and violations and puts back ttl (3599), impersonate (True),
fractional (False), subject_token_type (JWT), subject_headers,
subject_format ('text'), subject_field ('access_token') and a new subject
token; audience and sa_email are fixed per fake (pass others to
external_account to provoke refusals)."""
import base64
import json
import os
import re
import secrets
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, unquote, urlsplit

from ._server import FakeHandler, FakeServer

SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
FORM = 'application/x-www-form-urlencoded'
TOKEN_EXCHANGE = 'urn:ietf:params:oauth:grant-type:token-exchange'
ACCESS_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:access_token'
JWT_TYPE = 'urn:ietf:params:oauth:token-type:jwt'
ID_TOKEN_TYPE = 'urn:ietf:params:oauth:token-type:id_token'
SAML2_TYPE = 'urn:ietf:params:oauth:token-type:saml2'
STS_PATH = '/v1/token'
SUBJECT_PATH = '/subject'
IAM_RE = re.compile(r'/v1/projects/-/serviceAccounts/([^/]+):generateAccessToken')
LIFETIME_RE = re.compile(r'([0-9]+)(\.[0-9]{1,9})?s')
STS_FIELDS = {'grant_type', 'audience', 'scope', 'requested_token_type', 'subject_token',
              'subject_token_type'}
GOOGLE_STATUS = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
                 404: 'NOT_FOUND', 405: 'METHOD_NOT_ALLOWED'}
UNAUTHENTICATED = ('Request had invalid authentication credentials. Expected OAuth 2 access '
                   'token, login cookie or other valid authentication credential. See '
                   'https://developers.google.com/identity/sign-in/web/devconsole-project.')


def _b64url(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()


def subject_token(kind, audience):
    """A subject token of the kind a platform hands out: an OIDC ID token
    (a JWT whose aud is the provider) or a base64 SAML assertion (standard
    base64: '+', '/' and '=' in it, which a form must encode). The fake only
    compares it."""
    if kind == SAML2_TYPE:
        while True:
            xml = ('<saml2:Assertion xmlns:saml2="urn:oasis:names:tc:SAML:2.0:assertion" '
                   f'ID="_{uuid.uuid4().hex}"><saml2:Audience>https://iam.googleapis.com/'
                   f'{audience.lstrip("/")}</saml2:Audience></saml2:Assertion>').encode() + \
                secrets.token_bytes(60 + secrets.randbelow(3))
            tok = base64.b64encode(xml).decode()
            if '+' in tok and '/' in tok and tok.endswith('='):
                return tok
    now = int(time.time())
    return '.'.join([_b64url({'alg': 'RS256', 'kid': secrets.token_hex(8), 'typ': 'JWT'}),
                     _b64url({'iss': 'https://token.actions.githubusercontent.com',
                              'aud': 'https://iam.googleapis.com/' + audience.lstrip('/'),
                              'sub': 'repo:acme/gateway:environment:prod',
                              'iat': now, 'nbf': now, 'exp': now + 3600,
                              'jti': str(uuid.uuid4())}),
                     secrets.token_urlsafe(256)])


def rfc3339(t, fractional=False):
    dt = datetime.fromtimestamp(t, timezone.utc)
    if fractional:
        return dt.strftime('%Y-%m-%dT%H:%M:%S.') + f'{dt.microsecond:06d}123Z'
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


class Handler(FakeHandler):

    def _send(self, status, body, ctype='application/json; charset=UTF-8'):
        self.rec['status'] = status
        out = body if isinstance(body, bytes) else \
            (body.encode() if isinstance(body, str) else json.dumps(body).encode())
        self.send_response(status)
        self.send_header('content-type', ctype)
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _refuse(self, status, body, why):
        self.fake.violation(f'{self.rec["endpoint"]} {self.command} {self.rec["path"]}: {why}')
        self._send(status, body)

    def _google_error(self, status, message, why=None):
        self._refuse(status, {'error': {'code': status, 'message': message,
                                        'status': GOOGLE_STATUS.get(status, 'UNKNOWN')}},
                     why or message)

    def _dispatch(self):
        self.body, _ = self.read_body()
        # the request line's own target: http.server folds a leading '//'
        target = self.requestline.split(' ')[1] if self.requestline.count(' ') >= 2 \
            else self.path
        u = urlsplit('http://fake' + target)
        m = IAM_RE.fullmatch(u.path)
        endpoint = 'sts' if u.path == STS_PATH else 'impersonate' if m else \
            'subject' if u.path == SUBJECT_PATH else 'other'
        self.rec = {'endpoint': endpoint, 'method': self.command, 'path': u.path,
                    'query': u.query, 'status': None}
        self.fake.count(endpoint)
        self.fake.log(self.rec)
        if endpoint == 'sts':
            return self._sts()
        if endpoint == 'impersonate':
            return self._impersonate(unquote(m.group(1)))
        if endpoint == 'subject':
            return self._subject(u)
        self._google_error(404, f'fake: no such path {u.path}')

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    # --- STS ----------------------------------------------------------------------------------
    def _sts_error(self, error, description, why=None):
        self._refuse(400, {'error': error, 'error_description': description},
                     why or f'{error}: {description}')

    def _sts(self):
        f = self.fake
        if self.command != 'POST':
            return self._google_error(405, f'fake: STS takes POST, not {self.command}')
        ctype = (self.headers.get('content-type') or '').split(';')[0].strip().lower()
        try:
            form = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=True) \
                if ctype == FORM and self.body else {}
        except (UnicodeDecodeError, ValueError):
            form = {}
        self.rec['form'] = {k: v for k, v in form.items() if k != 'subject_token'}
        self.rec['subject_token'] = form.get('subject_token', [None])[0]
        if ctype != FORM or not form:
            return self._sts_error('invalid_request', 'Invalid request: the body must be a form',
                                   f'not a form (content-type {ctype!r})')
        twice = sorted(k for k, v in form.items() if len(v) != 1)
        if twice:
            return self._sts_error('invalid_request', f'Duplicate parameters {twice}.')
        form = {k: v[0] for k, v in form.items()}
        if self.headers.get('authorization') is not None:
            return self._sts_error('invalid_request', 'Client authentication is not expected '
                                   'for this workload identity pool.',
                                   'an Authorization header on the token exchange')
        extra = sorted(set(form) - STS_FIELDS)
        if extra:
            return self._sts_error('invalid_request', f'Unexpected parameters {extra}.')
        missing = sorted(STS_FIELDS - set(form))
        if missing:
            return self._sts_error('invalid_request', f'Missing required parameters {missing}.')
        if form['grant_type'] != TOKEN_EXCHANGE:
            return self._sts_error('unsupported_grant_type',
                                   f"Invalid value for \"grant_type\": {form['grant_type']}")
        if form['requested_token_type'] != ACCESS_TOKEN_TYPE:
            return self._sts_error('invalid_request', 'Invalid value for '
                                   f"\"requested_token_type\": {form['requested_token_type']}")
        if form['scope'].split(' ') != [SCOPE]:
            return self._sts_error('invalid_scope', f"Invalid value for \"scope\": "
                                   f"{form['scope']}")
        if form['subject_token_type'] != f.subject_token_type:
            return self._sts_error('invalid_request', 'Invalid value for "subject_token_type": '
                                   f"{form['subject_token_type']}")
        if form['audience'] != f.audience:
            return self._sts_error('invalid_grant', 'The audience in ID Token '
                                   f'[https://iam.googleapis.com/{f.audience.lstrip("/")}] does '
                                   'not match the expected audience '
                                   f"{form['audience']}.")
        if form['subject_token'] != f.subject_token:
            old = form['subject_token'] in f.issued_list('subject')
            return self._sts_error('invalid_grant', 'The ID Token has expired or was revoked.'
                                   if old else 'Unable to parse the ID Token.',
                                   'a subject token that is not the current one' if old
                                   else 'an unknown subject token')
        ttl = f.ttl
        if f.impersonate:
            token = f.federate(ttl)
        else:
            token = f.vertex.mint(ttl)
            f.issue('sts-vertex', token)
        self._send(200, {'access_token': token, 'issued_token_type': ACCESS_TOKEN_TYPE,
                         'token_type': 'Bearer', 'expires_in': ttl})

    # --- IAM generateAccessToken --------------------------------------------------------------
    def _impersonate(self, email):
        f = self.fake
        if self.command != 'POST':
            return self._google_error(404, f'fake: generateAccessToken takes POST, not '
                                      f'{self.command}')
        auth = self.headers.get('authorization') or ''
        self.rec['bearer'] = auth[7:] if auth.startswith('Bearer ') else None
        try:
            self.rec['json'] = json.loads(self.body) if self.body else None
        except ValueError:
            self.rec['json'] = None
        why = f.check_federated(self.rec['bearer'])
        if why is not None:
            return self._google_error(401, UNAUTHENTICATED, why)
        if email != f.sa_email:
            return self._google_error(403, "Permission 'iam.serviceAccounts.getAccessToken' "
                                      'denied on resource (or it may not exist).',
                                      f'impersonating {email}, not {f.sa_email}')
        ctype = (self.headers.get('content-type') or '').split(';')[0].strip().lower()
        if ctype != 'application/json':
            return self._google_error(400, 'Invalid JSON payload received.',
                                      f'content-type {ctype!r}')
        j = self.rec['json']
        if not isinstance(j, dict):
            return self._google_error(400, 'Invalid JSON payload received.', 'not a JSON object')
        extra = sorted(set(j) - {'scope', 'lifetime'})
        if extra:
            return self._google_error(400, 'Invalid JSON payload received. Unknown name '
                                      f'"{extra[0]}": Cannot find field.')
        if j.get('scope') != [SCOPE]:
            return self._google_error(400, f"Request contains an invalid argument: scope "
                                      f"{j.get('scope')!r}")
        if 'lifetime' in j:
            lm = LIFETIME_RE.fullmatch(j['lifetime']) if isinstance(j['lifetime'], str) else None
            if lm is None:
                return self._google_error(400, 'Invalid value at \'lifetime\' (type.googleapis.'
                                          f"com/google.protobuf.Duration), {j['lifetime']!r}")
            secs = float(j['lifetime'][:-1])
            if secs > 3600:
                return self._google_error(400, 'The lifetime requested is greater than the '
                                          'allowed maximum of 3600s.')
            if secs <= 0:
                return self._google_error(400, 'The lifetime requested must be positive.')
        ttl = f.ttl
        token = f.vertex.mint(ttl)
        f.issue('impersonated', token)
        self._send(200, {'accessToken': token,
                         'expireTime': rfc3339(time.time() + ttl, f.fractional)})

    # --- the subject token URL ----------------------------------------------------------------
    def _subject(self, u):
        f = self.fake
        self.rec['headers'] = [(k.lower(), v) for k, v in self.headers.items()]

        def refuse(status, message):
            self._refuse(status, {'error': 'invalid_request', 'error_description': message},
                         message)

        if self.command != 'GET':
            return refuse(405, f'fake: the subject token URL takes GET, not {self.command}')
        if u.query != f.subject_query:
            return refuse(400, f'query {u.query!r}, not {f.subject_query!r}')
        for k, v in f.subject_headers.items():
            if self.headers.get_all(k) != [v]:
                return refuse(400, 'Required metadata header not specified')
        token = f.subject_token
        if f.subject_format == 'json':
            now = int(time.time())
            return self._send(200, {f.subject_field: token, 'client_id': str(uuid.uuid4()),
                                    'expires_in': '3599', 'expires_on': str(now + 3599),
                                    'token_type': 'Bearer'})
        self._send(200, token, 'text/plain; charset=utf-8')


class GoogleStsFake(FakeServer):
    handler = Handler

    def __init__(self, vertex, audience=None, sa_email=None, **kw):
        self.vertex = vertex
        self.audience = audience or (
            '//iam.googleapis.com/projects/123456789012/locations/global/'
            'workloadIdentityPools/gateway-pool/providers/gateway-oidc')
        self.sa_email = sa_email or f'mod-claude@{vertex.project}.iam.gserviceaccount.com'
        self.subject_query = 'api-version=2018-02-01&resource=api%3A%2F%2Fmod-claude'
        self._federated = {}
        self._issued = {'subject': [], 'federated': [], 'sts-vertex': [], 'impersonated': []}
        self._subject_file = None
        super().__init__(**kw)
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.violations = []
            self.requests = []
        self.ttl = 3599
        self.impersonate = True
        self.fractional = False
        self.subject_headers = {'Metadata': 'True'}
        self.subject_format = 'text'
        self.subject_field = 'access_token'
        self.subject_token_type = JWT_TYPE
        self._subject_file = None
        self.rotate_subject_token()

    # --- state --------------------------------------------------------------------------------
    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def n(self, what):
        with self.lock:
            return self.counts.get(what, 0)

    def log(self, rec):
        with self.lock:
            self.requests.append(rec)

    def seen(self, endpoint):
        """The logged requests to one endpoint ('sts', 'impersonate', 'subject')."""
        with self.lock:
            return [dict(r) for r in self.requests if r['endpoint'] == endpoint]

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def pop_violations(self):
        """The violations so far, forgotten (for a test that provoked them)."""
        with self.lock:
            out, self.violations = self.violations, []
        return out

    def issue(self, kind, token):
        with self.lock:
            self._issued[kind].append(token)

    def issued_list(self, kind):
        with self.lock:
            return list(self._issued[kind])

    @property
    def issued(self):
        with self.lock:
            return {k: list(v) for k, v in self._issued.items()}

    @property
    def secret_values(self):
        """Every subject, federated and access token this fake made (none may be logged)."""
        return [t for v in self.issued.values() for t in v]

    def federate(self, ttl):
        """A federated token, good at generateAccessToken for ttl seconds."""
        token = 'ya29.d.fed-' + secrets.token_urlsafe(32)
        with self.lock:
            self._federated[token] = time.time() + ttl
            self._issued['federated'].append(token)
        return token

    def check_federated(self, token):
        """None for a live federated token of this STS, else why not."""
        if not token:
            return 'no bearer token'
        with self.lock:
            exp = self._federated.get(token)
        if exp is None:
            return 'not a federated token of this STS'
        if exp < time.time():
            return 'an expired federated token'
        return None

    def expire_federated(self):
        with self.lock:
            for t in self._federated:
                self._federated[t] = 0

    # --- the subject token and the credentials file ---------------------------------------------
    @property
    def token_url(self):
        return self.url + STS_PATH

    @property
    def subject_url(self):
        return f'{self.url}{SUBJECT_PATH}?{self.subject_query}'

    def impersonation_url(self, email=None):
        return f'{self.url}/v1/projects/-/serviceAccounts/{email or self.sa_email}' \
            ':generateAccessToken'

    def subject_content(self, fmt='text'):
        """What a subject token file holds: the token and a newline (text),
        or a JSON object with it in .subject_field."""
        if fmt == 'json':
            return json.dumps({self.subject_field: self.subject_token, 'token_type': 'Bearer'})
        return self.subject_token + '\n'

    def write_subject(self, path, fmt='text'):
        """(Re)write the subject token file atomically (a rename, as a kubelet does)."""
        tmp = f'{path}.{secrets.token_hex(4)}.tmp'
        with open(tmp, 'w') as fh:
            fh.write(self.subject_content(fmt))
        os.replace(tmp, path)
        return path

    def rotate_subject_token(self):
        """A new subject token, the only one STS accepts from now on; the
        subject file external_account wrote is rewritten with it."""
        self.subject_token = subject_token(self.subject_token_type, self.audience)
        self.issue('subject', self.subject_token)
        if self._subject_file is not None:
            self.write_subject(*self._subject_file)
        return self.subject_token

    def credentials(self, source='file', subject_path=None, fmt='text', impersonate=True,
                    quota_project=None, audience=None, sa_email=None, headers=None,
                    credential_source=None):
        """The external_account JSON pointing at this fake. source 'file'
        (subject_path) or 'url' (.subject_url with headers, by default
        .subject_headers); fmt 'text' or 'json' (.subject_field);
        credential_source replaces the whole source (to provoke refusals)."""
        if credential_source is None:
            if source == 'file':
                assert subject_path, 'a file source needs subject_path'
                credential_source = {'file': subject_path}
            else:
                credential_source = {'url': self.subject_url,
                                     'headers': dict(self.subject_headers if headers is None
                                                     else headers)}
            if fmt == 'json':
                credential_source['format'] = {'type': 'json',
                                               'subject_token_field_name': self.subject_field}
            else:
                credential_source['format'] = {'type': 'text'}
        info = {'universe_domain': 'googleapis.com', 'type': 'external_account',
                'audience': audience or self.audience,
                'subject_token_type': self.subject_token_type,
                'token_url': self.token_url,
                'credential_source': credential_source}
        if impersonate:
            info['service_account_impersonation_url'] = self.impersonation_url(sa_email)
        if quota_project is not None:
            info['quota_project_id'] = quota_project
        return info

    def external_account(self, path, source='file', subject_path=None, fmt='text',
                         impersonate=True, token_type=None, **kw):
        """Write the external_account file (and, for a file source, the
        subject token file in fmt); return path. The fake's .impersonate
        follows the file's; token_type sets .subject_token_type (and makes a
        subject token of that kind). kw: as credentials()."""
        self.impersonate = bool(impersonate)
        if token_type is not None and token_type != self.subject_token_type:
            self.subject_token_type = token_type
            self.rotate_subject_token()
        if source == 'file' and subject_path and 'credential_source' not in kw:
            self._subject_file = (subject_path, fmt)
            self.write_subject(subject_path, fmt)
        else:
            self.subject_format = fmt
        with open(path, 'w') as fh:
            json.dump(self.credentials(source, subject_path, fmt, impersonate, **kw), fh,
                      indent=2)
        return path
