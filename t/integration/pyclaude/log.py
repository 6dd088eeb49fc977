"""HttpdErrorLog: the error-log check of the harness (after pyhttpd's log.py).

Keeps a file offset. Every error or warning (and every child that died of a
signal, which httpd logs at notice level) written since the last check must
have been declared expected (by tag such as CG0101 or AH01114, or by regex),
otherwise the test module that caused it fails: regressions nobody was
looking for show up here.
"""
import os
import re
import time

LEVEL_RE = re.compile(r'\[(?:[\w_]+:)?(emerg|alert|crit|error|warn)\]')
TAG_RE = re.compile(r'\b((?:AH|CG|CS)\d{4,5})\b')
CRASH_RE = re.compile(r'AH00052: child pid \d+ exit signal')


class HttpdErrorLog:

    def __init__(self, path):
        self.path = path
        self._offset = 0
        self._ignored_tags = set()
        self._ignored_res = []
        self._recent_ok = []

    def clear(self):
        if os.path.exists(self.path):
            os.truncate(self.path, 0)
        self._offset = 0
        self._recent_ok = []

    def _read_from(self, offset):
        if not os.path.exists(self.path):
            return [], offset
        with open(self.path, 'r', errors='replace') as f:
            f.seek(offset)
            data = f.read()
            return data.splitlines(), f.tell()

    def add_ignored_tags(self, tags):
        """Tags that are expected for the whole run (e.g. CG0002 in dev mode)."""
        self._ignored_tags.update(tags)

    def add_ignored_patterns(self, patterns):
        self._ignored_res.extend(re.compile(p) for p in patterns)

    def ignore_recent(self, tags=(), matches=()):
        """Declare errors/warnings written since the last check as expected."""
        lines, _ = self._read_from(self._offset)
        res = [re.compile(m) for m in matches]
        for line in lines:
            tag = TAG_RE.search(line)
            if (tag and tag.group(1) in tags) or any(r.search(line) for r in res):
                self._recent_ok.append(line)

    def recent_lines(self):
        """Every line written since the last check (the test module's own)."""
        return self._read_from(self._offset)[0]

    def scan_recent(self, pattern, timeout=5.0):
        """Wait for a line matching pattern after the offset; return it or None."""
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while True:
            lines, _ = self._read_from(self._offset)
            for line in lines:
                if rx.search(line):
                    return line
            if time.monotonic() >= end:
                return None
            time.sleep(0.1)

    def get_missed(self):
        """Errors and warnings since the last check that nobody declared."""
        lines, new_offset = self._read_from(self._offset)
        missed = []
        for line in lines:
            # a child that died of a signal is logged at notice level: still a failure
            if not LEVEL_RE.search(line) and not CRASH_RE.search(line):
                continue
            if line in self._recent_ok:
                continue
            tag = TAG_RE.search(line)
            if tag and tag.group(1) in self._ignored_tags:
                continue
            if any(r.search(line) for r in self._ignored_res):
                continue
            missed.append(line)
        return missed, new_offset

    def check(self):
        """Assert no undeclared error or warning; advance the offset."""
        missed, new_offset = self.get_missed()
        self._offset = new_offset
        self._recent_ok = []
        assert not missed, 'unexpected errors/warnings in the httpd error log:\n' + '\n'.join(missed)
