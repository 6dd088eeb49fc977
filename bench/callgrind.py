#!/usr/bin/python3
"""Instructions per request, bare Apache against the gateway (issue #8,
bench/PROFILE.md): counts that do not move with this VM's noise.

    /usr/bin/python3 bench/callgrind.py [--requests 1000] [--mode json|sse]
        [--top 40] [--inclusive] [--route] [--modules DIR] [--keep DIR]

Each target of bench/run.py (bare, gateway: the same configuration, users
and stand-in upstream) runs as one process (`apache2 -X`) under valgrind's
callgrind, twice: once for a warm-up of --warmup requests and once for the
warm-up plus --requests more, sent one after the other on a keep-alive
connection over loopback. --route measures the gateway with
ClaudeGatewayRoute (its own upstream client) instead of ProxyPass. The
difference of the two runs, divided by
--requests, is what a request costs in userland once the process is up:
start-up, configuration and shutdown cancel out. Prints the totals and the
functions whose counts differ most (self, or --inclusive), side by side.

Under valgrind a request takes ~50x longer, so what the gateway does once a
second (period keys, lease renewals, the ledger writer's batches) is
counted more often per request than in service: an upper bound for those.

Needs valgrind (apt-get install valgrind). Not a test and not in CI.
"""
import argparse
import collections
import http.client
import os
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)
import run  # noqa: E402  (bench/run.py)
from pyclaude.env import HTTPD  # noqa: E402


def drive(b, port, n, mode, auth):
    """n requests in a row on one keep-alive connection, each checked."""
    with open(b.body_sse if mode == 'sse' else b.body_json, 'rb') as f:
        body = f.read()
    tokens = [b.token(u) for u in b.users] if auth else [None]
    conn = http.client.HTTPConnection('127.0.0.1', port, timeout=120)
    try:
        for i in range(n):
            h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01'}
            if auth:
                h['authorization'] = 'Bearer ' + tokens[i % len(tokens)]
            conn.request('POST', '/v1/messages', body=body, headers=h)
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or b'"usage"' not in data:
                raise RuntimeError(f'request {i}: {r.status} {data[:200]!r}')
    finally:
        conn.close()


def run_once(b, env, out, n_warm, n, mode, auth):
    """One callgrind run of env's httpd as a single process."""
    # valgrind creates the file as root before httpd switches to its User,
    # which then could not write it: create it for that user
    with open(out, 'w'):
        pass
    os.chmod(out, 0o666)
    if os.geteuid() == 0:
        shutil.chown(out, 'www-data', 'www-data')
    cmd = ['valgrind', '--tool=callgrind', f'--callgrind-out-file={out}', '--dump-instr=no',
           HTTPD, '-X', '-d', env.root, '-f', os.path.join(env.conf_dir, 'httpd.conf')]
    proc = subprocess.Popen(cmd, env=env._env(), stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        end = time.monotonic() + 120
        while True:
            try:
                conn = http.client.HTTPConnection('127.0.0.1', env.port, timeout=5)
                conn.request('GET', '/.claude-live-probe')
                conn.getresponse().read()
                conn.close()
                break
            except OSError:
                if time.monotonic() > end or proc.poll() is not None:
                    raise RuntimeError(f'{env.conf_dir}: httpd under valgrind did not come up')
                time.sleep(0.5)
        drive(b, env.port, n_warm + n, mode, auth)
        time.sleep(2)  # the ledger writer's batch of these rows
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=300)
    if os.path.getsize(out) == 0:
        raise RuntimeError(f'{out}: callgrind wrote nothing')


def counts(path, inclusive):
    """Total and per-function instruction counts of a callgrind file."""
    txt = subprocess.run(['callgrind_annotate', f'--inclusive={"yes" if inclusive else "no"}',
                          '--threshold=100', path], capture_output=True, text=True,
                         check=True).stdout
    total, per = 0, collections.Counter()
    for line in txt.splitlines():
        m = re.match(r'\s*([\d,]+)\s+(?:\([^)]*\)\s+)?(.*)$', line)
        if not m:
            continue
        v, rest = int(m.group(1).replace(',', '')), m.group(2)
        if rest.startswith('PROGRAM TOTALS'):
            total = v
            continue
        m2 = re.match(r'(\S+?):(\S+)(?:\s+\[(\S+)\])?', rest)
        if m2:
            # a function can be listed twice (with and without its source
            # file): the self counts add up, the inclusive ones overlap
            fn = m2.group(2)
            per[fn] = max(per[fn], v) if inclusive else per[fn] + v
    return total, per


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--requests', type=int, default=1000)
    ap.add_argument('--warmup', type=int, default=200)
    ap.add_argument('--mode', choices=['json', 'sse'], default='json')
    ap.add_argument('--top', type=int, default=40)
    ap.add_argument('--inclusive', action='store_true', help='inclusive counts, not self')
    ap.add_argument('--modules', default=os.path.dirname(HERE))
    ap.add_argument('--keep', help='keep the callgrind files in this directory')
    ap.add_argument('--route', action='store_true',
                    help='the gateway with ClaudeGatewayRoute instead of ProxyPass')
    a = ap.parse_args()
    if shutil.which('valgrind') is None:
        sys.exit('valgrind is not installed (apt-get install valgrind)')
    b = run.Bench(run.parse_args(['--targets', 'bare,gateway', '--no-reference',
                                  '--modules', a.modules]))
    outdir = a.keep or tempfile.mkdtemp(prefix='claude-callgrind-')
    os.makedirs(outdir, exist_ok=True)
    os.chmod(outdir, 0o777)  # httpd's User writes the files
    per_req, totals = {}, {}
    try:
        b.start_common()
        # started once as run.py does (checks, migrations, caps), then stopped
        # and started again alone under valgrind with the same configuration
        bare = b.start_bare()
        bare_env = bare._stop.__self__
        gw_env = b.start_gateway('gateway', route=a.route)
        bare.stop()
        gw_env.stop()
        for name, env, auth in (('bare', bare_env, False), ('gateway', gw_env, True)):
            files = []
            for n in (0, a.requests):
                out = os.path.join(outdir, f'{name}.{a.mode}.{n}.out')
                run_once(b, env, out, a.warmup, n, a.mode, auth)
                files.append(counts(out, a.inclusive))
            (t0, c0), (t1, c1) = files
            totals[name] = (t1 - t0) / a.requests
            per_req[name] = {k: (c1[k] - c0.get(k, 0)) / a.requests for k in c1}
            print(f'{name}: {totals[name]:,.0f} instructions per request', flush=True)
    finally:
        b.stop_common()
        if not a.keep:
            shutil.rmtree(outdir, ignore_errors=True)
    bare, gw = per_req['bare'], per_req['gateway']
    print(f'\ninstructions per request ({a.mode}, {"inclusive" if a.inclusive else "self"}), '
          f'difference of {a.warmup + a.requests} and {a.warmup} requests / {a.requests}')
    print(f'{"bare":>9s} {"gateway":>9s} {"+":>9s}  function')
    print(f'{totals["bare"]:9,.0f} {totals["gateway"]:9,.0f} '
          f'{totals["gateway"] - totals["bare"]:+9,.0f}  all')
    keys = sorted(set(bare) | set(gw), key=lambda k: -abs(gw.get(k, 0) - bare.get(k, 0)))
    for k in keys[:a.top]:
        x, y = bare.get(k, 0.0), gw.get(k, 0.0)
        print(f'{x:9,.0f} {y:9,.0f} {y - x:+9,.0f}  {k}')


if __name__ == '__main__':
    main()
