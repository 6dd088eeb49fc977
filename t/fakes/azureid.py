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
The token endpoint also takes a service principal's certificate
(azure-identity's ClientCertificateCredential, through MSAL): the same
client_assertion_type, with client_assertion a JWT the client signs with
the key of .certificate (a Certificate: an RSA key and its self-signed
certificate, made per fake unless given; certificate_pem(), pfx() and
encrypted_pem() write it as a client would find it). An assertion that
looks like one (its header names a certificate, x5t, x5t#S256 or x5c, or
its iss or sub is the client id) is checked as Entra does, else it is
taken for a federated token: the header exactly {alg: RS256, typ: JWT,
x5t} plus optionally x5t#S256 and x5c, x5t = base64url (no padding) of the
SHA-1 of the certificate's DER, x5t#S256 of its SHA-256, x5c[0] = the DER
in standard base64 (required when .require_x5c: subject name/issuer
authentication); signed RS256 by the certificate's key; the claims exactly
aud = the token URL the request was sent to (http://{Host}{path}), iss =
sub = client_id, jti (a string never presented before: a replay is
refused), and integer nbf, iat, exp with 0 < exp - nbf <= 600, iat within
five minutes of nbf and before exp, and now within [nbf - 300, exp]. A
refusal is 401 invalid_client (AADSTS700027 for an unknown certificate or
a bad signature, 700023 audience, 700021 issuer, 700024 time range, 50027
a malformed assertion or a replay; the codes are the fake's best
approximation of Entra's). The decoded header and claims of such an
assertion (never its signature) are logged as the request's 'assertion';
the assertions themselves are kept in .assertions only (to check none is
logged).

Tokens are minted by the Foundry fake given at construction
(FoundryFake.mint), valid for .ttl seconds. Every request is counted per
endpoint in .counts ('entra', 'appservice', 'imds', and 'other' for any
other path; a token the token endpoint grants also as 'entra-secret',
'entra-assertion' (a federated token) or 'entra-certificate'), logged in
.requests without its secrets ({endpoint, method, path, params, status},
plus 'assertion' for a certificate's), and a refused one is recorded in
.violations, a wrong client secret or assertion too: a test that provokes
one takes it with pop_violations(). tenant_id, client_id, client_secret,
federated_token and identity_header are random per fake; reset() clears
the counts, the log, the violations, and puts ttl (3599), has_identity
(True), entra_down (False) and require_x5c (False) back; the jti values
seen (.jtis) and .assertions are kept (an assertion is never good twice)."""
import base64
import hashlib
import json
import re
import secrets
import time
import uuid
from datetime import datetime, timedelta, timezone
from urllib.parse import parse_qs, urlsplit

import jwt
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from cryptography.hazmat.primitives.serialization import pkcs12
from cryptography.x509.oid import NameOID

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
# a certificate's client assertion, as MSAL signs it
CERT_HEADER = {'alg', 'typ', 'x5t', 'x5t#S256', 'x5c'}
CERT_CLAIMS = {'aud', 'iss', 'sub', 'jti', 'nbf', 'iat', 'exp'}
ASSERTION_TTL_MAX = 600  # exp - nbf
CLOCK_SKEW = 300
B64URL = re.compile(r'^[A-Za-z0-9_-]+$')


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


def b64url(data):
    """base64url without padding, as JOSE writes it."""
    return base64.urlsafe_b64encode(data).rstrip(b'=').decode()


class Certificate:
    """An RSA key and its self-signed certificate, as `openssl req -x509
    -newkey rsa:2048 -nodes` makes one for an app registration, with what
    Entra knows of it: .thumbprint (the portal's, hex SHA-1 of the DER),
    .x5t and .x5t_s256 (base64url SHA-1 and SHA-256 of the DER, no
    padding), .x5c (the DER in standard base64). Written as a client finds
    it by pem() (the certificate and the unencrypted key in one file),
    encrypted_pem() and pfx()."""

    def __init__(self, common_name='mod-claude-gateway', key=None, days=365):
        self.key = key or rsa.generate_private_key(public_exponent=65537, key_size=2048)
        now = datetime.now(timezone.utc)
        name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, common_name)])
        self.cert = (x509.CertificateBuilder()
                     .subject_name(name).issuer_name(name)
                     .public_key(self.key.public_key())
                     .serial_number(x509.random_serial_number())
                     .not_valid_before(now - timedelta(days=1))
                     .not_valid_after(now + timedelta(days=days))
                     .add_extension(x509.BasicConstraints(ca=False, path_length=None),
                                    critical=True)
                     .sign(self.key, hashes.SHA256()))
        self.common_name = common_name
        self.der = self.cert.public_bytes(serialization.Encoding.DER)
        self.thumbprint = hashlib.sha1(self.der).hexdigest().upper()
        self.x5t = b64url(hashlib.sha1(self.der).digest())
        self.x5t_s256 = b64url(hashlib.sha256(self.der).digest())
        self.x5c = base64.b64encode(self.der).decode()

    def cert_pem(self):
        return self.cert.public_bytes(serialization.Encoding.PEM).decode()

    def key_pem(self, key_format='pkcs8', password=None):
        """The private key in PEM: 'pkcs8' (BEGIN PRIVATE KEY, or BEGIN
        ENCRYPTED PRIVATE KEY with a password) or 'rsa' (BEGIN RSA PRIVATE
        KEY, with Proc-Type: 4,ENCRYPTED given a password)."""
        fmt = {'pkcs8': serialization.PrivateFormat.PKCS8,
               'rsa': serialization.PrivateFormat.TraditionalOpenSSL}[key_format]
        enc = serialization.BestAvailableEncryption(password.encode()) if password \
            else serialization.NoEncryption()
        return self.key.private_bytes(serialization.Encoding.PEM, fmt, enc).decode()

    def key_lines(self, key_format='pkcs8'):
        """The base64 lines of the unencrypted key's PEM (to check none is logged)."""
        return [x for x in self.key_pem(key_format).splitlines() if not x.startswith('-----')]

    def _write(self, path, data, mode='w'):
        with open(path, mode) as f:
            f.write(data)
        return path

    def pem(self, path, order='cert-first', key_format='pkcs8', bag_attributes=False,
            password=None):
        """Write the certificate and its key in one PEM file, in either
        order ('cert-first', 'key-first'); bag_attributes adds the text
        `openssl pkcs12 -nodes` writes around each block. Returns path."""
        if order not in ('cert-first', 'key-first'):
            raise ValueError(order)
        cert, key = self.cert_pem(), self.key_pem(key_format, password)
        if bag_attributes:
            local = 'localKeyID: ' + ' '.join(f'{b:02X}' for b in hashlib.sha1(self.der).digest())
            cert = (f'Bag Attributes\n    {local}\n    friendlyName: {self.common_name}\n'
                    f'subject=CN = {self.common_name}\nissuer=CN = {self.common_name}\n' + cert)
            key = f'Bag Attributes\n    {local}\nKey Attributes: <No Attributes>\n' + key
        return self._write(path, cert + key if order == 'cert-first' else key + cert)

    def encrypted_pem(self, path, password, order='cert-first', key_format='pkcs8'):
        """The same with the key encrypted by password (what `openssl req
        -x509 -newkey` writes without -nodes). Returns path."""
        return self.pem(path, order, key_format, password=password)

    def pfx(self, path, password=None):
        """A PKCS#12 (.pfx/.p12) file holding the key and the certificate,
        as the portal or Key Vault exports them. Returns path."""
        enc = serialization.BestAvailableEncryption(password.encode()) if password \
            else serialization.NoEncryption()
        data = pkcs12.serialize_key_and_certificates(self.common_name.encode(), self.key,
                                                     self.cert, None, enc)
        return self._write(path, data, 'wb')


def _json_object(segment):
    """A JWT segment's JSON object, strictly (no duplicate keys), or None."""
    def pairs(items):
        keys = [k for k, _ in items]
        if len(keys) != len(set(keys)):
            raise ValueError('duplicate key')
        return dict(items)
    try:
        obj = json.loads(base64.urlsafe_b64decode(segment + '=' * (-len(segment) % 4)),
                         object_pairs_hook=pairs)
    except (ValueError, TypeError):
        return None
    return obj if isinstance(obj, dict) else None


def _is_int(v):
    return isinstance(v, int) and not isinstance(v, bool)


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
            assertion = form.get('client_assertion')
            if assertion is not None and assertion == f.federated_token:
                grant = 'entra-assertion'
            elif self._certificate_like(assertion):
                with f.lock:
                    f.assertions.append(assertion)
                refusal = self._certificate_assertion(assertion, u)
                if refusal is not None:
                    return self._entra_error(401, 'invalid_client', refusal[0], refusal[1],
                                             'certificate assertion: ' + refusal[2])
                grant = 'entra-certificate'
            else:
                return self._entra_error(400, 'invalid_request', 70021,
                                         'No matching federated identity record found for '
                                         'presented assertion.', 'wrong client_assertion')
        f.count(grant)
        ttl = f.ttl
        self._send(200, {'token_type': 'Bearer', 'expires_in': ttl, 'ext_expires_in': ttl,
                         'access_token': f.foundry.mint(ttl)})

    def _certificate_like(self, assertion):
        """Whether an assertion that is not the federated token is a
        certificate's: its header names a certificate, or the app is its
        issuer or subject."""
        parts = (assertion or '').split('.')
        if len(parts) != 3:
            return False
        header, claims = _json_object(parts[0]), _json_object(parts[1])
        cid = self.fake.client_id
        return bool((header and (CERT_HEADER - {'alg', 'typ'}) & set(header)) or
                    (claims and cid in (claims.get('iss'), claims.get('sub'))))

    def _certificate_assertion(self, assertion, u):
        """None for a good certificate assertion, else (AADSTS code, Entra's
        text, what is wrong)."""
        f = self.fake
        cert = f.certificate
        parts = assertion.split('.')
        header, claims = _json_object(parts[0]), _json_object(parts[1])
        self.rec['assertion'] = {'header': header, 'claims': claims}
        malformed = 'JWT token is invalid or malformed.'
        if not all(B64URL.match(x) for x in parts) or header is None or claims is None:
            return 50027, malformed, 'not a compact JWS of JSON objects in unpadded base64url'
        if header.get('alg') != 'RS256':
            return 5002738, f"Invalid JWT token. '{header.get('alg')}' is not a supported " \
                            'signature algorithm.', f"alg {header.get('alg')!r}, not RS256"
        if header.get('typ') != 'JWT':
            return 50027, malformed, f"typ {header.get('typ')!r}, not 'JWT'"
        extra = sorted(set(header) - CERT_HEADER)
        if extra:
            return 50027, malformed, f'unexpected header fields {extra}'
        not_registered = ('The certificate with identifier used to sign the client assertion '
                          'is not registered on application. [Reason - The key was not found., '
                          'Thumbprint of key used by client: {}, Please visit the Azure Portal, '
                          'Graph Explorer or directly use MS Graph to see configured keys for '
                          f"app Id '{f.client_id}'.]")
        x5t = header.get('x5t')
        if x5t != cert.x5t:
            try:
                used = "'" + base64.urlsafe_b64decode(str(x5t) + '=' * (-len(str(x5t)) % 4)) \
                    .hex().upper() + "'"
            except ValueError:
                used = repr(x5t)
            return 700027, not_registered.format(used if x5t is not None else "''"), \
                'x5t missing' if x5t is None else \
                f"x5t {x5t!r} is not the certificate's SHA-1 thumbprint {cert.x5t!r} " \
                '(base64url, no padding)'
        if 'x5t#S256' in header and header['x5t#S256'] != cert.x5t_s256:
            return 700027, not_registered.format("'" + cert.thumbprint + "'"), \
                f"x5t#S256 {header['x5t#S256']!r} is not the certificate's SHA-256 " \
                f'thumbprint {cert.x5t_s256!r}'
        x5c = header.get('x5c')
        if x5c is not None and not (isinstance(x5c, list) and x5c and x5c[0] == cert.x5c):
            return 700027, 'The certificate chain in the client assertion (x5c) is not valid.', \
                "x5c is not a list whose first entry is the certificate's DER in standard base64"
        if x5c is None and f.require_x5c:
            return 700027, not_registered.format("'" + cert.thumbprint + "'"), \
                'x5c missing (subject name/issuer authentication needs the certificate chain)'
        try:
            jwt.decode(assertion, cert.cert.public_key(), algorithms=['RS256'],
                       options={'verify_exp': False, 'verify_nbf': False, 'verify_iat': False,
                                'verify_aud': False, 'verify_iss': False})
        except jwt.InvalidSignatureError:
            return 700027, 'Client assertion failed signature validation.', \
                "not signed by the certificate's key"
        except jwt.InvalidTokenError as e:
            return 50027, malformed, f'Invalid JWT: {e}'
        missing, extra = sorted(CERT_CLAIMS - set(claims)), sorted(set(claims) - CERT_CLAIMS)
        if missing or extra:
            return 50027, malformed, f'claims missing {missing}, unexpected {extra}'
        host = self.headers.get('host') or f'127.0.0.1:{f.port}'
        aud = f'http://{host}{u.path}'
        if claims['aud'] != aud:
            return 700023, 'Client assertion audience claim does not match Realm issuer.', \
                f"aud {claims['aud']!r}, not the token URL {aud!r}"
        if claims['iss'] != f.client_id or claims['sub'] != f.client_id:
            return 700021, "Client assertion application identifier doesn't match " \
                "'client_id' parameter.", \
                f"iss {claims['iss']!r} and sub {claims['sub']!r} must both be the client id"
        jti = claims['jti']
        if not isinstance(jti, str) or not jti or len(jti) > 256:
            return 50027, malformed, f'jti {jti!r} is not a non-empty string'
        with f.lock:
            replay = jti in f.jtis
            f.jtis.add(jti)
        if replay:
            return 50027, f"The client assertion with jti '{jti}' has already been used.", \
                f'jti {jti!r} replayed'
        nbf, iat, exp, now = claims['nbf'], claims['iat'], claims['exp'], int(time.time())
        if not (_is_int(nbf) and _is_int(iat) and _is_int(exp)):
            return 50027, malformed, 'nbf, iat and exp must be integers (seconds)'
        if not 0 < exp - nbf <= ASSERTION_TTL_MAX or abs(iat - nbf) > CLOCK_SKEW or iat >= exp:
            return 700024, 'Client assertion contains an invalid lifetime.', \
                f'nbf {nbf}, iat {iat}, exp {exp}: at most {ASSERTION_TTL_MAX} s from nbf ' \
                'to exp, iat near nbf'
        if not nbf - CLOCK_SKEW <= now <= exp:
            stamp = '%Y-%m-%d %H:%M:%SZ'

            def at(t):
                return datetime.fromtimestamp(t, timezone.utc).strftime(stamp)
            return 700024, f'Client assertion is not within its valid time range. Current ' \
                f'time: {at(now)}, assertion valid from {at(nbf)}, expiry time of assertion ' \
                f'{at(exp)}.', f'now {now} outside [nbf - {CLOCK_SKEW}, exp] = ' \
                f'[{nbf - CLOCK_SKEW}, {exp}]'
        return None

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

    def __init__(self, foundry, certificate=None, **kw):
        self.foundry = foundry
        self.certificate = certificate or Certificate()
        self.jtis = set()  # every certificate assertion's jti presented so far
        self.assertions = []  # every certificate assertion (to check none is logged)
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
        self.require_x5c = False

    @property
    def identity_endpoint(self):
        """What App Service and Container Apps put in IDENTITY_ENDPOINT."""
        return self.url + APPSERVICE_PATH

    def rotate_federated_token(self):
        """A new federated token, the only one accepted from now on."""
        self.federated_token = federated_token()
        return self.federated_token

    def certificate_pem(self, path, order='cert-first', key_format='pkcs8',
                        bag_attributes=False):
        """Write .certificate and its unencrypted key as the PEM file
        AZURE_CLIENT_CERTIFICATE_PATH names (see Certificate.pem)."""
        return self.certificate.pem(path, order, key_format, bag_attributes)

    def encrypted_pem(self, path, password, order='cert-first', key_format='pkcs8'):
        """The same with the key encrypted (azure-identity's
        AZURE_CLIENT_CERTIFICATE_PASSWORD case)."""
        return self.certificate.encrypted_pem(path, password, order, key_format)

    def pfx(self, path, password=None):
        """.certificate and its key as a PKCS#12 file."""
        return self.certificate.pfx(path, password)

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
