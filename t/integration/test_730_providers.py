"""Cloud upstreams through the router (ClaudeGatewayRoute On): Amazon
Bedrock (SigV4, InvokeModel, the binary event stream translated to SSE,
CountTokens), Google Vertex (service-account JWT grant, rawPredict and
streamRawPredict) and Microsoft Foundry, against strict fakes that verify
signatures, assertions and keys; error hygiene; metering through each; and
failover from a cloud upstream to the next."""
import hashlib
import json
import time

import jwt
import pytest
import requests

from fakes.bedrock import BedrockFake
from fakes.foundry import FoundryFake
from fakes.vertex import VertexFake
from pyclaude.client import post, stream
from pyclaude.conf import GatewayConf

AKID = 'AKIDMODCLAUDETEST'
SECRET = 'modclaude/secret+access/key0123456789ab'
FOUNDRY_KEY = 'foundry-' + 'f' * 32


def token(secret, sub='user-alice'):
    now = int(time.time())
    kid = hashlib.sha256(secret.encode()).hexdigest()[:16]
    return jwt.encode({'sub': sub, 'email': f'{sub}@example.com', 'groups': ['eng'],
                       'aud': 'claude-gateway', 'iat': now, 'exp': now + 600},
                      secret, algorithm='HS256', headers={'kid': kid})


def body(model='claude-sonnet-4-5', **extra):
    b = {'model': model, 'max_tokens': 32, 'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def headers(secret, **extra):
    h = {'authorization': 'Bearer ' + token(secret), 'content-type': 'application/json',
         'anthropic-version': '2023-06-01', 'anthropic-beta': 'claude-code-20250219'}
    h.update(extra)
    return h


def script(fake, *behaviours):
    requests.post(fake.url + '/_fake/script', json=list(behaviours), timeout=5)


@pytest.fixture(scope='module')
def clouds(gen_dir):
    bed = BedrockFake(access_key_id=AKID, secret_access_key=SECRET, region='us-east-1').start()
    vtx = VertexFake(project='proj-1', location='us-east5').start()
    fdy = FoundryFake(api_key=FOUNDRY_KEY).start()
    vtx.service_account_json(f'{gen_dir}/vertex-sa.json')
    yield bed, vtx, fdy
    for f in (bed, vtx, fdy):
        f.stop()


def install(env, pg, gen_dir, order, clouds, extra_loc=''):
    bed, vtx, fdy = clouds
    env.extra_env['CLAUDE_TEST_AWS_SECRET'] = SECRET
    env.extra_env['CLAUDE_TEST_FOUNDRY_KEY'] = FOUNDRY_KEY
    decl = {
        'bedrock': f"""  - name: bedrock
    provider: bedrock
    region: us-east-1
    base_url: {bed.url}
    auth: {{aws_access_key_id: {AKID}, aws_secret_access_key: "${{CLAUDE_TEST_AWS_SECRET}}"}}
""",
        'vertex': f"""  - name: vertex
    provider: vertex
    region: us-east5
    project_id: proj-1
    base_url: {vtx.url}
    auth: {{service_account_json: {gen_dir}/vertex-sa.json}}
""",
        'foundry': f"""  - name: foundry
    provider: foundry
    resource: unused
    base_url: {fdy.url}/anthropic
    auth: {{api_key: "${{CLAUDE_TEST_FOUNDRY_KEY}}"}}
"""}
    policy = f'{gen_dir}/clouds.yaml'
    with open(policy, 'w') as f:
        f.write('upstreams:\n' + ''.join(decl[n] for n in order))
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {policy}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             f'    ClaudeGatewayUpstreamTimeout 5000\n{extra_loc}</Location>').install()
    assert env.restart() == 0


@pytest.fixture(autouse=True)
def _reset(clouds, pg):
    for f in clouds:
        f.reset()
    yield


def test_cg_730_01_bedrock_json_stream_and_count(env, pg, gen_dir, session_secret, clouds):
    bed, vtx, fdy = clouds
    install(env, pg, gen_dir, ['bedrock'], clouds)
    r = post(env.port, '/v1/messages', body(),
             headers=headers(session_secret, **{'x-client-request-id': 'bed-1'}))
    assert r.status == 200, r.body
    assert r.json['type'] == 'message' and r.json['content'][0]['text']
    rec = bed.last
    assert not rec['violations'], rec['violations']
    assert rec['model_id'] == 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'
    assert rec['json']['anthropic_beta'] == ['claude-code-20250219']
    # the account's ids stay with the gateway
    assert not [k for k in r.headers if k.lower().startswith('x-amzn')]
    row = pg.wait_value("SELECT upstream || '|' || input_tokens || '|' || output_tokens "
                        "FROM claude_ledger WHERE request_id = 'bed-1'")
    assert row.startswith('bedrock|12|')
    # streaming: the event stream arrives as the SSE the client knows
    r = stream(env.port, '/v1/messages', body(stream=True),
               headers=headers(session_secret, **{'x-client-request-id': 'bed-2'}))
    assert r.status == 200
    assert r.headers['content-type'].startswith('text/event-stream')
    names = [e[1] for e in r.events]
    assert names[0] == 'message_start' and names[-1] == 'message_stop', names
    assert 'content_block_delta' in names
    assert pg.wait_value("SELECT output_tokens FROM claude_ledger WHERE request_id = 'bed-2'")
    # count_tokens through CountTokens
    r = post(env.port, '/v1/messages/count_tokens', body(), headers=headers(session_secret))
    assert r.status == 200, r.body
    assert isinstance(r.json['input_tokens'], int)


def test_cg_730_02_bedrock_errors_and_exceptions(env, pg, gen_dir, session_secret, clouds):
    bed, vtx, fdy = clouds
    install(env, pg, gen_dir, ['bedrock'], clouds)
    script(bed, {'status': 400, 'error_message': 'Input is too long for requested model.'})
    r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
    assert r.status == 400
    assert r.json['error']['type'] == 'invalid_request_error'
    assert 'arn:' not in r.body.decode() and 'Bedrock' not in r.body.decode()
    # an exception mid-stream ends the SSE with an error event
    script(bed, {'stream': True, 'exception_at': 2})
    r = stream(env.port, '/v1/messages', body(stream=True), headers=headers(session_secret))
    assert r.status == 200
    assert [e for e in r.events if e[1] == 'error'], r.events
    env.error_log.ignore_recent(tags=['CG0134'])


def test_cg_730_03_vertex(env, pg, gen_dir, session_secret, clouds):
    bed, vtx, fdy = clouds
    install(env, pg, gen_dir, ['vertex'], clouds)
    r = post(env.port, '/v1/messages', body(),
             headers=headers(session_secret, **{'x-client-request-id': 'vtx-1'}))
    assert r.status == 200, r.body
    assert pg.wait_value("SELECT upstream || '|' || input_tokens FROM claude_ledger "
                         "WHERE request_id = 'vtx-1'") == 'vertex|12'
    rec = vtx.last
    assert not rec['violations'], rec['violations']
    assert rec['model'] == 'claude-sonnet-4-5@20250929' and rec['op'] == 'rawPredict'
    r = stream(env.port, '/v1/messages', body(stream=True), headers=headers(session_secret))
    assert r.status == 200
    assert [e[1] for e in r.events][-1] == 'message_stop'
    assert vtx.last['op'] == 'streamRawPredict'
    # one token for both: cached; an expired one is fetched again after a 401
    tokens = [q for q in vtx.requests if q.get('path') == '/token']
    assert len(tokens) == 1
    vtx.expire_tokens()
    r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
    r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
    assert r.status == 200
    env.error_log.ignore_recent(tags=['CG0123', 'CG0134'])


def test_cg_730_04_foundry_and_failover_across_clouds(env, pg, gen_dir, session_secret, clouds):
    bed, vtx, fdy = clouds
    install(env, pg, gen_dir, ['bedrock', 'vertex', 'foundry'], clouds)
    script(bed, {'status': 503})
    script(vtx, {'status': 429})
    r = post(env.port, '/v1/messages', body(),
             headers=headers(session_secret, **{'x-client-request-id': 'fdy-1'}))
    assert r.status == 200, r.body
    assert pg.wait_value("SELECT upstream || '|' || input_tokens FROM claude_ledger "
                         "WHERE request_id = 'fdy-1'") == 'foundry|12'
    assert bed.count == 1 and vtx.count >= 1 and fdy.count == 1
    assert dict(fdy.last['headers'])['x-api-key'] == FOUNDRY_KEY
    assert not fdy.last['violations']
    # every cloud down: the reference's choice, with the hygiene's message
    script(bed, {'status': 503})
    script(vtx, {'status': 429})
    script(fdy, {'status': 500})
    r = post(env.port, '/v1/messages', body(), headers=headers(session_secret))
    assert r.status == 429
    assert r.json['error']['type'] == 'rate_limit_error'
    env.error_log.ignore_recent(tags=['CG0123', 'CG0134'])


def test_cg_730_05_keepalive_pings_on_a_quiet_cloud_stream(env, pg, gen_dir, session_secret,
                                                          clouds):
    """Past the keep-alive silence the client gets an SSE ping between events,
    so a load balancer does not cut a slow Bedrock stream."""
    bed, vtx, fdy = clouds
    install(env, pg, gen_dir, ['bedrock'], clouds, extra_loc='    ClaudeGatewaySSEKeepalive 1\n')
    script(bed, {'stream': True, 'pace_ms': 2300})
    r = stream(env.port, '/v1/messages', body(stream=True), headers=headers(session_secret))
    assert r.status == 200
    names = [e[1] for e in r.events]
    assert names.count('ping') >= 2, names
    assert names[0] == 'message_start' and names[-1] == 'message_stop'
    # and never inside an event: every other event still parses
    assert all(json.loads(e[2]) for e in r.events)
