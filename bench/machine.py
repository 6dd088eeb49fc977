#!/usr/bin/env python3
"""Where a request's CPU goes on the whole machine, bare Apache against the
gateway (issue #8, bench/PROFILE.md): `perf record -a` (cpu-clock) while wrk
loads one target, then the other, in turn for some rounds, and the samples
per request by process (thread name) and library, side by side.

Every process counts: wrk, the stand-in upstream, httpd's threads (the
ledger writer and telemetry threads by their names), PostgreSQL's backends
and the kernel's own threads, and idle time (`swapper`). A sample is 1/F s
of one CPU, so the figures are microseconds of CPU per request.

    /usr/bin/python3 bench/machine.py [--mode json|sse|paced] [-c 16]
        [--seconds 8] [--rounds 2] [--symbols] [--modules DIR]

Needs perf (linux-perf) and root (or kernel.perf_event_paranoid <= -1).
"""
import argparse
import collections
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

FREQ = 2000


def samples(data, symbols):
    """Samples of a perf.data by (process, library[, symbol])."""
    out = subprocess.run(['perf', 'script', '-G', '-i', data, '-F', 'comm,ip,sym,dso'],
                         capture_output=True, text=True).stdout
    counts = collections.Counter()
    for line in out.splitlines():
        m = re.match(r'\s*(\S+)\s+\S+\s+(.*)\((\S+)\)$', line)
        if not m:
            continue
        comm, sym, dso = m.group(1), m.group(2).strip() or '?', os.path.basename(m.group(3))
        if comm.startswith('postgres'):
            comm = 'postgres'  # backends retitle themselves
        counts[(comm, dso, sym) if symbols else (comm, dso)] += 1
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--mode', default='json', choices=['json', 'sse', 'paced'])
    ap.add_argument('-c', type=int, default=16)
    ap.add_argument('--seconds', type=int, default=8)
    ap.add_argument('--rounds', type=int, default=2)
    ap.add_argument('--symbols', action='store_true', help='by symbol too')
    ap.add_argument('--top', type=int, default=30, help='rows shown')
    ap.add_argument('--modules', default=os.path.dirname(HERE))
    a = ap.parse_args()
    if shutil.which('perf') is None:
        sys.exit('perf is not installed (apt-get install linux-perf)')
    b = run.Bench(run.parse_args(['--targets', 'bare,gateway', '--no-reference',
                                  '--modules', a.modules]))
    tmp = tempfile.mkdtemp(prefix='claude-machine-')
    per_req = collections.defaultdict(list)  # (target, key) -> us per request, per round
    totals = collections.defaultdict(list)
    targets = []
    try:
        b.start_common()
        bare = b.start_bare()
        targets.append(('bare', bare.url, False, bare))
        gw = b.start_gateway('gateway')
        targets.append(('gateway', gw.url + '/v1/messages', True, gw))
        for rnd in range(a.rounds):
            for name, url, auth, _ in targets:
                b.wrk(url, a.mode, a.c, 2, auth=auth)
                data = os.path.join(tmp, f'{name}{rnd}.data')
                perf = subprocess.Popen(['perf', 'record', '-q', '-a', '-e', 'cpu-clock',
                                         '-F', str(FREQ), '-o', data],
                                        stderr=subprocess.DEVNULL)
                time.sleep(0.5)
                r = b.wrk(url, a.mode, a.c, a.seconds, auth=auth)
                perf.send_signal(signal.SIGINT)
                perf.wait()
                n = r['requests'] or 1
                c = samples(data, a.symbols)
                os.unlink(data)
                us = 1e6 / FREQ / n
                totals[name].append(sum(c.values()) * us)
                for k, v in c.items():
                    per_req[(name, k)].append(v * us)
                print(f'round {rnd} {name}: {r["rps"]:.0f} req/s, '
                      f'{sum(c.values()) * us:.1f} us of CPU per request', flush=True)
    finally:
        for _, _, _, env in targets[::-1]:
            env.stop()
        b.stop_common()
        shutil.rmtree(tmp, ignore_errors=True)

    def mean(xs, rounds=a.rounds):
        return sum(xs) / rounds if xs else 0.0
    keys = {k for (_, k) in per_req}
    rows = sorted(keys, key=lambda k: -max(mean(per_req[('bare', k)]),
                                           mean(per_req[('gateway', k)])))
    print(f'\nus of CPU per request, mean of {a.rounds} rounds ({a.mode}, c={a.c})')
    print(f'{"bare":>8s} {"gateway":>8s} {"+":>7s}  process / library' +
          (' / symbol' if a.symbols else ''))
    print(f'{mean(totals["bare"]):8.1f} {mean(totals["gateway"]):8.1f} '
          f'{mean(totals["gateway"]) - mean(totals["bare"]):+7.1f}  all')
    for k in rows[:a.top]:
        x, y = mean(per_req[('bare', k)]), mean(per_req[('gateway', k)])
        print(f'{x:8.2f} {y:8.2f} {y - x:+7.2f}  ' + ' / '.join(k))


if __name__ == '__main__':
    main()
