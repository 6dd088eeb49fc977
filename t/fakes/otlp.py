"""OtlpFake: an OTLP/HTTP collector that decodes what it receives.

POST /v1/metrics, /v1/logs, /v1/traces with application/x-protobuf (decoded
without generated code: a small wire-format reader and the field numbers of
opentelemetry-proto) or application/json; gzip accepted. Exports become
plain dicts in the OTLP/JSON shape, so tests assert on names, attributes and
values. Anything else is refused and recorded as a violation. Failures
(status, delay) can be injected for timeout and circuit-breaker tests.
"""
import gzip
import json
import struct
import sys
import time
from urllib.parse import urlsplit

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import FakeHandler, FakeServer, serve_main  # noqa: E402
else:
    from ._server import FakeHandler, FakeServer, serve_main

# --- protobuf wire format -------------------------------------------------

# schema: field number -> (json name, kind, repeated); kind is a schema dict
# for sub-messages or one of 'string', 'bytes', 'varint', 'bool', 'fixed64',
# 'sfixed64', 'double', 'fixed64s' (packed), 'doubles' (packed)
ANY = {}
KV = {1: ('key', 'string', False), 2: ('value', ANY, False)}
ANY.update({1: ('stringValue', 'string', False), 2: ('boolValue', 'bool', False),
            3: ('intValue', 'varint', False), 4: ('doubleValue', 'double', False),
            5: ('arrayValue', {1: ('values', ANY, True)}, False),
            6: ('kvlistValue', {1: ('values', KV, True)}, False),
            7: ('bytesValue', 'bytes', False)})
RESOURCE = {1: ('attributes', KV, True), 2: ('droppedAttributesCount', 'varint', False)}
SCOPE = {1: ('name', 'string', False), 2: ('version', 'string', False),
         3: ('attributes', KV, True)}
NUMBER_POINT = {7: ('attributes', KV, True), 2: ('startTimeUnixNano', 'fixed64', False),
                3: ('timeUnixNano', 'fixed64', False), 4: ('asDouble', 'double', False),
                6: ('asInt', 'sfixed64', False), 8: ('flags', 'varint', False)}
HIST_POINT = {9: ('attributes', KV, True), 2: ('startTimeUnixNano', 'fixed64', False),
              3: ('timeUnixNano', 'fixed64', False), 4: ('count', 'fixed64', False),
              5: ('sum', 'double', False), 6: ('bucketCounts', 'fixed64s', False),
              7: ('explicitBounds', 'doubles', False), 10: ('flags', 'varint', False),
              11: ('min', 'double', False), 12: ('max', 'double', False)}
METRIC = {1: ('name', 'string', False), 2: ('description', 'string', False),
          3: ('unit', 'string', False),
          5: ('gauge', {1: ('dataPoints', NUMBER_POINT, True)}, False),
          7: ('sum', {1: ('dataPoints', NUMBER_POINT, True),
                      2: ('aggregationTemporality', 'varint', False),
                      3: ('isMonotonic', 'bool', False)}, False),
          9: ('histogram', {1: ('dataPoints', HIST_POINT, True),
                            2: ('aggregationTemporality', 'varint', False)}, False)}
METRICS_REQ = {1: ('resourceMetrics', {
    1: ('resource', RESOURCE, False),
    2: ('scopeMetrics', {1: ('scope', SCOPE, False), 2: ('metrics', METRIC, True),
                         3: ('schemaUrl', 'string', False)}, True),
    3: ('schemaUrl', 'string', False)}, True)}
LOG_RECORD = {1: ('timeUnixNano', 'fixed64', False), 11: ('observedTimeUnixNano', 'fixed64', False),
              2: ('severityNumber', 'varint', False), 3: ('severityText', 'string', False),
              5: ('body', ANY, False), 6: ('attributes', KV, True), 8: ('flags', 'varint', False),
              9: ('traceId', 'bytes', False), 10: ('spanId', 'bytes', False),
              12: ('eventName', 'string', False)}
LOGS_REQ = {1: ('resourceLogs', {
    1: ('resource', RESOURCE, False),
    2: ('scopeLogs', {1: ('scope', SCOPE, False), 2: ('logRecords', LOG_RECORD, True)}, True)},
    True)}
SPAN = {1: ('traceId', 'bytes', False), 2: ('spanId', 'bytes', False),
        3: ('traceState', 'string', False), 4: ('parentSpanId', 'bytes', False),
        5: ('name', 'string', False), 6: ('kind', 'varint', False),
        7: ('startTimeUnixNano', 'fixed64', False), 8: ('endTimeUnixNano', 'fixed64', False),
        9: ('attributes', KV, True)}
TRACES_REQ = {1: ('resourceSpans', {
    1: ('resource', RESOURCE, False),
    2: ('scopeSpans', {1: ('scope', SCOPE, False), 2: ('spans', SPAN, True)}, True)}, True)}
SIGNALS = {'/v1/metrics': ('metrics', METRICS_REQ), '/v1/logs': ('logs', LOGS_REQ),
           '/v1/traces': ('traces', TRACES_REQ)}


class DecodeError(ValueError):
    pass


def _varint(buf, i):
    shift = result = 0
    while True:
        if i >= len(buf) or shift > 63:
            raise DecodeError('truncated varint')
        b = buf[i]
        i += 1
        result |= (b & 0x7f) << shift
        if not b & 0x80:
            return result, i
        shift += 7


def decode(buf, schema):
    """Decode one message per schema; unknown fields are skipped, malformed
    input raises DecodeError."""
    out = {}
    i = 0
    while i < len(buf):
        key, i = _varint(buf, i)
        field, wire = key >> 3, key & 7
        if wire == 0:
            val, i = _varint(buf, i)
        elif wire == 1:
            if i + 8 > len(buf):
                raise DecodeError('truncated fixed64')
            val, i = buf[i:i + 8], i + 8
        elif wire == 2:
            n, i = _varint(buf, i)
            if i + n > len(buf):
                raise DecodeError('truncated length-delimited field')
            val, i = buf[i:i + n], i + n
        elif wire == 5:
            if i + 4 > len(buf):
                raise DecodeError('truncated fixed32')
            val, i = buf[i:i + 4], i + 4
        else:
            raise DecodeError(f'wire type {wire}')
        if field not in schema:
            continue
        name, kind, repeated = schema[field]
        if isinstance(kind, dict):
            if wire != 2:
                raise DecodeError(f'{name}: expected a message')
            v = decode(val, kind)
        elif kind == 'string':
            v = val.decode('utf-8')
        elif kind == 'bytes':
            v = val.hex()
        elif kind == 'varint':
            v = val - (1 << 64) if val >= 1 << 63 else val
        elif kind == 'bool':
            v = bool(val)
        elif kind in ('fixed64', 'sfixed64', 'double'):
            fmt = {'fixed64': '<Q', 'sfixed64': '<q', 'double': '<d'}[kind]
            v = struct.unpack(fmt, val)[0]
            if kind == 'fixed64':
                v = str(v)  # OTLP/JSON writes 64-bit integers as strings
        elif kind in ('fixed64s', 'doubles'):
            raw = val if wire == 2 else val
            fmt = '<Q' if kind == 'fixed64s' else '<d'
            v = [struct.unpack(fmt, raw[k:k + 8])[0] for k in range(0, len(raw), 8)]
            if kind == 'fixed64s':
                v = [str(x) for x in v]
            out.setdefault(name, []).extend(v)
            continue
        else:
            raise DecodeError(kind)
        if repeated:
            out.setdefault(name, []).append(v)
        else:
            out[name] = v
    return out


def _put_varint(v):
    out = bytearray()
    v &= (1 << 64) - 1
    while True:
        b = v & 0x7f
        v >>= 7
        out.append(b | (0x80 if v else 0))
        if not v:
            return bytes(out)


def encode(obj, schema):
    """The inverse of decode(), for tests that send protobuf exports: obj in
    the OTLP/JSON shape (lowerCamelCase names) encoded per schema. Names the
    schema lacks are refused, so a typo cannot silently vanish."""
    by_name = {name: (field, kind) for field, (name, kind, _) in schema.items()}
    out = bytearray()
    for name, value in obj.items():
        if name not in by_name:
            raise KeyError(f'{name}: not in the schema')
        field, kind = by_name[name]
        values = value if isinstance(value, list) and kind not in ('fixed64s', 'doubles') \
            else [value]
        for v in values:
            if isinstance(kind, dict):
                body = encode(v, kind)
                out += _put_varint(field << 3 | 2) + _put_varint(len(body)) + body
            elif kind in ('string', 'bytes'):
                body = v.encode() if kind == 'string' else bytes.fromhex(v)
                out += _put_varint(field << 3 | 2) + _put_varint(len(body)) + body
            elif kind in ('varint', 'bool'):
                out += _put_varint(field << 3) + _put_varint(int(v))
            elif kind in ('fixed64', 'sfixed64', 'double'):
                fmt = {'fixed64': '<Q', 'sfixed64': '<q', 'double': '<d'}[kind]
                out += _put_varint(field << 3 | 1) + struct.pack(
                    fmt, float(v) if kind == 'double' else int(v))
            elif kind in ('fixed64s', 'doubles'):
                fmt = '<Q' if kind == 'fixed64s' else '<d'
                body = b''.join(struct.pack(fmt, float(x) if kind == 'doubles' else int(x))
                                for x in v)
                out += _put_varint(field << 3 | 2) + _put_varint(len(body)) + body
            else:
                raise ValueError(kind)
    return bytes(out)


def attrs(kvs):
    """OTLP attributes as a plain dict."""
    def val(v):
        if 'arrayValue' in v:
            return [val(x) for x in v['arrayValue'].get('values', [])]
        for k in ('stringValue', 'boolValue', 'intValue', 'doubleValue', 'bytesValue'):
            if k in v:
                return int(v[k]) if k == 'intValue' else v[k]
        return None
    return {kv['key']: val(kv.get('value', {})) for kv in kvs or []}


# --- the collector ----------------------------------------------------------

class Handler(FakeHandler):

    def do_GET(self):
        if urlsplit(self.path).path == '/_fake/received':
            return self.send_json(200, self.fake.received())
        return self.send_json(404, {})

    def do_POST(self):
        f = self.fake
        path = urlsplit(self.path).path
        body, _ = self.read_body()
        if path == '/_fake/fail':
            with f.lock:
                f.fail = json.loads(body or b'{}')
            return self.send_json(200, {'ok': True})
        if path == '/_fake/reset':
            f.reset()
            return self.send_json(200, {'ok': True})
        if path not in SIGNALS:
            return self.send_json(404, {})
        with f.lock:
            fail = dict(f.fail) if f.fail and f.fail.get('count', 1) > 0 else None
            if fail and 'count' in f.fail:
                f.fail['count'] -= 1
        if fail:
            time.sleep(fail.get('delay_ms', 0) / 1000)
            if fail.get('status'):
                return self.send_json(fail['status'], {})
        for k, v in f.required_headers.items():
            if self.headers.get(k) != v:
                f.violation(f'{path}: header {k} missing or wrong')
                return self.send_json(401, {})
        ct = (self.headers.get('content-type') or '').split(';')[0].strip()
        if self.headers.get('content-encoding') == 'gzip':
            body = gzip.decompress(body)
        signal, schema = SIGNALS[path]
        try:
            if ct == 'application/x-protobuf':
                decoded = decode(body, schema)
            elif ct == 'application/json':
                decoded = json.loads(body)
            else:
                f.violation(f'{path}: content-type {ct!r}')
                return self.send_json(415, {})
        except (ValueError, UnicodeDecodeError) as e:
            f.violation(f'{path}: undecodable {ct} body: {e}')
            return self.send_json(400, {})
        with f.lock:
            f._exports.append({'signal': signal, 'content_type': ct, 'raw_len': len(body),
                               'headers': [(k.lower(), v) for k, v in self.headers.items()],
                               'decoded': decoded, 'at': time.time()})
        if ct == 'application/json':
            return self.send_json(200, {})
        self.send_response(200)
        self.send_header('content-type', 'application/x-protobuf')
        self.send_header('content-length', '0')  # an empty Export*ServiceResponse
        self.end_headers()


class OtlpFake(FakeServer):
    handler = Handler

    def __init__(self, required_headers=None, **kw):
        self.required_headers = dict(required_headers or {})
        self._exports = []
        self.violations = []
        self.fail = None
        super().__init__(**kw)

    def reset(self):
        with self.lock:
            self._exports.clear()
            self.violations.clear()
            self.fail = None

    def violation(self, what):
        with self.lock:
            self.violations.append(what)

    def received(self, signal=None):
        with self.lock:
            return [dict(e) for e in self._exports if signal in (None, e['signal'])]

    def metric_points(self, name):
        """Every data point of metric `name`, with the resource attributes
        merged under 'resource' and its own under 'attrs'."""
        points = []
        for e in self.received('metrics'):
            for rm in e['decoded'].get('resourceMetrics', []):
                res = attrs(rm.get('resource', {}).get('attributes'))
                for sm in rm.get('scopeMetrics', []):
                    for m in sm.get('metrics', []):
                        if m.get('name') != name:
                            continue
                        for kind in ('sum', 'gauge', 'histogram'):
                            for dp in m.get(kind, {}).get('dataPoints', []):
                                points.append(dict(dp, kind=kind, resource=res,
                                                   attrs=attrs(dp.get('attributes'))))
        return points

    def wait_for(self, predicate, timeout=10.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if predicate(self):
                return True
            time.sleep(0.05)
        return predicate(self)


if __name__ == '__main__':
    serve_main(lambda args, rest: OtlpFake(port=args.port, verbose=args.verbose))
