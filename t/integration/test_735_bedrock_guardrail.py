"""Bedrock guardrails: `guardrail: {id, version, input_tagging}` and
`guardrail_trace` on a Bedrock upstream, against the Bedrock fake, which
checks Bedrock's rules (the identifier and version headers together, signed
with the request, none on CountTokens, amazon-bedrock-guardrailConfig only
with them) and, with input tagging, that exactly the last user turn's text
is wrapped in tags carrying the body's tagSuffix. The policy refuses
guardrails that differ between Bedrock upstreams: a failover would bypass
the stricter one."""
import json

import pytest

from fakes.bedrock import GUARD_TAG, BedrockFake
from pyclaude.client import post
from pyclaude.conf import GatewayConf
from test_730_providers import AKID, SECRET, body, headers

GUARD = ('gr0abc123xyz', '3')


@pytest.fixture(scope='module')
def bed():
    fake = BedrockFake(access_key_id=AKID, secret_access_key=SECRET, region='us-east-1').start()
    yield fake
    fake.stop()


@pytest.fixture(autouse=True)
def _reset(bed):
    bed.reset()
    yield
    bed.guardrail, bed.guardrail_trace, bed.guardrail_tagging = None, False, False


def policy_text(bed, guardrail, second=None):
    up = f"""  - name: bedrock
    provider: bedrock
    region: us-east-1
    base_url: {bed.url}
    auth: {{aws_access_key_id: {AKID}, aws_secret_access_key: "${{CLAUDE_TEST_AWS_SECRET}}"}}
{guardrail}"""
    if second is not None:
        up += f"""  - name: bedrock-west
    provider: bedrock
    region: us-west-2
    base_url: {bed.url}
    auth: {{aws_access_key_id: {AKID}, aws_secret_access_key: "${{CLAUDE_TEST_AWS_SECRET}}"}}
{second}"""
    return 'upstreams:\n' + up


def install(env, pg, gen_dir, text):
    env.extra_env['CLAUDE_TEST_AWS_SECRET'] = SECRET
    path = f'{gen_dir}/guardrail.yaml'
    with open(path, 'w') as f:
        f.write(text)
    GatewayConf(env).add_database(pg.conninfo).add_session() \
        .add(f'ClaudeGatewayPolicy {path}').add('ClaudeGatewayCircuitBreaker 0') \
        .add('<Location /v1/messages>\n    AuthType claude-session\n    Require valid-user\n'
             '    ClaudeGateway On\n    ClaudeSpend On\n    ClaudeGatewayRoute On\n'
             '    ClaudeGatewayUpstreamTimeout 5000\n</Location>').install()
    return env.restart()


def ok(env, secret, bed, data, **extra):
    r = post(env.port, '/v1/messages' + extra.pop('path', ''), data,
             headers=headers(secret, **extra))
    assert r.status == 200, r.body
    rec = bed.last
    assert not rec['violations'], rec['violations']
    return r, rec


def test_cg_735_01_guardrail_headers_signed(env, pg, gen_dir, session_secret, bed):
    """Every invocation carries the guardrail and the trace switch, signed;
    CountTokens none."""
    bed.guardrail, bed.guardrail_trace = GUARD, True
    assert install(env, pg, gen_dir, policy_text(
        bed, f'    guardrail: {{id: {GUARD[0]}, version: "{GUARD[1]}"}}\n'
             '    guardrail_trace: true\n')) == 0
    _, rec = ok(env, session_secret, bed, body(), **{'x-client-request-id': 'gr-1'})
    assert rec['guardrail'] == {'id': GUARD[0], 'version': GUARD[1], 'trace': 'ENABLED',
                                'suffix': None}
    for h in ('x-amzn-bedrock-guardrailidentifier', 'x-amzn-bedrock-guardrailversion',
              'x-amzn-bedrock-trace'):
        assert h in rec['signed_headers']
    r, rec = ok(env, session_secret, bed, body(stream=True))
    assert rec['op'] == 'invoke-with-response-stream' and rec['guardrail']['id'] == GUARD[0]
    assert 'event: message_stop' in r.body.decode()
    _, rec = ok(env, session_secret, bed, body(), path='/count_tokens')
    assert rec['op'] == 'count-tokens' and rec['guardrail']['id'] is None
    assert pg.wait_value("SELECT upstream FROM claude_ledger WHERE request_id = 'gr-1'") \
        == 'bedrock'


def test_cg_735_02_input_tagging(env, pg, gen_dir, session_secret, bed):
    """With input_tagging only the user's latest turn is judged: its text
    blocks are wrapped with a fresh suffix per request; earlier turns, tool
    results and the system prompt are not."""
    bed.guardrail, bed.guardrail_tagging = GUARD, True
    tagged = f'    guardrail: {{id: {GUARD[0]}, version: "{GUARD[1]}", input_tagging: true}}\n'
    assert install(env, pg, gen_dir, policy_text(bed, tagged)) == 0
    convo = [
        {'role': 'user', 'content': 'first question'},
        {'role': 'assistant', 'content': [{'type': 'tool_use', 'id': 'tu_1', 'name': 'Read',
                                           'input': {'file_path': '/etc/hosts'}}]},
        {'role': 'user', 'content': [
            {'type': 'tool_result', 'tool_use_id': 'tu_1', 'content': 'file text'},
            {'type': 'text', 'text': '<system-reminder>be brief</system-reminder>'},
            {'type': 'text', 'text': 'now summarise it'}]}]
    data = body(system='You are Claude Code.', messages=convo)
    _, rec = ok(env, session_secret, bed, data)
    suffix = rec['guardrail']['suffix']
    assert suffix and suffix.isalnum()
    last = rec['json']['messages'][2]['content']
    assert last[2]['text'] == f'<{GUARD_TAG}{suffix}>now summarise it</{GUARD_TAG}{suffix}>'
    assert last[0] == convo[2]['content'][0]  # the tool result as it was
    assert rec['json']['messages'][0]['content'] == 'first question'
    assert GUARD_TAG not in json.dumps(rec['json']['system'])
    # a string content, and a new suffix
    _, rec2 = ok(env, session_secret, bed, body())
    s2 = rec2['guardrail']['suffix']
    assert s2 != suffix
    assert rec2['json']['messages'][0]['content'] == f'<{GUARD_TAG}{s2}>hi</{GUARD_TAG}{s2}>'
    # a turn of tool results only: nothing to tag, the guardrail judges it all
    only_tools = convo[:2] + [{'role': 'user', 'content': [convo[2]['content'][0]]}]
    _, rec3 = ok(env, session_secret, bed, body(messages=only_tools))
    assert rec3['guardrail'] == {'id': GUARD[0], 'version': GUARD[1], 'trace': None,
                                 'suffix': None}
    assert 'amazon-bedrock-guardrailConfig' not in rec3['json']


def test_cg_735_03_policy_refusals(env, pg, gen_dir, bed):
    """Malformed guardrails, and guardrails that differ between Bedrock
    upstreams, keep the gateway from starting, with the field named."""
    cases = [
        ('    guardrail: {version: "1"}\n', None, 'upstreams[0].guardrail.id: Required'),
        (f'    guardrail: {{id: {GUARD[0]}, version: "v1"}}\n', None,
         'upstreams[0].guardrail.version: a version number or DRAFT'),
        (f'    guardrail: {{id: {GUARD[0]}, version: "1", tagging: true}}\n', None,
         'upstreams[0].guardrail: Unrecognized key: "tagging"'),
        (f'    guardrail: {{id: {GUARD[0]}, version: "1"}}\n', '',
         'upstreams[1].guardrail: differs from upstreams[0].guardrail'),
        (f'    guardrail: {{id: {GUARD[0]}, version: "1"}}\n',
         f'    guardrail: {{id: {GUARD[0]}, version: "2"}}\n',
         'upstreams[1].guardrail: differs from upstreams[0].guardrail'),
    ]
    for first, second, message in cases:
        assert install(env, pg, gen_dir, policy_text(bed, first, second)) != 0, message
        assert message in env.last_output + open(env.error_log.path).read(), message
    env.error_log.ignore_recent(tags=['CG0100', 'CG0101', 'CG0102'],
                                matches=['AH00016', 'Configuration Failed', 'guardrail'])
    # the same guardrail everywhere is fine
    assert install(env, pg, gen_dir, policy_text(
        bed, f'    guardrail: {{id: {GUARD[0]}, version: "1"}}\n',
        f'    guardrail: {{id: {GUARD[0]}, version: "1"}}\n')) == 0
