"""Bedrock with auth {}: the AWS default credential chain, in the SDKs'
order (environment, web identity at STS, the shared files, the container
endpoint, the instance metadata service), against a strict fake of those
endpoints (fakes/awscreds.py) and the Bedrock fake, which verifies every
SigV4 signature and session token. Every test sets all the chain's
variables, so nothing reaches a real metadata address or ~/.aws."""
import time
from datetime import timedelta

import pytest

from fakes.awscreds import AwsCredsFake
from fakes.bedrock import BedrockFake
from pyclaude.client import post
from test_730_providers import body, headers

CHAIN_VARS = ('AWS_ACCESS_KEY_ID', 'AWS_SECRET_ACCESS_KEY', 'AWS_SESSION_TOKEN',
              'AWS_WEB_IDENTITY_TOKEN_FILE', 'AWS_ROLE_ARN', 'AWS_ROLE_SESSION_NAME',
              'AWS_ENDPOINT_URL_STS', 'AWS_ENDPOINT_URL', 'AWS_REGION', 'AWS_DEFAULT_REGION',
              'AWS_PROFILE', 'AWS_SHARED_CREDENTIALS_FILE', 'AWS_CONFIG_FILE',
              'AWS_CONTAINER_CREDENTIALS_RELATIVE_URI', 'AWS_CONTAINER_CREDENTIALS_FULL_URI',
              'AWS_CONTAINER_AUTHORIZATION_TOKEN', 'AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE',
              'AWS_EC2_METADATA_SERVICE_ENDPOINT', 'AWS_EC2_METADATA_DISABLED',
              'AWS_EC2_METADATA_V1_DISABLED')


@pytest.fixture(scope='module')
def aws(gen_dir):
    creds = AwsCredsFake().start()
    bed = BedrockFake(region='us-east-1').start()
    yield creds, bed
    creds.stop()
    bed.stop()


@pytest.fixture(autouse=True)
def _clean(env, aws):
    creds, bed = aws
    creds.reset()
    bed.reset()
    yield
    for k in CHAIN_VARS:
        env.extra_env.pop(k, None)
    assert not creds.violations, creds.violations
    env.error_log.ignore_recent(tags=['CG0135', 'CG0142', 'CG0144'])


def expect(bed, c):
    """The Bedrock fake accepts only these credentials from now on."""
    bed.access_key_id, bed.secret_access_key, bed.session_token = c['id'], c['secret'], c['token']


def install(env, pg, gen_dir, aws, **chain):
    creds, bed = aws
    for k in CHAIN_VARS:
        env.extra_env[k] = ''  # empty is unset for the chain: nothing inherited
    # by default no files and no metadata service: each test adds its source
    env.extra_env.update(AWS_SHARED_CREDENTIALS_FILE=f'{gen_dir}/no-such-credentials',
                         AWS_CONFIG_FILE=f'{gen_dir}/no-such-config',
                         AWS_EC2_METADATA_DISABLED='true')
    env.extra_env.update(chain)
    policy = f'{gen_dir}/aws-chain.yaml'
    with open(policy, 'w') as f:
        f.write(f"""upstreams:
  - name: bedrock
    provider: bedrock
    region: us-east-1
    base_url: {bed.url}
    auth: {{}}
""")
    from pyclaude.conf import GatewayConf
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    assert env.restart() == 0


def ask(env, secret, rid):
    return post(env.port, '/v1/messages', body(),
                headers=headers(secret, **{'x-client-request-id': rid}))


def ok(env, secret, bed, rid):
    r = ask(env, secret, rid)
    assert r.status == 200, r.body
    rec = bed.last
    assert not rec['violations'], rec['violations']
    return rec


def no_secret_logged(env, *secrets):
    text = open(env.error_log.path, errors='replace').read()
    for s in secrets:
        assert s not in text


def test_cg_740_01_environment_first(env, pg, gen_dir, session_secret, aws):
    """AWS_ACCESS_KEY_ID and friends win over every other source."""
    creds, bed = aws
    c = {'id': 'AKIAENVIRONMENT0', 'secret': 'env/secret+key', 'token': 'env-session-token'}
    expect(bed, c)
    install(env, pg, gen_dir, aws, AWS_ACCESS_KEY_ID=c['id'], AWS_SECRET_ACCESS_KEY=c['secret'],
            AWS_SESSION_TOKEN=c['token'], AWS_EC2_METADATA_DISABLED='',
            AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url)
    rec = ok(env, session_secret, bed, 'chain-env-1')
    assert 'x-amz-security-token' in rec['signed_headers']
    assert creds.n('imds-token') == 0 and creds.n('imds-creds') == 0
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'chain-env-1'") \
        == 'bedrock'
    no_secret_logged(env, c['secret'], c['token'])


def test_cg_740_02_shared_files_and_profiles(env, pg, gen_dir, session_secret, aws):
    """AWS_PROFILE picks the profile: from the credentials file, else from the
    config file's [profile name] section."""
    creds, bed = aws
    with open(f'{gen_dir}/aws-credentials', 'w') as f:
        f.write('[default]\naws_access_key_id = AKIADEFAULT\naws_secret_access_key = d\n'
                '[ci]\naws_access_key_id = AKIAFILECI\naws_secret_access_key = ci/secret\n')
    with open(f'{gen_dir}/aws-config', 'w') as f:
        f.write('[profile batch]\nregion = us-east-1\naws_access_key_id = AKIACONFIGBATCH\n'
                'aws_secret_access_key = batch/secret\n')
    files = dict(AWS_SHARED_CREDENTIALS_FILE=f'{gen_dir}/aws-credentials',
                 AWS_CONFIG_FILE=f'{gen_dir}/aws-config')
    expect(bed, {'id': 'AKIAFILECI', 'secret': 'ci/secret', 'token': None})
    install(env, pg, gen_dir, aws, AWS_PROFILE='ci', **files)
    rec = ok(env, session_secret, bed, 'chain-file-1')
    assert 'x-amz-security-token' not in rec['signed_headers']
    expect(bed, {'id': 'AKIACONFIGBATCH', 'secret': 'batch/secret', 'token': None})
    install(env, pg, gen_dir, aws, AWS_PROFILE='batch', **files)
    ok(env, session_secret, bed, 'chain-file-2')
    no_secret_logged(env, 'ci/secret', 'batch/secret')


def test_cg_740_03_web_identity_at_sts(env, pg, gen_dir, session_secret, aws):
    """An EKS service account: the projected token is exchanged at STS once;
    later requests use the cached credentials."""
    creds, bed = aws
    with open(f'{gen_dir}/web-identity-token', 'w') as f:
        f.write(creds.web_token + '\n')
    expect(bed, creds.rotate('ASIASTSWEBIDENTITY', timedelta(hours=1)))
    install(env, pg, gen_dir, aws, AWS_WEB_IDENTITY_TOKEN_FILE=f'{gen_dir}/web-identity-token',
            AWS_ROLE_ARN=creds.role_arn, AWS_ENDPOINT_URL_STS=creds.url)
    for i in range(3):
        ok(env, session_secret, bed, f'chain-sts-{i}')
    assert 1 <= creds.n('sts') <= 2  # once per child that served a request
    no_secret_logged(env, creds.creds['secret'], creds.creds['token'], creds.web_token)


def test_cg_740_04_container_endpoint(env, pg, gen_dir, session_secret, aws):
    """ECS / EKS Pod Identity: the full URI with the authorization token read
    from its file; a wrong token is refused and nothing is signed."""
    creds, bed = aws
    with open(f'{gen_dir}/container-token', 'w') as f:
        f.write(creds.container_auth)
    expect(bed, creds.rotate('ASIACONTAINER', timedelta(hours=6)))
    install(env, pg, gen_dir, aws, AWS_CONTAINER_CREDENTIALS_FULL_URI=creds.url + '/ecs/creds',
            AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=f'{gen_dir}/container-token')
    ok(env, session_secret, bed, 'chain-ecs-1')
    assert creds.n('container') >= 1
    # a plain-HTTP full URI to a host that is not loopback is not asked
    install(env, pg, gen_dir, aws, AWS_CONTAINER_CREDENTIALS_FULL_URI='http://192.0.2.1/creds')
    n = bed.count
    assert ask(env, session_secret, 'chain-ecs-2').status == 502
    assert bed.count == n
    assert env.error_log.scan_recent(r'CG0142.*neither loopback') is not None


def test_cg_740_05_imds_v2_cached_and_rotated(env, pg, gen_dir, session_secret, aws):
    """EC2: token, role, credentials. Credentials are kept until five minutes
    before they expire; then the next request fetches the rotated ones. A 403
    from Bedrock (revoked) makes the next request look again."""
    creds, bed = aws
    expect(bed, creds.rotate('ASIAIMDSFIRST', timedelta(minutes=4)))
    install(env, pg, gen_dir, aws, AWS_EC2_METADATA_DISABLED='',
            AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url + '/')
    ok(env, session_secret, bed, 'chain-imds-1')
    first = creds.n('imds-creds')
    assert first >= 1 and creds.n('imds-unauthorized') == 0
    # within five minutes of expiry: fetched again, and the new ones are used
    expect(bed, creds.rotate('ASIAIMDSSECOND', timedelta(hours=6)))
    for i in range(4):
        ok(env, session_secret, bed, f'chain-imds-2{i}')
    second = creds.n('imds-creds')
    assert second > first
    # fresh for hours: no more fetches
    for i in range(4):
        ok(env, session_secret, bed, f'chain-imds-3{i}')
    assert creds.n('imds-creds') == second
    # revoked behind our back: Bedrock says 403, and the request after looks again
    expect(bed, {'id': 'ASIAIMDSTHIRD', 'secret': 'x', 'token': 'y'})
    creds.creds = {'id': 'ASIAIMDSTHIRD', 'secret': 'x', 'token': 'y',
                   'expires': creds.creds['expires']}
    statuses = [ask(env, session_secret, f'chain-imds-4{i}').status for i in range(6)]
    assert statuses[-1] == 200, statuses
    assert creds.n('imds-creds') > second
    no_secret_logged(env, 'ASIAIMDSSECOND/secret+key', 'ASIAIMDSSECOND-token==')


def test_cg_740_06_imds_v1_fallback_and_refusal(env, pg, gen_dir, session_secret, aws):
    """A token answer lost to the hop limit (containers on EC2): the chain
    falls back to IMDSv1 where the instance allows it, where the reference
    fails every request; with AWS_EC2_METADATA_V1_DISABLED it does not."""
    creds, bed = aws
    creds.hang_token_put = True
    creds.imds_v1 = True
    expect(bed, creds.rotate('ASIAIMDSV1', timedelta(hours=1)))
    install(env, pg, gen_dir, aws, AWS_EC2_METADATA_DISABLED='',
            AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url)
    ok(env, session_secret, bed, 'chain-v1-1')
    assert creds.n('imds-token') >= 1 and creds.n('imds-creds') >= 1
    install(env, pg, gen_dir, aws, AWS_EC2_METADATA_DISABLED='',
            AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url, AWS_EC2_METADATA_V1_DISABLED='true')
    n = creds.n('imds-creds')
    r = ask(env, session_secret, 'chain-v1-2')
    assert r.status == 502
    assert creds.n('imds-creds') == n
    assert env.error_log.scan_recent(r'CG0142.*IMDSv1 is disabled') is not None


def test_cg_740_07_nothing_found(env, pg, gen_dir, session_secret, aws):
    """No source: 502 in the Anthropic envelope, the reasons in the error log
    (CG0142), nothing signed, and the chain is not asked again for five
    seconds (a host without metadata service would pay a timeout each time)."""
    creds, bed = aws
    creds.imds_v1 = False
    install(env, pg, gen_dir, aws, AWS_ACCESS_KEY_ID='AKIAONLYHALF',
            AWS_EC2_METADATA_DISABLED='', AWS_EC2_METADATA_SERVICE_ENDPOINT=creds.url,
            AWS_EC2_METADATA_V1_DISABLED='true')
    creds.hang_token_put = True
    r = ask(env, session_secret, 'chain-none-1')
    assert r.status == 502
    assert r.json['type'] == 'error' and r.json['error']['type'] == 'api_error'
    assert env.error_log.scan_recent(r'CG0142: Could not load AWS credentials .*only one of '
                                     r'AWS_ACCESS_KEY_ID.*IMDSv1 is disabled') is not None
    puts = creds.n('imds-token')
    t0 = time.monotonic()
    r = ask(env, session_secret, 'chain-none-2')
    if time.monotonic() - t0 < 4:  # same child, within the five seconds
        assert r.status == 502
    assert bed.count == 0
    assert creds.n('imds-token') <= puts + 1  # at most the other child's first look
    assert pg.wait_value("SELECT count(*) FROM claude_ledger WHERE request_id LIKE 'chain-none-%'") \
        == '0'
