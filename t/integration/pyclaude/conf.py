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

    def add_admin(self, keys, groups=('admins',)):
        """The admin API's credentials: the write key ops-write, the read key
        ops-read (from the admin_keys fixture) and the admin groups."""
        self.add(f'ClaudeGatewayAdminKey write ops-write file:{keys["write_file"]}')
        self.add(f'ClaudeGatewayAdminKey read ops-read file:{keys["read_file"]}')
        if groups:
            self.add('ClaudeGatewayAdminGroups ' + ' '.join(groups))
        return self

    def add_session(self, session_env='CLAUDE_TEST_SESSION_SECRET'):
        """Session tokens without the sign-in endpoints (tests mint them)."""
        return self.add(f'ClaudeGatewaySessionSecret env:{session_env}')

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

    def add_policy(self, path, dev_identity=None):
        """ClaudeGatewayPolicy and the two endpoints it serves."""
        self.add(f'ClaudeGatewayPolicy {path}')
        for loc, handler in (('/managed/settings', 'claude-managed-settings'),
                             ('/v1/models', 'claude-models')):
            dev = f'\n    ClaudeGatewayDevIdentity {dev_identity}' if dev_identity else ''
            self.add(f'<Location {loc}>\n    AuthType claude-session\n    Require valid-user\n'
                     f'    SetHandler {handler}{dev}\n</Location>')
        return self

    def add_signin(self, idp_url, client_id, secret_env='CLAUDE_TEST_OIDC_SECRET',
                   session_env='CLAUDE_TEST_SESSION_SECRET', public_url=None, extra=''):
        """Discovery, device flow and token endpoints, with mod_auth_openidc as
        the relying party on /device (its redirect URI at /oauth/callback)."""
        base = public_url or self.env.url
        if public_url:
            self.add(f'ClaudeGatewayPublicURL {public_url}')
        self.add(f"""ClaudeGatewaySessionSecret env:{session_env}
ClaudeGatewayOIDCTokenEndpoint {idp_url}/token
ClaudeGatewayOIDCClient {client_id} env:{secret_env}
OIDCProviderMetadataURL {idp_url}/.well-known/openid-configuration
OIDCClientID {client_id}
OIDCClientSecret ${{{secret_env}}}
OIDCRedirectURI {base}/oauth/callback
OIDCCryptoPassphrase ${{{session_env}}}
OIDCScope "openid email profile offline_access"
OIDCPassClaimsAs environment
OIDCPassRefreshToken On
OIDCRemoteUserClaim sub
{extra}
<Location /.well-known/oauth-authorization-server>
    SetHandler claude-gateway-discovery
</Location>
<Location /oauth/device_authorization>
    SetHandler claude-gateway-device-authorization
</Location>
<Location /oauth/token>
    SetHandler claude-gateway-token
</Location>
<Location /oauth/revoke>
    SetHandler claude-gateway-revoke
</Location>
<Location /admin/revocations>
    SetHandler claude-gateway-admin-revocations
    Require ip 127.0.0.1
</Location>
<Location /oauth/callback>
    AuthType openid-connect
    Require valid-user
</Location>
<Location /device>
    AuthType openid-connect
    Require valid-user
    SetHandler claude-gateway-device
</Location>""")
        return self

    def text(self):
        # Never reveal the client's address to the provider (the reference
        # drops x-forwarded-for); mod_proxy adds it unless told not to.
        return 'ProxyAddHeaders Off\n' + '\n'.join(self.lines) + '\n'

    def install(self):
        self.env.install(self.text())
        return self
