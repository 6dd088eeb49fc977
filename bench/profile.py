#!/usr/bin/python3
"""Where the full gateway's time goes (issue #8), the raw material of
bench/PROFILE.md. Sets up what bench/run.py calls `gateway` (same stand-in,
PostgreSQL, policy, caps, audit log), then:

  1. ablation: req/s, p50 and server CPU per request (httpd + PostgreSQL) at
     concurrency 16, JSON, with one feature after another turned off: spend
     (reservation + settlement in PostgreSQL), the policy file, the session
     JWT (development identity instead), the audit log; then bare
     mod_proxy_http (and, apart, ClaudeGatewayRoute in place of ProxyPass).
     The differences are what each feature costs;
  2. perf: `perf record` (cpu-clock, DWARF call graphs) of the httpd children
     and the PostgreSQL backends under the same load, reported per process,
     per library and per symbol, with the inclusive cost of our own
     functions;
  3. pg_stat_statements: the statements the gateway runs, their count and
     time.

    /usr/bin/python3 bench/profile.py [--seconds 10] [--mode json|sse] [-c 16]
                                      [--modules TREE] [--raw FILE]

Raw reports go to --raw (default bench/profile-raw-<date>.txt).
"""
import argparse
import datetime
import os
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, HERE)

import run  # noqa: E402  (bench/run.py)


def sh(cmd, **kw):
    return subprocess.run(cmd, capture_output=True, text=True, **kw).stdout


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument('--seconds', type=int, default=10)
    ap.add_argument('--mode', default='json', choices=('json', 'sse'))
    ap.add_argument('-c', type=int, default=16)
    ap.add_argument('--modules', default=run.TOP)
    ap.add_argument('--raw')
    ap.add_argument('--no-perf', action='store_true')
    ap.add_argument('--route', action='store_true',
                    help='profile ClaudeGatewayRoute On instead of ProxyPass')
    ap.add_argument('--no-spend', action='store_true', help='profile with ClaudeSpend Off')
    ap.add_argument('--leak', type=int, default=0, metavar='N',
                    help='also measure RSS growth per variant over N requests')
    ap.add_argument('--wait-quiet', type=int, default=0, metavar='S',
                    help='first wait up to S seconds for other processes to go quiet')
    ap.add_argument('--no-ablation', action='store_true')
    ap.add_argument('--drift', type=int, default=6, help='runs of the drift section (0: none)')
    ap.add_argument('--perf-data', help='keep perf.data at this path (for perf report)')
    a = ap.parse_args()
    raw_path = a.raw or os.path.join(HERE, f'profile-raw-{datetime.date.today().isoformat()}.txt')
    args = run.parse_args(['--quick', '--targets', 'gateway', '--modules',
                           os.path.abspath(a.modules), '--no-reference',
                           '--wait-quiet', str(a.wait_quiet)])
    b = run.Bench(args)
    if a.wait_quiet:
        b.wait_quiet()
    b.pg_extra_opts = ('-c shared_preload_libraries=pg_stat_statements '
                       '-c pg_stat_statements.track=all')
    raw = []

    def out(text=''):
        print(text, flush=True)
        raw.append(text)

    out(f'# bench/profile.py {datetime.datetime.now(datetime.timezone.utc).isoformat()}')
    out(f'# {os.cpu_count()} CPUs ({run.cpu_model()}), load average {run.loadavg()}, '
        f'modules from {args.modules}, {a.mode} at c={a.c}, {a.seconds} s per run; '
        f'profiled: {"ClaudeGatewayRoute" if a.route else "ProxyPass"}'
        f'{", ClaudeSpend Off" if a.no_spend else ""}')
    try:
        b.start_common()
        if not a.no_ablation:
            out('\n## ablation (each row turns one more thing off)')
            out(f'{"configuration":44s} {"req/s":>9s} {"p50 ms":>8s} {"p99 ms":>8s} '
                f'{"httpd us/req":>13s} {"pg us/req":>10s} {"other load":>11s}')
            variants = [
                ('full gateway', {}),
                ('- spend (no reservation, no ledger)', dict(spend=False)),
                ('- spend - policy', dict(spend=False, policy=False)),
                ('- spend - policy - session JWT', dict(spend=False, policy=False,
                                                         session=False)),
                ('- spend - policy - session - audit log', dict(spend=False, policy=False,
                                                                session=False, audit=False)),
            ]
            if run.route_built(args.modules):
                variants.insert(2, ('- spend, ClaudeGatewayRoute instead of ProxyPass',
                                    dict(spend=False, route=True)))
            for i, (label, kw) in enumerate(variants):
                env = b.start_gateway(f'ablate{i}', **kw)
                try:
                    url = env.url + '/v1/messages'
                    auth = kw.get('session', True)
                    b.wrk(url, a.mode, a.c, 2, auth=auth)
                    r = b.wrk(url, a.mode, a.c, a.seconds, auth=auth,
                              pids_fn=lambda: env.pids() + b.pg_pids(b.db), pg_db=b.db)
                finally:
                    env.stop()
                pg = r['cpu_us_per_req']['postgres']
                out(f'{label:44s} {r["rps"]:9.1f} {r["p50_ms"]:8.2f} {r["p99_ms"]:8.2f} '
                    f'{r["server_cpu_us_per_req"] - pg:13.0f} {pg:10.0f} '
                    f'{r["other_cpu_cores"]:11.2f}')
            # bare, as run.py measures it
            benv = run.BenchHttpd(os.path.join(b.gen, 'bare'), args.modules, with_claude=False)
            benv.install(f"""ProxyAddHeaders Off
CustomLog "{benv.logs_dir}/access_log" common
<Location /v1/messages>
    RequestHeader unset Authorization
    RequestHeader set x-api-key "{b.upstream_key}"
    ProxyPass {b.upstream.url}/v1/messages
</Location>
""")
            assert benv.start() == 0
            try:
                url = benv.url + '/v1/messages'
                b.wrk(url, a.mode, a.c, 2)
                r = b.wrk(url, a.mode, a.c, a.seconds, pids_fn=benv.pids)
            finally:
                benv.stop()
            out(f'{"bare mod_proxy_http":44s} {r["rps"]:9.1f} {r["p50_ms"]:8.2f} '
                f'{r["p99_ms"]:8.2f} {r["server_cpu_us_per_req"]:13.0f} {0:10.0f} '
                f'{r["other_cpu_cores"]:11.2f}')

        if a.leak:
            out(f'\n## memory growth: VmRSS of the httpd children over {a.leak} requests '
                '(half SSE, c=16) after a warm-up of a quarter of that, per variant')
            out(f'{"configuration":44s} {"MB before":>10s} {"MB after":>9s} '
                f'{"bytes/request":>14s}')
            leak_variants = [
                ('full gateway', {}),
                ('- telemetry', dict(telemetry=False)),
                ('- spend', dict(spend=False)),
                ('- spend - policy (and telemetry)', dict(spend=False, policy=False)),
                ('- spend - policy - session JWT', dict(spend=False, policy=False,
                                                         session=False)),
                ('- spend - policy - session - audit log', dict(spend=False, policy=False,
                                                                session=False, audit=False)),
            ]
            for i, (label, kw) in enumerate(leak_variants):
                env = b.start_gateway(f'leak{i}', **kw)
                try:
                    url = env.url + '/v1/messages'
                    auth = kw.get('session', True)

                    def soak(n):
                        done = 0
                        while done < n:
                            r = b.wrk(url, 'mix', 16, max(1, min(10, (n - done) // 1500 + 1)),
                                      auth=auth)
                            done += r['requests']
                            if r['requests'] == 0:
                                raise RuntimeError(f'{label}: no answers')
                        return done
                    soak(a.leak // 4)
                    m0 = env.rss_kb()
                    n = soak(a.leak)
                    m1 = env.rss_kb()
                finally:
                    env.stop()
                out(f'{label:44s} {m0 / 1024:10.1f} {m1 / 1024:9.1f} '
                    f'{(m1 - m0) * 1024 / n:14.1f}')

        env = b.start_gateway('profiled', route=a.route, spend=not a.no_spend)
        try:
            url = env.url + '/v1/messages'
            b.wrk(url, a.mode, a.c, 3)   # warm: pools connected, caches filled
            b.pg.psql('CREATE EXTENSION IF NOT EXISTS pg_stat_statements', db=b.db)
            b.pg.psql('SELECT pg_stat_statements_reset()', db=b.db)
            if not a.no_perf:
                pids = env.pids()[1:] + b.pg_pids(b.db)
                data = a.perf_data or os.path.join(b.gen, 'perf.data')
                perf = subprocess.Popen(
                    ['perf', 'record', '-q', '-e', 'cpu-clock', '-F', '499',
                     *(['--call-graph', 'dwarf,16384'] if not os.environ.get('PROFILE_NO_STACKS') else []), '-o', data, '-p',
                     ','.join(str(p) for p in pids)],
                    stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
                time.sleep(1)
            r = b.wrk(url, a.mode, a.c, a.seconds, pids_fn=lambda: env.pids() + b.pg_pids(b.db), pg_db=b.db)
            if not a.no_perf:
                perf.send_signal(signal.SIGINT)
                perf.wait(timeout=120)
            out(f'\n## profiled run: {r["rps"]} req/s, p50 {r["p50_ms"]} ms, '
                f'{r["requests"]} requests, server CPU {r["server_cpu_us_per_req"]} us/req '
                f'(PostgreSQL {r["cpu_us_per_req"]["postgres"]})')
            stats = b.pg.psql(
                "SELECT calls, round(total_exec_time::numeric, 1), "
                "round(mean_exec_time::numeric, 3), round(total_plan_time::numeric, 1), "
                "toplevel, left(regexp_replace(query, '\\s+', ' ', 'g'), 110) "
                "FROM pg_stat_statements ORDER BY total_exec_time DESC LIMIT 25", db=b.db)
            out('\n## pg_stat_statements (calls | total ms | mean ms | plan ms | toplevel '
                '| query)')
            out(stats)
            if a.drift:
                out(f'\n## drift: {a.drift} more runs of {a.seconds} s on the same tables '
                    '(PostgreSQL CPU per request, dead tuples)')
                out(f'{"run":>4s} {"req/s":>9s} {"p50 ms":>8s} {"pg us/req":>10s} '
                    f'{"dead reservations":>18s} {"dead spend":>11s} {"ledger rows":>12s}')
                for i in range(a.drift):
                    r = b.wrk(url, a.mode, a.c, a.seconds,
                              pids_fn=lambda: env.pids() + b.pg_pids(b.db), pg_db=b.db)
                    dead = b.pg.psql(
                        "SELECT string_agg(n_dead_tup::text, ' ' ORDER BY relname) FROM "
                        "pg_stat_user_tables WHERE relname IN ('claude_reservations', "
                        "'claude_spend')", db=b.db).split()
                    rows = b.pg.psql('SELECT count(*) FROM claude_ledger', db=b.db)
                    out(f'{i + 1:4d} {r["rps"]:9.1f} {r["p50_ms"]:8.2f} '
                        f'{r["cpu_us_per_req"]["postgres"]:10.0f} {dead[0]:>18s} '
                        f'{dead[1]:>11s} {rows:>12s}')
        finally:
            env.stop()
        if not a.no_perf:
            rep = ['perf', 'report', '-i', data, '--stdio', '--no-header']
            out('\n## perf: samples per process (comm)')
            out(sh(rep + ['--no-children', '--sort', 'comm', '-g', 'none']))
            out('\n## perf: per library (dso), all processes')
            out(sh(rep + ['--no-children', '--sort', 'comm,dso', '-g', 'none',
                          '--percent-limit', '0.5']))
            out('\n## perf: httpd (apache2) symbols, self time')
            out(sh(rep + ['--percentage', 'relative', '--no-children', '--comm', 'apache2', '--sort', 'dso,sym',
                          '-g', 'none', '--percent-limit', '0.4']))
            out('\n## perf: httpd (apache2), inclusive time of functions (children)')
            out(sh(rep + ['--percentage', 'relative', '--children', '--comm', 'apache2', '--sort', 'sym', '-g', 'none',
                          '--percent-limit', '1.5']))
            out('\n## perf: PostgreSQL backends, self time')
            out(sh(rep + ['--percentage', 'relative', '--no-children', '--comm', 'postgres', '--sort', 'sym', '-g', 'none',
                          '--percent-limit', '0.8']))
            out('\n## perf: PostgreSQL backends, inclusive')
            out(sh(rep + ['--percentage', 'relative', '--children', '--comm', 'postgres', '--sort', 'sym', '-g', 'none',
                          '--percent-limit', '3']))
    finally:
        b.stop_common()
        with open(raw_path, 'w') as f:
            f.write('\n'.join(raw) + '\n')
        print(f'raw report: {raw_path}')


if __name__ == '__main__':
    main()
