"""AnthropicAwsFake: Claude Platform on AWS ("anthropicAws"), strict.

The Anthropic Messages API unchanged (POST /v1/messages and
/v1/messages/count_tokens, first-party model ids, JSON or SSE answers, the
"_fake" body object and POST /_fake/script behaviours, request recording):
it is the AnthropicFake, with the body and header checks of that fake, and
before them these checks, each failure answered in Anthropic's envelope
{"type": "error", "error": {"type": ..., "message": "fake: ..."}} and
recorded as a violation:

Credentials, exactly one kind per request:
- an API key: one x-api-key header equal to .api_key (None: no key is
  accepted; a wrong key or none at all is 401 authentication_error), with no
  Authorization and no x-amz-* header beside it (400);
- an AWS Signature Version 4: one Authorization header
  "AWS4-HMAC-SHA256 Credential=<id>/<date>/<region>/<service>/aws4_request,
  SignedHeaders=..., Signature=...", verified here independently of the
  gateway with fakes.bedrock's canonical_request() and sign() (the path as
  sent, encoded once more; the query; the signed headers' values as
  received; the body's SHA-256). Required: the access key id .access_key_id,
  the scope's region .region and service "aws-external-anthropic", the
  scope's date equal to x-amz-date's, x-amz-date within .max_skew seconds
  (None: any date), SignedHeaders sorted, without repeats, holding host,
  x-amz-date, anthropic-workspace-id and x-amz-content-sha256, every signed
  header present; x-amz-content-sha256 equal to the hex SHA-256 of the body
  as received (else 400, as AWS's XAmzContentSHA256Mismatch); the session
  token as Bedrock's fake wants it: with .session_token set, an
  x-amz-security-token header equal to it and signed, without, no such
  header. Any other failure is 403 permission_error (AWS answers a bad
  signature with 403, and a 403 is what makes the gateway's credential chain
  look again); the signature mismatch's message is AWS's sentence.
- both kinds at once (x-api-key with an Authorization header), more than one
  Authorization or x-api-key header: 400 invalid_request_error.

The workspace, on every request whatever the credential: exactly one
anthropic-workspace-id header (none or several: 400 invalid_request_error),
equal to .workspace_id (else 403 permission_error).

Each request record has, beyond the AnthropicFake's fields, auth_kind
('sigv4', 'api_key' or None when no credential was recognised) and
signed_headers (the SignedHeaders list, or None). access_key_id,
secret_access_key, session_token, api_key, region, workspace_id and
max_skew are plain attributes: set them to rotate what the fake accepts.
"""
import calendar
import hashlib
import hmac
import sys
import time
import types

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import serve_main  # noqa: E402
    from fakes.anthropic import AnthropicFake  # noqa: E402
    from fakes.bedrock import SIG_MISMATCH, canonical_request, sign, sign_headers  # noqa: E402
else:
    from ._server import serve_main
    from .anthropic import AnthropicFake
    from .bedrock import SIG_MISMATCH, canonical_request, sign, sign_headers

SERVICE = 'aws-external-anthropic'
REQUIRED_SIGNED = ('anthropic-workspace-id', 'host', 'x-amz-content-sha256', 'x-amz-date')
BAD_TOKEN = 'The security token included in the request is invalid.'

# the AnthropicFake's own checks, run with no credential of its own to look for
_MESSAGES_ONLY = types.SimpleNamespace(api_key=None, auth='x-api-key')


def sign_request(url, body, access_key, secret, region, workspace_id, session_token=None,
                 amz_date=None, service=SERVICE, content_sha256=None, extra=None):
    """The headers a client sends for a signed Messages request (for the fake's
    own tests): content-type, anthropic-version, anthropic-workspace-id,
    x-amz-content-sha256 (the body's hash unless content_sha256 is given),
    x-amz-date, [x-amz-security-token], all signed with host, and the
    Authorization header. extra adds headers to sign; a None value in it
    leaves that header out."""
    h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01',
         'anthropic-workspace-id': workspace_id,
         'x-amz-content-sha256': content_sha256 or hashlib.sha256(body).hexdigest()}
    h.update({k.lower(): v for k, v in (extra or {}).items()})
    h = {k: v for k, v in h.items() if v is not None}
    return sign_headers('POST', url, body, access_key, secret, region, service=service,
                        session_token=session_token, amz_date=amz_date, extra=h)


class AnthropicAwsFake(AnthropicFake):

    def __init__(self, access_key_id='AKIDFAKEANTHROPICAWS', secret_access_key='fake-secret',
                 session_token=None, region='us-west-2', workspace_id='wrkspc_fake0123456789',
                 api_key=None, max_skew=300, **kw):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.workspace_id = workspace_id
        self.max_skew = max_skew  # seconds; None: any x-amz-date
        super().__init__(api_key=api_key, **kw)

    def check(self, headers, path, body, rec):
        """(status, violation) for a request the real service would refuse."""
        rec['auth_kind'] = None
        rec['signed_headers'] = None
        for check in (self.check_credentials, self.check_workspace):
            status, msg = check(headers, body, rec)
            if status:
                return status, msg
        return AnthropicFake.check(_MESSAGES_ONLY, headers, path, body, rec)

    def check_credentials(self, headers, body, rec):
        auths = headers.get_all('authorization') or []
        keys = headers.get_all('x-api-key') or []
        if len(auths) > 1:
            return 400, 'more than one Authorization header'
        if len(keys) > 1:
            return 400, 'more than one x-api-key header'
        if keys and auths:
            return 400, 'x-api-key and an Authorization header in one request'
        if keys:
            rec['auth_kind'] = 'api_key'
            amz = sorted({k.lower() for k in headers.keys() if k.lower().startswith('x-amz-')})
            if amz:
                return 400, f'AWS signing headers with an API key: {", ".join(amz)}'
            if self.api_key is None or not hmac.compare_digest(keys[0], self.api_key):
                return 401, 'invalid x-api-key'
            return 0, None
        if not auths:
            return 401, 'no credential: x-api-key or an AWS SigV4 Authorization is required'
        if not auths[0].startswith('AWS4-HMAC-SHA256 '):
            return 401, 'Authorization is not an AWS Signature Version 4'
        rec['auth_kind'] = 'sigv4'
        return self.check_sigv4(auths[0], headers, body, rec)

    def check_sigv4(self, auth, headers, body, rec):
        try:
            _, rest = auth.split(' ', 1)
            fields = dict(p.strip().split('=', 1) for p in rest.split(','))
            cred = fields['Credential'].split('/')
            signed = fields['SignedHeaders'].split(';')
            got = fields['Signature']
        except (ValueError, KeyError):
            return 403, 'Authorization header is malformed'
        rec['signed_headers'] = signed
        if len(cred) != 5 or cred[4] != 'aws4_request':
            return 403, 'credential scope must be <id>/<date>/<region>/<service>/aws4_request'
        if cred[0] != self.access_key_id:
            return 403, BAD_TOKEN
        amz_date = headers.get('x-amz-date', '')
        if len(amz_date) != 16 or cred[1] != amz_date[:8]:
            return 403, 'credential date does not match x-amz-date'
        if cred[2] != self.region:
            return 403, f"Credential should be scoped to a valid region, not '{cred[2]}'."
        if cred[3] != SERVICE:
            return 403, f"Credential should be scoped to correct service: '{SERVICE}'."
        if self.max_skew is not None:
            try:
                t = calendar.timegm(time.strptime(amz_date, '%Y%m%dT%H%M%SZ'))
            except ValueError:
                return 403, 'bad x-amz-date'
            if abs(time.time() - t) > self.max_skew:
                return 403, f'Signature expired: {amz_date} is outside the allowed skew'
        if signed != sorted(signed) or len(set(signed)) != len(signed):
            return 403, 'SignedHeaders must be sorted and without repeats'
        missing = [h for h in REQUIRED_SIGNED if h not in signed]
        if missing:
            return 403, f'SignedHeaders must list {", ".join(missing)}'
        received = {}
        for k, v in headers.items():
            received.setdefault(k.lower(), []).append(v)
        for name in signed:
            if name not in received:
                return 403, f'signed header {name} is missing'
        tokens = received.get('x-amz-security-token', [])
        if self.session_token is not None:
            if tokens != [self.session_token] or 'x-amz-security-token' not in signed:
                return 403, BAD_TOKEN
        elif tokens:
            return 403, BAD_TOKEN
        payload_hash = hashlib.sha256(body).hexdigest()
        if received['x-amz-content-sha256'] != [payload_hash]:
            return 400, ('The provided x-amz-content-sha256 header does not match what was '
                         'computed.')
        creq = canonical_request(rec['method'], rec['path'], rec['query'], received, signed,
                                 payload_hash)
        want = sign(self.secret_access_key, amz_date, self.region, SERVICE, creq)
        if not hmac.compare_digest(want, got):
            return 403, SIG_MISMATCH
        return 0, None

    def check_workspace(self, headers, body, rec):
        ws = headers.get_all('anthropic-workspace-id') or []
        if not ws:
            return 400, 'anthropic-workspace-id header is required'
        if len(ws) > 1:
            return 400, 'more than one anthropic-workspace-id header'
        if ws[0] != self.workspace_id:
            return 403, f'workspace {ws[0]} is not accessible with these credentials'
        return 0, None


if __name__ == '__main__':
    import os

    def make(args, rest):
        def opt(name, env, default=None):
            if name in rest:
                return rest[rest.index(name) + 1]
            return os.environ.get(env, default)
        return AnthropicAwsFake(
            access_key_id=opt('--access-key-id', 'FAKE_AWS_ACCESS_KEY_ID', 'AKIDFAKEANTHROPICAWS'),
            secret_access_key=opt('--secret-access-key', 'FAKE_AWS_SECRET_ACCESS_KEY',
                                  'fake-secret'),
            session_token=opt('--session-token', 'FAKE_AWS_SESSION_TOKEN'),
            region=opt('--region', 'FAKE_AWS_REGION', 'us-west-2'),
            workspace_id=opt('--workspace-id', 'FAKE_ANTHROPIC_AWS_WORKSPACE_ID',
                             'wrkspc_fake0123456789'),
            api_key=opt('--api-key', 'FAKE_ANTHROPIC_AWS_API_KEY'),
            port=args.port, verbose=args.verbose)
    serve_main(make)
