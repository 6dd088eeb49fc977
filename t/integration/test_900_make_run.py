"""`make run`: the embedded-defaults gateway starts, forwards a request to
the stand-in API, streams SSE, and stops everything it started on Ctrl-C."""
import json
import os
import signal
import socket
import subprocess
import time

import requests

from pyclaude.env import TOP
from pyclaude.ports import free_port, release_port, wait_port


def test_run_900_01_local_gateway(gen_dir):
    port = free_port()
    release_port(port)  # run_local.py holds it from here until its httpd binds it
    data = os.path.join(gen_dir, 'make-run')
    proc = subprocess.Popen(['/usr/bin/python3', os.path.join(TOP, 'tools', 'run_local.py')],
                            env=dict(os.environ, CLAUDE_PORT=str(port), CLAUDE_DATA_DIR=data,
                                     ANTHROPIC_API_KEY=''),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_port(port, timeout=60)
        base = f'http://127.0.0.1:{port}'
        # the banner tells the user what to do
        out = ''
        end = time.monotonic() + 30
        while 'Stop with Ctrl-C' not in out and time.monotonic() < end:
            out += proc.stdout.readline()
        assert f'"forceLoginGatewayUrl": "{base}"' in out
        assert '"forceLoginMethod": "gateway"' in out
        assert requests.get(base + '/readyz').text == 'ready'
        r = requests.post(base + '/v1/messages', data=json.dumps({
            'model': 'claude-sonnet-4-5', 'max_tokens': 16, 'stream': True,
            'messages': [{'role': 'user', 'content': 'hi'}]}),
            headers={'content-type': 'application/json', 'anthropic-version': '2023-06-01'})
        assert r.status_code == 200
        assert 'event: message_stop' in r.text and 'fake Anthropic API' in r.text
        d = requests.get(base + '/.well-known/oauth-authorization-server').json()
        assert d['device_authorization_endpoint'] == base + '/oauth/device_authorization'
    finally:
        proc.send_signal(signal.SIGINT)
        rest, _ = proc.communicate(timeout=60)
    assert proc.returncode == 0, rest
    assert 'stopped' in rest
    # nothing it started is left behind
    time.sleep(0.5)
    assert subprocess.run(['pgrep', '-f', data], capture_output=True).returncode != 0
    try:
        requests.get(f'http://127.0.0.1:{port}/healthz', timeout=1)
        alive = True
    except requests.RequestException:
        alive = False
    assert not alive


def test_run_900_02_port_taken(gen_dir):
    """A CLAUDE_PORT something else listens on is refused before anything
    starts, with a message that says what to do."""
    data = os.path.join(gen_dir, 'make-run-taken')
    with socket.socket() as s:
        s.bind(('127.0.0.1', 0))
        s.listen()
        port = s.getsockname()[1]
        r = subprocess.run(['/usr/bin/python3', os.path.join(TOP, 'tools', 'run_local.py')],
                           env=dict(os.environ, CLAUDE_PORT=str(port), CLAUDE_DATA_DIR=data,
                                    ANTHROPIC_API_KEY=''),
                           capture_output=True, text=True, timeout=60)
    assert r.returncode != 0
    assert f'port {port} on 127.0.0.1 is not free' in r.stderr and 'CLAUDE_PORT=' in r.stderr
    assert not os.path.exists(os.path.join(data, 'pg'))  # no cluster was made
    assert subprocess.run(['pgrep', '-f', data], capture_output=True).returncode != 0
