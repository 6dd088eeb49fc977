"""Shared plumbing of the fakes: a threaded HTTP/1.1 server on 127.0.0.1,
started in the background, with a JSON control API under /_fake/."""
import json
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer


class FakeHandler(BaseHTTPRequestHandler):
    protocol_version = 'HTTP/1.1'
    fake = None  # set per server class

    def log_message(self, fmt, *args):
        if self.fake.verbose:
            super().log_message(fmt, *args)

    def read_body(self):
        """The request body, de-chunked, and how it was framed."""
        if self.headers.get('transfer-encoding', '').lower() == 'chunked':
            body = b''
            while True:
                size = int(self.rfile.readline().split(b';')[0].strip(), 16)
                if size == 0:
                    while self.rfile.readline() not in (b'\r\n', b'\n', b''):
                        pass
                    return body, 'chunked'
                body += self.rfile.read(size)
                self.rfile.readline()
        if self.headers.get('content-length') is not None:
            return self.rfile.read(int(self.headers['content-length'])), 'content-length'
        return b'', 'none'

    def send_json(self, status, obj, headers=None):
        out = json.dumps(obj).encode()
        self.send_response(status)
        for k, v in (headers or {}).items():
            self.send_header(k, v)
        self.send_header('content-type', 'application/json')
        self.send_header('content-length', str(len(out)))
        self.end_headers()
        self.wfile.write(out)



class ScriptedHandler(FakeHandler):
    """Handler side of ScriptedFake: the /_fake/reset, /_fake/script and
    /_fake/default controls."""

    def _control(self, path, body):
        data = json.loads(body or b'null')
        if path == '/_fake/reset':
            self.fake.reset()
        elif path == '/_fake/script':
            with self.fake.lock:
                self.fake._script = list(data or [])
        elif path == '/_fake/default':
            with self.fake.lock:
                self.fake._default = dict(data or {})
        else:
            return self.send_json(404, {'error': 'no such control'})
        return self.send_json(200, {'ok': True})

class FakeServer:
    """Base of the fakes: .start(), .stop(), .url, .port, thread-safe state."""

    handler = FakeHandler

    def __init__(self, host='127.0.0.1', port=0, verbose=False):
        self.verbose = verbose
        self.lock = threading.Lock()
        handler = type('Handler', (self.handler,), {'fake': self})
        self.httpd = ThreadingHTTPServer((host, port), handler)
        self.httpd.daemon_threads = True
        self.port = self.httpd.server_address[1]
        self.url = f'http://127.0.0.1:{self.port}'
        self._thread = None

    def start(self):
        self._thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)
        self._thread.start()
        return self

    def stop(self):
        self.httpd.shutdown()
        self.httpd.server_close()



class ScriptedFake(FakeServer):
    """A fake that records every request and takes scripted behaviours: a
    queue (POST /_fake/script), a default (POST /_fake/default), or a "_fake"
    object in the request body; hang waits until the fake stops."""

    def __init__(self, **kw):
        self._requests = []
        self._script = []
        self._default = {}
        self._hang = threading.Event()
        super().__init__(**kw)

    def next_behaviour(self, body):
        with self.lock:
            b = dict(self._default)
            if self._script:
                b.update(self._script.pop(0))
        if isinstance(body, dict) and isinstance(body.get('_fake'), dict):
            b.update(body['_fake'])
        return b

    @property
    def count(self):
        with self.lock:
            return len(self._requests)

    @property
    def requests(self):
        with self.lock:
            return [dict(r) for r in self._requests]

    @property
    def last(self):
        r = self.requests
        return r[-1] if r else None

    def reset(self):
        with self.lock:
            self._requests.clear()
            self._script.clear()
            self._default = {}

    def stop(self):
        self._hang.set()
        super().stop()


def serve_main(make, argv=None):
    """Run a fake as a script: --port, --port-file; until SIGTERM/SIGINT."""
    import argparse
    import signal
    ap = argparse.ArgumentParser()
    ap.add_argument('--port', type=int, default=0)
    ap.add_argument('--port-file')
    ap.add_argument('--verbose', action='store_true')
    args, rest = ap.parse_known_args(argv)
    fake = make(args, rest).start()
    if args.port_file:
        with open(args.port_file, 'w') as f:
            f.write(str(fake.port))
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    signal.signal(signal.SIGINT, lambda *_: done.set())
    print(f'listening on {fake.url}', flush=True)
    done.wait()
    fake.stop()
