"""PgCluster: a throwaway PostgreSQL cluster for tests and `make run`.

initdb into a directory of our own, a postmaster on 127.0.0.1 and a unix
socket in that directory, trust authentication (loopback only, data thrown
away). As root, everything runs as the unprivileged `postgres` user, because
PostgreSQL refuses to run as root.
"""
import glob
import os
import pwd
import shutil
import subprocess
import time

from .ports import release_port


def pg_bindir():
    for d in sorted(glob.glob('/usr/lib/postgresql/*/bin'), reverse=True):
        if os.path.exists(os.path.join(d, 'initdb')):
            return d
    raise RuntimeError('PostgreSQL server binaries not found (apt-get install postgresql)')


class PgCluster:

    def __init__(self, datadir, port, dbname='claude_gateway'):
        self.datadir = os.path.abspath(datadir)
        self.sockdir = self.datadir + '.sock'
        self.port = port
        self.dbname = dbname
        self.bindir = pg_bindir()
        self.as_root = os.geteuid() == 0
        self.user = 'postgres' if self.as_root else pwd.getpwuid(os.geteuid()).pw_name

    @property
    def conninfo(self):
        """libpq conninfo for the gateway (over the unix socket, as the cluster owner)."""
        return f'host={self.sockdir} port={self.port} dbname={self.dbname} user={self.user}'

    @property
    def tcp_conninfo(self):
        return f'host=127.0.0.1 port={self.port} dbname={self.dbname} user={self.user}'

    def _run(self, args, check=True, **kw):
        if self.as_root:
            args = ['runuser', '-u', self.user, '--'] + args
        return subprocess.run(args, check=check, capture_output=True, text=True, **kw)

    def _own(self, path):
        if self.as_root:
            pw = pwd.getpwnam(self.user)
            os.chown(path, pw.pw_uid, pw.pw_gid)

    def init(self):
        for d in (self.datadir, self.sockdir):
            if os.path.exists(d):
                shutil.rmtree(d)
        os.makedirs(self.sockdir)
        os.makedirs(self.datadir, mode=0o700)
        self._own(self.sockdir)
        self._own(self.datadir)
        # the parents must be traversable by the cluster owner
        parent = os.path.dirname(self.datadir)
        os.chmod(parent, os.stat(parent).st_mode | 0o711)
        self._run([os.path.join(self.bindir, 'initdb'), '-D', self.datadir, '-A', 'trust',
                   '-U', self.user, '-E', 'UTF8', '--no-locale'])
        return self

    def start(self):
        release_port(self.port)
        log = os.path.join(self.sockdir, 'postgres.log')
        opts = (f"-c listen_addresses=127.0.0.1 -c port={self.port} "
                f"-c unix_socket_directories={self.sockdir} -c fsync=off "
                f"-c max_connections=200")
        self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, '-l', log,
                   '-o', opts, '-w', '-t', '30', 'start'])
        return self

    def stop(self, mode='fast'):
        self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, '-m', mode,
                   '-w', 'stop'], check=False)

    def is_running(self):
        r = self._run([os.path.join(self.bindir, 'pg_ctl'), '-D', self.datadir, 'status'],
                      check=False)
        return r.returncode == 0

    def psql(self, sql, db=None):
        r = self._run(['psql', '-X', '-q', '-A', '-t', '-v', 'ON_ERROR_STOP=1',
                       '-h', self.sockdir, '-p', str(self.port), '-U', self.user,
                       '-d', db or self.dbname, '-c', sql])
        return r.stdout.strip()

    def wait_value(self, sql, timeout=5.0):
        """The first non-empty answer of sql within timeout (rows written in
        log_transaction land just after the answer reached the client)."""
        end = time.monotonic() + timeout
        while True:
            v = self.psql(sql)
            if v or time.monotonic() >= end:
                return v
            time.sleep(0.05)

    def create_db(self):
        self._run(['createdb', '-h', self.sockdir, '-p', str(self.port), '-U', self.user,
                   self.dbname])
        return self

    def apply_schema(self, sql_dir):
        """Apply sql/*.sql in order (the migrations). Each file goes to psql
        on its standard input: psql runs as the cluster's owner when we are
        root, and a checkout in a private directory (mktemp -d) is not
        readable to that user."""
        for f in sorted(glob.glob(os.path.join(sql_dir, '*.sql'))):
            with open(f) as sql:
                self._run(['psql', '-X', '-q', '-v', 'ON_ERROR_STOP=1', '-h', self.sockdir,
                           '-p', str(self.port), '-U', self.user, '-d', self.dbname],
                          input=sql.read())
        return self

    def wait_ready(self, timeout=20):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            r = self._run(['pg_isready', '-h', self.sockdir, '-p', str(self.port)], check=False)
            if r.returncode == 0:
                return True
            time.sleep(0.2)
        return False
