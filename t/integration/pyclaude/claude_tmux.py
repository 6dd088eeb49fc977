"""ClaudeTmux: the real Claude Code client in a tmux session, driven like a
user: keys in, screen text out.

The client runs with a throwaway HOME whose settings point /login at the
gateway (forceLoginMethod, forceLoginGatewayUrl), with onboarding done and
the auto-updater and non-essential traffic off, so it talks to nothing but
the gateway.
"""
import json
import os
import re
import shutil
import subprocess
import tempfile
import time

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..', '..', '..'))
CLAUDE_BIN = os.path.join(TOP, '.cache', 'claude-code', 'node_modules', '@anthropic-ai',
                          'claude-code-linux-x64', 'claude')


class ClaudeTmux:

    def __init__(self, base_url, extra_env=None):
        if not os.access(CLAUDE_BIN, os.X_OK):
            raise RuntimeError('the Claude Code client is not installed: '
                               'run tools/install-claude.sh (make test does)')
        self.base_url = base_url
        self.home = tempfile.mkdtemp(prefix='claude-home-')
        self.work = os.path.join(self.home, 'work')
        os.makedirs(os.path.join(self.home, '.claude'))
        os.makedirs(self.work)
        with open(os.path.join(self.home, '.claude', 'settings.json'), 'w') as f:
            json.dump({'forceLoginMethod': 'gateway', 'forceLoginGatewayUrl': base_url}, f)
        with open(os.path.join(self.home, '.claude.json'), 'w') as f:
            json.dump({'hasCompletedOnboarding': True, 'theme': 'dark',
                       'projects': {self.work: {'hasTrustDialogAccepted': True}}}, f)
        self.session = 'claude-' + os.path.basename(self.home)
        env = {'HOME': self.home, 'DISABLE_AUTOUPDATER': '1',
               'CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC': '1', 'TERM': 'xterm-256color'}
        env.update(extra_env or {})
        cmd = 'env ' + ' '.join(f'{k}={v}' for k, v in env.items()) + ' ' + CLAUDE_BIN
        subprocess.run(['tmux', 'new-session', '-d', '-s', self.session, '-x', '200', '-y', '50',
                        '-c', self.work, cmd], check=True)

    def screen(self):
        r = subprocess.run(['tmux', 'capture-pane', '-p', '-t', self.session],
                           capture_output=True, text=True)
        return r.stdout

    def keys(self, *keys):
        for k in keys:
            subprocess.run(['tmux', 'send-keys', '-t', self.session, k], check=True)
            time.sleep(0.3)

    def type(self, text):
        subprocess.run(['tmux', 'send-keys', '-t', self.session, '-l', text], check=True)
        time.sleep(0.5)
        self.keys('Enter')

    def wait_for(self, pattern, timeout=30):
        rx = re.compile(pattern)
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            text = self.screen()
            m = rx.search(text)
            if m:
                return m
            time.sleep(0.25)
        raise AssertionError(f'{pattern!r} not on screen after {timeout}s:\n{self.screen()}')

    def login(self, approve):
        """/login through the gateway; approve(user_code) plays the browser."""
        self.wait_for(r'Claude Code v\d')
        self.type('/login')
        self.wait_for(r'Enter to connect')
        self.keys('Enter')
        self.wait_for(r'Trust gateway')
        self.keys('Up', 'Enter')  # "Yes, trust this gateway"
        code = self.wait_for(r'Code:\s+([A-Z]{4}-[A-Z]{4})').group(1)
        approve(code)
        self.wait_for(r'Connected to', timeout=30)
        self.keys('Enter')
        # managed settings applied at sign-in redraw the screen over the message
        self.wait_for(r'Login successful|· Cloud gateway')
        return code

    def credentials(self):
        with open(os.path.join(self.home, '.claude', '.credentials.json')) as f:
            return json.load(f)

    def close(self):
        subprocess.run(['tmux', 'kill-session', '-t', self.session], capture_output=True)
        shutil.rmtree(self.home, ignore_errors=True)
