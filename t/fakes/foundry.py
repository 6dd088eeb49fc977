"""FoundryFake: Claude in Microsoft Foundry, strict.

Foundry serves the Messages API unchanged under
https://{resource}.services.ai.azure.com/anthropic/v1/messages (and
/count_tokens), with the resource's key in x-api-key, as Anthropic's Foundry
SDKs send it, or a Microsoft Entra token as Authorization: Bearer. So this is
the Anthropic fake (same checks, same replies, same recording and scripting)
behind that path prefix and that credential: a wrong or missing key gets
Azure's 401 shape, any other path a 404, and the model must be one of the
resource's deployment names when they are given. The Entra tokens it takes
are the fixed entra_token given at construction, if any, and those mint(ttl)
hands out (the identity fake, fakes/azureid.py, mints them), each until its
expiry; expire_tokens() expires them all. A bad bearer gets Azure's 401 for
tokens; each served request records which credential it carried
('credential': 'entra' or 'api-key').
"""
import hashlib
import secrets
import sys
import time
from urllib.parse import urlsplit

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import serve_main  # noqa: E402
    from fakes.anthropic import AnthropicFake, Handler as AnthropicHandler  # noqa: E402
else:
    from ._server import serve_main
    from .anthropic import AnthropicFake, Handler as AnthropicHandler

PREFIX = '/anthropic'
AZURE_401 = ('Access denied due to invalid subscription key or wrong API endpoint. Make sure '
             'to provide a valid key for an active subscription and use a correct regional API '
             'endpoint for your resource.')
ENTRA_401 = ('Unauthorized. Access token is missing, invalid, audience is incorrect '
             '(https://cognitiveservices.azure.com), or have expired.')


class _Authenticated:
    """The request's headers, seen as carrying the key (already checked)."""

    def __init__(self, headers, key):
        self.headers, self.key = headers, key

    def get(self, name, default=None):
        if name.lower() == 'x-api-key':
            return self.key
        return self.headers.get(name, default)


class Handler(AnthropicHandler):

    def do_POST(self):
        u = urlsplit(self.path)
        if u.path.startswith('/_fake/'):
            return super().do_POST()
        problem = self.fake.credential_problem(self.headers)
        if problem is not None:
            body, framing = self.read_body()
            rec = {'method': 'POST', 'path': u.path, 'query': u.query,
                   'headers': [(k.lower(), v) for k, v in self.headers.items()],
                   'body_len': len(body), 'body_sha256': hashlib.sha256(body).hexdigest(),
                   'framing': framing, 'json': None, 'received': time.time(),
                   'credential': None, 'violations': [problem]}
            with self.fake.lock:
                self.fake._requests.append(rec)
            bearer = (self.headers.get('authorization') or '').startswith('Bearer ')
            return self.send_json(401, {'error': {'code': '401',
                                                  'message': ENTRA_401 if bearer else AZURE_401}})
        return super().do_POST()


class FoundryFake(AnthropicFake):
    handler = Handler

    def __init__(self, api_key='fake-foundry-key', entra_token=None, deployments=None, **kw):
        self.entra_token = entra_token
        self.deployments = deployments  # None: any model name
        self._entra = {}  # minted Entra token -> when it expires
        super().__init__(api_key=api_key, **kw)

    def mint(self, ttl):
        """A new Entra access token for this resource, valid for ttl seconds
        (what the token endpoint or a managed identity endpoint hands out)."""
        token = 'eyJ0eXAiOiJKV1QiLCJhbGciOiJSUzI1NiJ9.' + secrets.token_urlsafe(48) + '.' + \
            secrets.token_urlsafe(32)
        with self.lock:
            self._entra[token] = time.time() + ttl
        return token

    @property
    def tokens(self):
        """Every Entra token minted so far (to check none is logged)."""
        with self.lock:
            return list(self._entra)

    def expire_tokens(self):
        """Every minted token expired (revoked behind the gateway's back)."""
        with self.lock:
            for t in self._entra:
                self._entra[t] = 0

    def credential_problem(self, headers):
        """None when the request carries a good credential, else what is wrong."""
        auth, exp = headers.get('authorization') or '', None
        if auth.startswith('Bearer '):
            token = auth[len('Bearer '):]
            if self.entra_token is not None and token == self.entra_token:
                return None
            with self.lock:
                exp = self._entra.get(token)
            if exp is not None and exp > time.time():
                return None
        if self.api_key is not None and headers.get('x-api-key') == self.api_key:
            return None
        if auth.startswith('Bearer '):
            return 'unknown Entra token' if exp is None else 'expired Entra token'
        return 'missing or wrong credential'

    def key_ok(self, headers):
        return self.credential_problem(headers) is None

    def credential(self, headers):
        """Which credential a request the handler let through carried."""
        auth = headers.get('authorization') or ''
        if auth.startswith('Bearer ') and self.credential_problem(
                {'authorization': auth}) is None:
            return 'entra'
        return 'api-key'

    def check(self, headers, path, body, rec):
        rec['credential'] = self.credential(headers)
        if not path.startswith(PREFIX + '/v1/'):
            return 404, f'unknown path {path}'
        # the credential was checked by the handler; the rest is the Messages API's
        status, msg = super().check(_Authenticated(headers, self.api_key),
                                    path[len(PREFIX):], body, rec)
        if status == 0 and self.deployments is not None and \
                rec['json'].get('model') not in self.deployments:
            return 404, f"deployment {rec['json'].get('model')} not found"
        return status, msg


if __name__ == '__main__':
    import os

    def make(args, rest):
        key = os.environ.get('FAKE_FOUNDRY_API_KEY', 'fake-foundry-key')
        if '--api-key' in rest:
            key = rest[rest.index('--api-key') + 1]
        return FoundryFake(api_key=key, port=args.port, verbose=args.verbose)
    serve_main(make)
