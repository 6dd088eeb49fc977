"""AnthropicWifFake: the Anthropic API with Workload Identity Federation, strict.

Anthropic's workload identity federation lets a workload with an OIDC token
from its platform (a Kubernetes projected service-account token, a CI job's
token) trade it for a short-lived access token, without any API key. This
fake is the AnthropicFake (its Messages API, replies, "_fake" behaviours,
POST /_fake/script, request recording) with that token endpoint and that
credential:

POST /v1/oauth/token (RFC 7523 jwt-bearer), checked as the real endpoint
would, in this order:
- no query; no credential beside it (no x-api-key, no Authorization);
- content-type application/json;
- exactly one anthropic-beta header, whose value is exactly
  "oidc-federation-2026-04-01" (that beta, alone);
- a JSON object body with exactly the keys grant_type, assertion,
  federation_rule_id, organization_id, and service_account_id iff
  .service_account_id is set, workspace_id iff .workspace_id is set, all
  strings;
- grant_type "urn:ietf:params:oauth:grant-type:jwt-bearer"
  (else 400 unsupported_grant_type);
- federation_rule_id == .rule_id and organization_id == .organization_id
  (else 401 invalid_client); service_account_id / workspace_id equal to the
  fake's (else 400 invalid_grant);
- assertion == .assertion (else 400 invalid_grant; a trailing newline is
  named as such).
Every refusal is answered in RFC 6749 section 5.2's shape
{"error": ..., "error_description": ...} and recorded as a violation; but
with .deny set, a well-formed exchange is refused 400 invalid_grant as a
federation rule that does not match the token would refuse it: a scenario,
not a violation. A success mints an access token "sk-ant-oat01-...", valid
.ttl seconds (default 3600), answered as RFC 6749 section 5.1 says:
{"access_token", "token_type": "Bearer", "expires_in": .ttl}, with
Cache-Control: no-store.

/v1/messages and /v1/messages/count_tokens: exactly one
Authorization: Bearer <a minted token still valid> (a missing, unknown or
expired one: 401 authentication_error in Anthropic's envelope; expired:
the API's "OAuth token has expired" sentence), no x-api-key (400), and an
anthropic-beta (all such headers together, comma-separated) listing
oauth-2025-04-20 (else 400 invalid_request_error); then the AnthropicFake's
own checks and answers. Each record gets 'bearer' (the token sent, or None)
and 'betas' (the list of betas sent).

.assertion is the identity token the fake accepts: identity_token_file(path)
writes it with a trailing newline, as a platform's token file may have;
rotate_assertion(path) makes a new one, accepts only it from now on and
writes it in place. expire_tokens() expires every minted token (revoked
behind the gateway's back). Exchanges are recorded in .exchanges ({path,
query, headers, json, status, error, token, violations, received}) and
counted in .counts ('exchange' for every request to the endpoint,
'exchange-ok', 'exchange-refused'; n(what) reads one); .violations lists
every violation of both endpoints; reset() forgets the records and puts
deny and ttl back (the minted tokens and the assertion stay valid).
"""
import base64
import json
import secrets
import sys
import time
import types
from urllib.parse import urlsplit

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import serve_main  # noqa: E402
    from fakes.anthropic import AnthropicFake, Handler as AnthropicHandler  # noqa: E402
else:
    from ._server import serve_main
    from .anthropic import AnthropicFake, Handler as AnthropicHandler

TOKEN_PATH = '/v1/oauth/token'
FEDERATION_BETA = 'oidc-federation-2026-04-01'
OAUTH_BETA = 'oauth-2025-04-20'
GRANT_TYPE = 'urn:ietf:params:oauth:grant-type:jwt-bearer'
TOKEN_PREFIX = 'sk-ant-oat01-'
EXPIRED = 'OAuth token has expired. Please obtain a new token or refresh your existing token.'
UNKNOWN = 'Invalid bearer token'
DENIED = 'the identity token does not satisfy the federation rule'
REQUIRED_KEYS = ('grant_type', 'assertion', 'federation_rule_id', 'organization_id')

# the AnthropicFake's own checks, run with no credential of its own to look for
_MESSAGES_ONLY = types.SimpleNamespace(api_key=None, auth='x-api-key')


def _b64(obj):
    raw = json.dumps(obj, separators=(',', ':')).encode()
    return base64.urlsafe_b64encode(raw).rstrip(b'=').decode()


def make_assertion(issuer='https://kubernetes.default.svc.cluster.local',
                   subject='system:serviceaccount:claude:gateway',
                   audience='https://api.anthropic.com', lifetime=3600):
    """A realistic-looking OIDC JWT (a Kubernetes projected token's claims),
    with a random signature: the fake compares it, nobody verifies it."""
    now = int(time.time())
    header = {'alg': 'RS256', 'kid': 'fake-' + secrets.token_hex(8), 'typ': 'JWT'}
    claims = {'aud': [audience], 'exp': now + lifetime, 'iat': now, 'iss': issuer,
              'jti': secrets.token_hex(16), 'nbf': now, 'sub': subject,
              'kubernetes.io': {'namespace': 'claude',
                                'serviceaccount': {'name': 'gateway',
                                                   'uid': secrets.token_hex(16)}}}
    sig = base64.urlsafe_b64encode(secrets.token_bytes(256)).rstrip(b'=').decode()
    return f'{_b64(header)}.{_b64(claims)}.{sig}'


def write_token_file(path, token, newline=True):
    """As the kubelet does: the new content in place at once, readable by the
    server's user."""
    import os
    with open(path + '.tmp', 'w') as f:
        f.write(token + ('\n' if newline else ''))
    os.chmod(path + '.tmp', 0o644)
    os.replace(path + '.tmp', path)
    return path


class Handler(AnthropicHandler):

    def do_POST(self):
        u = urlsplit(self.path)
        if u.path == TOKEN_PATH:
            return self._exchange(u)
        return super().do_POST()

    def _oauth_error(self, status, error, description):
        return self.send_json(status, {'error': error, 'error_description': description},
                              {'cache-control': 'no-store', 'pragma': 'no-cache'})

    def _exchange(self, u):
        body, framing = self.read_body()
        rec = {'method': 'POST', 'path': u.path, 'query': u.query,
               'headers': [(k.lower(), v) for k, v in self.headers.items()],
               'framing': framing, 'json': None, 'status': None, 'error': None,
               'token': None, 'received': time.time(), 'violations': []}
        fake = self.fake
        with fake.lock:
            fake._exchanges.append(rec)
            fake._count('exchange')
        status, error, description = fake.check_exchange(self.headers, u.query, body, rec)
        if status:
            rec['status'], rec['error'] = status, error
            with fake.lock:
                fake._count('exchange-refused')
            return self._oauth_error(status, error, description)
        with fake.lock:
            if fake.deny:
                rec['status'], rec['error'] = 400, 'invalid_grant'
                fake._count('exchange-refused')
                deny = True
            else:
                deny = False
                token = TOKEN_PREFIX + secrets.token_urlsafe(72) + 'AA'
                ttl = fake.ttl
                fake._tokens[token] = time.time() + ttl
                rec['status'], rec['token'] = 200, token
                fake._count('exchange-ok')
        if deny:
            return self._oauth_error(400, 'invalid_grant', DENIED)
        return self.send_json(200, {'access_token': token, 'token_type': 'Bearer',
                                    'expires_in': ttl},
                              {'cache-control': 'no-store', 'pragma': 'no-cache'})


class AnthropicWifFake(AnthropicFake):
    handler = Handler

    def __init__(self, rule_id='fdrl_01FakeFederationRule0001',
                 organization_id='0f8b7c2e-4a1d-4e59-9c3b-6d2a5e8f1b70',
                 service_account_id=None, workspace_id=None, assertion=None, ttl=3600, **kw):
        self.rule_id = rule_id
        self.organization_id = organization_id
        self.service_account_id = service_account_id
        self.workspace_id = workspace_id
        self.assertion = assertion or make_assertion()
        self._assertions = [self.assertion]
        self.default_ttl = ttl
        self.ttl = ttl
        self.deny = False
        self._tokens = {}  # minted access token -> expiry (epoch seconds)
        self._exchanges = []
        self._counts = {}
        super().__init__(api_key=None, **kw)

    # ---- state ----------------------------------------------------------------------------
    def _count(self, what):  # under self.lock
        self._counts[what] = self._counts.get(what, 0) + 1

    @property
    def counts(self):
        with self.lock:
            return dict(self._counts)

    def n(self, what):
        with self.lock:
            return self._counts.get(what, 0)

    @property
    def exchanges(self):
        with self.lock:
            return [dict(r) for r in self._exchanges]

    @property
    def violations(self):
        with self.lock:
            return [v for rec in self._exchanges + self._requests for v in rec['violations']]

    @property
    def tokens(self):
        """Every access token minted so far (to check none is logged)."""
        with self.lock:
            return list(self._tokens)

    @property
    def assertions(self):
        """Every identity token the fake has accepted (to check none is logged)."""
        with self.lock:
            return list(self._assertions)

    def live(self, token):
        with self.lock:
            return self._tokens.get(token, 0) > time.time()

    def expire_tokens(self):
        """Every minted token expired (revoked behind the gateway's back)."""
        with self.lock:
            for t in self._tokens:
                self._tokens[t] = 0

    def reset(self):
        super().reset()
        with self.lock:
            self._exchanges.clear()
            self._counts = {}
            self.deny = False
            self.ttl = self.default_ttl

    def identity_token_file(self, path, newline=True):
        """Write the identity token the fake accepts to path (a trailing newline
        by default); the path."""
        return write_token_file(path, self.assertion, newline)

    def rotate_assertion(self, path=None, **claims):
        """A new identity token, the only one accepted from now on, written to
        path when given; the new token."""
        new = make_assertion(**claims)
        with self.lock:
            self.assertion = new
            self._assertions.append(new)
        if path is not None:
            write_token_file(path, new)
        return new

    # ---- the token endpoint ---------------------------------------------------------------
    def check_exchange(self, headers, query, body, rec):
        """(0, None, None), or (status, RFC 6749 error code, description) for an
        exchange the real endpoint would refuse; refusals are violations."""
        status, error, description = self._check_exchange(headers, query, body, rec)
        if status:
            rec['violations'].append(f'{error}: {description}')
        return status, error, description

    def _check_exchange(self, headers, query, body, rec):
        if query:
            return 400, 'invalid_request', f'unexpected query {query}'
        creds = [k for k in ('authorization', 'x-api-key') if headers.get_all(k)]
        if creds:
            return 400, 'invalid_request', \
                f'no credential goes with a token exchange: {", ".join(creds)}'
        if (headers.get('content-type') or '').split(';')[0].strip().lower() != \
                'application/json':
            return 400, 'invalid_request', 'content-type must be application/json'
        betas = headers.get_all('anthropic-beta') or []
        if len(betas) != 1 or betas[0].strip() != FEDERATION_BETA:
            return 400, 'invalid_request', \
                f'anthropic-beta must be exactly {FEDERATION_BETA}, not {betas}'
        try:
            j = json.loads(body)
        except ValueError:
            return 400, 'invalid_request', 'body is not JSON'
        rec['json'] = j
        if not isinstance(j, dict):
            return 400, 'invalid_request', 'body must be a JSON object'
        want = set(REQUIRED_KEYS)
        if self.service_account_id is not None:
            want.add('service_account_id')
        if self.workspace_id is not None:
            want.add('workspace_id')
        missing, extra = sorted(want - set(j)), sorted(set(j) - want)
        if missing or extra:
            return 400, 'invalid_request', f'missing {missing}, unexpected {extra}'
        bad = sorted(k for k, v in j.items() if not isinstance(v, str))
        if bad:
            return 400, 'invalid_request', f'not strings: {bad}'
        if j['grant_type'] != GRANT_TYPE:
            return 400, 'unsupported_grant_type', f'grant_type {j["grant_type"]}'
        if j['federation_rule_id'] != self.rule_id:
            return 401, 'invalid_client', f'unknown federation rule {j["federation_rule_id"]}'
        if j['organization_id'] != self.organization_id:
            return 401, 'invalid_client', \
                f'federation rule not in organization {j["organization_id"]}'
        for key, mine in (('service_account_id', self.service_account_id),
                          ('workspace_id', self.workspace_id)):
            if mine is not None and j[key] != mine:
                return 400, 'invalid_grant', f'{key} {j[key]} is not allowed by the rule'
        with self.lock:
            expected = self.assertion
        if j['assertion'] != expected:
            # never the assertion itself in the description: the gateway logs it
            if j['assertion'].rstrip('\r\n') == expected:
                return 400, 'invalid_grant', 'assertion has a trailing newline'
            if j['assertion'] in self.assertions:
                return 400, 'invalid_grant', 'assertion is an identity token no longer valid'
            return 400, 'invalid_grant', 'assertion is not a valid identity token'
        return 0, None, None

    # ---- the Messages API -----------------------------------------------------------------
    def check(self, headers, path, body, rec):
        """(status, violation) for a Messages request the real API would refuse."""
        rec['bearer'] = None
        betas = []
        for value in headers.get_all('anthropic-beta') or []:
            betas += [b.strip() for b in value.split(',') if b.strip()]
        rec['betas'] = betas
        if headers.get_all('x-api-key'):
            return 400, 'x-api-key beside a workload identity access token'
        auths = headers.get_all('authorization') or []
        if len(auths) != 1:
            return 401, f'{len(auths)} Authorization headers: one Bearer access token required'
        if not auths[0].startswith('Bearer '):
            return 401, 'Authorization is not a Bearer token'
        token = auths[0][len('Bearer '):]
        rec['bearer'] = token
        with self.lock:
            expires = self._tokens.get(token)
        if expires is None:
            return 401, UNKNOWN
        if expires <= time.time():
            return 401, EXPIRED
        if OAUTH_BETA not in betas:
            return 400, f'anthropic-beta must list {OAUTH_BETA} with an OAuth access token'
        return AnthropicFake.check(_MESSAGES_ONLY, headers, path, body, rec)


if __name__ == '__main__':
    import os

    def make(args, rest):
        def opt(name, env, default=None):
            if name in rest:
                return rest[rest.index(name) + 1]
            return os.environ.get(env, default)
        fake = AnthropicWifFake(
            rule_id=opt('--rule-id', 'FAKE_ANTHROPIC_RULE_ID', 'fdrl_01FakeFederationRule0001'),
            organization_id=opt('--organization-id', 'FAKE_ANTHROPIC_ORGANIZATION_ID',
                                '0f8b7c2e-4a1d-4e59-9c3b-6d2a5e8f1b70'),
            service_account_id=opt('--service-account-id', 'FAKE_ANTHROPIC_SERVICE_ACCOUNT_ID'),
            workspace_id=opt('--workspace-id', 'FAKE_ANTHROPIC_WORKSPACE_ID'),
            port=args.port, verbose=args.verbose)
        token_file = opt('--identity-token-file', 'FAKE_ANTHROPIC_IDENTITY_TOKEN_FILE')
        if token_file:
            fake.identity_token_file(token_file)
        return fake
    serve_main(make)
