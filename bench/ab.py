#!/usr/bin/python3
"""Interleaved A/B of gateway variants and module trees (issue #8,
bench/PROFILE.md): which part of the gateway costs throughput, measured
so that this VM's drift falls on every variant alike.

    /usr/bin/python3 bench/ab.py [--variants bare,nospend,gateway,gateway@TREE]
        [--rounds 7] [--seconds 4] [-c 16] [--mode json|sse|paced] [--out FILE]
    /usr/bin/python3 bench/ab.py --pool FILE [FILE ...]

Every variant runs at once as its own httpd (the configuration of
bench/run.py: same users, stand-in upstream and PostgreSQL cluster, each
gateway its own database); the rounds then load them one after the other,
in alternating order, each run led by a second of the same load that is not
recorded. A variant is a configuration, optionally with the modules of
another built tree after '@' (e.g. a `git archive` of a commit with a
change, built with make), so a change is measured against the code it
changes in the same minutes:

  bare      mod_proxy_http alone (bench/run.py's bare target)
  gateway   the full gateway (bench/run.py's gateway target)
  nospend   the gateway with ClaudeSpend Off
  nopolicy  the gateway without its policy file (and telemetry)
  noaudit   the gateway without the claude_json audit log
  nosession the gateway with a fixed identity instead of session tokens
  route     the gateway with ClaudeGatewayRoute (its own upstream client,
            libcurl) instead of ProxyPass

Per round it prints each variant's requests per second and server CPU per
request (its httpd processes and PostgreSQL backends, in us); at the end,
per variant, the median of those and the median, lowest and highest of its
round-by-round ratio to the first variant, with a 90 % bootstrap interval
of that median (the rounds resampled): whether a ratio holds is read
there. The ratio within a round is the figure to trust: the machine's
speed moves by 10-40 % between rounds.

--pool reads the --out files of earlier runs (the same mode, concurrency
and first variant) and prints the same summary over all their rounds, for
the variants every file has: runs made at different times count as the
rounds of one, since every round is a paired comparison made in the same
minute.
"""
import argparse
import json
import os
import random
import re
import statistics
import sys

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (bench/run.py)

CONFIGS = {
    'gateway': {},
    'nospend': dict(spend=False),
    'nopolicy': dict(policy=False),
    'noaudit': dict(audit=False),
    'nosession': dict(session=False),
    'route': dict(route=True),
}


def bootstrap(ratios, n=2000, seed=8):
    """A 90 % interval of the median ratio, resampling the rounds: how far
    the median itself could move with this many rounds."""
    rnd = random.Random(seed)
    meds = sorted(statistics.median(rnd.choices(ratios, k=len(ratios))) for _ in range(n))
    return meds[int(0.05 * n)], meds[int(0.95 * n) - 1]


def summary(variants):
    """Per variant: median req/s, CPU and PostgreSQL CPU per request, and its
    round-by-round ratio to the first variant (median, 90 % interval of the
    median, lowest, highest). variants: objects with spec, rps, cpu, pg."""
    base = variants[0]
    print(f'{"variant":32s} {"req/s":>8s} {"us/req":>7s} {"pg us":>6s} '
          f'{"x " + base.spec:>12s} {"90% of median":>14s} {"lowest":>7s} {"highest":>7s}')
    for v in variants:
        ratios = [x / y for x, y in zip(v.rps, base.rps) if y]
        lo, hi = bootstrap(ratios)
        print(f'{v.spec[-32:]:32s} {statistics.median(v.rps):8.0f} '
              f'{statistics.median(v.cpu):7.0f} {statistics.median(v.pg):6.1f} '
              f'{statistics.median(ratios):12.3f} {lo:6.3f}-{hi:.3f} '
              f'{min(ratios):7.3f} {max(ratios):7.3f}')


def pool(files):
    """The summary over the rounds of earlier runs' --out files: the same mode,
    concurrency and first variant (the base); the variants in every file."""
    runs = []
    for path in files:
        with open(path) as f:
            runs.append(json.load(f))
    key = [(r['mode'], r['c'], r['variants'][0]['variant']) for r in runs]
    if any(k != key[0] for k in key):
        raise SystemExit('--pool: the files differ in mode, concurrency or base: '
                         + '; '.join(f'{p}: {k[0]} c={k[1]} base {k[2]}'
                                     for p, k in zip(files, key)))
    mode, c, _ = key[0]
    specs = [v['variant'] for v in runs[0]['variants']
             if all(v['variant'] in [w['variant'] for w in r['variants']] for r in runs)]
    variants = []
    for spec in specs:
        v = argparse.Namespace(spec=spec, rps=[], cpu=[], pg=[])
        for r in runs:
            d = next(w for w in r['variants'] if w['variant'] == spec)
            if not (len(d['rps']) == len(d['server_cpu_us_per_req'])
                    == len(d['postgres_cpu_us_per_req']) == len(r['variants'][0]['rps'])):
                raise SystemExit(f'--pool: {spec}: rounds of unequal length')
            v.rps += d['rps']
            v.cpu += d['server_cpu_us_per_req']
            v.pg += d['postgres_cpu_us_per_req']
        variants.append(v)
    print(f'# bench/ab.py --pool: {mode} at c={c}, {len(variants[0].rps)} rounds '
          f'from {len(files)} runs')
    summary(variants)


class Variant:

    def __init__(self, spec, default_tree):
        self.spec = spec
        name, _, tree = spec.partition('@')
        if name != 'bare' and name not in CONFIGS:
            raise SystemExit(f'unknown variant {name!r}: bare, {", ".join(CONFIGS)}')
        self.config = name
        self.tree = os.path.abspath(tree) if tree else default_tree
        if name == 'bare' and tree:
            raise SystemExit('bare loads none of our modules: no @TREE')
        self.rps, self.cpu, self.pg = [], [], []
        self.url = self.stop = self.pids = self.db = None
        self.auth = True  # a session token per request (nosession: none)

    def start(self, b, index):
        if self.config == 'bare':
            t = b.start_bare()
            self.url, self.stop, self.pids = t.url, t.stop, t.pids
            return
        kw = CONFIGS[self.config]
        saved = b.args.modules
        b.args.modules = self.tree  # start_gateway loads from, and includes, this tree
        try:
            # a database of its own: PostgreSQL folds the unquoted name
            env = b.start_gateway(f'ab{index}_{re.sub(r"[^a-z0-9]", "_", self.config)}', **kw)
        finally:
            b.args.modules = saved
        self.url, self.stop, self.db = env.url + '/v1/messages', env.stop, b.db
        self.pids = lambda: env.pids() + b.pg_pids(self.db)
        self.auth = kw.get('session', True)

    def measure(self, b, mode, c, seconds):
        b.wrk(self.url, mode, c, 1, auth=self.auth)  # the lead: leases, pools, caches
        r = b.wrk(self.url, mode, c, seconds, auth=self.auth, pids_fn=self.pids, pg_db=self.db)
        if r['errors']:
            raise RuntimeError(f'{self.spec}: {r["errors"]} errors {r["errors_detail"]}')
        pg = r['cpu_us_per_req']['postgres'] if self.db else 0.0
        self.rps.append(r['rps'])
        self.cpu.append(r['server_cpu_us_per_req'])
        self.pg.append(pg)
        return r


def main():
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    ap.add_argument('--variants', default='bare,nospend,gateway',
                    help='comma-separated, the first is the base of the ratios')
    ap.add_argument('--rounds', type=int, default=7)
    ap.add_argument('--seconds', type=int, default=4)
    ap.add_argument('-c', type=int, default=16)
    ap.add_argument('--mode', default='json', choices=run.MODES)
    ap.add_argument('--modules', default=run.TOP, help='tree of the variants without @TREE')
    ap.add_argument('--out', help='write the figures per round here (JSON)')
    ap.add_argument('--smoke', action='store_true',
                    help='one round of one second of bare and gateway: for CI')
    ap.add_argument('--pool', nargs='+', metavar='FILE',
                    help='summarise the rounds of these --out files together; runs nothing')
    a = ap.parse_args()
    if a.pool:
        pool(a.pool)
        return
    if a.smoke:
        a.variants, a.rounds, a.seconds = 'bare,gateway', 1, 1
    default_tree = os.path.abspath(a.modules)
    variants = [Variant(s, default_tree) for s in a.variants.split(',') if s]
    if len(variants) < 2:
        raise SystemExit('give at least two variants')
    args = run.parse_args(['--quick', '--targets', 'gateway', '--modules', default_tree,
                           '--no-reference'])
    b = run.Bench(args)
    b.start_common()
    print(f'# bench/ab.py: {a.mode} at c={a.c}, {a.rounds} rounds of {a.seconds} s; '
          f'{os.cpu_count()} CPUs ({run.cpu_model()})', flush=True)
    try:
        for i, v in enumerate(variants):
            v.start(b, i)
        for rnd in range(a.rounds):
            order = variants if rnd % 2 == 0 else variants[::-1]
            for v in order:
                v.measure(b, a.mode, a.c, a.seconds)
            print(f'round {rnd}: ' + '  '.join(
                f'{v.spec} {v.rps[-1]:.0f} req/s {v.cpu[-1]:.0f} us' for v in variants),
                flush=True)
        print('')
        summary(variants)
        if a.out:
            with open(a.out, 'w') as f:
                json.dump({'mode': a.mode, 'c': a.c, 'seconds': a.seconds,
                           'variants': [{'variant': v.spec, 'tree': v.tree, 'rps': v.rps,
                                         'server_cpu_us_per_req': v.cpu,
                                         'postgres_cpu_us_per_req': v.pg}
                                        for v in variants]}, f, indent=1)
    finally:
        for v in variants:
            if v.stop:
                try:
                    v.stop()
                except Exception as e:  # the others still stop
                    print(f'{v.spec}: stop: {e}', file=sys.stderr)
        b.stop_common()


if __name__ == '__main__':
    main()
