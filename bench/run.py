#!/usr/bin/python3
"""Issue #8's benchmark: what the gateway costs on top of Apache's own proxy,
and how it compares with the reference gateway, in one run on this machine.

    /usr/bin/python3 bench/run.py [--quick | --smoke] [options]

Targets, all on loopback, all in front of the same stand-in upstream
(bench/upstream.js: Node, a fixed JSON message, or an SSE stream of
message_start, N deltas and message_delta with usage):

  upstream    the stand-in directly;
  bare        Apache httpd with only mod_proxy_http to it (the physical limit:
              what Apache itself costs), a plain access log;
  gateway     the full gateway: session JWT (AuthType claude-session, several
              users), a policy file (ClaudeGatewayPolicy: managed policies with
              availableModels, enforced), spend (ClaudeSpend On with a user cap
              per user, so every request reserves and settles against
              PostgreSQL), the usage filter, the JSON audit access log
              (claude_json), and OTLP export to a local sink once telemetry
              has landed in the tree; proxied by ProxyPass (mod_proxy_http);
  route       the same with ClaudeGatewayRoute On (the policy's upstreams, our
              own pooled client) instead of ProxyPass, when the build has it;
  reference   `claude gateway` (the npm @anthropic-ai/claude-code binary, see
              tools/install-claude.sh), configured the same way: OIDC issuer
              (t/fakes/idp.py), PostgreSQL, `admin:` with the same user caps,
              managed policies, telemetry when ours has it. Skipped, saying
              why, when it cannot run.

All targets are started first and stay up; every (mode, concurrency) cell
is then run on each target in turn, --rounds times (full: 3) with the order
rotating, and the median run is reported, so a VM that slows down for a
while weighs on every target alike rather than on whichever was measured
then. For each: requests/s and latency p50/p99 (wrk, whole response, so the
whole stream for SSE) at concurrency 1, 16 and 64 for JSON and SSE, latency added
over the upstream alone, the server's CPU per request, and resident memory
(VmRSS summed over the httpd children, or of the reference process) after
start, before and after a soak of 100k requests (--quick: 10k), half JSON
half SSE. Prints a table with ratios to bare and to the reference (the
median of the ratios taken within each round), and writes raw numbers to
bench/results-<date>.json (--out to choose).

Bounded: every wrk run has a duration (and in --smoke a request count);
the soak stops at its count or after --soak-timeout seconds.
Not a test: the figures depend on the machine and on what else runs on it;
the run records the load average and the CPU used by other processes during
every measurement. Exit status is non-zero only when the harness breaks (a
target that must run does not start, wrk fails, or more than 1 % of a run's
answers are errors), never because of the figures.
"""
import argparse
import datetime
import hashlib
import json
import math
import os
import platform
import re
import secrets
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time

HERE = os.path.dirname(os.path.abspath(__file__))
TOP = os.path.abspath(os.path.join(HERE, '..'))
sys.path.insert(0, os.path.join(TOP, 't', 'integration'))
sys.path.insert(0, os.path.join(TOP, 't'))

import jwt  # noqa: E402
import requests  # noqa: E402

from pyclaude.env import HttpdEnv, MODDIR  # noqa: E402
from pyclaude.pg import PgCluster  # noqa: E402
from pyclaude.ports import free_port, release_port, wait_port  # noqa: E402

REF_BIN = os.path.join(TOP, '.cache', 'claude-code', 'node_modules', '@anthropic-ai',
                       'claude-code-linux-x64', 'claude')
MODEL = 'claude-haiku-4-5-20251001'   # a built-in id: neither gateway rewrites the body
TICK = os.sysconf('SC_CLK_TCK')

# The cells' modes: non-streaming; SSE as fast as the stand-in writes it
# (what the usage filter costs per event); SSE paced by the stand-in
# (--sse-pace-ms before each event, as a model streams tokens: what the
# gateway adds to a stream's duration).
MODES = ('json', 'sse', 'paced')

PROFILES = {
    # duration of each wrk run (s), concurrencies, soak requests, warm-up (s),
    # per-run request cap (0: none), rounds (runs per target and cell; the
    # median is reported), lead (s of the same load, not recorded, before
    # each run: every target idles while the others are measured, and the
    # gateway's spend leases (ClaudeSpendLease, 5 s) run out meanwhile, so
    # without it each run would start with every user's admission from the
    # database at once; that cold start is not the steady state the cells
    # report)
    'full': dict(duration=5, conns=[1, 16, 64], soak=100000, warmup=2, limit=0, rounds=3,
                 lead=1),
    'quick': dict(duration=2, conns=[1, 16, 64], soak=10000, warmup=1, limit=0, rounds=1,
                  lead=1),
    'smoke': dict(duration=1, conns=[16], soak=100, warmup=0, limit=40, rounds=1, lead=0),
}


def log(msg):
    print(msg, flush=True)


def rps_ratio(r, base):
    """r's throughput over base's: the median of the ratios taken within each
    round (every round runs every target, one after the other), as
    bench/ab.py does. The VM's speed moves by 10-40 % between rounds, and a
    ratio of two medians can pair a fast round of one target with a slow one
    of the other."""
    a, b = r.get('rounds_rps') or [], base.get('rounds_rps') or []
    pairs = [x / y for x, y in zip(a, b) if y]
    if len(a) == len(b) and len(pairs) == len(a) and len(pairs) > 1:
        return statistics.median(pairs)
    return r['rps'] / base['rps']


# --- /proc ------------------------------------------------------------------

def children(pid):
    r = subprocess.run(['pgrep', '-P', str(pid)], capture_output=True, text=True)
    return [int(x) for x in r.stdout.split()]


def proc_title(pid):
    """A process's command line as ps shows it: PostgreSQL's processes put
    their database there ("postgres: user db [local] COPY", "postgres:
    autovacuum worker db")."""
    try:
        with open(f'/proc/{pid}/cmdline', 'rb') as f:
            return f.read().replace(b'\0', b' ').decode(errors='replace')
    except OSError:
        return ''


def vmrss_kb(pid):
    try:
        with open(f'/proc/{pid}/status') as f:
            for line in f:
                if line.startswith('VmRSS:'):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cpu_ticks(pids):
    """{pid: utime + stime} of these processes (all their threads)."""
    out = {}
    for pid in pids:
        try:
            with open(f'/proc/{pid}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
            out[pid] = int(fields[11]) + int(fields[12])
        except (OSError, IndexError, ValueError):
            pass
    return out


def ticks_delta(before, after):
    """CPU ticks used between two cpu_ticks() snapshots (processes started in
    between count from zero)."""
    return sum(t - before.get(pid, 0) for pid, t in after.items())


def machine_busy_ticks():
    with open('/proc/stat') as f:
        v = [int(x) for x in f.readline().split()[1:]]
    return sum(v) - v[3] - v[4]   # minus idle and iowait


def foreign_ticks(ours):
    """{pid: ticks} of every user-space process not in ours (kernel threads,
    children of kthreadd, left out): other work on the machine."""
    out = {}
    for d in os.listdir('/proc'):
        if not d.isdigit() or int(d) in ours:
            continue
        try:
            with open(f'/proc/{d}/stat') as f:
                fields = f.read().rsplit(')', 1)[1].split()
        except OSError:
            continue
        if d == '2' or fields[1] == '2':
            continue
        out[int(d)] = int(fields[11]) + int(fields[12])
    return out


def loadavg():
    with open('/proc/loadavg') as f:
        return [float(x) for x in f.read().split()[:3]]


def cpu_model():
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('model name'):
                    return line.split(':', 1)[1].strip()
    except OSError:
        pass
    return platform.processor()


# --- the pieces -------------------------------------------------------------

class Upstream:
    """bench/upstream.js."""

    def __init__(self, deltas, delay_ms):
        e = dict(os.environ, BENCH_SSE_DELTAS=str(deltas), BENCH_SSE_DELAY_MS=str(delay_ms))
        self.proc = subprocess.Popen(['node', os.path.join(HERE, 'upstream.js')],
                                     stdout=subprocess.PIPE, text=True, env=e)
        self.port = int(self.proc.stdout.readline().strip())
        self.url = f'http://127.0.0.1:{self.port}'

    def pids(self):
        return [self.proc.pid]

    def rss_kb(self):
        return vmrss_kb(self.proc.pid)

    def stats(self):
        return requests.get(self.url + '/_stats', timeout=5).json()

    def stop(self):
        self.proc.terminate()
        self.proc.wait(timeout=10)


BASE_CONF = """# generated by bench/run.py
ServerRoot "{root}"
ServerName 127.0.0.1
Listen 127.0.0.1:{port}
PidFile "{run}/httpd.pid"
GracefulShutdownTimeout 5
DefaultRuntimeDir "{run}"
Mutex file:{run} default
ErrorLog "{logs}/error_log"
LogLevel warn
{modules}
{user}
# two children of 64 threads (more than the highest concurrency measured, so
# the event MPM never has to close idle keep-alive connections), both started
# at once and never recycled
ServerLimit 2
StartServers 2
ThreadsPerChild 64
ThreadLimit 64
MaxRequestWorkers 128
MinSpareThreads 8
MaxSpareThreads 128
MaxConnectionsPerChild 0
KeepAlive On
MaxKeepAliveRequests 0
KeepAliveTimeout 5
Timeout 30
TypesConfig /etc/mime.types
DocumentRoot "{root}/htdocs"
<Directory />
    Require all denied
    AllowOverride None
</Directory>
<Location />
    Require all granted
</Location>
Include "{conf}/test.conf"
"""

# The same system modules for bare and gateway; the gateway adds ours.
BENCH_MODULES = [
    ('mpm_event_module', 'mod_mpm_event.so'),
    ('authz_core_module', 'mod_authz_core.so'),
    ('authz_user_module', 'mod_authz_user.so'),
    ('authn_core_module', 'mod_authn_core.so'),
    ('mime_module', 'mod_mime.so'),
    ('headers_module', 'mod_headers.so'),
    ('env_module', 'mod_env.so'),
    ('proxy_module', 'mod_proxy.so'),
    ('proxy_http_module', 'mod_proxy_http.so'),
]


class Target:
    """A server under measurement: where to send requests, which processes
    are its CPU (pids) and its memory (rss), and how to stop it."""

    def __init__(self, name, url, pids, rss, stop=None, db=None):
        self.name, self.url, self.pids, self.rss = name, url, pids, rss
        self.db = db  # its PostgreSQL database, if it has one
        self._stop = stop

    def stop(self):
        if self._stop:
            stop, self._stop = self._stop, None
            stop()


class BenchPg(PgCluster):
    """The harness's throwaway cluster (fsync off, as the tests run it), with
    room for extra server options (bench/profile.py: pg_stat_statements)."""

    extra_opts = ''

    def start(self):
        release_port(self.port)
        log_path = os.path.join(self.sockdir, 'postgres.log')
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.sockdir} -c fsync=off "
                f"-c max_connections=200 {self.extra_opts}")
        self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, '-l', log_path,
                   '-o', opts, '-w', '-t', '30', 'start'])
        return self


class BenchHttpd(HttpdEnv):
    """HttpdEnv (t/integration/pyclaude) with a benchmark's base config: the
    system modules above, ours only when asked, fixed MPM sizing, unlimited
    keep-alive requests, no TLS vhost, no test log formats."""

    def __init__(self, gen_dir, modules_top, with_claude):
        self.modules_top = modules_top
        self.with_claude = with_claude
        super().__init__(gen_dir, loglevel='warn')

    def module_path(self, name):
        sub = {'claude_gateway': 'mod_claude_gateway', 'claude_spend': 'mod_claude_spend'}[name]
        p = os.path.join(self.modules_top, sub, '.libs', f'mod_{name}.so')
        if not os.path.exists(p):
            raise RuntimeError(f'{p} not built: run make')
        return p

    def _make_cert(self):
        pass

    def _write_base(self):
        mods = [f'LoadModule {n} {MODDIR}/{f}' for n, f in BENCH_MODULES]
        if self.with_claude:
            mods.append(f'LoadModule claude_gateway_module {self.module_path("claude_gateway")}')
            mods.append(f'LoadModule claude_spend_module {self.module_path("claude_spend")}')
        user = 'User www-data\nGroup www-data' if os.geteuid() == 0 else ''
        with open(os.path.join(self.conf_dir, 'httpd.conf'), 'w') as f:
            f.write(BASE_CONF.format(root=self.root, port=self.port, run=self.run_dir,
                                     logs=self.logs_dir, conf=self.conf_dir,
                                     modules='\n'.join(mods), user=user))

    def pids(self):
        p = self._pid()
        return ([p] + children(p)) if p else []

    def rss_kb(self):
        """VmRSS summed over the children (the parent serves no request)."""
        p = self._pid()
        return sum(vmrss_kb(c) for c in children(p)) if p else 0


def telemetry_landed(modules_top):
    """Whether the policy file's telemetry: section is implemented in this
    tree (it is listed among the 'later' sections until it is)."""
    try:
        with open(os.path.join(modules_top, 'mod_claude_gateway', 'cg_policy.c')) as f:
            src = f.read()
    except OSError:
        return False
    m = re.search(r'cg_later_sections\[\]\s*=\s*\{([^}]*)\}', src)
    if m and '"telemetry"' in m.group(1):
        return False
    return '"telemetry"' in src


def has_directive(modules_top, name):
    try:
        with open(os.path.join(modules_top, 'mod_claude_gateway', 'cg_config.c')) as f:
            return name in f.read()
    except OSError:
        return False


def route_built(modules_top):
    try:
        with open(os.path.join(modules_top, 'mod_claude_gateway', 'cg_config.c')) as f:
            return 'ClaudeGatewayRoute' in f.read()
    except OSError:
        return False


def managed_yaml():
    return """managed:
  policies:
    - match: {groups: [contractors]}
      cli:
        availableModels: [haiku]
        enforceAvailableModels: true
    - match: {groups: [eng]}
      cli:
        availableModels: [haiku, sonnet, opus]
        enforceAvailableModels: true
        permissions: {deny: ["Read(./.env)", "WebFetch"]}
        env: {DISABLE_UPDATES: "1"}
    - match: {}
      cli:
        availableModels: [haiku]
        enforceAvailableModels: true
"""


class Bench:

    def __init__(self, args):
        self.args = args
        self.prof = dict(PROFILES[args.profile])
        if args.duration:
            self.prof['duration'] = args.duration
        if args.soak is not None:
            self.prof['soak'] = args.soak
        if args.conns:
            self.prof['conns'] = [int(x) for x in args.conns.split(',')]
        if args.rounds:
            self.prof['rounds'] = args.rounds
        self.gen = tempfile.mkdtemp(prefix='mod_claude-bench-')
        os.chmod(self.gen, 0o755)
        self.secret = secrets.token_urlsafe(40)
        self.upstream_key = 'sk-ant-bench-' + secrets.token_hex(12)
        self.admin_key = 'admin-bench-' + secrets.token_hex(20)
        self.users = [f'user-bench{i:02d}' for i in range(args.users)]
        self.results = {}
        self.memory = {}
        self.skipped = {}
        self.failures = []
        self.pg = self.upstream = self.idp = None
        self.dbs = set()  # every target's database, for pg_pids(db)
        self.telemetry = telemetry_landed(args.modules)
        self.pg_extra_opts = args.pg_opts
        self.modes = [m for m in MODES if m in args.modes.split(',')]
        self.reference_version = None

    # --- setup --------------------------------------------------------------
    def token(self, sub):
        now = int(time.time())
        kid = hashlib.sha256(self.secret.encode()).hexdigest()[:16]
        return jwt.encode({'sub': sub, 'email': f'{sub}@example.com', 'name': sub,
                           'groups': ['eng', 'claude-users'], 'aud': 'claude-gateway',
                           'iat': now, 'exp': now + 7200},
                          self.secret, algorithm='HS256', headers={'kid': kid})

    def write_inputs(self):
        self.tokens_file = os.path.join(self.gen, 'tokens.txt')
        with open(self.tokens_file, 'w') as f:
            f.write('\n'.join(self.token(u) for u in self.users) + '\n')
        pad = max(0, self.args.body_bytes - 200)
        msg = 'Say ok.' + (' ' + 'x' * (pad - 1) if pad else '')
        self.body_json = os.path.join(self.gen, 'body.json')
        self.body_sse = os.path.join(self.gen, 'body-sse.json')
        self.body_paced = os.path.join(self.gen, 'body-paced.json')
        for path, stream, pace in ((self.body_json, False, None), (self.body_sse, True, None),
                                   (self.body_paced, True, self.args.sse_pace_ms)):
            b = {'model': MODEL, 'max_tokens': 16,
                 'messages': [{'role': 'user', 'content': msg}]}
            if stream:
                b['stream'] = True
            if pace is not None:
                # bench/upstream.js paces the stream it answers this with
                b['metadata'] = {'user_id': f'bench-pace-{pace:g}'}
            with open(path, 'w') as f:
                json.dump(b, f)

    def start_common(self):
        self.write_inputs()
        pg = BenchPg(os.path.join(self.gen, 'pg'), free_port())
        pg.extra_opts = self.pg_extra_opts
        self.pg = pg.init().start()
        assert self.pg.wait_ready(), 'PostgreSQL did not start'
        self.pg.create_db()
        self.warm_pg()
        self.upstream = Upstream(self.args.sse_deltas, self.args.sse_delay_ms)

    def warm_pg(self):
        """Touch every page of the cluster's shared buffers once, as a server
        that has been up for a while has: in a fresh cluster the first target
        to write pays a page fault for each buffer it uses first (some 1-3
        us of PostgreSQL per request until 128 MB of ledger pages went
        through), which no long-running deployment pays and the targets
        measured later do not."""
        nbuf = int(self.pg.psql("SELECT setting FROM pg_settings WHERE name = 'shared_buffers'"))
        # a table of more blocks than there are buffers, read into them
        self.pg.psql('CREATE EXTENSION IF NOT EXISTS pg_prewarm; '
                     'CREATE TABLE bench_warm WITH (fillfactor = 10) AS '
                     f'SELECT g FROM generate_series(1, {nbuf * 25 + 1000}) g; '
                     "SELECT pg_prewarm('bench_warm', 'buffer'); DROP TABLE bench_warm")

    def pg_pids(self, db=None):
        """The cluster's processes; with db, those that work for that
        database or for all of them (postmaster, WAL writer, checkpointer,
        ...), without the backends and autovacuum workers of the other
        targets' databases: their CPU is not the target's."""
        try:
            with open(os.path.join(self.pg.datadir, 'postmaster.pid')) as f:
                pm = int(f.readline())
        except (OSError, ValueError):
            return []
        pids = [pm] + children(pm)
        if db is None:
            return pids
        others = self.dbs - {db}
        return [p for p in pids if not others.intersection(proc_title(p).split())]

    def stop_common(self):
        if self.upstream:
            self.upstream.stop()
        if self.idp:
            self.idp.stop()
        if self.pg:
            self.pg.stop()
        if not self.args.keep:
            shutil.rmtree(self.gen, ignore_errors=True)
        else:
            log(f'kept {self.gen}')

    # --- wrk ------------------------------------------------------------------
    def wrk(self, url, mode, c, duration, limit=0, pids_fn=None, timeout_s=10, auth=True,
            pg_db=None):
        threads = min(2, c)
        env = dict(os.environ, BENCH_MODE=mode, BENCH_TOKENS=self.tokens_file,
                   BENCH_BODY_JSON=self.body_json, BENCH_BODY_SSE=self.body_sse,
                   BENCH_BODY_PACED=self.body_paced,
                   BENCH_LIMIT=str(int(math.ceil(limit / threads)) if limit else 0),
                   BENCH_AUTH='1' if auth else '0')
        cmd = ['wrk', '-t', str(threads), '-c', str(c), '-d', f'{int(duration)}s',
               '--timeout', f'{timeout_s}s', '-s', os.path.join(HERE, 'wrk.lua'), url]
        def snap():
            server = set(pids_fn()) if pids_fn else set()
            # PostgreSQL: the target's database (pg_db) and the cluster's
            # shared processes; the rest (other targets' backends and
            # autovacuum) apart, as postgres_other
            pg_all = set(self.pg_pids()) if self.pg else set()
            pg = set(self.pg_pids(pg_db)) if self.pg and pg_db else set()
            # of which the cluster's own (checkpointer, WAL writer, ...):
            # shown apart too, since they also work off other targets' writes
            shared = {p for p in pg if not self.dbs.intersection(proc_title(p).split())}
            groups = {'server': server, 'postgres': pg, 'postgres_shared': shared,
                      'postgres_other': pg_all - pg,
                      'upstream': set(self.upstream.pids()) if self.upstream else set()}
            every = set().union(*groups.values())
            every |= {os.getpid()}
            return ({k: cpu_ticks(v) for k, v in groups.items()},
                    foreign_ticks(every | set(children(os.getpid()))))
        busy0, (groups0, other0), t0 = machine_busy_ticks(), snap(), os.times()
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                             env=env)
        out, err = p.communicate(timeout=duration + 60)
        busy1, (groups1, other1), t1 = machine_busy_ticks(), snap(), os.times()
        m = re.search(r'^BENCH (\{.*\})$', out, re.M)
        if p.returncode != 0 or not m:
            raise RuntimeError(f'wrk failed ({p.returncode}): {out}\n{err}')
        r = json.loads(m.group(1))
        n = r['requests']
        secs = r['duration_us'] / 1e6
        errors = r['connect'] + r['read'] + r['write'] + r['status'] + r['timeout']
        res = {
            'mode': mode, 'c': c, 'requests': n, 'seconds': round(secs, 3),
            'rps': round(n / secs, 1) if secs else 0.0,
            'p50_ms': r['p50_us'] / 1000, 'p90_ms': r['p90_us'] / 1000,
            'p99_ms': r['p99_us'] / 1000, 'max_ms': r['max_us'] / 1000,
            'mean_ms': round(r['mean_us'] / 1000, 3), 'errors': errors,
            'errors_detail': {k: r[k] for k in ('connect', 'read', 'write', 'status',
                                                'timeout')},
        }
        # CPU: the server's (for the gateways including PostgreSQL), each
        # component's, wrk's (our child: os.times), the machine's (including
        # the kernel's loopback work), and that of every other process: other
        # load on the machine, which skews the figures when it is not ~0.
        wrk_s = (t1.children_user + t1.children_system) - (t0.children_user + t0.children_system)
        per = 1e6 / TICK / n if n else 0.0
        res['server_cpu_us_per_req'] = round(ticks_delta(groups0['server'],
                                                         groups1['server']) * per, 1)
        res['cpu_us_per_req'] = {k: round(ticks_delta(groups0[k], groups1[k]) * per, 1)
                                 for k in ('postgres', 'postgres_shared', 'postgres_other',
                                           'upstream')}
        res['cpu_us_per_req']['wrk'] = round(wrk_s * 1e6 / n, 1) if n else 0.0
        busy = (busy1 - busy0) / TICK
        other = ticks_delta({k: v for k, v in other0.items() if k in other1}, other1) / TICK
        res['machine_busy_cores'] = round(busy / secs, 2) if secs else 0.0
        res['other_cpu_cores'] = round(other / secs, 2) if secs else 0.0
        return res

    # --- measuring ------------------------------------------------------------
    def measure(self, live):
        """Every (mode, concurrency) cell is run on every live target in turn,
        prof['rounds'] times, the order rotating each round, and the median
        run (by req/s) is kept: a machine that slows down or speeds up for a
        while (a VM's neighbours) then weighs on every target alike instead
        of on whichever was measured at that moment."""
        prof = self.prof
        rounds = max(1, prof.get('rounds', 1))
        for t in live:
            self.results[t.name] = []
            if prof['warmup']:
                for mode in ('json', 'sse'):
                    self.wrk(t.url, mode, 16, prof['warmup'], pids_fn=t.pids, pg_db=t.db)
            elif prof['limit']:
                self.wrk(t.url, 'mix', 4, 1, limit=20, pids_fn=t.pids, pg_db=t.db)
        for mode in self.modes:
            for c in prof['conns']:
                runs = {t.name: [] for t in live}
                for k in range(rounds):
                    for t in live[k % len(live):] + live[:k % len(live)]:
                        if prof['lead']:
                            # the same load, unrecorded, first: each run
                            # measures the target's steady state, not its
                            # first seconds after idling while the others ran
                            # (see lead in PROFILES)
                            self.wrk(t.url, mode, c, prof['lead'])
                        paced0 = self.upstream.stats()['paced'] if mode == 'paced' else 0
                        r = self.wrk(t.url, mode, c, prof['duration'], limit=prof['limit'],
                                     pids_fn=t.pids, pg_db=t.db)
                        r['target'] = t.name
                        if mode == 'paced' and \
                                self.upstream.stats()['paced'] - paced0 < r['requests']:
                            # the marker did not reach the stand-in: these
                            # streams were not paced
                            self.failures.append(f'{t.name} paced c={c}: the stand-in saw '
                                                 'fewer paced requests than wrk sent')
                        runs[t.name].append(r)
                        if r['requests'] == 0 or r['errors'] > 0.01 * max(1, r['requests']):
                            self.failures.append(
                                f'{t.name} {mode} c={c}: {r["errors"]} errors of '
                                f'{r["requests"]} ({r["errors_detail"]})')
                for t in live:
                    rs = sorted(runs[t.name], key=lambda x: x['rps'])
                    r = dict(rs[len(rs) // 2])
                    r['rounds_rps'] = [x['rps'] for x in runs[t.name]]
                    self.results[t.name].append(r)
                    spread = (f'  rounds {"/".join(f"{x:.0f}" for x in r["rounds_rps"])}'
                              if rounds > 1 else '')
                    log(f'   {t.name:9s} {mode:5s} c={c:<3d} {r["rps"]:9.1f} req/s  '
                        f'p50 {r["p50_ms"]:7.2f} ms  p99 {r["p99_ms"]:7.2f} ms  '
                        f'errors {r["errors"]}  server {r["server_cpu_us_per_req"]:.0f} us/req  '
                        f'other load {r["other_cpu_cores"]:.2f} cores{spread}')

    def soak(self, t):
        """RSS of the target before and after prof['soak'] requests (half SSE)."""
        prof = self.prof
        mem = self.memory.setdefault(t.name, {})
        up0 = self.upstream.stats()
        mem['before_soak_kb'] = t.rss()
        # wrk runs for a duration, so the soak is a series of runs sized from
        # the rate seen so far, until the count is reached (or the bound)
        n, done, errs = prof['soak'], 0, 0
        trace = [(0, mem['before_soak_kb'])]
        t0 = time.monotonic()
        chunk = 1
        while done < n and time.monotonic() - t0 < self.args.soak_timeout:
            s = self.wrk(t.url, 'mix', 16, chunk, limit=(n - done) if prof['limit'] else 0,
                         pids_fn=t.pids)
            done += s['requests']
            errs += s['errors']
            trace.append((done, t.rss()))
            rate = max(1.0, s['rps'])
            chunk = int(min(10, max(1, math.ceil((n - done) / rate))))
            if s['requests'] == 0:
                break
        mem['soak_requests'] = done
        mem['soak_rss_trace_kb'] = trace
        mem['soak_errors'] = errs
        mem['soak_seconds'] = round(time.monotonic() - t0, 1)
        mem['after_soak_kb'] = t.rss()
        log(f'== {t.name}: soak: {done} requests (half SSE) in {mem["soak_seconds"]} s, '
            f'{errs} errors; RSS {mem["boot_kb"] / 1024:.1f} MB at start, '
            f'{mem["before_soak_kb"] / 1024:.1f} MB before, '
            f'{mem["after_soak_kb"] / 1024:.1f} MB after')
        if errs > 0.01 * max(1, done) or done == 0:
            self.failures.append(f'{t.name} soak: {errs} errors of {done}')
        up1 = self.upstream.stats()
        served = (up1['json'] + up1['sse']) - (up0['json'] + up0['sse'])
        opened = up1['connections'] - up0['connections']
        mem['upstream_connections'] = opened
        if t.name != 'upstream':
            log(f'   upstream connections opened during the soak: {opened} for {served} '
                'requests')

    # --- targets ----------------------------------------------------------------
    def timing_log(self, env):
        """With --timing-log: a line per request (start, child, thread, the
        server's time in us, user, status) in logs/timing_log, to find when
        and where slow requests happened (with --keep)."""
        if not self.args.timing_log:
            return ''
        return ('LogFormat "%{begin:sec}t.%{begin:usec_frac}t %P %{tid}P %D %u %>s" '
                f'bench_timing\nCustomLog "{env.logs_dir}/timing_log" bench_timing\n')

    def start_upstream(self):
        u = self.upstream
        return Target('upstream', u.url + '/v1/messages', u.pids, u.rss_kb)

    def start_bare(self):
        env = BenchHttpd(os.path.join(self.gen, 'bare'), self.args.modules, with_claude=False)
        env.install(f"""ProxyAddHeaders Off
LogFormat "%h %l %u %t \\"%r\\" %>s %b \\"%{{Referer}}i\\" \\"%{{User-Agent}}i\\"" combined
CustomLog "{env.logs_dir}/access_log" combined
{self.timing_log(env)}<Location /v1/messages>
    RequestHeader unset Authorization
    RequestHeader set x-api-key "{self.upstream_key}"
    ProxyPass {self.upstream.url}/v1/messages
</Location>
""")
        if env.start() != 0:
            raise RuntimeError('bare httpd did not start: ' + getattr(env, 'last_output', ''))
        try:
            self.check_ok(env.url + '/v1/messages', 'bare')
        except Exception:
            env.stop()
            raise
        return Target('bare', env.url + '/v1/messages', env.pids, env.rss_kb, env.stop)

    def policy_file(self, name, telemetry=True):
        path = os.path.join(self.gen, f'{name}-policy.yaml')
        text = f"""upstreams:
  - name: anthropic
    provider: anthropic
    base_url: {self.upstream.url}
    auth: {{api_key: "${{BENCH_UPSTREAM_KEY}}"}}
""" + managed_yaml()
        if self.telemetry and telemetry:
            text += f'telemetry:\n  forward_to:\n    - url: {self.upstream.url}\n'
        with open(path, 'w') as f:
            f.write(text)
        return path

    def new_db(self, name):
        """A database of its own for each gateway started, so every target
        starts from the same empty tables."""
        db = 'bench_' + re.sub(r'\W', '_', name)
        self.pg.psql(f'DROP DATABASE IF EXISTS {db}', db='postgres')
        self.pg.psql(f'CREATE DATABASE {db}', db='postgres')
        self.db = db
        self.dbs.add(db)
        return f'host={self.pg.sockdir} port={self.pg.port} dbname={db} user={self.pg.user}'

    def set_caps(self):
        values = ', '.join(f"('spl_bench{i:04d}', 'user', '{u}', 'monthly', 100000000000)"
                           for i, u in enumerate(self.users))
        self.pg.psql('INSERT INTO claude_spend_limits (id, scope_type, scope_id, period, '
                     f'amount_cents) VALUES {values} ON CONFLICT (scope_type, scope_id, period) '
                     'DO UPDATE SET amount_cents = EXCLUDED.amount_cents', db=self.db)

    def start_gateway(self, name='gateway', route=False, spend=True, policy=True,
                      session=True, audit=True, telemetry=True):
        """httpd with our modules, the full configuration (parts can be left
        out, for bench/profile.py), started, checked and the users' caps set;
        the caller stops it."""
        env = BenchHttpd(os.path.join(self.gen, name), self.args.modules, with_claude=True)
        env.extra_env.update(BENCH_UPSTREAM_KEY=self.upstream_key,
                             BENCH_SESSION_SECRET=self.secret)
        if route:
            proxy = '    ClaudeGatewayRoute On'
        else:
            proxy = ('    ClaudeGatewayUpstreamKey env:BENCH_UPSTREAM_KEY\n'
                     f'    ProxyPass {self.upstream.url}/v1/messages')
        interval = ''
        if self.telemetry and telemetry and \
                has_directive(self.args.modules, 'ClaudeGatewayTelemetryInterval'):
            # the gateway's own metrics, exported often enough to happen
            # during the runs (default 60 s)
            interval = 'ClaudeGatewayTelemetryInterval 10'
        identity = '' if session else \
            '    ClaudeGatewayDevIdentity user-bench00 user-bench00@example.com eng\n'
        conf = f"""ProxyAddHeaders Off
Include "{self.args.modules}/conf/claude-gateway-log.conf"
{'' if audit else '# '}CustomLog "{env.logs_dir}/audit.json" claude_json
{self.timing_log(env)}ClaudeGatewayDatabase "{self.new_db(name)}"
ClaudeGatewayDatabasePool {self.args.db_pool} 2000
ClaudeGatewaySessionSecret env:BENCH_SESSION_SECRET
{'' if policy else '# '}ClaudeGatewayPolicy {self.policy_file(name, telemetry)}
{interval}
<Location /v1/messages>
    AuthType claude-session
    Require valid-user
    ClaudeGateway On
    ClaudeSpend {'On' if spend else 'Off'}
{identity}{proxy}
</Location>
"""
        env.install(conf)
        if env.start() != 0:
            raise RuntimeError(f'{name} httpd did not start: ' +
                               getattr(env, 'last_output', ''))
        try:
            url = env.url + '/v1/messages'
            self.check_ok(url, name, session=session)  # the first one migrates the schema
            if spend:
                self.set_caps()
                # the first request's child remembers for ClaudeSpendLease's
                # age (5 s) that this user had no cap
                time.sleep(5.5)
            r = self.post(url, stream=False, session=session)
            if spend and 'anthropic-ratelimit-unified-status' not in r.headers:
                raise RuntimeError(f'{name}: the user cap is not applied: {dict(r.headers)}')
        except Exception:
            env.stop()
            raise
        return env

    def start_gateway_target(self, name='gateway', route=False):
        env = self.start_gateway(name, route)
        db = self.db
        otlp0 = self.upstream.stats()['otlp']

        def stop():
            self.check_ledger(name, db)
            env.stop()
            if self.telemetry:
                log(f'   {name}: OTLP exports received by the sink (all targets meanwhile): '
                    f'{self.upstream.stats()["otlp"] - otlp0}')
            errs = [x for x in open(env.error_log.path, errors='replace').read().splitlines()
                    if re.search(r'\[(\w+:)?(emerg|alert|crit|error)\]', x)]
            if errs:
                log(f'   {name}: {len(errs)} error lines in the error log, e.g. {errs[0][:300]}')
        return Target(name, env.url + '/v1/messages', lambda: env.pids() + self.pg_pids(db),
                      env.rss_kb, stop, db=db)

    def check_ledger(self, name, db):
        try:
            n = int(self.pg.psql('SELECT count(*) FROM claude_ledger', db=db))
            log(f'   {name}: ledger rows: {n}')
        except Exception as e:  # noqa: BLE001 - informative only
            log(f'   {name}: ledger count failed: {e}')

    def reference_status(self):
        """(True, '') when the reference gateway can run here, else (False, why)."""
        if self.args.no_reference:
            return False, 'disabled with --no-reference'
        if not os.access(REF_BIN, os.X_OK):
            return False, (f'{REF_BIN} not installed (bash tools/install-claude.sh installs '
                           'the npm package)')
        home = tempfile.mkdtemp(dir=self.gen)
        try:
            r = subprocess.run([REF_BIN, 'gateway', '--help'], capture_output=True, text=True,
                               timeout=60, env=dict(os.environ, HOME=home))
        except (OSError, subprocess.TimeoutExpired) as e:
            return False, f'`claude gateway --help` failed: {e}'
        if r.returncode != 0 or '--config' not in r.stdout:
            return False, ('this claude binary has no `gateway` subcommand: '
                           f'{(r.stdout + r.stderr).strip()[:200]}')
        return True, ''

    def start_reference(self):
        ok, why = self.reference_status()
        if not ok:
            log(f'== reference: skipped: {why}')
            self.skipped['reference'] = why
            return None
        from fakes.idp import IdpFake
        client_secret = secrets.token_urlsafe(32)
        self.idp = IdpFake(client_id='claude-gateway', client_secret=client_secret).start()
        self.pg.psql('CREATE DATABASE claude_reference', db='postgres')
        self.dbs.add('claude_reference')
        port = free_port()
        d = os.path.join(self.gen, 'reference')
        os.makedirs(os.path.join(d, 'home'))
        yaml_path = os.path.join(d, 'gateway.yaml')
        text = f"""listen: {{host: 127.0.0.1, port: {port}}}
oidc:
  issuer: "{self.idp.url}"
  client_id: claude-gateway
  client_secret: "${{BENCH_OIDC_SECRET}}"
session: {{jwt_secret: "${{BENCH_SESSION_SECRET}}"}}
store:
  postgres_url: "postgres://{self.pg.user}@127.0.0.1:{self.pg.port}/claude_reference"
  max_connections: {2 * self.args.db_pool}
admin:
  write_keys: [{{id: bench, key: "${{BENCH_ADMIN_KEY}}"}}]
upstreams:
  - name: anthropic
    provider: anthropic
    base_url: {self.upstream.url}
    auth: {{api_key: "${{BENCH_UPSTREAM_KEY}}"}}
""" + managed_yaml()
        if self.telemetry:
            text += f'telemetry:\n  forward_to:\n    - url: {self.upstream.url}\n'
        with open(yaml_path, 'w') as f:
            f.write(text)
        env = dict(os.environ, HOME=os.path.join(d, 'home'), CLAUDE_GATEWAY_ALLOW_LOOPBACK='1',
                   CLAUDE_GATEWAY_LOG_LEVEL='warn', BENCH_OIDC_SECRET=client_secret,
                   BENCH_SESSION_SECRET=self.secret, BENCH_ADMIN_KEY=self.admin_key,
                   BENCH_UPSTREAM_KEY=self.upstream_key)
        out = open(os.path.join(d, 'stdout.log'), 'w')   # its audit log: JSON lines
        release_port(port)
        proc = subprocess.Popen([REF_BIN, 'gateway', '--config', yaml_path], env=env,
                                stdout=out, stderr=subprocess.STDOUT, start_new_session=True)
        base = f'http://127.0.0.1:{port}'

        def stop():
            proc.terminate()
            try:
                proc.wait(timeout=15)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            out.close()
        try:
            if not wait_port(port, timeout=60) or proc.poll() is not None:
                out.flush()
                why = 'did not start: ' + open(out.name, errors='replace').read()[-800:]
                log(f'== reference: skipped: {why}')
                self.skipped['reference'] = why
                stop()
                return None
            for u in self.users:
                r = requests.post(base + '/v1/organizations/spend_limits',
                                  headers={'x-api-key': self.admin_key},
                                  json={'scope': {'type': 'user', 'user_id': u},
                                        'amount': '100000000000', 'period': 'monthly'},
                                  timeout=10)
                if r.status_code != 200:
                    raise RuntimeError(f'reference: setting a cap: {r.status_code} {r.text}')
            url = base + '/v1/messages'
            r = self.check_ok(url, 'reference')
            if 'anthropic-ratelimit-unified-status' not in r.headers:
                raise RuntimeError(f'reference: the user cap is not applied: {dict(r.headers)}')
            self.reference_version = subprocess.run(
                [REF_BIN, '--version'], capture_output=True, text=True,
                env=dict(os.environ, HOME=os.path.join(d, 'home'))).stdout.strip()

            def pids():
                return [proc.pid] + children(proc.pid) + self.pg_pids('claude_reference')

            def rss():
                return vmrss_kb(proc.pid) + sum(vmrss_kb(c) for c in children(proc.pid))
        except BaseException:
            stop()
            raise
        return Target('reference', url, pids, rss, stop, db='claude_reference')

    # --- checks -----------------------------------------------------------------
    def post(self, url, stream, session=True):
        with open(self.body_sse if stream else self.body_json, 'rb') as f:
            body = f.read()
        h = {'content-type': 'application/json', 'anthropic-version': '2023-06-01'}
        if session:
            h['authorization'] = 'Bearer ' + self.token(self.users[0])
        return requests.post(url, data=body, timeout=10, headers=h)

    def check_ok(self, url, name, session=True):
        """One JSON and one SSE request must succeed, with the usage in them."""
        r = None
        for stream in (False, True):
            r2 = self.post(url, stream, session)
            if r2.status_code != 200:
                raise RuntimeError(f'{name}: {r2.status_code} {r2.text[:300]}')
            if stream and 'message_delta' not in r2.text:
                raise RuntimeError(f'{name}: SSE answer without message_delta: {r2.text[:300]}')
            if not stream and '"usage"' not in r2.text:
                raise RuntimeError(f'{name}: JSON answer without usage: {r2.text[:300]}')
            r = r if r is not None else r2
        return r

    # --- report -----------------------------------------------------------------
    def row(self, name, mode, c):
        for r in self.results.get(name, []):
            if r['mode'] == mode and r['c'] == c:
                return r
        return None

    def table(self):
        names = [n for n in ('upstream', 'bare', 'gateway', 'route', 'reference')
                 if n in self.results]
        lines = []
        hdr = (f'{"target":10s} {"mode":5s} {"c":>3s} {"req/s":>9s} {"p50 ms":>8s} '
               f'{"p99 ms":>8s} {"+p50":>7s} {"+p99":>7s} {"x bare":>7s} {"x ref":>7s} '
               f'{"us/req":>7s} {"err":>4s} {"other":>5s}')
        lines.append(hdr)
        lines.append('-' * len(hdr))
        for mode in self.modes:
            for c in self.prof['conns']:
                base = self.row('upstream', mode, c)
                bare = self.row('bare', mode, c)
                ref = self.row('reference', mode, c)
                for n in names:
                    r = self.row(n, mode, c)
                    if r is None:
                        continue
                    add50 = f'{r["p50_ms"] - base["p50_ms"]:+7.2f}' if base and n != 'upstream' \
                        else f'{"":7s}'
                    add99 = f'{r["p99_ms"] - base["p99_ms"]:+7.2f}' if base and n != 'upstream' \
                        else f'{"":7s}'
                    xb = f'{rps_ratio(r, bare):7.2f}' if bare and bare['rps'] else f'{"-":>7s}'
                    xr = f'{rps_ratio(r, ref):7.2f}' if ref and ref['rps'] else f'{"-":>7s}'
                    lines.append(f'{n:10s} {mode:5s} {c:3d} {r["rps"]:9.1f} {r["p50_ms"]:8.2f} '
                                 f'{r["p99_ms"]:8.2f} {add50} {add99} {xb} {xr} '
                                 f'{r["server_cpu_us_per_req"]:7.0f} {r["errors"]:4d} '
                                 f'{r["other_cpu_cores"]:5.2f}')
                lines.append('')
        lines.append(f'{"memory":10s} {"start MB":>9s} {"before MB":>10s} {"after MB":>9s} '
                     f'{"soak requests":>14s}')
        for n in names:
            m = self.memory.get(n)
            if m:
                lines.append(f'{n:10s} {m["boot_kb"] / 1024:9.1f} {m["before_soak_kb"] / 1024:10.1f} '
                             f'{m["after_soak_kb"] / 1024:9.1f} {m["soak_requests"]:14d}')
        return '\n'.join(lines)

    def machine(self):
        httpd_v = subprocess.run(['/usr/sbin/apache2', '-v'], capture_output=True,
                                 text=True).stdout.split('\n')[0]
        node_v = subprocess.run(['node', '--version'], capture_output=True, text=True).stdout
        wrk_v = subprocess.run(['wrk', '--version'], capture_output=True, text=True)
        head = subprocess.run(['git', '-C', self.args.modules, 'rev-parse', 'HEAD'],
                              capture_output=True, text=True).stdout.strip()
        rev_file = os.path.join(self.args.modules, 'REVISION')   # a `git archive` build
        if not head and os.path.exists(rev_file):
            head = open(rev_file).read().strip()
        return {'cpus': os.cpu_count(), 'cpu_model': cpu_model(),
                'kernel': platform.release(), 'httpd': httpd_v, 'node': node_v.strip(),
                'wrk': (wrk_v.stdout + wrk_v.stderr).split('\n')[0].strip(),
                'modules_from': self.args.modules, 'git_head': head or None,
                'loadavg_at_start': self.loadavg_start}

    def wait_quiet(self):
        """Wait (at most --wait-quiet seconds) until other processes use less
        than 0.15 of a CPU over 3 s."""
        end = time.monotonic() + self.args.wait_quiet
        while True:
            mine = {os.getpid()} | set(children(os.getpid()))
            a = foreign_ticks(mine)
            time.sleep(3)
            b = foreign_ticks(mine)
            busy = ticks_delta({k: v for k, v in a.items() if k in b}, b) / TICK / 3
            if busy < 0.15 or time.monotonic() >= end:
                log(f'other processes use {busy:.2f} CPUs'
                    + ('' if busy < 0.15 else ': not quiet, measuring anyway'))
                return
            log(f'other processes use {busy:.2f} CPUs: waiting for a quiet machine')

    def run(self):
        if self.args.wait_quiet:
            self.wait_quiet()
        self.loadavg_start = loadavg()
        if self.loadavg_start[0] > 0.5:
            log(f'note: load average {self.loadavg_start[0]:.2f} before the run: other work '
                'on this machine will show in the figures (see "other load")')
        log(f'profile {self.args.profile}: {self.prof}; {len(self.users)} users; '
            f'SSE {self.args.sse_deltas + 6} events, {self.args.sse_delay_ms} ms apart, '
            f'paced: {self.args.sse_pace_ms} ms before each; '
            f'telemetry {"on" if self.telemetry else "not in this build: off"}')
        t0 = time.monotonic()
        live = []
        try:
            self.start_common()
            # every target is started first and stays up (idle when another
            # is measured), so the runs can be interleaved (measure())
            targets = self.args.targets.split(',')
            for name in ('upstream', 'bare', 'gateway', 'route', 'reference'):
                if name not in targets:
                    continue
                if name == 'route' and not route_built(self.args.modules):
                    self.skipped['route'] = 'ClaudeGatewayRoute not in this build'
                    continue
                log(f'== starting {name}')
                t = {'upstream': self.start_upstream, 'bare': self.start_bare,
                     'gateway': self.start_gateway_target,
                     'route': lambda: self.start_gateway_target('route', route=True),
                     'reference': self.start_reference}[name]()
                if t is not None:
                    live.append(t)
                    self.memory[t.name] = {'boot_kb': t.rss()}
                    log(f'   {t.url}')
            if live:
                self.measure(live)
                for t in live:
                    self.soak(t)
        finally:
            for t in live:
                try:
                    t.stop()
                except Exception as e:  # noqa: BLE001 - the others still stop
                    log(f'   stopping {t.name}: {e}')
            self.stop_common()
        elapsed = time.monotonic() - t0
        text = self.table()
        log('')
        log(f'{os.cpu_count()} CPUs ({cpu_model()}), everything on this machine over loopback; '
            f'wrk, whole responses; +p50/+p99: added over the upstream alone; '
            f'x bare / x ref: req/s ratio (median of the ratios within each round); '
            f'us/req: server CPU per request '
            f'(httpd children, or the reference, plus PostgreSQL); other: CPUs used by '
            f'other processes meanwhile')
        if self.args.profile == 'smoke':
            log('(smoke: each run stops after a few dozen requests, so the rates above measure '
                'nothing; it checks that every target answers through the harness)')
        log(text)
        for k, v in self.skipped.items():
            log(f'{k}: skipped: {v}')
        log(f'run took {elapsed:.0f} s')
        out = self.args.out
        if out is None and self.args.profile != 'smoke':
            suffix = '' if self.args.profile == 'full' else '-' + self.args.profile
            out = os.path.join(HERE, f'results-{datetime.date.today().isoformat()}{suffix}.json')
        if out:
            doc = {'date': datetime.datetime.now(datetime.timezone.utc).isoformat(
                       timespec='seconds'),
                   'profile': self.args.profile, 'settings': self.prof,
                   'users': len(self.users), 'body_bytes': os.path.getsize(self.body_json)
                   if os.path.exists(self.body_json) else None,
                   'sse_events': self.args.sse_deltas + 6, 'sse_delay_ms': self.args.sse_delay_ms,
                   'sse_pace_ms': self.args.sse_pace_ms,
                   'db_pool_per_child': self.args.db_pool, 'telemetry': self.telemetry,
                   'reference_version': self.reference_version,
                   'machine': self.machine(), 'results': self.results, 'memory': self.memory,
                   'skipped': self.skipped, 'failures': self.failures, 'table': text,
                   'elapsed_s': round(elapsed)}
            with open(out, 'w') as f:
                json.dump(doc, f, indent=1)
                f.write('\n')
            log(f'raw numbers: {os.path.relpath(out, os.getcwd())}')
        if self.failures:
            log('HARNESS FAILURES:\n  ' + '\n  '.join(self.failures))
            return 1
        return 0


def parse_args(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    g = ap.add_mutually_exclusive_group()
    g.add_argument('--quick', dest='profile', action='store_const', const='quick',
                   help='2 s runs, 10k-request soak (about 3 minutes)')
    g.add_argument('--smoke', dest='profile', action='store_const', const='smoke',
                   help='a few hundred requests per target; for CI (make bench-smoke)')
    ap.set_defaults(profile='full')
    ap.add_argument('--targets', default='upstream,bare,gateway,route,reference')
    ap.add_argument('--modes', default=','.join(MODES),
                    help='the cells to run, of ' + ','.join(MODES))
    ap.add_argument('--duration', type=int, help='seconds per wrk run')
    ap.add_argument('--conns', help='concurrencies, e.g. 16,64')
    ap.add_argument('--rounds', type=int,
                    help='runs per target and cell, interleaved across the targets; the '
                         'median is reported (full: 3)')
    ap.add_argument('--soak', type=int, help='requests in the memory soak')
    ap.add_argument('--soak-timeout', type=int, default=300, help='bound of the soak (s)')
    ap.add_argument('--users', type=int, default=16, help='distinct session users (16)')
    ap.add_argument('--body-bytes', type=int, default=0, help='pad the request body to this')
    ap.add_argument('--sse-deltas', type=int, default=6, help='content deltas (events - 6)')
    ap.add_argument('--sse-delay-ms', type=float, default=0.0, help='delay between SSE events')
    ap.add_argument('--sse-pace-ms', type=float, default=5.0,
                    help="the paced cells' upstream delay before each SSE event (5)")
    ap.add_argument('--db-pool', type=int, default=16,
                    help='ClaudeGatewayDatabasePool per child (the reference gets 2x)')
    ap.add_argument('--modules', default=TOP, help='tree whose built modules to load')
    ap.add_argument('--no-reference', action='store_true')
    ap.add_argument('--out', help='results file (default bench/results-<date>.json)')
    ap.add_argument('--keep', action='store_true', help='keep the generated directory')
    ap.add_argument('--timing-log', action='store_true',
                    help="a line per request in each httpd target's logs/timing_log")
    ap.add_argument('--pg-opts', default='', metavar='OPTS',
                    help="extra PostgreSQL server options, e.g. '-c log_lock_waits=on'")
    ap.add_argument('--wait-quiet', type=int, default=0, metavar='S',
                    help='first wait up to S seconds for other processes to go quiet')
    return ap.parse_args(argv)


def main():
    if shutil.which('wrk') is None:
        sys.exit('wrk not found: apt-get install wrk (tools/install-deps.sh installs it)')
    args = parse_args()
    args.modules = os.path.abspath(args.modules)
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(1))
    return Bench(args).run()


if __name__ == '__main__':
    sys.exit(main())
