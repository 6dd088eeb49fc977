"""AnthropicFake: the Anthropic Messages API, strict.

It checks the credential the gateway must add (x-api-key, or a bearer), the
content type, the anthropic-version header and the body (a JSON object with
a string model; messages and max_tokens on /v1/messages), and records every
request: headers, path, query, framing, body length and SHA-256, violations.
Replies are JSON or SSE (the event sequence of the real API) and can be
shaped per request by a top-level "_fake" object in the body, or by a queue
set with POST /_fake/script: status, stream, events, pace_ms, split, usage,
text, delay_ms, hang, disconnect_after, headers, error_event.
"""
import hashlib
import json
import socket
import sys
import time
from urllib.parse import urlsplit

if __package__ in (None, ''):
    sys.path.insert(0, __import__('os').path.dirname(__import__('os').path.dirname(
        __import__('os').path.abspath(__file__))))
    from fakes._server import ScriptedFake, ScriptedHandler, serve_main  # noqa: E402
else:
    from ._server import ScriptedFake, ScriptedHandler, serve_main

ERROR_TYPES = {400: 'invalid_request_error', 401: 'authentication_error',
               403: 'permission_error', 404: 'not_found_error', 413: 'request_too_large',
               429: 'rate_limit_error', 500: 'api_error', 529: 'overloaded_error'}


class Handler(ScriptedHandler):

    def do_GET(self):
        u = urlsplit(self.path)
        if u.path == '/_fake/requests':
            return self.send_json(200, self.fake.requests)
        if u.path == '/_fake/stats':
            return self.send_json(200, {'count': len(self.fake.requests)})
        return self.send_json(404, {'type': 'error', 'error': {'type': 'not_found_error',
                                                               'message': 'fake: no such path'}})

    def do_POST(self):
        u = urlsplit(self.path)
        body, framing = self.read_body()
        if u.path.startswith('/_fake/'):
            return self._control(u.path, body)
        rec = {'method': 'POST', 'path': u.path, 'query': u.query,
               'headers': [(k.lower(), v) for k, v in self.headers.items()],
               'body_len': len(body), 'body_sha256': hashlib.sha256(body).hexdigest(),
               'framing': framing, 'json': None, 'received': time.time(), 'violations': []}
        viol = rec['violations']
        with self.fake.lock:
            self.fake._requests.append(rec)
        status, msg = self.fake.check(self.headers, u.path, body, rec)
        if status:
            viol.append(msg)
            return self._error(status, 'fake: ' + msg)
        behaviour = self.fake.next_behaviour(rec['json'])
        if behaviour.get('delay_ms'):
            time.sleep(behaviour['delay_ms'] / 1000)
        if behaviour.get('hang'):
            self.fake._hang.wait()
            self.close_connection = True
            return
        if behaviour.get('status') and behaviour['status'] != 200:
            st = behaviour['status']
            return self.send_json(st, behaviour.get('error_body') or {
                'type': 'error', 'error': {'type': ERROR_TYPES.get(st, 'api_error'),
                                           'message': f'fake: status {st}'}},
                behaviour.get('headers'))
        if u.path.endswith('/count_tokens'):
            return self.send_json(200, {'input_tokens': max(1, len(body) // 4)})
        n = self.fake.count
        usage = {'input_tokens': 12, 'cache_creation_input_tokens': 0,
                 'cache_read_input_tokens': 0, 'output_tokens': 7}
        usage.update(behaviour.get('usage') or {})
        model = rec['json']['model']
        text = behaviour.get('text', 'Hello from the fake Anthropic API')
        headers = {'request-id': f'req_fake_{n}', 'anthropic-organization-id': 'org-fake'}
        headers.update(behaviour.get('headers') or {})
        stream = behaviour.get('stream', rec['json'].get('stream') is True)
        if not stream:
            return self.send_json(200, {
                'id': f'msg_fake_{n}', 'type': 'message', 'role': 'assistant', 'model': model,
                'content': [{'type': 'text', 'text': text}], 'stop_reason': 'end_turn',
                'stop_sequence': None, 'usage': usage}, headers)
        self._sse(n, model, text, usage, behaviour, headers)

    def _sse(self, n, model, text, usage, b, headers):
        events = [('message_start', {'type': 'message_start', 'message': {
            'id': f'msg_fake_{n}', 'type': 'message', 'role': 'assistant', 'model': model,
            'content': [], 'stop_reason': None, 'stop_sequence': None,
            'usage': dict(usage, output_tokens=1)}}),
            ('content_block_start', {'type': 'content_block_start', 'index': 0,
                                     'content_block': {'type': 'text', 'text': ''}}),
            ('ping', {'type': 'ping'})]
        count = b.get('events', 2)
        for i in range(count):
            piece = text if i == 0 else f' {i}'
            events.append(('content_block_delta', {'type': 'content_block_delta', 'index': 0,
                                                   'delta': {'type': 'text_delta',
                                                             'text': piece}}))
        events += [('content_block_stop', {'type': 'content_block_stop', 'index': 0}),
                   ('message_delta', {'type': 'message_delta',
                                      'delta': {'stop_reason': 'end_turn', 'stop_sequence': None},
                                      'usage': {'output_tokens': usage['output_tokens']}}),
                   ('message_stop', {'type': 'message_stop'})]
        self.send_response(200)
        for k, v in headers.items():
            self.send_header(k, v)
        self.send_header('content-type', 'text/event-stream; charset=utf-8')
        self.send_header('cache-control', 'no-cache')
        self.send_header('transfer-encoding', 'chunked')
        self.end_headers()
        deltas = 0
        for i, (name, data) in enumerate(events):
            if b.get('disconnect_after') is not None and i >= b['disconnect_after']:
                self.wfile.flush()
                self.connection.shutdown(socket.SHUT_RDWR)  # no message_stop, no last chunk
                self.close_connection = True
                return
            if b.get('error_event') is not None and i == b['error_event']:
                name, data = 'error', {'type': 'error', 'error': {'type': 'overloaded_error',
                                                                  'message': 'Overloaded'}}
            raw = f'event: {name}\ndata: {json.dumps(data)}\n\n'.encode()
            parts = [raw[:len(raw) // 2], raw[len(raw) // 2:]] if b.get('split') else [raw]
            for p in parts:
                self.wfile.write(b'%x\r\n%s\r\n' % (len(p), p))
                self.wfile.flush()
            if name == 'content_block_delta':
                deltas += 1
            if b.get('pace_ms') and name in ('message_start', 'content_block_delta'):
                time.sleep(b['pace_ms'] / 1000)
        self.wfile.write(b'0\r\n\r\n')
        self.wfile.flush()

    def _error(self, status, message):
        return self.send_json(status, {'type': 'error', 'error': {
            'type': ERROR_TYPES.get(status, 'api_error'), 'message': message}})


class AnthropicFake(ScriptedFake):
    handler = Handler

    def __init__(self, api_key=None, auth='x-api-key', **kw):
        self.api_key = api_key
        self.auth = auth
        super().__init__(**kw)

    def check(self, headers, path, body, rec):
        """(status, violation) for a request the real API would refuse."""
        if self.api_key is not None:
            if self.auth == 'bearer':
                ok = headers.get('authorization') == 'Bearer ' + self.api_key
            else:
                ok = headers.get('x-api-key') == self.api_key
            if not ok:
                return 401, 'missing or wrong credential'
        if path not in ('/v1/messages', '/v1/messages/count_tokens'):
            return 404, f'unknown path {path}'
        if not (headers.get('content-type') or '').startswith('application/json'):
            return 400, 'content-type must be application/json'
        if not headers.get('anthropic-version'):
            return 400, 'anthropic-version header missing'
        try:
            j = json.loads(body)
        except ValueError:
            return 400, 'body is not JSON'
        rec['json'] = j
        if not isinstance(j, dict) or not isinstance(j.get('model'), str):
            return 400, 'body must be an object with a string model'
        if path == '/v1/messages':
            if not isinstance(j.get('messages'), list):
                return 400, 'messages must be a list'
            if not isinstance(j.get('max_tokens'), int):
                return 400, 'max_tokens must be an integer'
        return 0, None


if __name__ == '__main__':
    import os

    def make(args, rest):
        key = os.environ.get('FAKE_ANTHROPIC_API_KEY')
        if '--api-key' in rest:
            key = rest[rest.index('--api-key') + 1]
        return AnthropicFake(api_key=key, port=args.port, verbose=args.verbose)
    serve_main(make)
