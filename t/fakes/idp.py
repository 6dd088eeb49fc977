"""IdpFake: an OpenID Connect provider for mod_auth_openidc and the gateway.

Discovery, JWKS (an RSA key made at start), an authorize endpoint that logs
the next user in without a form (tests), a token endpoint for the
authorization-code grant (single-use codes, exact redirect_uri, PKCE S256,
client_secret_basic or _post compared in constant time) and the refresh
grant (rotating: a used refresh token is dead), and userinfo. Users can be
changed, deprovisioned or made to fail from tests through /_fake/.
"""
import base64
import copy
import hashlib
import hmac
import json
import secrets
import sys
import time
from urllib.parse import parse_qs, unquote, urlencode, urlsplit

import jwt
from cryptography.hazmat.primitives.asymmetric import rsa
from jwt.algorithms import RSAAlgorithm

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import FakeHandler, FakeServer, serve_main  # noqa: E402
else:
    from ._server import FakeHandler, FakeServer, serve_main

DEFAULT_USERS = {
    'alice': {'sub': 'user-alice', 'email': 'alice@example.com', 'email_verified': True,
              'name': 'Alice Example', 'groups': ['eng', 'claude-users']},
    'bob': {'sub': 'user-bob', 'email': 'bob@example.com', 'email_verified': True,
            'name': 'Bob Example', 'groups': ['sales']},
}


class Handler(FakeHandler):

    def _q(self):
        u = urlsplit(self.path)
        return u.path, {k: v[0] for k, v in parse_qs(u.query).items()}

    def _redirect(self, location):
        self.send_response(302)
        self.send_header('location', location)
        self.send_header('content-length', '0')
        self.end_headers()

    def do_GET(self):
        path, q = self._q()
        f = self.fake
        f.record('GET', path, q)
        if path == '/.well-known/openid-configuration':
            b = f.url
            return self.send_json(200, {
                'issuer': b, 'authorization_endpoint': b + '/authorize',
                'token_endpoint': b + '/token', 'userinfo_endpoint': b + '/userinfo',
                'jwks_uri': b + '/jwks', 'end_session_endpoint': b + '/logout',
                'response_types_supported': ['code'], 'subject_types_supported': ['public'],
                'id_token_signing_alg_values_supported': ['RS256'],
                'scopes_supported': ['openid', 'email', 'profile', 'offline_access'],
                'token_endpoint_auth_methods_supported': ['client_secret_basic',
                                                          'client_secret_post'],
                'code_challenge_methods_supported': ['S256'],
                'grant_types_supported': ['authorization_code', 'refresh_token'],
                'claims_supported': ['sub', 'email', 'email_verified', 'name', 'groups']})
        if path == '/jwks':
            k = json.loads(RSAAlgorithm.to_jwk(f.key.public_key()))
            k.update(kid=f.kid, use='sig', alg='RS256')
            return self.send_json(200, {'keys': [k]})
        if path == '/authorize':
            return self._authorize(q)
        if path == '/userinfo':
            return self._userinfo()
        if path == '/_fake/requests':
            return self.send_json(200, f.requests)
        return self.send_json(404, {'error': 'not_found'})

    def _authorize(self, q):
        f = self.fake
        bad = None
        if q.get('client_id') != f.client_id:
            bad = 'unknown client_id'
        elif q.get('redirect_uri') not in f.redirect_uris:
            bad = 'redirect_uri not registered'
        elif q.get('response_type') != 'code':
            bad = 'response_type must be code'
        elif 'openid' not in q.get('scope', '').split():
            bad = 'scope must contain openid'
        elif not q.get('state'):
            bad = 'state missing'
        elif q.get('code_challenge') and q.get('code_challenge_method') != 'S256':
            bad = 'only S256 PKCE'
        if bad:
            f.violation(bad)
            return self.send_json(400, {'error': 'invalid_request', 'error_description': bad})
        username = q.get('login_hint') or f.login_as
        if username in f.gone or username not in f.users:
            return self._redirect(q['redirect_uri'] + '?' + urlencode(
                {'error': 'access_denied', 'state': q['state']}))
        code = secrets.token_urlsafe(24)
        with f.lock:
            f.codes[code] = {'user': username, 'nonce': q.get('nonce'),
                             'redirect_uri': q['redirect_uri'],
                             'challenge': q.get('code_challenge'), 'at': time.time()}
        self._redirect(q['redirect_uri'] + '?' + urlencode(
            {'code': code, 'state': q['state'], 'iss': f.url}))

    def _userinfo(self):
        f = self.fake
        auth = self.headers.get('authorization', '')
        user = f.access.get(auth[7:]) if auth.startswith('Bearer ') else None
        if user is None or user in f.gone:
            return self.send_json(401, {'error': 'invalid_token'})
        return self.send_json(200, f.claims(user))

    def do_POST(self):
        path, _ = self._q()
        body, _ = self.read_body()
        f = self.fake
        if path.startswith('/_fake/'):
            return self._control(path, json.loads(body or b'{}'))
        f.record('POST', path, {})
        if path == '/userinfo':
            return self._userinfo()
        if path != '/token':
            return self.send_json(404, {'error': 'not_found'})
        if f.fail_token:
            st = f.fail_token
            if st == 'hang':
                time.sleep(30)
                return
            return self.send_json(int(st), {'error': 'server_error'})
        if not (self.headers.get('content-type') or '').startswith(
                'application/x-www-form-urlencoded'):
            f.violation('token request not form-encoded')
            return self.send_json(400, {'error': 'invalid_request'})
        form = {k: v[0] for k, v in parse_qs(body.decode()).items()}
        cid, sec = form.get('client_id'), form.get('client_secret')
        auth = self.headers.get('authorization', '')
        if auth.startswith('Basic '):
            cid, _, sec = base64.b64decode(auth[6:]).decode().partition(':')
            cid, sec = unquote(cid), unquote(sec)
        if cid != f.client_id or not hmac.compare_digest((sec or '').encode(),
                                                         f.client_secret.encode()):
            f.violation('bad client authentication')
            return self.send_json(401, {'error': 'invalid_client'})
        grant = form.get('grant_type')
        if grant == 'authorization_code':
            with f.lock:
                c = f.codes.pop(form.get('code', ''), None)
            if c is None or time.time() - c['at'] > 60:
                return self.send_json(400, {'error': 'invalid_grant'})
            if form.get('redirect_uri') != c['redirect_uri']:
                f.violation('redirect_uri differs from the authorize request')
                return self.send_json(400, {'error': 'invalid_grant'})
            if c['challenge']:
                v = base64.urlsafe_b64encode(hashlib.sha256(
                    form.get('code_verifier', '').encode()).digest()).rstrip(b'=').decode()
                if v != c['challenge']:
                    f.violation('PKCE verifier does not match')
                    return self.send_json(400, {'error': 'invalid_grant'})
            user, nonce = c['user'], c['nonce']
        elif grant == 'refresh_token':
            with f.lock:
                user = f.refresh.pop(form.get('refresh_token', ''), None)
            nonce = None
            if user is None or user in f.gone:
                return self.send_json(400, {'error': 'invalid_grant'})
        else:
            return self.send_json(400, {'error': 'unsupported_grant_type'})
        return self.send_json(200, f.issue(user, nonce), {'cache-control': 'no-store'})

    def _control(self, path, data):
        f = self.fake
        with f.lock:
            if path == '/_fake/reset':
                f.reset_state()
            elif path == '/_fake/users':
                f.users[data['username']] = data['claims']
            elif path == '/_fake/deprovision':
                f.gone.add(data['username'])
            elif path == '/_fake/login_as':
                f.login_as = data['username']
            elif path == '/_fake/fail':
                f.fail_token = data.get('token')
            else:
                return self.send_json(404, {'error': 'no such control'})
        return self.send_json(200, {'ok': True})


class IdpFake(FakeServer):
    handler = Handler

    def __init__(self, client_id='mod-claude', client_secret='secret', redirect_uris=(),
                 users=None, **kw):
        self.client_id = client_id
        self.client_secret = client_secret
        self.redirect_uris = list(redirect_uris)
        self.initial_users = copy.deepcopy(users or DEFAULT_USERS)
        self.key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.kid = secrets.token_hex(4)
        self._requests = []
        self.violations = []
        super().__init__(**kw)
        self.reset_state()

    def reset_state(self):
        self.users = copy.deepcopy(self.initial_users)
        self.codes, self.refresh, self.access = {}, {}, {}
        self.gone = set()
        self.login_as = 'alice'
        self.fail_token = None

    def reset(self):
        with self.lock:
            self.reset_state()

    def record(self, method, path, query):
        with self.lock:
            self._requests.append({'method': method, 'path': path, 'query': query,
                                   'at': time.time()})

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    @property
    def requests(self):
        with self.lock:
            return list(self._requests)

    def claims(self, user):
        return dict(self.users[user])

    def issue(self, user, nonce):
        now = int(time.time())
        claims = dict(self.claims(user), iss=self.url, aud=self.client_id, iat=now,
                      exp=now + 300, auth_time=now)
        if nonce:
            claims['nonce'] = nonce
        id_token = jwt.encode(claims, self.key, algorithm='RS256', headers={'kid': self.kid})
        access, rt = secrets.token_urlsafe(24), secrets.token_urlsafe(32)
        with self.lock:
            self.access[access] = user
            self.refresh[rt] = user
        return {'access_token': access, 'token_type': 'Bearer', 'expires_in': 300,
                'refresh_token': rt, 'id_token': id_token}


if __name__ == '__main__':
    def make(args, rest):
        def opt(name, default=None):
            return rest[rest.index(name) + 1] if name in rest else default
        uris = [rest[i + 1] for i, a in enumerate(rest) if a == '--redirect-uri']
        return IdpFake(client_id=opt('--client-id', 'mod-claude'),
                       client_secret=opt('--client-secret', 'secret'), redirect_uris=uris,
                       port=args.port, verbose=args.verbose)
    serve_main(make)
