"""Small HTTP clients for what `requests` hides: chunked uploads, Expect:
100-continue, and per-event arrival times of an SSE stream."""
import http.client
import json
import socket
import time


class Reply:
    def __init__(self, status, headers, body, events=None):
        self.status = status
        self.headers = {k.lower(): v for k, v in headers}
        self.body = body
        self.events = events or []  # [(seconds since request, event name, data)]

    @property
    def json(self):
        return json.loads(self.body)


def post(port, path, body, headers=None, chunked=False, chunk_size=8192):
    """POST body (bytes) with Content-Length, or chunked when asked."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01'}
    h.update(headers or {})
    if chunked:
        chunks = (body[i:i + chunk_size] for i in range(0, len(body), chunk_size))
        conn.request('POST', path, body=chunks, headers=h, encode_chunked=True)
    else:
        conn.request('POST', path, body=body, headers=h)
    r = conn.getresponse()
    data = r.read()
    conn.close()
    return Reply(r.status, r.getheaders(), data)


def post_expect_continue(port, path, body, headers=None):
    """POST with Expect: 100-continue, sending the body only after the 100.
    Returns (first status line, Reply)."""
    s = socket.create_connection(('127.0.0.1', port), timeout=30)
    h = {'Host': f'127.0.0.1:{port}', 'Content-Type': 'application/json',
         'anthropic-version': '2023-06-01', 'Content-Length': str(len(body)),
         'Expect': '100-continue'}
    h.update(headers or {})
    head = f'POST {path} HTTP/1.1\r\n' + ''.join(f'{k}: {v}\r\n' for k, v in h.items()) + \
        'Connection: close\r\n\r\n'
    s.sendall(head.encode())
    first = b''
    while b'\r\n\r\n' not in first:
        chunk = s.recv(1)
        if not chunk:
            break
        first += chunk
    first_line = first.split(b'\r\n', 1)[0].decode()
    rest = b''
    if first_line.startswith('HTTP/1.1 100'):
        s.sendall(body)
    else:
        rest = first
    while True:
        chunk = s.recv(65536)
        if not chunk:
            break
        rest += chunk
    s.close()
    head, _, data = rest.partition(b'\r\n\r\n')
    lines = head.decode().split('\r\n')
    status = int(lines[0].split()[1])
    headers = [tuple(x.split(': ', 1)) for x in lines[1:] if ': ' in x]
    hd = {k.lower(): v for k, v in headers}
    if hd.get('transfer-encoding') == 'chunked':
        data = _dechunk(data)
    return first_line, Reply(status, headers, data)


def _dechunk(data):
    out = b''
    while data:
        size_line, _, data = data.partition(b'\r\n')
        n = int(size_line.split(b';')[0], 16)
        if n == 0:
            break
        out += data[:n]
        data = data[n + 2:]
    return out


def stream(port, path, body, headers=None):
    """POST and read an SSE answer line by line, timestamping each event."""
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=30)
    h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01',
         'accept': 'text/event-stream'}
    h.update(headers or {})
    t0 = time.monotonic()
    conn.request('POST', path, body=body, headers=h)
    r = conn.getresponse()
    events, raw = [], b''
    name = None
    try:
        while True:
            line = r.readline()
            if not line:
                break
            raw += line
            text = line.decode().rstrip('\r\n')
            if text.startswith('event:'):
                name = text[6:].strip()
            elif text.startswith('data:'):
                events.append((time.monotonic() - t0, name, text[5:].strip()))
    except (http.client.IncompleteRead, ConnectionError, OSError):
        pass  # a truncated stream is a result too
    conn.close()
    return Reply(r.status, r.getheaders(), raw, events)
