"""GceMetadataFake: the GCE metadata server's token endpoint, strict.

What google-auth's last source of application default credentials asks (the
metadata server of a Compute Engine VM, GKE node or Cloud Run instance):
GET /computeMetadata/v1/instance/service-accounts/default/token, with an
optional scopes query (comma-separated; when given it must include
cloud-platform, nothing else may be in the query). As the real server does,
it refuses a request without the header Metadata-Flavor: Google (403) and
any request carrying X-Forwarded-For (403, so a proxy cannot be used to
reach it); any other method or path is 404. The answer is 200
{access_token, expires_in, token_type: "Bearer"} with the response header
Metadata-Flavor: Google; the token is minted by the Vertex fake given at
construction (VertexFake.mint), valid for .ttl seconds. With .imposter set,
the same JSON comes without Metadata-Flavor, as from some other server
answering at that address, which a client must not believe. Every request
is counted per kind in .counts ('token' for the token path, 'other' for the
rest); a refused one is recorded in .violations."""
import json
from urllib.parse import parse_qs, urlsplit

from ._server import FakeHandler, FakeServer

TOKEN_PATH = '/computeMetadata/v1/instance/service-accounts/default/token'
SCOPE = 'https://www.googleapis.com/auth/cloud-platform'


class Handler(FakeHandler):

    def _send(self, status, body, ctype='text/html; charset=UTF-8'):
        out = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        if not self.fake.imposter:
            self.send_header('Metadata-Flavor', 'Google')
        self.send_header('Server', 'Metadata Server for VM')
        self.send_header('content-type', ctype)
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _refuse(self, status, why):
        self.fake.violation(f'{self.command} {self.path}: {why}')
        self._send(status, why)

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path != TOKEN_PATH:
            self.fake.count('other')
            return self._refuse(404, 'not found')
        self.fake.count('token')
        if self.headers.get('x-forwarded-for') is not None:
            return self._refuse(403, 'X-Forwarded-For on a metadata request')
        if self.headers.get('metadata-flavor') != 'Google':
            return self._refuse(403, 'Missing Metadata-Flavor:Google header.')
        query = parse_qs(u.query, keep_blank_values=True)
        if set(query) - {'scopes'}:
            return self._refuse(400, f'unexpected query parameters {sorted(set(query))}')
        if 'scopes' in query and SCOPE not in ','.join(query['scopes']).split(','):
            return self._refuse(400, f'scopes must include {SCOPE}')
        ttl = self.fake.ttl
        self._send(200, json.dumps({'access_token': self.fake.vertex.mint(ttl),
                                    'expires_in': ttl, 'token_type': 'Bearer'}),
                   'application/json')

    def _other(self):
        self.read_body()
        self.fake.count('other')
        self._refuse(404, 'not found')

    do_POST = do_PUT = do_DELETE = do_PATCH = _other


class GceMetadataFake(FakeServer):
    handler = Handler

    def __init__(self, vertex, **kw):
        self.vertex = vertex
        super().__init__(**kw)
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.violations = []
        self.ttl = 3599
        self.imposter = False

    @property
    def host(self):
        """host:port, as GCE_METADATA_HOST takes it (no scheme)."""
        return f'127.0.0.1:{self.port}'

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def n(self, what):
        with self.lock:
            return self.counts.get(what, 0)
