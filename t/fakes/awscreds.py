"""AwsCredsFake: the places the AWS default credential chain asks, strict,
and STS AssumeRole.

One server plays three AWS endpoints, each checking what the AWS SDKs send:
- the EC2 instance metadata service (IMDSv2): PUT /latest/api/token with
  X-aws-ec2-metadata-token-ttl-seconds (1-21600) gives a session token; the
  GETs of /latest/meta-data/iam/security-credentials/ (the role) and
  .../<role> (the credentials' JSON) must carry it, unless v1 is allowed
  (imds_v1 = True). hang_token_put = True keeps the PUT unanswered, as a
  container's extra network hop does with the token answer's hop limit;
- the container endpoint (ECS, EKS Pod Identity): GET /ecs/creds with the
  configured Authorization header;
- STS, POST / with a form (application/x-www-form-urlencoded), answered in
  STS's XML:
  - AssumeRoleWithWebIdentity (unsigned): Action, Version, RoleArn (.role_arn),
    RoleSessionName, WebIdentityToken (.web_token); hands out .creds;
  - AssumeRole, signed with SigV4 by the caller's base credentials (.base:
    {id, secret, token or None}; service "sts", region .sts_region). The
    signature is verified independently of the gateway (fakes/bedrock.py's
    canonical request and signing key): credential scope, x-amz-date within
    five minutes, SignedHeaders naming host, content-type and x-amz-date and
    every x-amz-* header sent, x-amz-security-token exactly when .base has a
    token. The form must hold exactly Action, Version 2011-06-15, RoleArn
    (== .assume_role_arn), RoleSessionName (STS's pattern: 2-64 letters,
    digits and _+=,.@-), and optionally DurationSeconds (900-43200 and at
    most the role's .max_session_duration) and ExternalId (required and
    equal when .external_id is set, absent otherwise). Each success mints
    new role credentials for the session (.role_creds: AccessKeyId
    ASIAROLE0001, ASIAROLE0002, ...), valid for .role_lifetime, recorded in
    .sessions ({name, id, secret, token, expires, role_arn, external_id};
    look one up with .session(key id)). Every AssumeRole request is recorded in
    .assume_requests ({form, headers, signed_headers, access_key, status,
    code}). deny = True answers AccessDenied (403) as a trust policy that
    does not let the caller in would: a scenario, not a violation.
Anything else, or a check that fails, is refused the way AWS refuses it and
recorded in .violations. What the chain endpoints hand out is .creds (set it
to rotate); every request is counted per endpoint in .counts ('imds-token',
'imds-role', 'imds-creds', 'imds-unauthorized', 'container', 'sts' for every
STS request, and 'assume-role' for every AssumeRole among them)."""
import calendar
import hashlib
import hmac
import json
import re
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs
from xml.sax.saxutils import escape

from ._server import FakeHandler, FakeServer
from .bedrock import canonical_request, sign

ROLE = 'gateway-instance-role'
STS_NS = 'https://sts.amazonaws.com/doc/2011-06-15/'
SESSION_NAME_RE = re.compile(r'[A-Za-z0-9_+=,.@-]{2,64}')  # STS's [\w+=,.@-]*, 2-64
EXTERNAL_ID_RE = re.compile(r'[A-Za-z0-9_+=,.@:/-]{2,1224}')  # [\w+=,.@:\/-]*, 2-1224
ASSUME_FIELDS = {'Action', 'Version', 'RoleArn', 'RoleSessionName', 'DurationSeconds',
                 'ExternalId'}
INVALID_TOKEN = 'The security token included in the request is invalid.'
SIG_MISMATCH = ('The request signature we calculated does not match the signature you provided. '
                'Check your AWS Secret Access Key and signing method. Consult the service '
                'documentation for details.')


def iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


def check_sigv4(method, raw_path, headers, body, creds, region, service, info, max_skew=300):
    """None, or (status, STS error code, message) for a request whose AWS
    Signature Version 4 is not exactly that of creds ({id, secret, token})
    for region and service. headers: the request's (an email.Message or a
    list of pairs); info gets access_key and signed_headers."""
    items = list(headers.items())
    received = {}
    for k, v in items:
        received.setdefault(k.lower(), []).append(v)
    auth = received.get('authorization', [None])[0]
    if not auth:
        return 403, 'MissingAuthenticationToken', 'Request is missing Authentication Token'
    try:
        alg, rest = auth.split(' ', 1)
        fields = dict(p.strip().split('=', 1) for p in rest.split(','))
        cred = fields['Credential'].split('/')
        signed = fields['SignedHeaders'].split(';')
        got = fields['Signature']
    except (ValueError, KeyError):
        return 400, 'IncompleteSignature', 'Authorization header is malformed'
    info['access_key'], info['signed_headers'] = cred[0], signed
    if alg != 'AWS4-HMAC-SHA256' or len(cred) != 5 or cred[4] != 'aws4_request':
        return 400, 'IncompleteSignature', 'Unsupported signature algorithm or credential scope'
    if cred[0] != creds['id']:
        return 403, 'InvalidClientTokenId', INVALID_TOKEN
    amz_date = received.get('x-amz-date', [''])[0]
    if len(amz_date) != 16 or cred[1] != amz_date[:8]:
        return 403, 'SignatureDoesNotMatch', 'Credential date does not match X-Amz-Date'
    if cred[2] != region:
        return 403, 'SignatureDoesNotMatch', \
            f"Credential should be scoped to a valid region, not '{cred[2]}'."
    if cred[3] != service:
        return 403, 'SignatureDoesNotMatch', \
            f"Credential should be scoped to correct service: '{service}'."
    try:
        t = calendar.timegm(time.strptime(amz_date, '%Y%m%dT%H%M%SZ'))
    except ValueError:
        return 403, 'SignatureDoesNotMatch', 'X-Amz-Date is not a date'
    if max_skew is not None and abs(time.time() - t) > max_skew:
        return 403, 'SignatureDoesNotMatch', f'Signature expired: {amz_date} is now earlier ' \
            'or later than the allowed five minutes'
    if signed != sorted(signed) or len(set(signed)) != len(signed):
        return 403, 'SignatureDoesNotMatch', 'SignedHeaders must be sorted and unique'
    for need in ('host', 'x-amz-date', 'content-type'):
        if need not in signed:
            return 403, 'SignatureDoesNotMatch', f'SignedHeaders must include {need}'
    unsigned = [k for k in received if k.startswith('x-amz-') and k not in signed]
    if unsigned:
        return 403, 'SignatureDoesNotMatch', f'{unsigned[0]} is sent but not signed'
    token = received.get('x-amz-security-token', [None])[0]
    if token != creds.get('token'):
        return 403, 'InvalidClientTokenId', INVALID_TOKEN
    payload_hash = hashlib.sha256(body).hexdigest()
    declared = received.get('x-amz-content-sha256', [None])[0]
    if declared is not None and declared != payload_hash:
        return 400, 'XAmzContentSHA256Mismatch', \
            'The provided x-amz-content-sha256 header does not match what was computed.'
    for name in signed:
        if name not in received:
            return 403, 'SignatureDoesNotMatch', f'signed header {name} is missing'
    path, _, query = raw_path.partition('?')
    creq = canonical_request(method, path, query, received, signed, payload_hash)
    if not hmac.compare_digest(sign(creds['secret'], amz_date, region, service, creq), got):
        return 403, 'SignatureDoesNotMatch', SIG_MISMATCH
    return None


class Handler(FakeHandler):

    def _send(self, status, body, ctype='text/plain'):
        out = body.encode() if isinstance(body, str) else body
        self.send_response(status)
        self.send_header('content-type', ctype)
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)

    def _refuse(self, status, why):
        self.fake.violation(f'{self.command} {self.path}: {why}')
        self._send(status, why)

    def _creds_json(self):
        c = self.fake.creds
        return json.dumps({'Code': 'Success', 'LastUpdated': iso(datetime.now(timezone.utc)),
                           'Type': 'AWS-HMAC', 'AccessKeyId': c['id'],
                           'SecretAccessKey': c['secret'], 'Token': c['token'],
                           'Expiration': iso(c['expires'])})

    def _imds_ok(self):
        token = self.headers.get('x-aws-ec2-metadata-token')
        if token is None:
            if self.fake.imds_v1:
                return True
            self._send(401, '')  # IMDSv2 only: what EC2 answers
            self.fake.count('imds-unauthorized')
            return False
        if token not in self.fake.imds_tokens:
            self._refuse(401, 'unknown metadata token')
            return False
        return True

    def do_PUT(self):
        self.read_body()
        if self.path != '/latest/api/token':
            return self._refuse(404, 'not found')
        self.fake.count('imds-token')
        if self.fake.hang_token_put:
            time.sleep(3)  # longer than the SDKs' one second
            self.close_connection = True
            return
        ttl = self.headers.get('x-aws-ec2-metadata-token-ttl-seconds', '')
        if not ttl.isdigit() or not 1 <= int(ttl) <= 21600:
            return self._refuse(400, 'missing or invalid X-aws-ec2-metadata-token-ttl-seconds')
        if self.headers.get('x-forwarded-for') is not None:
            return self._refuse(403, 'X-Forwarded-For on a token request')
        token = f'imds-session-{len(self.fake.imds_tokens)}'
        self.fake.imds_tokens.add(token)
        self._send(200, token)

    def do_GET(self):
        base = '/latest/meta-data/iam/security-credentials/'
        if self.path == base:
            self.fake.count('imds-role')
            if self._imds_ok():
                self._send(200, ROLE)
            return
        if self.path == base + ROLE:
            self.fake.count('imds-creds')
            if self._imds_ok():
                self._send(200, self._creds_json())
            return
        if self.path == '/ecs/creds':
            self.fake.count('container')
            if self.headers.get('authorization') != self.fake.container_auth:
                return self._refuse(401, 'wrong or missing Authorization')
            return self._send(200, self._creds_json(), 'application/json')
        self._refuse(404, 'not found')

    def _sts_error(self, status, code, message, violation=None):
        if violation is not None:
            self.fake.violation(f'STS AssumeRole: {violation}')
        self._send(status, f"""<ErrorResponse xmlns="{STS_NS}">
  <Error>
    <Type>Sender</Type>
    <Code>{code}</Code>
    <Message>{escape(message)}</Message>
  </Error>
  <RequestId>fake-sts-{self.fake.n('sts')}</RequestId>
</ErrorResponse>
""", 'text/xml')
        return status, code

    def _assume_role(self, body):
        """STS AssumeRole: (status, code) of the answer sent."""
        fake = self.fake
        rec = {'form': None, 'headers': [(k.lower(), v) for k, v in self.headers.items()],
               'signed_headers': None, 'access_key': None, 'status': None, 'code': None}
        with fake.lock:
            fake.assume_requests.append(rec)
            base = dict(fake.base)
        err = check_sigv4('POST', self.path, self.headers, body, base, fake.sts_region, 'sts',
                          rec)
        if err is not None:
            rec['status'], rec['code'] = self._sts_error(*err, violation=f'{err[1]}: {err[2]}')
            return
        ctype = self.headers.get('content-type', '').split(';')[0].strip().lower()
        if ctype != 'application/x-www-form-urlencoded':
            rec['status'], rec['code'] = self._sts_error(
                400, 'InvalidParameterValue', 'the form must be application/x-www-form-urlencoded',
                violation=f'content-type {ctype!r}')
            return
        try:
            parsed = parse_qs(body.decode(), keep_blank_values=True, strict_parsing=True)
        except (ValueError, UnicodeDecodeError) as e:
            rec['status'], rec['code'] = self._sts_error(400, 'MalformedInput', str(e),
                                                         violation=f'form: {e}')
            return
        rec['form'] = form = {k: v[0] for k, v in parsed.items()}
        bad = sorted(k for k, v in parsed.items() if len(v) > 1) or \
            sorted(set(parsed) - ASSUME_FIELDS)
        if bad:
            rec['status'], rec['code'] = self._sts_error(
                400, 'InvalidParameterValue', f'unexpected or repeated parameter {bad[0]}',
                violation=f'unexpected or repeated form fields {bad}')
            return
        problems = []
        if form.get('Version') != '2011-06-15':
            problems.append(f"Version {form.get('Version')!r}")
        name = form.get('RoleSessionName')
        if name is None or not SESSION_NAME_RE.fullmatch(name):
            problems.append(f"Value {name!r} at 'roleSessionName' failed to satisfy constraint: "
                            r"Member must satisfy regular expression pattern: [\w+=,.@-]* "
                            'and have length between 2 and 64')
        dur = form.get('DurationSeconds')
        if dur is not None and (not dur.isdigit() or not 900 <= int(dur) <= 43200):
            problems.append(f"Value {dur!r} at 'durationSeconds' failed to satisfy constraint: "
                            'Member must have value between 900 and 43200')
        elif dur is not None and int(dur) > fake.max_session_duration:
            problems.append('The requested DurationSeconds exceeds the MaxSessionDuration set '
                            'for this role.')
        ext = form.get('ExternalId')
        if ext is not None and not EXTERNAL_ID_RE.fullmatch(ext):
            problems.append(f"Value {ext!r} at 'externalId' failed to satisfy constraint: "
                            r'Member must satisfy regular expression pattern: [\w+=,.@:\/-]* '
                            'and have length between 2 and 1224')
        if not form.get('RoleArn'):
            problems.append("Value null at 'roleArn' failed to satisfy constraint: Member must "
                            'not be null')
        if problems:
            rec['status'], rec['code'] = self._sts_error(
                400, 'ValidationError', f'{len(problems)} validation error(s) detected: ' +
                '; '.join(problems), violation='; '.join(problems))
            return
        denied = ('User: arn:aws:iam::123456789012:user/gateway is not authorized to '
                  f'perform: sts:AssumeRole on resource: {form["RoleArn"]}')
        wrong = None
        if form['RoleArn'] != fake.assume_role_arn:
            wrong = f'RoleArn {form["RoleArn"]!r}, not {fake.assume_role_arn!r}'
        elif form.get('ExternalId') != fake.external_id:
            wrong = f'ExternalId {form.get("ExternalId")!r}, not {fake.external_id!r}'
        if wrong is not None:
            rec['status'], rec['code'] = self._sts_error(403, 'AccessDenied', denied,
                                                         violation=wrong)
            return
        if fake.deny:
            rec['status'], rec['code'] = self._sts_error(403, 'AccessDenied', denied)
            return
        c = fake.role_creds(name, form['RoleArn'], form.get('ExternalId'))
        arn = form['RoleArn'].split(':')  # arn:aws:iam::<account>:role/<path/>name
        account = arn[4] if len(arn) > 5 else '123456789012'
        role_name = arn[-1].rsplit('/', 1)[-1]
        rec['status'], rec['code'] = 200, None
        self._send(200, f"""<AssumeRoleResponse xmlns="{STS_NS}">
  <AssumeRoleResult>
    <AssumedRoleUser>
      <Arn>arn:aws:sts::{account}:assumed-role/{escape(role_name)}/{escape(name)}</Arn>
      <AssumedRoleId>AROAFAKEROLEID0000000:{escape(name)}</AssumedRoleId>
    </AssumedRoleUser>
    <Credentials>
      <AccessKeyId>{c['id']}</AccessKeyId>
      <SecretAccessKey>{escape(c['secret'])}</SecretAccessKey>
      <SessionToken>{escape(c['token'])}</SessionToken>
      <Expiration>{iso(c['expires'])}</Expiration>
    </Credentials>
  </AssumeRoleResult>
  <ResponseMetadata>
    <RequestId>fake-sts-{fake.n('sts')}</RequestId>
  </ResponseMetadata>
</AssumeRoleResponse>
""", 'text/xml')

    def do_POST(self):
        body, _ = self.read_body()
        if self.path != '/':
            return self._refuse(404, 'not found')
        self.fake.count('sts')
        raw = parse_qs(body.decode(errors='replace'), keep_blank_values=True)
        if raw.get('Action') == ['AssumeRole']:
            self.fake.count('assume-role')
            return self._assume_role(body)
        form = {k: v[0] for k, v in raw.items()}
        want = {'Action': 'AssumeRoleWithWebIdentity', 'Version': '2011-06-15',
                'RoleArn': self.fake.role_arn, 'WebIdentityToken': self.fake.web_token}
        bad = [k for k, v in want.items() if form.get(k) != v]
        if not form.get('RoleSessionName') or bad or \
                self.headers.get('authorization') is not None:
            self.fake.violation(f'STS form: wrong {bad or "RoleSessionName/Authorization"}')
            return self._send(400, '<ErrorResponse><Error><Type>Sender</Type>'
                                   '<Code>InvalidIdentityToken</Code><Message>Couldn&apos;t '
                                   'verify the web identity token</Message></Error>'
                                   '</ErrorResponse>', 'text/xml')
        c = self.fake.creds
        self._send(200, f"""<AssumeRoleWithWebIdentityResponse xmlns="https://sts.amazonaws.com/doc/2011-06-15/">
  <AssumeRoleWithWebIdentityResult>
    <Audience>sts.amazonaws.com</Audience>
    <AssumedRoleUser><Arn>{self.fake.role_arn}/{form['RoleSessionName']}</Arn></AssumedRoleUser>
    <Credentials>
      <SessionToken>{c['token']}</SessionToken>
      <SecretAccessKey>{c['secret']}</SecretAccessKey>
      <Expiration>{iso(c['expires'])}</Expiration>
      <AccessKeyId>{c['id']}</AccessKeyId>
    </Credentials>
  </AssumeRoleWithWebIdentityResult>
</AssumeRoleWithWebIdentityResponse>
""", 'text/xml')


class AwsCredsFake(FakeServer):
    handler = Handler

    def __init__(self, **kw):
        super().__init__(**kw)
        self.reset()

    def reset(self):
        with self.lock:
            self.counts = {}
            self.violations = []
            self.imds_tokens = set()
        self.imds_v1 = False
        self.hang_token_put = False
        self.container_auth = 'Bearer container-auth-token'
        self.role_arn = 'arn:aws:iam::123456789012:role/gateway'
        self.web_token = 'eyJ.web-identity.token'
        self.rotate('ASIAFAKECHAIN0', timedelta(hours=1))
        # AssumeRole: who may call it, which role, and what it hands out
        self.base = {'id': 'AKIAFAKEBASEKEY0', 'secret': 'base/secret+access+key0',
                     'token': None}
        self.sts_region = 'us-east-1'
        self.assume_role_arn = 'arn:aws:iam::123456789012:role/bedrock-invoke'
        self.external_id = None
        self.max_session_duration = 3600  # the role's MaxSessionDuration (AWS's default)
        self.role_lifetime = timedelta(hours=1)
        self.deny = False
        with self.lock:
            self.sessions = []
            self.assume_requests = []
            self._minted = 0

    def rotate(self, key_id, lifetime):
        """New credentials, valid for lifetime from now; returns them."""
        self.creds = {'id': key_id, 'secret': f'{key_id}/secret+key', 'token': f'{key_id}-token==',
                      'expires': datetime.now(timezone.utc) + lifetime}
        return self.creds

    def role_creds(self, name, role_arn=None, external_id=None):
        """Mint the credentials of a new role session called name, valid for
        .role_lifetime from now; recorded in .sessions and returned."""
        with self.lock:
            self._minted += 1
            key = f'ASIAROLE{self._minted:04d}'
            c = {'name': name, 'id': key, 'secret': f'{key}/role+secret/key',
                 'token': f'{key}-role-session-token==',
                 'expires': datetime.now(timezone.utc) + self.role_lifetime,
                 'role_arn': role_arn or self.assume_role_arn, 'external_id': external_id}
            self.sessions.append(c)
            return dict(c)

    def session(self, key_id):
        """The role session minted with this access key id, or None."""
        with self.lock:
            for c in self.sessions:
                if c['id'] == key_id:
                    return dict(c)
        return None

    def session_names(self):
        with self.lock:
            return [c['name'] for c in self.sessions]

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def n(self, what):
        with self.lock:
            return self.counts.get(what, 0)

