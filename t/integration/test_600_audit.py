"""claude-auditlog, the tamper-evident piped logger, behind a real httpd.

The claude_json audit format is piped through build/claude-auditlog with a key
made for the run. Requests arrive concurrently, across a graceful restart
(when httpd runs an old and a new logger on the same file at once), and the
verifier must find the chain intact with every request logged exactly once.
Then copies of the log are tampered with, one way each, and the verifier must
name the line and the kind. Rotation: by size (-s), and by an outside
logrotate moving the file away, the chain going on through <file>.state.
"""
import collections
import concurrent.futures
import glob
import hashlib
import json
import os
import re
import subprocess
import time

import pytest

from pyclaude.client import post
from pyclaude.conf import GatewayConf
from pyclaude.env import TOP

AUDITLOG = os.path.join(TOP, 'build', 'claude-auditlog')
PROBLEM_RE = re.compile(r'^(\S+):(\d+): (altered|deleted|inserted|bad signature): ', re.M)
JSON_CHAIN_RE = re.compile(r'"_seq":(\d+),"_prev":"([0-9a-f]{64})","_hash":"([0-9a-f]{64})"\}$')
BODY = json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 64,
                   'messages': [{'role': 'user', 'content': 'hi'}]}).encode()


def wait_for(pred, timeout=20.0, what='condition'):
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, f'timed out waiting for {what}'
        time.sleep(0.05)


def logger_pids(path):
    r = subprocess.run(['pgrep', '-f', f'claude-auditlog .*{re.escape(path)}$'],
                       capture_output=True, text=True)
    return {int(x) for x in r.stdout.split()}


def read_lines(*paths):
    out = []
    for p in paths:
        if os.path.exists(p):
            with open(p) as f:
                out += f.read().splitlines()
    return out


def ids_logged(paths):
    return collections.Counter(json.loads(x).get('request_id') for x in read_lines(*paths))


def send(env, prefix, n):
    """n requests at once, each with its own request id."""
    def one(i):
        rid = f'{prefix}-{i}'
        r = post(env.port, '/v1/messages', BODY, headers={'x-client-request-id': rid})
        assert r.status == 200, r.body
        return rid
    with concurrent.futures.ThreadPoolExecutor(max_workers=n) as ex:
        return list(ex.map(one, range(n)))


def verify(*files, pub=None):
    args = [AUDITLOG, 'verify'] + (['-p', pub] if pub else []) + list(files)
    r = subprocess.run(args, capture_output=True, text=True, timeout=60)
    return r.returncode, r.stdout + r.stderr


def problem(out):
    """(file, line, kind) of the first problem the verifier names."""
    m = PROBLEM_RE.search(out)
    assert m, out
    return os.path.basename(m.group(1)), int(m.group(2)), m.group(3)


def split_chain(line):
    """(content, separator) of a JSON chained line, as ca_parse_line() does."""
    m = JSON_CHAIN_RE.search(line)
    p = m.start()
    if line[p - 1] == ',':
        return line[:p - 1] + '}', ','
    return line[:p] + '}', ''


def rechain(lines, start, fix_checkpoints):
    """What a forger without the key can do: recompute every link from line
    `start` on (and, if asked, the hashes the checkpoints name)."""
    prev = JSON_CHAIN_RE.search(lines[start - 1]).group(3) if start else '0' * 64
    seq = int(JSON_CHAIN_RE.search(lines[start]).group(1))
    out = lines[:start]
    for line in lines[start:]:
        content, sep = split_chain(line)
        if fix_checkpoints and content.startswith('{"_checkpoint":'):
            content = re.sub(r'"hash":"[0-9a-f]{64}"', f'"hash":"{prev}"', content, count=1)
        h = hashlib.sha256((prev + '\n' + content).encode()).hexdigest()
        out.append(f'{content[:-1]}{sep}"_seq":{seq},"_prev":"{prev}","_hash":"{h}"}}')
        prev, seq = h, seq + 1
    return out


@pytest.fixture(scope='module')
def keys(gen_dir):
    d = os.path.join(gen_dir, 'audit-keys')
    os.makedirs(d, exist_ok=True)
    key, pub = os.path.join(d, 'signing.pem'), os.path.join(d, 'signing.pub.pem')
    subprocess.run(['openssl', 'genpkey', '-algorithm', 'ed25519', '-out', key], check=True,
                   capture_output=True)
    subprocess.run(['openssl', 'pkey', '-in', key, '-pubout', '-out', pub], check=True,
                   capture_output=True)
    return key, pub


def serve_with_auditlog(env, pg, upstream, path, args):
    for p in glob.glob(path + '*'):
        os.unlink(p)
    GatewayConf(env).add_database(pg.conninfo).add_messages(upstream.url) \
        .add(f'CustomLog "|{AUDITLOG} {args} {path}" claude_json').install()
    assert env.restart() == 0


def stop_and_wait(env, path):
    env.stop()
    wait_for(lambda: not logger_pids(path), what='the loggers to finish')


@pytest.fixture(scope='module')
def chained(env, pg, upstream, keys):
    """A log written across a graceful restart: (path, request ids)."""
    path = os.path.join(env.logs_dir, 'chained.json')
    serve_with_auditlog(env, pg, upstream, path, f'-k {keys[0]} -n 5')
    ids = send(env, 'audit-a', 30)
    wait_for(lambda: all(ids_logged([path])[i] for i in ids), what='the first requests')
    before = logger_pids(path)
    assert env.graceful() == 0
    # the new generation's logger is up once a pid we did not see appears
    wait_for(lambda: logger_pids(path) - before, what='the new logger')
    assert env.is_live()
    more = send(env, 'audit-b', 20)
    ids += more
    wait_for(lambda: all(ids_logged([path])[i] for i in more), what='the later requests')
    stop_and_wait(env, path)
    # The old logger drains the old children's lines until EOF, so it exits
    # after the restart, and the MPM, which no longer knows it, says so.
    env.error_log.ignore_recent(matches=[
        r'AH00488: long lost child came home! \(pid (%s)\)' % '|'.join(map(str, before))])
    return path, ids


@pytest.fixture
def copy(chained, tmp_path):
    """Tamper with a copy: returns (lines, write(lines) -> path)."""
    lines = read_lines(chained[0])

    def write(new_lines):
        p = str(tmp_path / 'tampered.json')
        with open(p, 'w') as f:
            f.write('\n'.join(new_lines) + '\n')
        return p
    return lines, write


def record_indexes(lines):
    return [i for i, x in enumerate(lines) if x.startswith('{"request_id":')]


def checkpoint_indexes(lines):
    return [i for i, x in enumerate(lines) if x.startswith('{"_checkpoint":')]


class TestChain:

    def test_ca_600_01_intact(self, chained, keys):
        path, ids = chained
        rc, out = verify(path, pub=keys[1])
        assert rc == 0, out
        lines = read_lines(path)
        n_ckpt = len(checkpoint_indexes(lines))
        assert f'intact: {len(lines)} lines, {n_ckpt} checkpoints verified, ' \
               f'last seq {len(lines)}' in out
        assert 'unsigned tail' not in out  # EOF and SIGTERM sign the tail
        assert n_ckpt >= 50 // 5
        recs = [json.loads(x) for x in lines]  # every line is still JSON
        assert [r['_seq'] for r in recs] == list(range(1, len(lines) + 1))
        assert recs[0]['_prev'] == '0' * 64
        counts = collections.Counter(r.get('request_id') for r in recs)
        for rid in ids:
            assert counts[rid] == 1, rid
        # the logged fields are what mod_log_config wrote
        rec = next(r for r in recs if r.get('request_id') == 'audit-b-7')
        assert rec['status'] == 200 and rec['path'] == '/v1/messages'
        assert rec['user'] == 'user-alice' and rec['model'] == 'claude-sonnet-4-5'

    def test_ca_600_02_checkpoints(self, chained, keys):
        lines = read_lines(chained[0])
        der = subprocess.run(['openssl', 'pkey', '-pubin', '-in', keys[1], '-outform', 'DER'],
                             check=True, capture_output=True).stdout
        key_id = hashlib.sha256(der).hexdigest()[:16]
        for i in checkpoint_indexes(lines):
            cp = json.loads(lines[i])
            assert cp['_checkpoint']['key_id'] == key_id
            assert cp['_checkpoint']['seq'] == cp['_seq'] - 1
            assert cp['_checkpoint']['hash'] == cp['_prev']
        # without the public key the chain is checked, the signatures are not
        rc, out = verify(chained[0])
        assert rc == 0, out
        assert 'not checked: no -p key' in out

    def test_ca_600_10_altered(self, copy, keys):
        lines, write = copy
        i = record_indexes(lines)[9]
        assert '"status":200' in lines[i]
        lines[i] = lines[i].replace('"status":200', '"status":201')
        rc, out = verify(write(lines), pub=keys[1])
        assert rc == 1, out
        assert problem(out) == ('tampered.json', i + 1, 'altered')
        assert 'TAMPERED' in out

    def test_ca_600_11_deleted(self, copy, keys):
        lines, write = copy
        i = record_indexes(lines)[12]
        del lines[i]
        rc, out = verify(write(lines), pub=keys[1])
        assert rc == 1, out
        assert problem(out) == ('tampered.json', i + 1, 'deleted')

    def test_ca_600_12_inserted(self, copy, keys):
        lines, write = copy
        i = record_indexes(lines)[5]
        lines.insert(i + 3, lines[i])  # a replayed line, further down
        rc, out = verify(write(lines), pub=keys[1])
        assert rc == 1, out
        assert problem(out) == ('tampered.json', i + 4, 'inserted')

    def test_ca_600_13_checkpoint_signature(self, copy, keys):
        lines, write = copy
        i = checkpoint_indexes(lines)[2]
        sig = json.loads(lines[i])['_checkpoint']['sig']
        bad = ('B' if sig[0] == 'A' else 'A') + sig[1:]
        lines[i] = lines[i].replace(sig, bad)
        rc, out = verify(write(lines), pub=keys[1])
        assert rc == 1, out
        assert problem(out) == ('tampered.json', i + 1, 'bad signature')

    def test_ca_600_14_rechained_forgery(self, copy, keys):
        """Rewriting a line and recomputing every link after it passes the
        chain; the next signed checkpoint gives it away."""
        lines, write = copy
        i = record_indexes(lines)[20]
        lines[i] = lines[i].replace('"status":200', '"status":403')
        forged = rechain(lines, i, fix_checkpoints=True)
        after = min(c for c in checkpoint_indexes(forged) if c > i)
        rc, out = verify(write(forged), pub=keys[1])
        assert rc == 1, out
        assert problem(out) == ('tampered.json', after + 1, 'bad signature')
        # and the same forgery without the key: only the chain, which holds
        rc, out = verify(write(forged))
        assert rc == 0, out
        # a forger who leaves the checkpoints alone breaks even that
        rc, out = verify(write(rechain(lines, i, fix_checkpoints=False)))
        assert rc == 1, out
        assert problem(out) == ('tampered.json', after + 1, 'bad signature')

    def test_ca_600_15_unsigned_tail(self, copy, keys):
        lines, write = copy
        last = checkpoint_indexes(lines)[-1]
        assert last == len(lines) - 1
        del lines[last]
        rc, out = verify(write(lines), pub=keys[1])
        assert rc == 0, out
        assert re.search(r'unsigned tail: (\d+) line', out)
        n = int(re.search(r'unsigned tail: (\d+) line', out).group(1))
        assert n == len(lines) - 1 - checkpoint_indexes(lines)[-1]

    def test_ca_600_16_usage(self, chained):
        assert verify()[0] == 2
        assert verify('/nonexistent/file')[0] == 2
        assert verify(chained[0], pub=chained[0])[0] == 2  # not a key


def chain_start(path):
    """The seq a file's first line carries: how an auditor orders files."""
    with open(path) as f:
        return json.loads(f.readline())['_seq']


class TestRotation:

    def test_ca_600_20_size_and_external_rotation(self, env, pg, upstream, keys):
        path = os.path.join(env.logs_dir, 'rot.json')
        limit = 4096
        serve_with_auditlog(env, pg, upstream, path, f'-k {keys[0]} -n 5 -s {limit}')
        ids = send(env, 'rot-a', 30)
        pattern = re.compile(re.escape(os.path.basename(path)) + r'\.\d{14}\.\d+$')

        def all_files():
            fs = [p for p in glob.glob(path + '*') if pattern.search(p) or p == path or
                  p.endswith('.moved')]
            return sorted(fs, key=chain_start)
        wait_for(lambda: all(ids_logged(all_files())[i] for i in ids), what='the requests')
        # an outside logrotate moves the file away; the chain goes on
        os.rename(path, path + '.moved')
        more = send(env, 'rot-b', 10)
        ids += more
        wait_for(lambda: os.path.exists(path) and
                 all(ids_logged(all_files())[i] for i in more), what='the later requests')
        stop_and_wait(env, path)

        files = all_files()
        rotated = [p for p in files if pattern.search(p)]
        assert len(rotated) >= 4, files
        assert files[-1] == path
        counts = ids_logged(files)
        for rid in ids:
            assert counts[rid] == 1, rid
        for p in rotated:
            assert os.path.getsize(p) <= limit, p
            last = read_lines(p)[-1]
            assert last.startswith('{"_checkpoint":'), p  # every rotated file ends signed
        for prev, nxt in zip(files, files[1:]):
            head = json.loads(read_lines(nxt)[0])['_rotated_from']
            tail = json.loads(read_lines(prev)[-1])
            assert head['hash'] == tail['_hash'] and head['seq'] == tail['_seq']
            if prev.endswith('.moved'):
                assert head.get('external') is True
            else:
                assert head['file'] == os.path.basename(prev)
        assert os.path.exists(path + '.state')

        rc, out = verify(*files, pub=keys[1])
        assert rc == 0, out
        assert f'last seq {chain_start(path) + len(read_lines(path)) - 1}' in out
        # one file on its own: the chain starts where the file says it does
        rc, out = verify(path, pub=keys[1])
        assert rc == 0, out
        assert 'note: the chain continues after seq' in out
        # a file left out is a gap
        missing = files[:2] + files[3:]
        rc, out = verify(*missing, pub=keys[1])
        assert rc == 1, out
        assert problem(out) == (os.path.basename(files[3]), 1, 'deleted')

    def test_ca_600_21_restart_continues_chain(self, keys, tmp_path):
        """Without httpd: a second logger run on the same file continues the
        chain from its tail; a long line is cut and flagged."""
        path = str(tmp_path / 'direct.json')
        for n in range(2):
            r = subprocess.run([AUDITLOG, '-k', keys[0], '-n', '0', path], input=(
                f'{{"request_id":"direct-{n}"}}\nnot json {n}\n' + '{"x":"' + 'y' * 70000 +
                '"}\n').encode(), capture_output=True, timeout=30)
            assert r.returncode == 0, r.stderr
            assert b'truncated' in r.stderr
        lines = read_lines(path)
        assert len(lines) == 8
        trunc = json.loads(lines[2])['_truncated']
        assert trunc['bytes'] == 70008 and trunc['head'].startswith('{"x":"yyy')
        assert lines[1].startswith('not json 0 #chain seq=2 prev=')
        rc, out = verify(path, pub=keys[1])
        assert rc == 0, out
        assert 'intact: 8 lines, 2 checkpoints verified, last seq 8' in out
