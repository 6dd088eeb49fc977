"""AwsCredsFake: the places the AWS default credential chain asks, strict.

One server plays three AWS endpoints, each checking what the AWS SDKs send:
- the EC2 instance metadata service (IMDSv2): PUT /latest/api/token with
  X-aws-ec2-metadata-token-ttl-seconds (1-21600) gives a session token; the
  GETs of /latest/meta-data/iam/security-credentials/ (the role) and
  .../<role> (the credentials' JSON) must carry it, unless v1 is allowed
  (imds_v1 = True). hang_token_put = True keeps the PUT unanswered, as a
  container's extra network hop does with the token answer's hop limit;
- the container endpoint (ECS, EKS Pod Identity): GET /ecs/creds with the
  configured Authorization header;
- STS: POST / with AssumeRoleWithWebIdentity's form (Action, Version,
  RoleArn, RoleSessionName, WebIdentityToken), answered in STS's XML.
Anything else, or a check that fails, is refused the way AWS refuses it and
recorded in .violations. What the endpoints hand out is .creds (set it to
rotate); every request is counted per endpoint in .counts."""
import json
import time
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs

from ._server import FakeHandler, FakeServer

ROLE = 'gateway-instance-role'


def iso(dt):
    return dt.strftime('%Y-%m-%dT%H:%M:%SZ')


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

    def do_POST(self):
        body, _ = self.read_body()
        if self.path != '/':
            return self._refuse(404, 'not found')
        self.fake.count('sts')
        form = {k: v[0] for k, v in parse_qs(body.decode(), keep_blank_values=True).items()}
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

    def rotate(self, key_id, lifetime):
        """New credentials, valid for lifetime from now; returns them."""
        self.creds = {'id': key_id, 'secret': f'{key_id}/secret+key', 'token': f'{key_id}-token==',
                      'expires': datetime.now(timezone.utc) + lifetime}
        return self.creds

    def count(self, what):
        with self.lock:
            self.counts[what] = self.counts.get(what, 0) + 1

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def n(self, what):
        with self.lock:
            return self.counts.get(what, 0)

