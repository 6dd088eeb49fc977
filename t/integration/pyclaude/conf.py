"""GatewayConf: builds the test.conf of a gateway vhost (after pyhttpd's conf.py).

Tests describe what they need (upstream, dev identity, body limit, database)
and install() writes the Apache configuration an admin would write.
"""


class GatewayConf:

    def __init__(self, env):
        self.env = env
        self.lines = []

    def add(self, text):
        self.lines.append(text)
        return self

    def add_database(self, conninfo, pool=None):
        self.add(f'ClaudeGatewayDatabase "{conninfo}"')
        if pool:
            self.add(f'ClaudeGatewayDatabasePool {pool}')
        return self

    def add_health(self):
        return self.add('<Location /healthz>\n    SetHandler claude-gateway-healthz\n</Location>\n'
                        '<Location /readyz>\n    SetHandler claude-gateway-readyz\n</Location>')

    def add_messages(self, upstream_url, key_ref='env:CLAUDE_TEST_UPSTREAM_KEY',
                     dev_identity='user-alice alice@example.com eng claude-users',
                     max_body=None, spend=True, auth=None, extra=''):
        """The /v1/messages location, proxied to upstream_url."""
        body = ['<Location /v1/messages>',
                '    AuthType claude-session',
                '    Require valid-user',
                '    ClaudeGateway On']
        if spend:
            body.append('    ClaudeSpend On')
        if key_ref:
            body.append(f'    ClaudeGatewayUpstreamKey {key_ref}')
        if auth:
            body.append(f'    ClaudeGatewayUpstreamAuth {auth}')
        if dev_identity:
            body.append(f'    ClaudeGatewayDevIdentity {dev_identity}')
        if max_body:
            body.append(f'    ClaudeGatewayMaxBody {max_body}')
        if extra:
            body.append(extra)
        body.append(f'    ProxyPass {upstream_url}/v1/messages')
        body.append('</Location>')
        self.add('\n'.join(body))
        return self

    def text(self):
        # Never reveal the client's address to the provider (the reference
        # drops x-forwarded-for); mod_proxy adds it unless told not to.
        return 'ProxyAddHeaders Off\n' + '\n'.join(self.lines) + '\n'

    def install(self):
        self.env.install(self.text())
        return self
