#!/usr/bin/python3
"""The embedded-defaults gateway behind `make run`.

Reuses the integration harness (t/integration/pyclaude) and the fakes
(t/fakes), so what a developer runs is what the tests run.
"""
import os
import secrets
import signal
import sys
import threading

TOP = os.path.abspath(os.path.join(os.path.dirname(__file__), '..'))
sys.path.insert(0, os.path.join(TOP, 't', 'integration'))
sys.path.insert(0, os.path.join(TOP, 't'))

from pyclaude.conf import GatewayConf  # noqa: E402
from pyclaude.env import HttpdEnv  # noqa: E402
from pyclaude.pg import PgCluster  # noqa: E402
from pyclaude.ports import free_port, reserve_port  # noqa: E402
from fakes.anthropic import AnthropicFake  # noqa: E402
from fakes.idp import IdpFake  # noqa: E402

DEMO = ('user-alice', 'alice@example.com', ['eng', 'claude-users'])


def main():
    port = int(os.environ.get('CLAUDE_PORT', '8080'))
    data = os.path.abspath(os.environ.get('CLAUDE_DATA_DIR', '/tmp/mod_claude-run'))
    os.makedirs(data, exist_ok=True)
    os.chmod(data, 0o755)
    try:
        # held until httpd binds it, so the servers started before cannot take it
        reserve_port(port)
    except OSError as e:
        raise SystemExit(f'port {port} on 127.0.0.1 is not free ({e.strerror}); '
                         'choose another with CLAUDE_PORT=...')
    started = []

    def stop_all(*_):
        for what in reversed(started):
            try:
                what()
            except Exception as e:  # keep stopping the others
                print(f'stop: {e}', file=sys.stderr)
        started.clear()

    try:
        pg = PgCluster(os.path.join(data, 'pg'), free_port())
        pg.init().start()
        started.append(pg.stop)
        pg.wait_ready()
        pg.create_db().apply_schema(os.path.join(TOP, 'sql'))

        client_secret = secrets.token_urlsafe(24)
        idp = IdpFake(client_id='mod-claude', client_secret=client_secret,
                      redirect_uris=[f'http://127.0.0.1:{port}/oauth/callback']).start()
        started.append(idp.stop)

        env = HttpdEnv(data, loglevel='warn claude_gateway:info claude_spend:info', port=port)
        env.extra_env['CLAUDE_RUN_OIDC_SECRET'] = client_secret
        env.extra_env['CLAUDE_RUN_SESSION_SECRET'] = secrets.token_urlsafe(40)
        real_key = os.environ.get('ANTHROPIC_API_KEY')
        if real_key:
            upstream_url = 'https://api.anthropic.com'
            env.extra_env['CLAUDE_RUN_UPSTREAM_KEY'] = real_key
            extra_tls = ('SSLProxyEngine on\nSSLProxyVerify require\nSSLProxyCheckPeerName on\n'
                         'SSLProxyCACertificateFile /etc/ssl/certs/ca-certificates.crt\n')
        else:
            key = 'sk-ant-local-' + secrets.token_hex(8)
            fake = AnthropicFake(api_key=key).start()
            started.append(fake.stop)
            upstream_url = fake.url
            env.extra_env['CLAUDE_RUN_UPSTREAM_KEY'] = key
            extra_tls = ''
        conf = GatewayConf(env).add(extra_tls).add_database(pg.conninfo).add_health()
        conf.add_signin(idp.url, 'mod-claude', secret_env='CLAUDE_RUN_OIDC_SECRET',
                        public_url=f'http://127.0.0.1:{port}',
                        session_env='CLAUDE_RUN_SESSION_SECRET',
                        extra='ClaudeGatewayLoginNotice "Development gateway: you sign in as '
                              'the demo user alice."')
        conf.add_policy(os.path.join(TOP, 'conf', 'claude-gateway-policy.yaml'),
                        dev_identity=f'{DEMO[0]} {DEMO[1]} {" ".join(DEMO[2])}')
        conf.add_messages(upstream_url, key_ref='env:CLAUDE_RUN_UPSTREAM_KEY',
                          dev_identity=f'{DEMO[0]} {DEMO[1]} {" ".join(DEMO[2])}')
        conf.install()
        if env.restart() != 0:
            print(getattr(env, 'last_output', ''), file=sys.stderr)
            raise SystemExit('httpd did not start; see ' + env.error_log.path)
        started.append(env.stop)

        base = env.url
        print(f"""
mod_claude gateway running at {base}
  upstream : {'the real Anthropic API' if real_key else 'local stand-in at ' + upstream_url}
  database : {pg.conninfo}
  dev IdP  : {idp.url} (demo user alice / alice@example.com, groups {', '.join(DEMO[2])})
  logs     : {env.logs_dir}

Try it:
  curl -N {base}/v1/messages -H 'content-type: application/json' \\
       -H 'anthropic-version: 2023-06-01' \\
       -d '{{"model":"claude-sonnet-4-5","max_tokens":64,"stream":true,"messages":[{{"role":"user","content":"hi"}}]}}'
  curl {base}/healthz ; curl {base}/readyz
  curl {base}/managed/settings ; curl {base}/v1/models   (policy: conf/claude-gateway-policy.yaml)

Claude Code: put this in ~/.claude/settings.json, then run `claude` and type /login:
  {{"forceLoginMethod": "gateway", "forceLoginGatewayUrl": "{base}"}}
Sign-in: /login opens {base}/device; the development IdP signs you in as the
demo user alice (alice@example.com) without a password; approve the code shown.
Requests that carry no session at all (the curl above) are served as the demo
user too (ClaudeGatewayDevIdentity: development only).

Stop with Ctrl-C.
""", flush=True)
        done = threading.Event()
        signal.signal(signal.SIGINT, lambda *_: done.set())
        signal.signal(signal.SIGTERM, lambda *_: done.set())
        done.wait()
    finally:
        stop_all()
        print('stopped', flush=True)


if __name__ == '__main__':
    main()
