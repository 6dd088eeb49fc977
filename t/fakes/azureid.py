"""AzureIdentityFake: where azure-identity's DefaultAzureCredential gets a
Microsoft Entra token on a server, strict.

One server plays three endpoints, each checking what azure-identity sends
for the Foundry (Cognitive Services) audience, the scope
https://cognitiveservices.azure.com/.default (resource
https://cognitiveservices.azure.com for managed identity):
- the Entra token endpoint (AZURE_AUTHORITY_HOST = .url): POST
  /{tenant}/oauth2/v2.0/token, tenant = .tenant_id, a form
  (application/x-www-form-urlencoded, no Authorization header, no parameter
  twice, none unknown) with grant_type=client_credentials, client_id =
  .client_id, exactly that scope, and exactly one client credential:
  client_secret = .client_secret (a service principal; it holds '+', '/'
  and '=', so it must be URL-encoded), or client_assertion_type =
  urn:ietf:params:oauth:client-assertion-type:jwt-bearer with
  client_assertion = .federated_token (workload identity: the federated
  token file's content; rotate_federated_token() makes a new one). A
  refusal is Entra's JSON (error, error_description with its AADSTS code and
  Entra's Trace ID / Correlation ID / Timestamp lines, error_codes,
  timestamp, trace_id, correlation_id, error_uri) with Entra's status: 401
  invalid_client for a wrong or missing client secret, 400 invalid_request,
  unauthorized_client, unsupported_grant_type or invalid_scope otherwise.
  The answer is {token_type: Bearer, expires_in, ext_expires_in,
  access_token}. With .entra_down set it answers 503 temporarily_unavailable
  to everything (an outage, not a violation).
- App Service / Container Apps managed identity (IDENTITY_ENDPOINT =
  .identity_endpoint = .url + '/msi/token'): GET with api-version=2019-08-01,
  that resource, client_id = .client_id optionally (a user-assigned
  identity), nothing else in the query, and X-IDENTITY-HEADER =
  .identity_header; the answer {access_token, expires_on (epoch seconds, a
  string), resource, token_type, client_id}; a refusal in App Service's
  shape {statusCode, message, correlationId} (a wrong header 401, anything
  else 400).
- the VM's instance metadata service (AZURE_POD_IDENTITY_AUTHORITY_HOST =
  .url): GET /metadata/identity/oauth2/token with api-version=2018-02-01,
  that resource, client_id = .client_id optionally, nothing else, the header
  Metadata: true (else 400 "Required metadata header not specified") and no
  X-Forwarded-For (IMDS refuses what a proxy forwarded); the answer
  {access_token, client_id, expires_in, expires_on, ext_expires_in,
  not_before, resource, token_type}, numbers as strings as IMDS sends them;
  errors {error, error_description}. With .has_identity False it answers
  400 invalid_request "Identity not found", as a VM without a managed
  identity does: not a violation.
Tokens are minted by the Foundry fake given at construction
(FoundryFake.mint), valid for .ttl seconds. Every request is counted per
endpoint in .counts ('entra', 'appservice', 'imds', and 'other' for any
other path; a token the token endpoint grants also as 'entra-secret' or
'entra-assertion'), logged in .requests without its secrets ({endpoint,
method, path, params, status}), and a refused one is recorded in
.violations, a wrong client secret or assertion too: a test that provokes
one takes it with pop_violations(). tenant_id, client_id, client_secret,
federated_token and identity_header are random per fake; reset() clears
the counts, the log, the violations, and puts ttl (3599), has_identity
(True) and entra_down (False) back."""
import base64
import json
import secrets
import time
import uuid
from datetime import datetime, timezone
from urllib.parse import parse_qs, urlsplit

from ._server import FakeHandler, FakeServer

RESOURCE = 'https://cognitiveservices.azure.com'
SCOPE = RESOURCE + '/.default'
JWT_BEARER = 'urn:ietf:params:oauth:client-assertion-type:jwt-bearer'
FORM = 'application/x-www-form-urlencoded'
ENTRA_TOKEN_TAIL = '/oauth2/v2.0/token'
APPSERVICE_PATH = '/msi/token'
IMDS_PATH = '/metadata/identity/oauth2/token'
ENTRA_PARAMS = {'grant_type', 'client_id', 'scope', 'client_secret', 'client_assertion_type',
                'client_assertion'}


def _b64(obj):
    return base64.urlsafe_b64encode(json.dumps(obj).encode()).rstrip(b'=').decode()


def federated_token():
    """A token as AKS projects it for a service account (a JWT; the fake
    only compares it)."""
    now = int(time.time())
    return '.'.join([_b64({'alg': 'RS256', 'kid': secrets.token_hex(8)}),
                     _b64({'aud': ['api://AzureADTokenExchange'],
                           'iss': 'https://oidc.prod-aks.azure.com/' + str(uuid.uuid4()) + '/',
                           'sub': 'system:serviceaccount:gateway:mod-claude',
                           'iat': now, 'exp': now + 3600, 'jti': str(uuid.uuid4())}),
                     secrets.token_urlsafe(64)])


class Handler(FakeHandler):

    def _send(self, status, obj, headers=None):
        self.rec['status'] = status
        out = json.dumps(obj).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('content-type', 'application/json; charset=utf-8')
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _refuse(self, status, obj, why):
        self.fake.violation(f'{self.rec["endpoint"]} {self.command} {self.rec["path"]}: {why}')
        self._send(status, obj)

    def _begin(self):
        self.body, _ = self.read_body()
        # the request line's own target: http.server folds a leading '//',
        # which an authority's trailing slash joined badly would make
        target = self.requestline.split(' ')[1] if self.requestline.count(' ') >= 2 \
            else self.path
        u = urlsplit('http://fake' + target)
        if u.path.endswith(ENTRA_TOKEN_TAIL):
            endpoint = 'entra'
        elif u.path == APPSERVICE_PATH:
            endpoint = 'appservice'
        elif u.path == IMDS_PATH:
            endpoint = 'imds'
        else:
            endpoint = 'other'
        self.rec = {'endpoint': endpoint, 'method': self.command, 'path': u.path,
                    'params': None, 'status': None}
        self.fake.count(endpoint)
        self.fake.log(self.rec)
        return endpoint, u

    def _dispatch(self):
        endpoint, u = self._begin()
        if endpoint == 'entra':
            return self._entra(u)
        if endpoint == 'appservice':
            return self._appservice(u)
        if endpoint == 'imds':
            return self._imds(u)
        self._refuse(404, {'error': 'not_found', 'error_description': 'fake: no such path'},
                     'not found')

    do_GET = do_POST = do_PUT = do_DELETE = do_PATCH = _dispatch

    # --- Entra ----------------------------------------------------------------
    def _entra_error(self, status, error, code, text, why=None):
        tid, cid = str(uuid.uuid4()), str(uuid.uuid4())
        now = datetime.now(timezone.utc)
        ts = now.strftime('%Y-%m-%d %H:%M:%SZ')
        stamp = now.strftime('%Y-%m-%d %H:%M:%S.') + f'{now.microsecond:06d}0Z'
        body = {'error': error,
                'error_description': f'AADSTS{code}: {text}\r\nTrace ID: {tid}\r\n'
                                     f'Correlation ID: {cid}\r\nTimestamp: {stamp}',
                'error_codes': [code], 'timestamp': ts, 'trace_id': tid, 'correlation_id': cid,
                'error_uri': f'https://login.microsoftonline.com/error?code={code}'}
        if why is None:
            return self._send(status, body)
        self._refuse(status, body, why)

    def _entra(self, u):
        f = self.fake
        tenant = u.path[:-len(ENTRA_TOKEN_TAIL)]
        if f.entra_down:
            return self._entra_error(503, 'temporarily_unavailable', 90033,
                                     'A transient error has occurred. Please try again.')
        if self.command != 'POST':
            return self._entra_error(400, 'invalid_request', 900561,
                                     'The endpoint only accepts POST, OPTIONS requests. '
                                     f'Received a {self.command} request.', 'not a POST')
        if tenant != '/' + f.tenant_id:
            return self._entra_error(400, 'invalid_request', 90002,
                                     f"Tenant '{tenant.lstrip('/')}' not found. Check to make "
                                     'sure you have the correct tenant ID and are signing into '
                                     'the correct cloud.', f'unknown tenant path {tenant!r}')
        ctype = (self.headers.get('content-type') or '').split(';')[0].strip().lower()
        try:
            form = parse_qs(self.body.decode(), keep_blank_values=True, strict_parsing=True) \
                if ctype == FORM and self.body else {}
        except (UnicodeDecodeError, ValueError):
            form = {}
        self.rec['params'] = {k: (['<redacted>'] * len(v)
                                  if k in ('client_secret', 'client_assertion') else v)
                              for k, v in form.items()}
        if ctype != FORM or not form:
            return self._entra_error(400, 'invalid_request', 900144,
                                     "The request body must contain the following parameter: "
                                     "'grant_type'.", f'not a form (content-type {ctype!r})')
        twice = sorted(k for k, v in form.items() if len(v) != 1)
        if twice:
            return self._entra_error(400, 'invalid_request', 900144,
                                     f'Duplicate parameters {twice}.', f'parameters twice {twice}')
        form = {k: v[0] for k, v in form.items()}
        if self.headers.get('authorization') is not None:
            return self._entra_error(400, 'invalid_request', 900144,
                                     'The client credential goes in the request body.',
                                     'an Authorization header on a token request')
        for k in ('grant_type', 'client_id', 'scope'):
            if not form.get(k):
                return self._entra_error(400, 'invalid_request', 900144,
                                         'The request body must contain the following '
                                         f"parameter: '{k}'.", f'{k} missing')
        if form['grant_type'] != 'client_credentials':
            return self._entra_error(400, 'unsupported_grant_type', 70003,
                                     'The app requested an unsupported grant type '
                                     f"'{form['grant_type']}'.", 'grant_type')
        if form['client_id'] != f.client_id:
            return self._entra_error(400, 'unauthorized_client', 700016,
                                     f"Application with identifier '{form['client_id']}' was "
                                     f"not found in the directory '{f.tenant_id}'. This can "
                                     'happen if the application has not been installed by the '
                                     'administrator of the tenant or consented to by any user '
                                     'in the tenant. You may have sent your authentication '
                                     'request to the wrong tenant.', 'client_id')
        if form['scope'] != SCOPE:
            return self._entra_error(400, 'invalid_scope', 1002012,
                                     f"The provided value for scope {form['scope']} is not "
                                     'valid. Client credential flows must have a scope value '
                                     'with /.default suffixed to the resource identifier '
                                     '(application ID URI).', f"scope {form['scope']!r}")
        extra = sorted(set(form) - ENTRA_PARAMS)
        if extra:
            return self._entra_error(400, 'invalid_request', 900144,
                                     f'Unexpected parameters {extra}.', f'unexpected {extra}')
        secret = 'client_secret' in form
        assertion = 'client_assertion' in form or 'client_assertion_type' in form
        if secret and assertion:
            return self._entra_error(400, 'invalid_request', 90014,
                                     'Only one client credential may be presented: '
                                     'client_secret or client_assertion.',
                                     'both a secret and an assertion')
        if not secret and not assertion:
            return self._entra_error(401, 'invalid_client', 7000218,
                                     "The request body must contain the following parameter: "
                                     "'client_assertion' or 'client_secret'.",
                                     'no client credential')
        if secret:
            if form['client_secret'] != f.client_secret:
                return self._entra_error(401, 'invalid_client', 7000215,
                                         'Invalid client secret provided. Ensure the secret '
                                         'being sent in the request is the client secret value, '
                                         'not the client secret ID, for a secret added to app '
                                         f"'{f.client_id}'.", 'wrong client_secret')
            grant = 'entra-secret'
        else:
            if form.get('client_assertion_type') != JWT_BEARER:
                return self._entra_error(400, 'invalid_request', 50027,
                                         'Invalid client_assertion_type '
                                         f"'{form.get('client_assertion_type')}'.",
                                         'client_assertion_type')
            if form.get('client_assertion') != f.federated_token:
                return self._entra_error(400, 'invalid_request', 70021,
                                         'No matching federated identity record found for '
                                         'presented assertion.', 'wrong client_assertion')
            grant = 'entra-assertion'
        f.count(grant)
        ttl = f.ttl
        self._send(200, {'token_type': 'Bearer', 'expires_in': ttl, 'ext_expires_in': ttl,
                         'access_token': f.foundry.mint(ttl)})

    # --- managed identity -----------------------------------------------------
    def _mi_query(self, u, api_version, refuse):
        """The query's parameters, or None after refusing it."""
        try:
            q = parse_qs(u.query, keep_blank_values=True, strict_parsing=bool(u.query))
        except ValueError:
            q = {}
        self.rec['params'] = q
        twice = sorted(k for k, v in q.items() if len(v) != 1)
        if twice:
            return refuse(400, f'parameters twice {twice}')
        q = {k: v[0] for k, v in q.items()}
        extra = sorted(set(q) - {'api-version', 'resource', 'client_id'})
        if extra:
            return refuse(400, f'unexpected query parameters {extra}')
        if q.get('api-version') != api_version:
            return refuse(400, f"api-version must be {api_version}, not {q.get('api-version')!r}")
        if q.get('resource') != RESOURCE:
            return refuse(400, f"AADSTS500011: The resource principal named "
                               f"{q.get('resource')} was not found in the tenant.")
        return q

    def _appservice(self, u):
        f = self.fake

        def refuse(status, message):
            self._refuse(status, {'statusCode': status, 'message': message,
                                  'correlationId': str(uuid.uuid4())}, message)

        if self.command != 'GET':
            return refuse(405, 'The requested resource does not support http method '
                               f"'{self.command}'.")
        q = self._mi_query(u, '2019-08-01', refuse)
        if q is None:
            return
        if self.headers.get('x-identity-header') != f.identity_header:
            return refuse(401, 'X-IDENTITY-HEADER missing or invalid.')
        if 'client_id' in q and q['client_id'] != f.client_id:
            return refuse(400, 'Unable to load the proper Managed Identity.')
        ttl = f.ttl
        self._send(200, {'access_token': f.foundry.mint(ttl),
                         'expires_on': str(int(time.time()) + ttl), 'resource': RESOURCE,
                         'token_type': 'Bearer', 'client_id': f.client_id})

    def _imds(self, u):
        f = self.fake

        def refuse(status, message, error='invalid_request'):
            self._refuse(status, {'error': error, 'error_description': message}, message)

        if self.command != 'GET':
            return refuse(405, 'Method not allowed', 'method_not_allowed')
        if self.headers.get('x-forwarded-for') is not None:
            return refuse(400, 'Request contains X-Forwarded-For header')
        if (self.headers.get('metadata') or '').lower() != 'true':
            return refuse(400, 'Required metadata header not specified')
        q = self._mi_query(u, '2018-02-01', refuse)
        if q is None:
            return
        if not f.has_identity:
            return self._send(400, {'error': 'invalid_request',
                                    'error_description': 'Identity not found'})
        if 'client_id' in q and q['client_id'] != f.client_id:
            return refuse(400, 'Identity not found')
        ttl, now = f.ttl, int(time.time())
        self._send(200, {'access_token': f.foundry.mint(ttl), 'client_id': f.client_id,
                         'expires_in': str(ttl), 'expires_on': str(now + ttl),
                         'ext_expires_in': str(ttl), 'not_before': str(now - 300),
                         'resource': RESOURCE, 'token_type': 'Bearer'})


class AzureIdentityFake(FakeServer):
    handler = Handler

    def __init__(self, foundry, **kw):
        self.foundry = foundry
        self.tenant_id = str(uuid.uuid4())
        self.client_id = str(uuid.uuid4())
        # as the portal makes them, plus characters a form must encode
        self.client_secret = secrets.token_urlsafe(3)[:3] + '8Q~' + secrets.token_urlsafe(27) \
            + '+/='
        self.identity_header = str(uuid.uuid4())
        self.federated_token = federated_token()
        super().__init__(**kw)
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.violations = []
            self.requests = []
        self.ttl = 3599
        self.has_identity = True
        self.entra_down = False

    @property
    def identity_endpoint(self):
        """What App Service and Container Apps put in IDENTITY_ENDPOINT."""
        return self.url + APPSERVICE_PATH

    def rotate_federated_token(self):
        """A new federated token, the only one accepted from now on."""
        self.federated_token = federated_token()
        return self.federated_token

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def log(self, rec):
        with self.lock:
            self.requests.append(rec)

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def pop_violations(self):
        """The violations so far, forgotten (for a test that provoked them)."""
        with self.lock:
            out, self.violations = self.violations, []
        return out

    def n(self, what):
        with self.lock:
            return self.counts.get(what, 0)

    def seen(self, endpoint):
        """The logged requests to one endpoint ('entra', 'appservice', 'imds')."""
        with self.lock:
            return [dict(r) for r in self.requests if r['endpoint'] == endpoint]
