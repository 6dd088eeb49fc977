"""VertexFake: Google Cloud Vertex AI (Agent Platform) for Anthropic models, strict.

Two parts, as in Google Cloud. The OAuth token endpoint (POST /token) takes
the JWT-bearer grant a service account makes: the RS256 assertion is
verified against the service account's public key (made at start, written
out by service_account_json()), with iss = client_email, aud = token_uri,
scope including cloud-platform, iat near now and exp no later than iat +
3600. It also takes the refresh-token grant of the "authorized_user" file
`gcloud auth application-default login` writes (authorized_user_json()):
a form (application/x-www-form-urlencoded) with this fake's client_id,
client_secret and refresh_token, a scope if any within what gcloud asked
for; a wrong client is 401 invalid_client, a wrong refresh token 400
invalid_grant. Both answer {access_token, expires_in, token_type} and are
counted per grant in .grants; mint(ttl) hands out a token the way the GCE
metadata server does (fakes/gcemeta.py). The prediction
endpoints, POST /v1/projects/{project}/locations/{location}/publishers/
anthropic/models/{model}:rawPredict, :streamRawPredict and
count-tokens:rawPredict, require a live bearer from that endpoint, the
configured project and location, and a body with anthropic_version
"vertex-2023-10-16", no model (count-tokens: a model), no tags, stream true
exactly on :streamRawPredict; anthropic-beta stays a header (without the
request-tags beta). Answers are the Anthropic fake's JSON and SSE, errors
Anthropic-shaped (as Vertex relays the model's) or Google-shaped. Every
request is recorded (with the x-goog-user-project header, the quota project,
as 'user_project'); behaviour is shaped as in the Anthropic fake ("_fake"
in the body, POST /_fake/script), plus google_error and expire_tokens.
"""
import hashlib
import json
import secrets
import sys
import time
from urllib.parse import parse_qs, unquote, urlsplit

import jwt
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import ScriptedFake, serve_main  # noqa: E402
    from fakes.anthropic import ERROR_TYPES, Handler as AnthropicHandler  # noqa: E402
else:
    from ._server import ScriptedFake, serve_main
    from .anthropic import ERROR_TYPES, Handler as AnthropicHandler

ANTHROPIC_VERSION = 'vertex-2023-10-16'
REQUEST_TAGS_BETA = 'request-tags-2026-08-21'
SCOPE = 'https://www.googleapis.com/auth/cloud-platform'
JWT_BEARER = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
FORM = 'application/x-www-form-urlencoded'
# what `gcloud auth application-default login` asks for: a refresh may
# narrow these, never widen them
ADC_SCOPES = ('openid', 'https://www.googleapis.com/auth/userinfo.email', SCOPE,
              'https://www.googleapis.com/auth/sqlservice.login')
GOOGLE_STATUS = {400: 'INVALID_ARGUMENT', 401: 'UNAUTHENTICATED', 403: 'PERMISSION_DENIED',
                 404: 'NOT_FOUND', 429: 'RESOURCE_EXHAUSTED', 500: 'INTERNAL',
                 503: 'UNAVAILABLE', 504: 'DEADLINE_EXCEEDED'}


class Handler(AnthropicHandler):
    """The Anthropic fake's SSE writer and control API, Vertex's paths and auth."""

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == '/_fake/requests':
            return self.send_json(200, self.fake.requests)
        if u.path == '/_fake/stats':
            return self.send_json(200, {'count': self.fake.count})
        return self._google_error(404, 'fake: no such path')

    def _google_error(self, status, message, headers=None):
        return self.send_json(status, {'error': {'code': status, 'message': message,
                                                 'status': GOOGLE_STATUS.get(status, 'UNKNOWN')}},
                              headers)

    def do_POST(self):
        u = urlsplit(self.path)
        body, framing = self.read_body()
        if u.path.startswith('/_fake/'):
            return self._control(u.path, body)
        rec = {'method': 'POST', 'path': u.path, 'query': u.query, 'model': None, 'op': None,
               'headers': [(k.lower(), v) for k, v in self.headers.items()],
               'body_len': len(body), 'body_sha256': hashlib.sha256(body).hexdigest(),
               'framing': framing, 'json': None, 'received': time.time(), 'violations': [],
               'user_project': self.headers.get('x-goog-user-project')}
        with self.fake.lock:
            self.fake._requests.append(rec)
        if u.path == '/token':
            return self._token(body, rec)
        err = self.fake.check_bearer(self.headers)
        if err is not None:
            rec['violations'].append(err)
            return self._google_error(401, 'Request had invalid authentication credentials. '
                                      'Expected OAuth 2 access token, login cookie or other '
                                      'valid authentication credential.')
        err = self.fake.check(u.path, self.headers, body, rec)
        if err is not None:
            status, msg = err
            rec['violations'].append(msg)
            if status == 404:
                return self._google_error(404, msg)
            return self._error(status, msg)
        b = self.fake.next_behaviour(rec['json'])
        if b.get('delay_ms'):
            time.sleep(b['delay_ms'] / 1000)
        if b.get('hang'):
            self.fake._hang.wait()
            self.close_connection = True
            return
        if b.get('status') and b['status'] != 200:
            st = b['status']
            if b.get('google_error'):
                return self._google_error(st, b.get('error_message', f'fake: status {st}'),
                                          b.get('headers'))
            return self.send_json(st, b.get('error_body') or {
                'type': 'error', 'error': {'type': ERROR_TYPES.get(st, 'api_error'),
                                           'message': b.get('error_message',
                                                            f'fake: status {st}')}},
                b.get('headers'))
        if rec['op'] == 'count-tokens':
            return self.send_json(200, {'input_tokens': max(1, len(body) // 4)})
        n = self.fake.count
        usage = {'input_tokens': 12, 'cache_creation_input_tokens': 0,
                 'cache_read_input_tokens': 0, 'output_tokens': 7}
        usage.update(b.get('usage') or {})
        model = rec['model'].split('@')[0]
        text = b.get('text', 'Hello from the fake Vertex AI')
        headers = {'x-vertex-ai-internal-prediction-backend': 'fake'}
        headers.update(b.get('headers') or {})
        if rec['op'] == 'rawPredict':
            return self.send_json(200, {
                'id': f'msg_vrtx_fake_{n}', 'type': 'message', 'role': 'assistant',
                'model': model, 'content': [{'type': 'text', 'text': text}],
                'stop_reason': 'end_turn', 'stop_sequence': None, 'usage': usage}, headers)
        self._sse(n, model, text, usage, b, headers)

    def _token(self, body, rec):
        form = {k: v[0] for k, v in parse_qs(body.decode('utf-8', 'replace'),
                                             keep_blank_values=True).items()}
        if form.get('grant_type') == 'refresh_token':
            return self._refresh(form, rec)
        ok, why = self.fake.check_assertion(form)
        if not ok:
            rec['violations'].append(why)
            return self.send_json(400, {'error': 'invalid_grant', 'error_description': why})
        self.fake.granted('jwt-bearer')
        return self.send_json(200, {'access_token': self.fake.mint(3599), 'expires_in': 3599,
                                    'token_type': 'Bearer'})

    def _refresh(self, form, rec):
        """The authorized_user grant, refused the way oauth2.googleapis.com does."""
        f = self.fake
        status, err, why = f.check_refresh(self.headers.get('content-type') or '', form)
        if status != 200:
            rec['violations'].append(why)
            return self.send_json(status, {'error': err, 'error_description': why})
        f.granted('refresh_token')
        return self.send_json(200, {'access_token': f.mint(3599), 'expires_in': 3599,
                                    'scope': form.get('scope') or ' '.join(ADC_SCOPES),
                                    'token_type': 'Bearer'})


class VertexFake(ScriptedFake):
    handler = Handler

    def __init__(self, project='fake-project', location='us-east5',
                 client_email='gateway@fake-project.iam.gserviceaccount.com', **kw):
        self.project = project
        self.location = location
        self.client_email = client_email
        self.private_key_id = secrets.token_hex(20)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._tokens = {}
        # the OAuth client and the user's refresh token of authorized_user()
        self.client_id = (f'{secrets.randbelow(10 ** 12):012d}-{secrets.token_hex(16)}'
                          '.apps.googleusercontent.com')
        self.client_secret = 'GOCSPX-' + secrets.token_urlsafe(21)
        self.refresh_token = '1//0' + secrets.token_urlsafe(72)
        self.grants = {'jwt-bearer': 0, 'refresh_token': 0}
        super().__init__(**kw)

    def reset(self):
        super().reset()
        with self.lock:
            self.grants = {'jwt-bearer': 0, 'refresh_token': 0}

    def granted(self, kind):
        with self.lock:
            self.grants[kind] += 1

    def mint(self, ttl):
        """A new bearer token, valid for ttl seconds (what a grant, or the
        metadata server, hands out)."""
        token = 'ya29.fake-' + secrets.token_urlsafe(24)
        with self.lock:
            self._tokens[token] = time.time() + ttl
        return token

    @property
    def tokens(self):
        """Every bearer token handed out so far (to check none is logged)."""
        with self.lock:
            return list(self._tokens)

    @property
    def token_uri(self):
        return self.url + '/token'

    def service_account(self):
        """The service-account JSON Google issues, pointing at this fake."""
        pem = self.key.private_bytes(serialization.Encoding.PEM,
                                     serialization.PrivateFormat.PKCS8,
                                     serialization.NoEncryption()).decode()
        return {'type': 'service_account', 'project_id': self.project,
                'private_key_id': self.private_key_id, 'private_key': pem,
                'client_email': self.client_email, 'client_id': '100000000000000000001',
                'auth_uri': 'https://accounts.google.com/o/oauth2/auth',
                'token_uri': self.token_uri,
                'auth_provider_x509_cert_url': 'https://www.googleapis.com/oauth2/v1/certs',
                'universe_domain': 'googleapis.com'}

    def service_account_json(self, path):
        with open(path, 'w') as f:
            json.dump(self.service_account(), f, indent=2)
        return path

    def authorized_user(self, quota_project=None):
        """The file `gcloud auth application-default login` writes, with
        token_uri pointing at this fake (google-auth honours it)."""
        au = {'account': '', 'client_id': self.client_id, 'client_secret': self.client_secret,
              'refresh_token': self.refresh_token, 'type': 'authorized_user',
              'universe_domain': 'googleapis.com', 'token_uri': self.token_uri}
        if quota_project is not None:
            au['quota_project_id'] = quota_project
        return au

    def authorized_user_json(self, path, quota_project=None):
        with open(path, 'w') as f:
            json.dump(self.authorized_user(quota_project), f, indent=2)
        return path

    def check_refresh(self, content_type, form):
        """(status, error, reason) for a refresh-token grant; 200 when good."""
        if content_type.split(';')[0].strip().lower() != FORM:
            return 400, 'invalid_request', f'content-type must be {FORM}'
        for k in ('client_id', 'client_secret', 'refresh_token'):
            if not form.get(k):
                return 400, 'invalid_request', f'Missing required parameter: {k}'
        extra = set(form) - {'grant_type', 'client_id', 'client_secret', 'refresh_token',
                             'scope'}
        if extra:
            return 400, 'invalid_request', f'unexpected parameters {sorted(extra)}'
        if form['client_id'] != self.client_id:
            return 401, 'invalid_client', 'The OAuth client was not found.'
        if form['client_secret'] != self.client_secret:
            return 401, 'invalid_client', 'Unauthorized'
        if form['refresh_token'] != self.refresh_token:
            return 400, 'invalid_grant', 'Token has been expired or revoked.'
        if 'scope' in form and not set(form['scope'].split()) <= set(ADC_SCOPES):
            return 400, 'invalid_scope', 'Some requested scopes were invalid.'
        return 200, None, None

    def check_assertion(self, form):
        """(ok, reason) for a token request."""
        if form.get('grant_type') != JWT_BEARER:
            return False, 'unsupported grant_type'
        assertion = form.get('assertion')
        if not assertion:
            return False, 'assertion missing'
        try:
            header = jwt.get_unverified_header(assertion)
            claims = jwt.decode(assertion, self.key.public_key(), algorithms=['RS256'],
                                audience=self.token_uri, issuer=self.client_email,
                                options={'require': ['iss', 'aud', 'iat', 'exp']})
        except jwt.InvalidTokenError as e:
            return False, f'Invalid JWT: {e}'
        if header.get('alg') != 'RS256' or header.get('kid') not in (None, self.private_key_id):
            return False, 'Invalid JWT header'
        if SCOPE not in str(claims.get('scope', '')).split():
            return False, 'scope must include cloud-platform'
        now = time.time()
        if not (now - 300 <= claims['iat'] <= now + 300):
            return False, 'Invalid JWT: iat is not near now'
        if claims['exp'] - claims['iat'] > 3600 or claims['exp'] <= claims['iat']:
            return False, 'Invalid JWT: exp must be within an hour of iat'
        return True, None

    def check_bearer(self, headers):
        auth = headers.get('authorization') or ''
        if not auth.startswith('Bearer '):
            return 'no bearer token'
        with self.lock:
            exp = self._tokens.get(auth[7:])
        if exp is None:
            return 'unknown bearer token'
        if exp < time.time():
            return 'expired bearer token'
        return None

    def expire_tokens(self):
        with self.lock:
            for t in self._tokens:
                self._tokens[t] = 0

    def check(self, path, headers, body, rec):
        """(status, message) for a request Vertex refuses, else None."""
        prefix = f'/v1/projects/{self.project}/locations/{self.location}/publishers/anthropic/models/'
        if not path.startswith(prefix):
            return 404, f'unknown path {path}'
        model, sep, op = unquote(path[len(prefix):]).rpartition(':')
        if not sep or '/' in model or op not in ('rawPredict', 'streamRawPredict'):
            return 404, f'unknown method {path}'
        if model == 'count-tokens':
            if op != 'rawPredict':
                return 404, 'count-tokens takes rawPredict'
            op = 'count-tokens'
        rec['model'], rec['op'] = model, op
        if not (headers.get('content-type') or '').startswith('application/json'):
            return 400, 'content-type must be application/json'
        if REQUEST_TAGS_BETA in [x.strip() for x in (headers.get('anthropic-beta') or '')
                                 .split(',')]:
            return 400, f'invalid beta flag {REQUEST_TAGS_BETA}'
        try:
            j = json.loads(body)
        except ValueError:
            return 400, 'body is not JSON'
        rec['json'] = j
        if not isinstance(j, dict):
            return 400, 'body must be a JSON object'
        if j.get('anthropic_version') != ANTHROPIC_VERSION:
            return 400, f'anthropic_version must be {ANTHROPIC_VERSION}'
        if 'tags' in j:
            return 400, 'tags: Extra inputs are not permitted'
        if op == 'count-tokens':
            if not isinstance(j.get('model'), str):
                return 400, 'count-tokens needs a model'
        elif 'model' in j:
            return 400, 'model: Extra inputs are not permitted (it is in the URL)'
        if not isinstance(j.get('messages'), list):
            return 400, 'messages must be a list'
        if op != 'count-tokens':
            if not isinstance(j.get('max_tokens'), int):
                return 400, 'max_tokens must be an integer'
            if (j.get('stream') is True) != (op == 'streamRawPredict'):
                return 400, 'stream must be true exactly on streamRawPredict'
        return None


if __name__ == '__main__':
    def make(args, rest):
        def opt(name, default=None):
            return rest[rest.index(name) + 1] if name in rest else default
        fake = VertexFake(project=opt('--project', 'fake-project'),
                          location=opt('--location', 'us-east5'),
                          port=args.port, verbose=args.verbose)
        if opt('--service-account-out'):
            fake.service_account_json(opt('--service-account-out'))
        if opt('--authorized-user-out'):
            fake.authorized_user_json(opt('--authorized-user-out'))
        return fake
    serve_main(make)
