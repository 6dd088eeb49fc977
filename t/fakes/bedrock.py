"""BedrockFake: Amazon Bedrock's runtime API for Anthropic models, strict.

Every request's AWS Signature Version 4 is verified here, independently of
the gateway's C code: the canonical request is rebuilt from what arrived (the
path as sent, encoded once more as botocore does for non-S3 services, the
query, the signed headers' values, the body's SHA-256), the signing key is
derived with hmac/hashlib, and a mismatch gets Bedrock's 403
InvalidSignatureException. The credential scope (date, region, service
"bedrock"), the clock skew, the session token and x-amz-content-sha256 are
checked too. The body must be an InvokeModel body: anthropic_version
"bedrock-2023-05-31", no model, no stream, no tags, betas only in the body
(an anthropic-beta header is refused), messages and max_tokens.

Operations: POST /model/{id}/invoke (the Messages API's JSON),
/model/{id}/invoke-with-response-stream (AWS binary event-stream, each chunk
{"bytes": base64 of one Anthropic event, "p": padding}, CRC32s by zlib), and
/model/{id}/count-tokens. Every request is recorded like the Anthropic fake
does, with the decoded model id and the operation. Behaviour is shaped per
request by a top-level "_fake" object in the body, or by a queue set with
POST /_fake/script: status, error_message, stream, events, text, usage,
pace_ms, delay_ms, hang, disconnect_after, split (each message in three
writes), exception_at (an event index), exception_type, exception_message,
exception_extra (more payload fields, e.g. originalStatusCode),
corrupt_crc_at, error_type, headers.
"""
import base64
import binascii
import calendar
import hashlib
import hmac
import json
import socket
import struct
import sys
import time
import zlib
from urllib.parse import quote, unquote, urlsplit

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import ScriptedFake, ScriptedHandler, serve_main  # noqa: E402
else:
    from ._server import ScriptedFake, ScriptedHandler, serve_main

GUARD_TAG = 'amazon-bedrock-guardrails-guardContent_'
ANTHROPIC_VERSION = 'bedrock-2023-05-31'
REQUEST_TAGS_BETA = 'request-tags-2026-08-21'
OPS = ('invoke', 'invoke-with-response-stream', 'count-tokens')

# Bedrock's error names per status (x-amzn-ErrorType) and their usual text.
ERRORS = {
    400: ('ValidationException', 'Malformed input request, please reformat your input and try again.'),
    403: ('AccessDeniedException', "You don't have access to the model with the specified model ID."),
    404: ('ResourceNotFoundException', 'Could not resolve the foundation model from the provided model identifier.'),
    408: ('ModelTimeoutException', 'Model has timed out in processing the request.'),
    424: ('ModelErrorException', 'The model returned an error.'),
    429: ('ThrottlingException', 'Too many requests, please wait before trying again.'),
    500: ('InternalServerException', 'The server encountered an internal error.'),
    503: ('ServiceUnavailableException', 'Bedrock is unable to process your request.'),
}
SIG_MISMATCH = ('The request signature we calculated does not match the signature you provided. '
                'Check your AWS Secret Access Key and signing method. Consult the service '
                'documentation for details.')


# ---- AWS Signature Version 4, from the AWS documentation -----------------------------------

def _hmac(key, msg):
    return hmac.new(key, msg.encode(), hashlib.sha256).digest()


def signing_key(secret, date, region, service):
    k = _hmac(('AWS4' + secret).encode(), date)
    k = _hmac(k, region)
    k = _hmac(k, service)
    return _hmac(k, 'aws4_request')


def normalize_path(path):
    """RFC 3986 dot-segment removal plus empty-segment removal (botocore's rule)."""
    if not path:
        return '/'
    out = []
    for seg in path.split('/'):
        if seg in ('', '.'):
            continue
        if seg == '..':
            if out:
                out.pop()
            continue
        out.append(seg)
    res = ('/' if path.startswith('/') else '') + '/'.join(out)
    if path.endswith('/') and out:
        res += '/'
    return res or '/'


def canonical_query(query):
    pairs = []
    for part in (query or '').split('&'):
        if not part:
            continue
        k, _, v = part.partition('=')
        pairs.append((quote(unquote(k), safe='-_.~'), quote(unquote(v), safe='-_.~')))
    return '&'.join(f'{k}={v}' for k, v in sorted(pairs))


def canonical_request(method, path, query, headers, signed, payload_hash):
    """headers: {lower name: [values as received]}; signed: ordered names."""
    lines = ''
    for name in signed:
        vals = [' '.join(v.strip().split()) for v in headers.get(name, [])]
        lines += f'{name}:{",".join(vals)}\n'
    return '\n'.join([method, quote(normalize_path(path), safe='/~'), canonical_query(query),
                      lines, ';'.join(signed), payload_hash])


def sign(secret, amz_date, region, service, creq):
    scope = f'{amz_date[:8]}/{region}/{service}/aws4_request'
    sts = '\n'.join(['AWS4-HMAC-SHA256', amz_date, scope,
                     hashlib.sha256(creq.encode()).hexdigest()])
    return hmac.new(signing_key(secret, amz_date[:8], region, service), sts.encode(),
                    hashlib.sha256).hexdigest()


def sign_headers(method, url, body, access_key, secret, region, service='bedrock',
                 session_token=None, amz_date=None, extra=None):
    """Headers a client adds to sign a request (for the fake's own tests)."""
    u = urlsplit(url)
    amz_date = amz_date or time.strftime('%Y%m%dT%H%M%SZ', time.gmtime())
    h = {'host': u.netloc, 'x-amz-date': amz_date}
    h.update({k.lower(): v for k, v in (extra or {}).items()})
    if session_token:
        h['x-amz-security-token'] = session_token
    signed = sorted(h)
    creq = canonical_request(method, u.path, u.query, {k: [v] for k, v in h.items()}, signed,
                             hashlib.sha256(body).hexdigest())
    sig = sign(secret, amz_date, region, service, creq)
    h['authorization'] = (f'AWS4-HMAC-SHA256 Credential={access_key}/{amz_date[:8]}/{region}/'
                          f'{service}/aws4_request, SignedHeaders={";".join(signed)}, '
                          f'Signature={sig}')
    del h['host']
    return h


# ---- AWS event-stream framing --------------------------------------------------------------

def es_header(name, value):
    n, v = name.encode(), value.encode()
    return bytes([len(n)]) + n + b'\x07' + struct.pack('>H', len(v)) + v


def es_message(headers, payload):
    hb = b''.join(es_header(k, v) for k, v in headers)
    prelude = struct.pack('>II', 16 + len(hb) + len(payload), len(hb))
    prelude += struct.pack('>I', zlib.crc32(prelude))
    m = prelude + hb + payload
    return m + struct.pack('>I', zlib.crc32(m))


def es_chunk(event, pad='abcdefghijklmnopqrstuvwxyzABCDEFGHIJ'):
    payload = {'bytes': base64.b64encode(json.dumps(event).encode()).decode(),
               'p': pad[:len(json.dumps(event)) % len(pad) + 1]}
    return es_message([(':event-type', 'chunk'), (':content-type', 'application/json'),
                       (':message-type', 'event')], json.dumps(payload).encode())


def es_exception(kind, message, **extra):
    return es_message([(':exception-type', kind), (':content-type', 'application/json'),
                       (':message-type', 'exception')],
                      json.dumps(dict({'message': message}, **extra)).encode())


def es_decode(data):
    """[(headers dict, payload bytes)]; raises ValueError on any framing error."""
    out, off = [], 0
    while off < len(data):
        if len(data) - off < 16:
            raise ValueError('truncated prelude')
        total, hlen = struct.unpack('>II', data[off:off + 8])
        if struct.unpack('>I', data[off + 8:off + 12])[0] != zlib.crc32(data[off:off + 8]):
            raise ValueError('prelude crc')
        msg = data[off:off + total]
        if len(msg) != total or struct.unpack('>I', msg[-4:])[0] != zlib.crc32(msg[:-4]):
            raise ValueError('message crc')
        h, pos, headers = msg[12:12 + hlen], 0, {}
        while pos < hlen:
            n = h[pos]
            name = h[pos + 1:pos + 1 + n].decode()
            pos += 1 + n
            if h[pos] != 7:
                raise ValueError('only string headers expected')
            vlen = struct.unpack('>H', h[pos + 1:pos + 3])[0]
            headers[name] = h[pos + 3:pos + 3 + vlen].decode()
            pos += 3 + vlen
        out.append((headers, msg[12 + hlen:-4]))
        off += total
    return out


# ---- the fake --------------------------------------------------------------------------------

class Handler(ScriptedHandler):

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == '/_fake/requests':
            return self.send_json(200, self.fake.requests)
        if u.path == '/_fake/stats':
            return self.send_json(200, {'count': self.fake.count})
        return self._aws_error(404, 'UnknownOperationException', None)

    def _aws_error(self, status, kind, message, headers=None):
        h = {'x-amzn-ErrorType': f'{kind}:http://internal.amazon.com/coral/com.amazon.bedrock/',
             'x-amzn-RequestId': f'fake-{self.fake.count}'}
        h.update(headers or {})
        return self.send_json(status, {'message': message} if message is not None else {}, h)

    def do_POST(self):
        u = urlsplit(self.path)
        body, framing = self.read_body()
        if u.path.startswith('/_fake/'):
            return self._control(u.path, body)
        rec = {'method': 'POST', 'path': u.path, 'query': u.query, 'model_id': None, 'op': None,
               'headers': [(k.lower(), v) for k, v in self.headers.items()],
               'body_len': len(body), 'body_sha256': hashlib.sha256(body).hexdigest(),
               'framing': framing, 'json': None, 'signed_headers': None,
               'received': time.time(), 'violations': []}
        with self.fake.lock:
            self.fake._requests.append(rec)
        err = self.fake.check_signature(self.command, self.path, self.headers, body, rec)
        if err is None:
            err = self.fake.check(u.path, self.headers, body, rec)
        if err is not None:
            status, kind, msg = err
            rec['violations'].append(msg)
            return self._aws_error(status, kind, msg)
        b = self.fake.next_behaviour(rec['json'])
        if b.get('delay_ms'):
            time.sleep(b['delay_ms'] / 1000)
        if b.get('hang'):
            self.fake._hang.wait()
            self.close_connection = True
            return
        if b.get('status') and b['status'] != 200:
            st = b['status']
            kind, msg = ERRORS.get(st, ('InternalServerException', 'fake: status %d' % st))
            return self._aws_error(st, b.get('error_type', kind), b.get('error_message', msg),
                                   b.get('headers'))
        if rec['op'] == 'count-tokens':
            return self.send_json(200, {'inputTokens': self.fake.inner_tokens(rec)})
        n = self.fake.count
        usage = {'input_tokens': 12, 'cache_creation_input_tokens': 0,
                 'cache_read_input_tokens': 0, 'output_tokens': 7}
        usage.update(b.get('usage') or {})
        model = self.fake.model_name(rec['model_id'])
        text = b.get('text', 'Hello from the fake Bedrock')
        headers = {'x-amzn-RequestId': f'fake-req-{n}'}
        headers.update(b.get('headers') or {})
        if rec['op'] == 'invoke':
            headers.update({'x-amzn-Bedrock-Input-Token-Count': str(usage['input_tokens']),
                            'x-amzn-Bedrock-Output-Token-Count': str(usage['output_tokens']),
                            'x-amzn-Bedrock-Invocation-Latency': '321'})
            return self.send_json(200, {
                'id': f'msg_bdrk_fake_{n}', 'type': 'message', 'role': 'assistant',
                'model': model, 'content': [{'type': 'text', 'text': text}],
                'stop_reason': 'end_turn', 'stop_sequence': None, 'usage': usage}, headers)
        self._stream(n, model, text, usage, b, headers)

    def _stream(self, n, model, text, usage, b, headers):
        events = [{'type': 'message_start', 'message': {
            'id': f'msg_bdrk_fake_{n}', 'type': 'message', 'role': 'assistant', 'model': model,
            'content': [], 'stop_reason': None, 'stop_sequence': None,
            'usage': dict(usage, output_tokens=1)}},
            {'type': 'content_block_start', 'index': 0,
             'content_block': {'type': 'text', 'text': ''}}]
        for i in range(b.get('events', 2)):
            events.append({'type': 'content_block_delta', 'index': 0,
                           'delta': {'type': 'text_delta', 'text': text if i == 0 else f' {i}'}})
        events += [{'type': 'content_block_stop', 'index': 0},
                   {'type': 'message_delta', 'delta': {'stop_reason': 'end_turn',
                                                        'stop_sequence': None},
                    'usage': {'output_tokens': usage['output_tokens']}},
                   {'type': 'message_stop', 'amazon-bedrock-invocationMetrics': {
                       'inputTokenCount': usage['input_tokens'],
                       'outputTokenCount': usage['output_tokens'],
                       'invocationLatency': 321, 'firstByteLatency': 123}}]
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header('content-type', 'application/vnd.amazon.eventstream')
        self.send_header('x-amzn-Bedrock-Content-Type', 'application/json')
        self.send_header('transfer-encoding', 'chunked')
        self.end_headers()
        for i, ev in enumerate(events):
            if b.get('disconnect_after') is not None and i >= b['disconnect_after']:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)
                self.close_connection = True
                return
            if b.get('exception_at') is not None and i == b['exception_at']:
                raw = es_exception(b.get('exception_type', 'throttlingException'),
                                   b.get('exception_message',
                                         'Too many requests, please wait before trying again.'),
                                   **(b.get('exception_extra') or {}))
                self._write(raw, b)
                break
            raw = es_chunk(ev)
            if b.get('corrupt_crc_at') is not None and i == b['corrupt_crc_at']:
                raw = raw[:-1] + bytes([raw[-1] ^ 0xff])
            self._write(raw, b)
            if b.get('pace_ms') and ev['type'] in ('message_start', 'content_block_delta'):
                time.sleep(b['pace_ms'] / 1000)
        self.wfile.write(b'0\r\n\r\n')
        self.wfile.flush()

    def _write(self, raw, b):
        parts = [raw]
        if b.get('split'):  # every message in three uneven pieces: prelude cut too
            parts = [raw[:5], raw[5:len(raw) // 2], raw[len(raw) // 2:]]
        for p in parts:
            self.wfile.write(b'%x\r\n%s\r\n' % (len(p), p))
            self.wfile.flush()


class BedrockFake(ScriptedFake):
    handler = Handler

    def __init__(self, access_key_id='AKIDFAKEBEDROCK', secret_access_key='fake-secret',
                 session_token=None, region='us-east-1', max_skew=300, **kw):
        self.access_key_id = access_key_id
        self.secret_access_key = secret_access_key
        self.session_token = session_token
        self.region = region
        self.max_skew = max_skew  # seconds; None: any x-amz-date (fixed test vectors)
        self.guardrail = None  # (id, version) every invocation must carry
        self.guardrail_trace = False
        self.guardrail_tagging = False
        super().__init__(**kw)

    def check_signature(self, method, raw_path, headers, body, rec):
        """None, or (status, exception type, message) as Bedrock answers it."""
        auth = headers.get('authorization')
        if not auth:
            return 403, 'MissingAuthenticationTokenException', 'Missing Authentication Token'
        try:
            alg, rest = auth.split(' ', 1)
            fields = dict(p.strip().split('=', 1) for p in rest.split(','))
            cred = fields['Credential'].split('/')
            signed = fields['SignedHeaders'].split(';')
            got = fields['Signature']
        except (ValueError, KeyError):
            return 403, 'IncompleteSignatureException', 'Authorization header is malformed'
        rec['signed_headers'] = signed
        if alg != 'AWS4-HMAC-SHA256' or len(cred) != 5 or cred[4] != 'aws4_request':
            return 403, 'IncompleteSignatureException', 'Unsupported signature algorithm or scope'
        if cred[0] != self.access_key_id:
            return 403, 'UnrecognizedClientException', \
                'The security token included in the request is invalid.'
        amz_date = headers.get('x-amz-date', '')
        if len(amz_date) != 16 or cred[1] != amz_date[:8]:
            return 403, 'InvalidSignatureException', 'credential date does not match x-amz-date'
        if cred[2] != self.region:
            return 403, 'InvalidSignatureException', \
                f"Credential should be scoped to a valid region, not '{cred[2]}'."
        if cred[3] != 'bedrock':
            return 403, 'InvalidSignatureException', \
                "Credential should be scoped to correct service: 'bedrock'."
        if self.max_skew is not None:
            try:
                t = calendar.timegm(time.strptime(amz_date, '%Y%m%dT%H%M%SZ'))
            except ValueError:
                return 403, 'InvalidSignatureException', 'bad x-amz-date'
            if abs(time.time() - t) > self.max_skew:
                return 403, 'InvalidSignatureException', \
                    f'Signature expired: {amz_date} is outside the allowed skew'
        if signed != sorted(signed) or len(set(signed)) != len(signed) or \
                'host' not in signed or 'x-amz-date' not in signed:
            return 403, 'InvalidSignatureException', 'SignedHeaders must list host and x-amz-date'
        token = headers.get('x-amz-security-token')
        if self.session_token is not None:
            if token != self.session_token or 'x-amz-security-token' not in signed:
                return 403, 'UnrecognizedClientException', \
                    'The security token included in the request is invalid.'
        elif token is not None:
            return 403, 'UnrecognizedClientException', \
                'The security token included in the request is invalid.'
        payload_hash = hashlib.sha256(body).hexdigest()
        declared = headers.get('x-amz-content-sha256')
        if declared is not None and declared != payload_hash:
            return 400, 'XAmzContentSHA256Mismatch', \
                'The provided x-amz-content-sha256 header does not match what was computed.'
        received = {}
        for k, v in headers.items():
            received.setdefault(k.lower(), []).append(v)
        for name in signed:
            if name not in received:
                return 403, 'InvalidSignatureException', f'signed header {name} is missing'
        path, _, query = raw_path.partition('?')
        creq = canonical_request(method, path, query, received, signed, payload_hash)
        want = sign(self.secret_access_key, amz_date, self.region, 'bedrock', creq)
        if not hmac.compare_digest(want, got):
            return 403, 'InvalidSignatureException', SIG_MISMATCH
        return None

    def check(self, path, headers, body, rec):
        """None, or (status, exception type, message) for a request Bedrock refuses."""
        parts = path.split('/')
        if len(parts) != 4 or parts[1] != 'model' or parts[3] not in OPS or not parts[2]:
            return 404, 'UnknownOperationException', f'unknown path {path}'
        rec['model_id'] = unquote(parts[2])
        rec['op'] = parts[3]
        if ':' in parts[2]:
            return 400, 'ValidationException', 'model id must be percent-encoded in the path'
        if headers.get('anthropic-beta') is not None:
            return 400, 'ValidationException', 'anthropic-beta belongs in the body on Bedrock'
        try:
            j = json.loads(body)
        except ValueError:
            return 400, 'ValidationException', 'body is not JSON'
        rec['json'] = j
        if not isinstance(j, dict):
            return 400, 'ValidationException', 'body must be a JSON object'
        err = self.check_guardrail(rec['op'], headers, j, rec)
        if err is not None:
            return err
        if rec['op'] == 'count-tokens':
            try:
                inner = json.loads(base64.b64decode(j['input']['invokeModel']['body'],
                                                    validate=True))
            except (KeyError, TypeError, ValueError, binascii.Error):
                return 400, 'ValidationException', 'count-tokens needs input.invokeModel.body'
            if not isinstance(inner, dict):
                return 400, 'ValidationException', 'count-tokens body must be an object'
            rec['inner'] = inner
            if inner.get('tools') == []:
                return 400, 'ValidationException', 'tools must not be empty'
            j = inner
        return self.check_invoke_body(j)

    @staticmethod
    def check_invoke_body(j):
        if j.get('anthropic_version') != ANTHROPIC_VERSION:
            return 400, 'ValidationException', f'anthropic_version must be {ANTHROPIC_VERSION}'
        for k in ('model', 'stream', 'tags'):
            if k in j:
                return 400, 'ValidationException', f'extraneous key [{k}] is not permitted'
        if not isinstance(j.get('messages'), list):
            return 400, 'ValidationException', 'messages must be a list'
        if not isinstance(j.get('max_tokens'), int) or j['max_tokens'] < 1:
            return 400, 'ValidationException', 'max_tokens must be a positive integer'
        budget = (j.get('thinking') or {}).get('budget_tokens') \
            if isinstance(j.get('thinking'), dict) else None
        if isinstance(budget, int) and j['max_tokens'] <= budget:
            return 400, 'ValidationException', 'max_tokens must be greater than budget_tokens'
        betas = j.get('anthropic_beta')
        if betas is not None:
            if not isinstance(betas, list) or not all(isinstance(x, str) for x in betas):
                return 400, 'ValidationException', 'anthropic_beta must be a list of strings'
            if REQUEST_TAGS_BETA in betas:
                return 400, 'ValidationException', f'invalid beta flag {REQUEST_TAGS_BETA}'
        return None

    def check_guardrail(self, op, headers, j, rec):
        """Bedrock's guardrail rules: the identifier and version headers go
        together (and not on CountTokens), amazon-bedrock-guardrailConfig in
        the body needs them; with .guardrail = (id, version) set, every
        invocation must carry exactly that, with .guardrail_trace the trace
        header, and with .guardrail_tagging the last user turn's text (and
        nothing else) wrapped in tags with the body's tagSuffix."""
        gid = headers.get('x-amzn-bedrock-guardrailidentifier')
        gver = headers.get('x-amzn-bedrock-guardrailversion')
        trace = headers.get('x-amzn-bedrock-trace')
        config = j.get('amazon-bedrock-guardrailConfig')
        rec['guardrail'] = {'id': gid, 'version': gver, 'trace': trace,
                            'suffix': (config or {}).get('tagSuffix')
                            if isinstance(config, dict) else None}
        if (gid is None) != (gver is None):
            return 400, 'ValidationException', \
                'guardrailIdentifier and guardrailVersion must be given together'
        if config is not None and gid is None:
            return 400, 'ValidationException', \
                'amazon-bedrock-guardrailConfig requires a guardrail identifier'
        if op == 'count-tokens':
            if gid is not None or trace is not None:
                return 400, 'ValidationException', 'CountTokens takes no guardrail'
            return None
        want = self.guardrail
        if want is not None and (gid, gver) != tuple(want):
            return 400, 'ValidationException', f'expected guardrail {want}, got {(gid, gver)}'
        if want is None and gid is not None:
            return 400, 'ValidationException', 'unexpected guardrail'
        if (trace == 'ENABLED') != bool(self.guardrail_trace and want is not None):
            return 400, 'ValidationException', f'unexpected X-Amzn-Bedrock-Trace {trace!r}'
        if not self.guardrail_tagging or want is None:
            if config is not None or GUARD_TAG in json.dumps(j):
                return 400, 'ValidationException', 'unexpected guardrail input tags'
            return None
        suffix = rec['guardrail']['suffix']
        if config is None:  # nothing to tag (a turn of tool results): all is judged
            if GUARD_TAG in json.dumps(j):
                return 400, 'ValidationException', 'input tags without a tagSuffix'
            return None
        if not isinstance(suffix, str) or not suffix.isalnum():
            return 400, 'ValidationException', 'tagSuffix must be alphanumeric'
        msgs = j.get('messages') or []
        last = max((i for i, m in enumerate(msgs) if m.get('role') == 'user'), default=None)
        opening, closing = f'<{GUARD_TAG}{suffix}>', f'</{GUARD_TAG}{suffix}>'
        for i, m in enumerate(msgs):
            content = m.get('content')
            texts = [content] if isinstance(content, str) else \
                [b.get('text') for b in content or [] if b.get('type') == 'text']
            for t in texts:
                wrapped = isinstance(t, str) and t.startswith(opening) and t.endswith(closing) \
                    and t.count(opening) == 1
                if wrapped != (i == last):
                    return 400, 'ValidationException', \
                        f'messages[{i}]: input tags only around the last user turn'
        if GUARD_TAG in json.dumps({k: v for k, v in j.items() if k != 'messages'}):
            return 400, 'ValidationException', 'input tags outside the messages'
        return None

    @staticmethod
    def inner_tokens(rec):
        return max(1, len(json.dumps(rec.get('inner'))) // 4)

    @staticmethod
    def model_name(model_id):
        """The Anthropic id Bedrock reports for a Bedrock model id."""
        m = model_id.split('/')[-1]
        for prefix in ('us.', 'eu.', 'apac.', 'global.'):
            if m.startswith(prefix):
                m = m[len(prefix):]
        if m.startswith('anthropic.'):
            m = m[len('anthropic.'):]
        return m.split('-v')[0] if '-v' in m else m


if __name__ == '__main__':
    import os

    def make(args, rest):
        def opt(name, env, default=None):
            if name in rest:
                return rest[rest.index(name) + 1]
            return os.environ.get(env, default)
        return BedrockFake(access_key_id=opt('--access-key-id', 'FAKE_AWS_ACCESS_KEY_ID',
                                             'AKIDFAKEBEDROCK'),
                           secret_access_key=opt('--secret-access-key',
                                                 'FAKE_AWS_SECRET_ACCESS_KEY', 'fake-secret'),
                           session_token=opt('--session-token', 'FAKE_AWS_SESSION_TOKEN'),
                           region=opt('--region', 'FAKE_AWS_REGION', 'us-east-1'),
                           port=args.port, verbose=args.verbose)
    serve_main(make)
