#!/usr/bin/python3
"""What the session check costs: requests per second through the gateway with
(1) the development identity (no token), (2) a session token checked against a
per-child revocation snapshot (ClaudeGatewayRevocationRefresh 1000, the
default), (3) the same with a database query per request (refresh 0), and
bare mod_proxy_http to the same stand-in as the baseline. Prints ratios to
the baseline; measured with ab (apache2-utils) on loopback, same machine,
same run, against a small Node stand-in (bench/upstream.js) so the
upstream is not the bottleneck. Not a test: numbers vary with the machine.

    /usr/bin/python3 bench/session_check.py [requests] [concurrency]
"""
import json
import os
import re
import secrets
import subprocess
import sys
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(TOP, 't', 'integration'))
sys.path.insert(0, os.path.join(TOP, 't'))

import jwt  # noqa: E402

from pyclaude.conf import GatewayConf  # noqa: E402
from pyclaude.env import HttpdEnv  # noqa: E402
from pyclaude.pg import PgCluster  # noqa: E402
from pyclaude.ports import free_port  # noqa: E402


def ab(url, n, c, body_file, headers):
    cmd = ['ab', '-q', '-k', '-n', str(n), '-c', str(c), '-p', body_file,
           '-T', 'application/json', '-H', 'anthropic-version: 2023-06-01']
    for h in headers:
        cmd += ['-H', h]
    out = subprocess.run(cmd + [url], capture_output=True, text=True).stdout
    rps = float(re.search(r'Requests per second:\s+([\d.]+)', out).group(1))
    # "Length" failures are only answers of another size than the first
    bad = re.search(r'\(Connect: (\d+), Receive: (\d+), Length: \d+, Exceptions: (\d+)\)', out)
    failed = sum(int(x) for x in bad.groups()) if bad else 0
    non2xx = re.search(r'Non-2xx responses:\s+(\d+)', out)
    return rps, failed + (int(non2xx.group(1)) if non2xx else 0)


def main():
    n = int(sys.argv[1]) if len(sys.argv) > 1 else 3000
    c = int(sys.argv[2]) if len(sys.argv) > 2 else 16
    gen = tempfile.mkdtemp(prefix='mod_claude-bench-')
    os.chmod(gen, 0o755)
    key, secret = 'sk-bench-' + secrets.token_hex(8), secrets.token_urlsafe(40)
    pg = PgCluster(os.path.join(gen, 'pg'), free_port()).init().start()
    pg.wait_ready()
    pg.create_db()
    node = subprocess.Popen(['node', os.path.join(TOP, 'bench', 'upstream.js')],
                            stdout=subprocess.PIPE, text=True)
    up_url = 'http://127.0.0.1:' + node.stdout.readline().strip()
    env = HttpdEnv(gen, loglevel='warn')
    env.extra_env.update(CLAUDE_TEST_UPSTREAM_KEY=key, CLAUDE_TEST_SESSION_SECRET=secret)
    body = os.path.join(gen, 'body.json')
    with open(body, 'w') as f:
        json.dump({'model': 'claude-haiku-4-5', 'max_tokens': 1,
                   'messages': [{'role': 'user', 'content': 'quota'}]}, f)
    now = int(time.time())
    token = jwt.encode({'sub': 'user-bench', 'aud': 'claude-gateway', 'iat': now,
                        'exp': now + 3600, 'sid': 's1'}, secret, algorithm='HS256')
    results = {}
    try:
        cases = [
            ('bare mod_proxy_http', f'<Location /v1/messages>\n    RequestHeader set x-api-key '
                                    f'"{key}"\n    ProxyPass {up_url}/v1/messages\n</Location>',
             []),
            ('gateway, dev identity', None, []),
            ('gateway, session, revocation snapshot', 1000, [f'Authorization: Bearer {token}']),
            ('gateway, session, revocation query per request', 0,
             [f'Authorization: Bearer {token}']),
        ]
        for name, how, headers in cases:
            conf = GatewayConf(env)
            if isinstance(how, str):
                conf.add(how)
            else:
                conf.add_database(pg.conninfo).add_session()
                if how is not None:
                    conf.add(f'ClaudeGatewayRevocationRefresh {how}')
                conf.add_messages(up_url, dev_identity=None if headers else
                                  'user-bench bench@example.com eng', spend=False)
            conf.install()
            assert env.restart() == 0, getattr(env, 'last_output', '')
            ab(env.url + '/v1/messages', min(500, n), c, body, headers)  # warm-up
            results[name] = ab(env.url + '/v1/messages', n, c, body, headers)
    finally:
        env.stop()
        node.terminate()
        pg.stop()
    base = results['bare mod_proxy_http'][0]
    print(f'{n} requests, concurrency {c}, ab -k, loopback, Node stand-in upstream')
    for name, (rps, bad) in results.items():
        print(f'  {name:48s} {rps:9.1f} req/s  {rps / base:5.2f}x bare   failed={bad}')


if __name__ == '__main__':
    main()
