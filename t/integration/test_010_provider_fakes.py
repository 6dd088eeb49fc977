"""The cloud-provider fakes are test equipment too: check with plain Python
clients that they speak each provider's wire format and that they are strict
(a wrong signature, assertion, token or key is refused), so the gateway's
Bedrock, Vertex and Foundry tests can trust them."""
import base64
import hashlib
import http.client
import json
import struct
import time
import uuid
import zlib

import jwt
import pytest
import requests
from cryptography.hazmat.primitives.asymmetric import rsa

from fakes import azureid as az
from fakes import bedrock as bd
from fakes.azureid import AzureIdentityFake
from fakes.bedrock import BedrockFake
from fakes.foundry import FoundryFake
from fakes.gcemeta import TOKEN_PATH, GceMetadataFake
from fakes.vertex import VertexFake
from pyclaude.client import post, stream

AKID = 'AKIDEXAMPLE'
SECRET = 'wJalrXUtnFEMI/K7MDENG+bPxRfiCYEXAMPLEKEY'
MODEL = 'us.anthropic.claude-sonnet-4-5-20250929-v1:0'
MODEL_PATH = 'us.anthropic.claude-sonnet-4-5-20250929-v1%3A0'


def invoke_body(**extra):
    b = {'anthropic_version': 'bedrock-2023-05-31', 'max_tokens': 8,
         'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


def bedrock_post(fake, path, body, secret=SECRET, akid=AKID, token=None, extra=None,
                 tamper=None, amz_date=None):
    """POST signed the way an AWS SDK signs: host, x-amz-date, content-type."""
    url = f'{fake.url}{path}'
    h = bd.sign_headers('POST', url, body, akid, secret, fake.region, session_token=token,
                        amz_date=amz_date, extra={'content-type': 'application/json'})
    h.update(extra or {})
    return post(fake.port, path, tamper if tamper is not None else body, headers=h)


def decode_eventstream(data):
    """An independent reader of AWS event-stream framing (CRCs checked)."""
    out, off = [], 0
    while off < len(data):
        total, hlen, pcrc = struct.unpack('>III', data[off:off + 12])
        assert pcrc == zlib.crc32(data[off:off + 8]), 'prelude CRC'
        msg = data[off:off + total]
        assert struct.unpack('>I', msg[-4:])[0] == zlib.crc32(msg[:-4]), 'message CRC'
        headers, pos, h = {}, 0, msg[12:12 + hlen]
        while pos < hlen:
            n = h[pos]
            name = h[pos + 1:pos + 1 + n].decode()
            assert h[pos + 1 + n] == 7
            vlen = int.from_bytes(h[pos + 2 + n:pos + 4 + n], 'big')
            headers[name] = h[pos + 4 + n:pos + 4 + n + vlen].decode()
            pos += 4 + n + vlen
        out.append((headers, json.loads(msg[12 + hlen:-4])))
        off += total
    return out


@pytest.fixture
def bedrock():
    fake = BedrockFake(access_key_id=AKID, secret_access_key=SECRET).start()
    yield fake
    fake.stop()


class TestBedrockFake:

    def test_fake_010_01_sigv4_is_aws_s(self):
        """The fake's verifier computes AWS's published test-suite signatures,
        and the value the C unit test pins for a Bedrock model id."""
        d = '20150830T123600Z'
        empty = hashlib.sha256(b'').hexdigest()
        h = {'host': ['example.amazonaws.com'], 'x-amz-date': [d]}
        creq = bd.canonical_request('GET', '/', '', h, ['host', 'x-amz-date'], empty)
        assert bd.sign(SECRET, d, 'us-east-1', 'service', creq) == \
            '5fa00fa31553b73ebf1942676e86291e8372ff2a2260956d9b8aae1d763fbf31'
        form = dict(h, **{'content-type': ['application/x-www-form-urlencoded']})
        creq = bd.canonical_request('POST', '/', '', form,
                                    ['content-type', 'host', 'x-amz-date'],
                                    hashlib.sha256(b'Param1=value1').hexdigest())
        assert bd.sign(SECRET, d, 'us-east-1', 'service', creq) == \
            'ff11897932ad3f4e8b18135d722051e5ac45fc38421b1da7b9d196a0fe09473a'
        body = (b'{"anthropic_version":"bedrock-2023-05-31","max_tokens":8,"messages":'
                b'[{"role":"user","content":"hi"}]}')
        bh = {'host': ['bedrock-runtime.us-east-1.amazonaws.com'],
              'content-type': ['application/json'], 'x-amz-date': [d]}
        creq = bd.canonical_request('POST', f'/model/{MODEL_PATH}/invoke', '', bh,
                                    ['content-type', 'host', 'x-amz-date'],
                                    hashlib.sha256(body).hexdigest())
        assert '/model/us.anthropic.claude-sonnet-4-5-20250929-v1%253A0/invoke\n' in creq
        assert bd.sign(SECRET, d, 'us-east-1', 'bedrock', creq) == \
            'aef880365fe5e2b1f31f03abcb6bfbdb4c8d09a0c96a4e647dfae0ae314137e0'

    def test_fake_010_02_invoke_signed_and_recorded(self, bedrock):
        raw = invoke_body(anthropic_beta=['claude-code-20250219'])
        r = bedrock_post(bedrock, f'/model/{MODEL_PATH}/invoke', raw)
        assert r.status == 200, r.body
        assert r.json['model'] == 'claude-sonnet-4-5-20250929'
        assert r.json['usage']['output_tokens'] == 7
        assert r.headers['x-amzn-bedrock-input-token-count'] == '12'
        rec = bedrock.last
        assert rec['model_id'] == MODEL and rec['op'] == 'invoke'
        assert rec['signed_headers'] == ['content-type', 'host', 'x-amz-date']
        assert rec['body_sha256'] == hashlib.sha256(raw).hexdigest()
        assert rec['violations'] == []

    def test_fake_010_03_bad_signatures_refused(self, bedrock):
        path = f'/model/{MODEL_PATH}/invoke'
        raw = invoke_body()
        r = bedrock_post(bedrock, path, raw, secret=SECRET[:-1] + 'X')
        assert r.status == 403
        assert r.headers['x-amzn-errortype'].startswith('InvalidSignatureException:')
        assert r.json == {'message': bd.SIG_MISMATCH}
        # signed for one body, sent with another
        assert bedrock_post(bedrock, path, raw, tamper=invoke_body(max_tokens=9)).status == 403
        # signed for another path (the model id encoded once only in the canonical path)
        h = bd.sign_headers('POST', f'{bedrock.url}/model/{MODEL}/invoke', raw, AKID, SECRET,
                            'us-east-1', extra={'content-type': 'application/json'})
        assert post(bedrock.port, path, raw, headers=h).status == 403
        r = bedrock_post(bedrock, path, raw, akid='AKIDOTHER')
        assert r.status == 403 and r.headers['x-amzn-errortype'].startswith(
            'UnrecognizedClientException')
        r = post(bedrock.port, path, raw)
        assert r.status == 403 and r.json['message'] == 'Missing Authentication Token'
        stale = time.strftime('%Y%m%dT%H%M%SZ', time.gmtime(time.time() - 3600))
        assert bedrock_post(bedrock, path, raw, amz_date=stale).status == 403
        r = bedrock_post(bedrock, path, raw, extra={'x-amz-content-sha256': 'ab' * 32})
        assert r.status == 400
        assert [v for rec in bedrock.requests for v in rec['violations']][:3] == [
            bd.SIG_MISMATCH, bd.SIG_MISMATCH, bd.SIG_MISMATCH]
        assert len(bedrock.requests) == 7
        assert all(rec['violations'] for rec in bedrock.requests)

    def test_fake_010_04_session_token(self):
        fake = BedrockFake(access_key_id=AKID, secret_access_key=SECRET,
                           session_token='FQoGZXIvYXdzEXAMPLE', region='eu-west-1').start()
        try:
            path = f'/model/{MODEL_PATH}/invoke'
            assert bedrock_post(fake, path, invoke_body()).status == 403  # token missing
            r = bedrock_post(fake, path, invoke_body(), token='FQoGZXIvYXdzEXAMPLE')
            assert r.status == 200
            assert fake.last['signed_headers'] == ['content-type', 'host', 'x-amz-date',
                                                   'x-amz-security-token']
            assert bedrock_post(fake, path, invoke_body(), token='other').status == 403
        finally:
            fake.stop()

    def test_fake_010_05_body_is_an_invoke_body(self, bedrock):
        path = f'/model/{MODEL_PATH}/invoke'
        for bad, why in [(invoke_body(model='claude-sonnet-4-5'), 'extraneous key [model]'),
                         (invoke_body(stream=True), 'extraneous key [stream]'),
                         (invoke_body(tags={'a': 'b'}), 'extraneous key [tags]'),
                         (invoke_body(anthropic_version='2023-06-01'), 'anthropic_version'),
                         (invoke_body(anthropic_beta=['request-tags-2026-08-21']), 'invalid beta'),
                         (b'[1]', 'JSON object')]:
            r = bedrock_post(bedrock, path, bad)
            assert r.status == 400, bad
            assert r.headers['x-amzn-errortype'].startswith('ValidationException')
            assert why in r.json['message']
        r = bedrock_post(bedrock, path, invoke_body(),
                         extra={'anthropic-beta': 'claude-code-20250219'})
        assert r.status == 400 and 'anthropic-beta' in r.json['message']
        # the model id must be encoded in the path
        assert bedrock_post(bedrock, f'/model/{MODEL}/invoke', invoke_body()).status == 400
        assert bedrock_post(bedrock, f'/model/{MODEL_PATH}/converse', invoke_body()).status == 404

    def test_fake_010_06_stream_is_aws_event_stream(self, bedrock):
        r = bedrock_post(bedrock, f'/model/{MODEL_PATH}/invoke-with-response-stream',
                         invoke_body(_fake={'events': 3, 'split': True, 'text': 'Hi é'}))
        assert r.status == 200
        assert r.headers['content-type'] == 'application/vnd.amazon.eventstream'
        msgs = decode_eventstream(r.body)
        assert all(h == {':event-type': 'chunk', ':content-type': 'application/json',
                         ':message-type': 'event'} for h, _ in msgs)
        events = [json.loads(base64.b64decode(p['bytes'])) for _, p in msgs]
        assert [e['type'] for e in events] == [
            'message_start', 'content_block_start', 'content_block_delta',
            'content_block_delta', 'content_block_delta', 'content_block_stop',
            'message_delta', 'message_stop']
        assert events[2]['delta']['text'] == 'Hi é'
        assert events[-1]['amazon-bedrock-invocationMetrics']['outputTokenCount'] == 7
        assert all('p' in p for _, p in msgs)  # Bedrock's padding field

    def test_fake_010_07_scripted_failures(self, bedrock):
        path = f'/model/{MODEL_PATH}/invoke-with-response-stream'
        requests.post(bedrock.url + '/_fake/script', json=[{'status': 429}, {'status': 400,
                      'error_message': 'Input is too long.'}])
        r = bedrock_post(bedrock, path, invoke_body())
        assert r.status == 429 and r.json == {
            'message': 'Too many requests, please wait before trying again.'}
        assert r.headers['x-amzn-errortype'].startswith('ThrottlingException')
        r = bedrock_post(bedrock, path, invoke_body())
        assert r.status == 400 and r.json == {'message': 'Input is too long.'}
        r = bedrock_post(bedrock, path, invoke_body(_fake={'exception_at': 3}))
        msgs = decode_eventstream(r.body)
        assert len(msgs) == 4
        assert msgs[-1][0][':message-type'] == 'exception'
        assert msgs[-1][0][':exception-type'] == 'throttlingException'
        assert msgs[-1][1]['message'].startswith('Too many requests')
        r = bedrock_post(bedrock, path, invoke_body(_fake={'corrupt_crc_at': 1}))
        with pytest.raises(AssertionError, match='message CRC'):
            decode_eventstream(r.body)

    def test_fake_010_08_count_tokens(self, bedrock):
        inner = invoke_body(max_tokens=1)
        wrapped = json.dumps({'input': {'invokeModel': {
            'body': base64.b64encode(inner).decode()}}}).encode()
        r = bedrock_post(bedrock, f'/model/{MODEL_PATH}/count-tokens', wrapped)
        assert r.status == 200 and r.json['inputTokens'] > 0
        bad = json.dumps({'input': {'invokeModel': {
            'body': base64.b64encode(invoke_body(model='x')).decode()}}}).encode()
        assert bedrock_post(bedrock, f'/model/{MODEL_PATH}/count-tokens', bad).status == 400
        empty_tools = json.dumps({'input': {'invokeModel': {
            'body': base64.b64encode(invoke_body(tools=[])).decode()}}}).encode()
        assert bedrock_post(bedrock, f'/model/{MODEL_PATH}/count-tokens', empty_tools).status == 400
        assert bedrock_post(bedrock, f'/model/{MODEL_PATH}/invoke', invoke_body(tools=[])).status == 200


def assertion(sa, key=None, **over):
    now = int(time.time())
    claims = {'iss': sa['client_email'], 'scope': 'https://www.googleapis.com/auth/cloud-platform',
              'aud': sa['token_uri'], 'iat': now, 'exp': now + 3600}
    claims.update(over)
    return jwt.encode(claims, key or sa['private_key'], algorithm='RS256',
                      headers={'kid': sa['private_key_id']})


def vertex_token(sa, **over):
    return requests.post(sa['token_uri'], data={
        'grant_type': 'urn:ietf:params:oauth:grant-type:jwt-bearer',
        'assertion': assertion(sa, **over)})


def vertex_body(**extra):
    b = {'anthropic_version': 'vertex-2023-10-16', 'max_tokens': 8,
         'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


@pytest.fixture
def vertex():
    fake = VertexFake().start()
    yield fake
    fake.stop()


class TestVertexFake:

    def test_fake_010_10_token_exchange_checks_the_assertion(self, vertex, tmp_path):
        sa = json.load(open(vertex.service_account_json(str(tmp_path / 'sa.json'))))
        assert sa['type'] == 'service_account' and sa['token_uri'] == vertex.url + '/token'
        r = vertex_token(sa)
        assert r.status_code == 200
        tok = r.json()
        assert tok['token_type'] == 'Bearer' and tok['expires_in'] == 3599
        assert tok['access_token'].startswith('ya29.')
        other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        for over, why in [({'key': other}, 'Signature verification failed'),
                          ({'aud': 'https://oauth2.googleapis.com/token'}, 'audience'),
                          ({'iss': 'someone@else.iam.gserviceaccount.com'}, 'issuer'),
                          ({'scope': 'openid'}, 'scope'),
                          ({'exp': int(time.time()) + 7200}, 'within an hour'),
                          ({'iat': int(time.time()) - 4000, 'exp': int(time.time()) - 400},
                           'expired')]:
            r = vertex_token(sa, **over)
            assert r.status_code == 400, over
            assert r.json()['error'] == 'invalid_grant' and why in r.json()['error_description']
        r = requests.post(sa['token_uri'], data={'grant_type': 'client_credentials'})
        assert r.status_code == 400
        assert len([v for rec in vertex.requests for v in rec['violations']]) == 7

    def test_fake_010_11_predict_needs_the_bearer_and_a_vertex_body(self, vertex):
        sa = vertex.service_account()
        token = vertex_token(sa).json()['access_token']
        base = (f'/v1/projects/{vertex.project}/locations/{vertex.location}/publishers/'
                'anthropic/models/claude-sonnet-4-5@20250929')
        auth = {'authorization': 'Bearer ' + token, 'anthropic-beta': 'claude-code-20250219'}
        r = post(vertex.port, base + ':rawPredict', vertex_body(), headers=auth)
        assert r.status == 200 and r.json['model'] == 'claude-sonnet-4-5'
        assert vertex.last['model'] == 'claude-sonnet-4-5@20250929'
        assert vertex.last['op'] == 'rawPredict' and vertex.last['violations'] == []
        r = stream(vertex.port, base + ':streamRawPredict', vertex_body(stream=True),
                   headers=auth)
        names = [n for _, n, _ in r.events]
        assert names[0] == 'message_start' and names[-1] == 'message_stop'
        r = post(vertex.port, base + ':rawPredict', vertex_body(),
                 headers={'authorization': 'Bearer ya29.forged'})
        assert r.status == 401 and r.json['error']['status'] == 'UNAUTHENTICATED'
        assert post(vertex.port, base + ':rawPredict', vertex_body()).status == 401
        for bad in [vertex_body(anthropic_version='bedrock-2023-05-31'),
                    vertex_body(model='claude-sonnet-4-5'), vertex_body(stream=True),
                    vertex_body(tags={'a': 'b'})]:
            r = post(vertex.port, base + ':rawPredict', bad, headers=auth)
            assert r.status == 400 and r.json['error']['type'] == 'invalid_request_error'
        r = post(vertex.port, base + ':rawPredict', vertex_body(),
                 headers=dict(auth, **{'anthropic-beta': 'request-tags-2026-08-21'}))
        assert r.status == 400
        r = post(vertex.port, base.replace(vertex.project, 'other') + ':rawPredict',
                 vertex_body(), headers=auth)
        assert r.status == 404
        count = (f'/v1/projects/{vertex.project}/locations/{vertex.location}/publishers/'
                 'anthropic/models/count-tokens:rawPredict')
        r = post(vertex.port, count, vertex_body(model='claude-sonnet-4-5@20250929'),
                 headers=auth)
        assert r.status == 200 and r.json['input_tokens'] > 0
        vertex.expire_tokens()
        assert post(vertex.port, base + ':rawPredict', vertex_body(), headers=auth).status == 401

    def test_fake_010_12_global_location_and_scripted_errors(self):
        fake = VertexFake(location='global').start()
        try:
            token = vertex_token(fake.service_account()).json()['access_token']
            path = (f'/v1/projects/{fake.project}/locations/global/publishers/anthropic/'
                    'models/claude-haiku-4-5@20251001:rawPredict')
            auth = {'authorization': 'Bearer ' + token}
            requests.post(fake.url + '/_fake/script', json=[
                {'status': 429, 'google_error': True, 'error_message': 'Quota exceeded'},
                {'status': 400, 'error_message': 'prompt is too long: 300000 tokens > 200000'}])
            r = post(fake.port, path, vertex_body(), headers=auth)
            assert r.status == 429 and r.json['error']['status'] == 'RESOURCE_EXHAUSTED'
            r = post(fake.port, path, vertex_body(), headers=auth)
            assert r.status == 400 and r.json['error']['message'].startswith('prompt is too long')
            assert post(fake.port, path, vertex_body(), headers=auth).status == 200
        finally:
            fake.stop()


    def test_fake_010_13_authorized_user_refresh_grant(self, vertex, tmp_path):
        """The gcloud ADC file's refresh grant: its client and refresh token
        only, as a form; counted per grant; the quota project is recorded."""
        au = json.load(open(vertex.authorized_user_json(str(tmp_path / 'adc.json'),
                                                        quota_project='quota-1')))
        assert au['type'] == 'authorized_user' and au['token_uri'] == vertex.token_uri
        assert au['client_id'].endswith('.apps.googleusercontent.com')
        assert au['quota_project_id'] == 'quota-1'
        assert 'quota_project_id' not in vertex.authorized_user()
        form = {'grant_type': 'refresh_token', 'client_id': au['client_id'],
                'client_secret': au['client_secret'], 'refresh_token': au['refresh_token']}
        r = requests.post(au['token_uri'], data=form)
        assert r.status_code == 200, r.text
        tok = r.json()
        assert tok['token_type'] == 'Bearer' and tok['expires_in'] == 3599
        assert vertex.grants == {'jwt-bearer': 0, 'refresh_token': 1}
        vertex_token(vertex.service_account())
        assert vertex.grants == {'jwt-bearer': 1, 'refresh_token': 1}
        for over, status, err in [({'client_id': 'other.apps.googleusercontent.com'}, 401,
                                   'invalid_client'),
                                  ({'client_secret': 'GOCSPX-wrong'}, 401, 'invalid_client'),
                                  ({'refresh_token': '1//0revoked'}, 400, 'invalid_grant'),
                                  ({'scope': 'https://www.googleapis.com/auth/drive'}, 400,
                                   'invalid_scope'),
                                  ({'client_secret': ''}, 400, 'invalid_request')]:
            r = requests.post(au['token_uri'], data=dict(form, **over))
            assert r.status_code == status and r.json()['error'] == err, over
        r = requests.post(au['token_uri'], json=form)  # a JSON body is not the form
        assert r.status_code == 400
        assert vertex.grants['refresh_token'] == 1
        assert len([v for rec in vertex.requests for v in rec['violations']]) == 6
        base = (f'/v1/projects/{vertex.project}/locations/{vertex.location}/publishers/'
                'anthropic/models/claude-sonnet-4-5@20250929:rawPredict')
        auth = {'authorization': 'Bearer ' + tok['access_token']}
        assert post(vertex.port, base, vertex_body(), headers=auth).status == 200
        assert vertex.last['user_project'] is None
        post(vertex.port, base, vertex_body(), headers=dict(auth, **{
            'x-goog-user-project': 'quota-1'}))
        assert vertex.last['user_project'] == 'quota-1' and not vertex.last['violations']
        vertex.reset()
        assert vertex.grants == {'jwt-bearer': 0, 'refresh_token': 0}

    def test_fake_010_14_gce_metadata_server(self, vertex):
        """The metadata fake: the Metadata-Flavor header both ways, no
        X-Forwarded-For, cloud-platform in the scopes; tokens from mint(ttl)
        that the Vertex fake takes; an imposter answers without the header."""
        meta = GceMetadataFake(vertex).start()
        try:
            assert meta.host == f'127.0.0.1:{meta.port}'
            url = f'http://{meta.host}{TOKEN_PATH}'
            flavor = {'Metadata-Flavor': 'Google'}
            r = requests.get(url + '?scopes=https%3A%2F%2Fwww.googleapis.com%2Fauth%2F'
                             'cloud-platform', headers=flavor)
            assert r.status_code == 200 and r.headers['Metadata-Flavor'] == 'Google'
            tok = r.json()
            assert tok['expires_in'] == 3599 and tok['token_type'] == 'Bearer'
            base = (f'/v1/projects/{vertex.project}/locations/{vertex.location}/publishers/'
                    'anthropic/models/claude-sonnet-4-5@20250929:rawPredict')
            auth = {'authorization': 'Bearer ' + tok['access_token']}
            assert post(vertex.port, base, vertex_body(), headers=auth).status == 200
            meta.ttl = 200
            r = requests.get(url, headers=flavor)  # scopes are optional
            assert r.status_code == 200 and r.json()['expires_in'] == 200
            assert meta.n('token') == 2 and not meta.violations
            for h, q in [({}, ''), ({'Metadata-Flavor': 'google'}, ''),
                         (dict(flavor, **{'X-Forwarded-For': '10.0.0.1'}), ''),
                         (flavor, '?scopes=openid'), (flavor, '?recursive=true')]:
                r = requests.get(url + q, headers=h)
                assert r.status_code in (400, 403), (h, q)
                assert r.headers['Metadata-Flavor'] == 'Google'
            assert requests.get(f'http://{meta.host}/computeMetadata/v1/project/project-id',
                                headers=flavor).status_code == 404
            assert requests.post(url, headers=flavor).status_code == 404
            assert meta.n('token') == 7 and meta.n('other') == 2
            assert len(meta.violations) == 7
            meta.reset()
            meta.imposter = True
            r = requests.get(url, headers=flavor)
            assert r.status_code == 200 and 'Metadata-Flavor' not in r.headers
            assert r.json()['token_type'] == 'Bearer'
            assert meta.counts == {'token': 1} and meta.violations == [] and meta.ttl == 3599
        finally:
            meta.stop()


class TestFoundryFake:

    def test_fake_010_20_key_header_and_path(self):
        fake = FoundryFake(api_key='k-foundry', entra_token='entra-tok',
                           deployments=['my-sonnet']).start()
        try:
            body = json.dumps({'model': 'my-sonnet', 'max_tokens': 8,
                               'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
            r = post(fake.port, '/anthropic/v1/messages', body, headers={'x-api-key': 'k-foundry'})
            assert r.status == 200 and r.json['model'] == 'my-sonnet'
            r = post(fake.port, '/anthropic/v1/messages', body,
                     headers={'authorization': 'Bearer entra-tok'})
            assert r.status == 200
            r = post(fake.port, '/anthropic/v1/messages', body, headers={'api-key': 'k-foundry'})
            assert r.status == 401 and 'subscription key' in r.json['error']['message']
            r = post(fake.port, '/anthropic/v1/messages', body, headers={'x-api-key': 'wrong'})
            assert r.status == 401
            assert post(fake.port, '/v1/messages', body,
                        headers={'x-api-key': 'k-foundry'}).status == 404
            other = body.replace(b'my-sonnet', b'claude-sonnet-4-5')
            assert post(fake.port, '/anthropic/v1/messages', other,
                        headers={'x-api-key': 'k-foundry'}).status == 404
            r = post(fake.port, '/anthropic/v1/messages/count_tokens', body,
                     headers={'x-api-key': 'k-foundry'})
            assert r.status == 200 and r.json['input_tokens'] > 0
            r = stream(fake.port, '/anthropic/v1/messages',
                       body.replace(b'"max_tokens"', b'"stream": true, "max_tokens"'),
                       headers={'x-api-key': 'k-foundry'})
            assert [n for _, n, _ in r.events][-1] == 'message_stop'
            assert [len(rec['violations']) for rec in fake.requests] == [0, 0, 1, 1, 1, 1, 0, 0]
        finally:
            fake.stop()


    def test_fake_010_21_minted_entra_tokens(self):
        """Tokens from mint(ttl) are taken as bearers until they expire (or
        expire_tokens()); a bad bearer gets Azure's 401 for tokens; the
        served request says which credential it carried."""
        fake = FoundryFake(api_key=None).start()
        try:
            body = json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 8,
                               'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
            tok = fake.mint(60)
            assert fake.tokens == [tok]
            r = post(fake.port, '/anthropic/v1/messages', body,
                     headers={'authorization': 'Bearer ' + tok})
            assert r.status == 200, r.body
            assert fake.last['credential'] == 'entra' and not fake.last['violations']
            r = post(fake.port, '/anthropic/v1/messages', body,
                     headers={'authorization': 'Bearer eyJ.forged'})
            assert r.status == 401 and 'Access token is missing' in r.json['error']['message']
            assert fake.last['violations'] == ['unknown Entra token']
            # no key configured: no key is taken
            assert post(fake.port, '/anthropic/v1/messages', body,
                        headers={'x-api-key': 'fake-foundry-key'}).status == 401
            old = fake.mint(-1)
            r = post(fake.port, '/anthropic/v1/messages', body,
                     headers={'authorization': 'Bearer ' + old})
            assert r.status == 401 and fake.last['violations'] == ['expired Entra token']
            fake.expire_tokens()
            assert post(fake.port, '/anthropic/v1/messages', body,
                        headers={'authorization': 'Bearer ' + tok}).status == 401
            assert fake.last['violations'] == ['expired Entra token']
            tok2 = fake.mint(60)
            assert post(fake.port, '/anthropic/v1/messages', body,
                        headers={'authorization': 'Bearer ' + tok2}).status == 200
            fake.reset()
            assert len(fake.tokens) == 3 and fake.count == 0
        finally:
            fake.stop()


@pytest.fixture
def azure():
    fdy = FoundryFake(api_key=None).start()
    idf = AzureIdentityFake(fdy).start()
    yield idf, fdy
    idf.stop()
    fdy.stop()


def foundry_ok(fdy, token):
    body = json.dumps({'model': 'claude-sonnet-4-5', 'max_tokens': 8,
                       'messages': [{'role': 'user', 'content': 'hi'}]}).encode()
    return post(fdy.port, '/anthropic/v1/messages', body,
                headers={'authorization': 'Bearer ' + token}).status == 200


class TestAzureIdentityFake:

    def test_fake_010_40_entra_token_endpoint(self, azure):
        """The client-credentials grant with a secret (URL-encoded) or the
        federated assertion, for the Cognitive Services scope only; every
        other request refused in Entra's shape and status, and recorded."""
        idf, fdy = azure
        url = f'{idf.url}/{idf.tenant_id}/oauth2/v2.0/token'
        assert set('+/=') <= set(idf.client_secret)
        base = {'grant_type': 'client_credentials', 'client_id': idf.client_id,
                'scope': 'https://cognitiveservices.azure.com/.default'}
        secret = dict(base, client_secret=idf.client_secret)
        fed = dict(base, client_assertion_type=az.JWT_BEARER, client_assertion=idf.federated_token)
        r = requests.post(url, data=secret)
        assert r.status_code == 200, r.text
        tok = r.json()
        assert set(tok) == {'token_type', 'expires_in', 'ext_expires_in', 'access_token'}
        assert tok['token_type'] == 'Bearer' and tok['expires_in'] == 3599
        assert foundry_ok(fdy, tok['access_token'])
        r = requests.post(url, data=fed)
        assert r.status_code == 200 and foundry_ok(fdy, r.json()['access_token'])
        assert idf.counts == {'entra': 2, 'entra-secret': 1, 'entra-assertion': 1}
        assert idf.violations == []
        raw = ('grant_type=client_credentials&client_id=' + idf.client_id + '&client_secret=' +
               idf.client_secret + '&scope=https%3A%2F%2Fcognitiveservices.azure.com%2F.default')
        form = {'content-type': 'application/x-www-form-urlencoded'}
        other = dict(fed, client_assertion=az.federated_token())
        for how, status, error in [
                (dict(data=dict(secret, client_secret='wrong' + idf.client_secret)), 401,
                 'invalid_client'),
                (dict(data=raw, headers=form), 401, 'invalid_client'),  # '+' not encoded
                (dict(data=base), 401, 'invalid_client'),
                (dict(data=dict(secret, **fed)), 400, 'invalid_request'),
                (dict(data=other), 400, 'invalid_request'),
                (dict(data=dict(fed, client_assertion_type='jwt')), 400, 'invalid_request'),
                (dict(data=dict(secret, client_id='00000000-0000-0000-0000-000000000000')), 400,
                 'unauthorized_client'),
                (dict(data=dict(secret, scope='https://cognitiveservices.azure.com')), 400,
                 'invalid_scope'),
                (dict(data=dict(secret, grant_type='password')), 400, 'unsupported_grant_type'),
                (dict(data=dict(secret, resource='https://cognitiveservices.azure.com')), 400,
                 'invalid_request'),
                (dict(json=secret), 400, 'invalid_request'),
                (dict(data=secret, headers={'authorization': 'Basic eDp5'}), 400,
                 'invalid_request')]:
            r = requests.post(url, **how)
            assert r.status_code == status and r.json()['error'] == error, (how, r.text)
            desc = r.json()['error_description']
            assert desc.startswith(f"AADSTS{r.json()['error_codes'][0]}: ")
            assert '\r\nTrace ID: ' in desc and '\r\nCorrelation ID: ' in desc
        r = requests.post(url.replace(idf.tenant_id, 'common'), data=secret)
        assert r.status_code == 400 and r.json()['error_codes'] == [90002]
        # an authority with its trailing slash kept: not the tenant's path
        r = requests.post(f'{idf.url}//{idf.tenant_id}/oauth2/v2.0/token', data=secret)
        assert r.status_code == 400 and r.json()['error_codes'] == [90002]
        r = requests.get(url)
        assert r.status_code == 400 and r.json()['error_codes'] == [900561]
        assert len(idf.violations) == 15 and idf.n('entra') == 17
        assert idf.counts['entra-secret'] == 1 and idf.counts['entra-assertion'] == 1
        assert 'wrong client_secret' in idf.violations[0]
        # the log keeps no secret
        logged = json.dumps(idf.requests)
        assert idf.client_secret not in logged and idf.federated_token not in logged
        assert idf.seen('entra')[0]['params']['client_secret'] == ['<redacted>']
        # a new federated token: the old one is refused
        old = idf.federated_token
        new = idf.rotate_federated_token()
        assert new != old
        assert requests.post(url, data=fed).status_code == 400
        assert requests.post(url, data=dict(fed, client_assertion=new)).status_code == 200
        assert len(idf.pop_violations()) == 16 and idf.violations == []
        idf.ttl = 200
        assert requests.post(url, data=secret).json()['expires_in'] == 200
        idf.entra_down = True
        r = requests.post(url, data=secret)
        assert r.status_code == 503 and r.json()['error'] == 'temporarily_unavailable'
        assert idf.violations == []
        idf.reset()
        assert idf.counts == {} and idf.requests == [] and idf.ttl == 3599
        assert not idf.entra_down and idf.has_identity

    def test_fake_010_41_app_service_identity_endpoint(self, azure):
        """App Service / Container Apps: the identity header, api-version
        2019-08-01, the resource, an optional client_id of this identity."""
        idf, fdy = azure
        assert idf.identity_endpoint == idf.url + '/msi/token'
        q = {'api-version': '2019-08-01', 'resource': 'https://cognitiveservices.azure.com'}
        hdr = {'X-IDENTITY-HEADER': idf.identity_header}
        r = requests.get(idf.identity_endpoint, params=q, headers=hdr)
        assert r.status_code == 200, r.text
        tok = r.json()
        assert set(tok) == {'access_token', 'expires_on', 'resource', 'token_type', 'client_id'}
        assert tok['token_type'] == 'Bearer' and tok['client_id'] == idf.client_id
        assert isinstance(tok['expires_on'], str)
        assert abs(int(tok['expires_on']) - time.time() - 3599) < 5
        assert tok['resource'] == 'https://cognitiveservices.azure.com'
        assert foundry_ok(fdy, tok['access_token'])
        r = requests.get(idf.identity_endpoint, params=dict(q, client_id=idf.client_id),
                         headers=hdr)
        assert r.status_code == 200
        assert idf.seen('appservice')[-1]['params']['client_id'] == [idf.client_id]
        assert idf.violations == []
        for params, headers, status in [
                (q, {}, 401), (q, {'X-IDENTITY-HEADER': 'other'}, 401),
                (dict(q, client_id='00000000-0000-0000-0000-000000000000'), hdr, 400),
                (dict(q, **{'api-version': '2017-09-01'}), hdr, 400),
                (dict(q, resource='https://cognitiveservices.azure.com/.default'), hdr, 400),
                (dict(q, clientid=idf.client_id), hdr, 400)]:
            r = requests.get(idf.identity_endpoint, params=params, headers=headers)
            assert r.status_code == status, (params, headers)
            assert set(r.json()) == {'statusCode', 'message', 'correlationId'}
        assert 'Unable to load the proper Managed Identity' in idf.violations[2]
        assert requests.post(idf.identity_endpoint, params=q, headers=hdr).status_code == 405
        assert idf.n('appservice') == 9 and len(idf.violations) == 7
        assert idf.identity_header not in json.dumps(idf.requests)

    def test_fake_010_42_imds_identity_endpoint(self, azure):
        """IMDS: Metadata: true, no X-Forwarded-For, api-version 2018-02-01;
        its numbers as strings; "Identity not found" without an identity."""
        idf, fdy = azure
        url = idf.url + '/metadata/identity/oauth2/token'
        q = {'api-version': '2018-02-01', 'resource': 'https://cognitiveservices.azure.com'}
        md = {'Metadata': 'true'}
        r = requests.get(url, params=q, headers=md)
        assert r.status_code == 200, r.text
        tok = r.json()
        assert set(tok) == {'access_token', 'client_id', 'expires_in', 'expires_on',
                            'ext_expires_in', 'not_before', 'resource', 'token_type'}
        assert tok['expires_in'] == '3599' and tok['token_type'] == 'Bearer'
        assert abs(int(tok['expires_on']) - time.time() - 3599) < 5
        assert foundry_ok(fdy, tok['access_token'])
        assert requests.get(url, params=dict(q, client_id=idf.client_id),
                            headers=md).status_code == 200
        idf.has_identity = False
        r = requests.get(url, params=q, headers=md)
        assert r.status_code == 400
        assert r.json() == {'error': 'invalid_request', 'error_description': 'Identity not found'}
        assert idf.violations == []
        idf.has_identity = True
        for params, headers, why in [
                (q, {}, 'Required metadata header not specified'),
                (q, {'Metadata': 'false'}, 'Required metadata header not specified'),
                (q, dict(md, **{'X-Forwarded-For': '10.0.0.1'}), 'X-Forwarded-For'),
                (dict(q, **{'api-version': '2019-08-01'}), md, 'api-version'),
                (dict(q, client_id='00000000-0000-0000-0000-000000000000'), md,
                 'Identity not found'),
                (dict(q, resource='https://management.azure.com/'), md, 'AADSTS500011')]:
            r = requests.get(url, params=params, headers=headers)
            assert r.status_code == 400, (params, headers)
            assert set(r.json()) == {'error', 'error_description'}
            assert why in r.json()['error_description']
        assert requests.put(url, params=q, headers=md).status_code == 405
        assert requests.get(idf.url + '/metadata/instance', headers=md).status_code == 404
        assert idf.counts == {'imds': 10, 'other': 1}
        assert len(idf.pop_violations()) == 8 and idf.violations == []

    def test_fake_010_43_entra_certificate_assertion(self, azure):
        """A service principal's certificate: the client assertion MSAL
        signs (RS256, x5t, optional x5t#S256 and x5c) is taken once; a
        wrong thumbprint, key, algorithm, audience, issuer, lifetime, a
        replay or a missing x5c under require_x5c is refused 401
        invalid_client and recorded; the federated token and the secret
        still work beside it."""
        idf, fdy = azure
        cert = idf.certificate
        url = f'{idf.url}/{idf.tenant_id}/oauth2/v2.0/token'
        base = {'grant_type': 'client_credentials', 'client_id': idf.client_id,
                'scope': 'https://cognitiveservices.azure.com/.default',
                'client_assertion_type': az.JWT_BEARER}

        def signed(key=None, headers=None, algorithm='RS256', **over):
            now = int(time.time())
            claims = {'aud': url, 'iss': idf.client_id, 'sub': idf.client_id,
                      'jti': str(uuid.uuid4()), 'nbf': now, 'iat': now, 'exp': now + 600}
            claims.update(over)
            claims = {k: v for k, v in claims.items() if v is not None}
            return jwt.encode(claims, key or cert.key, algorithm=algorithm,
                              headers=dict({'x5t': cert.x5t}, **(headers or {})))

        def grant(assertion):
            return requests.post(url, data=dict(base, client_assertion=assertion))

        # what Entra knows of the certificate
        assert cert.thumbprint == hashlib.sha1(cert.der).hexdigest().upper()
        assert cert.x5t == base64.urlsafe_b64encode(
            bytes.fromhex(cert.thumbprint)).rstrip(b'=').decode() and len(cert.x5t) == 27
        assert cert.x5t_s256 == base64.urlsafe_b64encode(
            hashlib.sha256(cert.der).digest()).rstrip(b'=').decode()
        assert base64.b64decode(cert.x5c) == cert.der
        first = signed()
        assert jwt.get_unverified_header(first) == {'alg': 'RS256', 'typ': 'JWT',
                                                    'x5t': cert.x5t}
        r = grant(first)
        assert r.status_code == 200, r.text
        tok = r.json()
        assert set(tok) == {'token_type', 'expires_in', 'ext_expires_in', 'access_token'}
        assert foundry_ok(fdy, tok['access_token'])
        logged = idf.seen('entra')[-1]
        assert logged['params']['client_assertion'] == ['<redacted>']
        assert logged['assertion']['header']['x5t'] == cert.x5t
        assert logged['assertion']['claims']['aud'] == url
        assert first.split('.')[2] not in json.dumps(idf.requests)
        assert idf.assertions == [first]
        # with both thumbprints and the certificate itself, as MSAL can send them
        full = signed(headers={'x5t#S256': cert.x5t_s256, 'x5c': [cert.x5c]})
        assert grant(full).status_code == 200
        assert idf.counts == {'entra': 2, 'entra-certificate': 2}
        assert idf.violations == []
        other = az.Certificate(common_name='someone-else')
        now = int(time.time())
        for assertion, code, why in [
                (first, 50027, 'replayed'),
                (signed(key=other.key, headers={'x5t': other.x5t}), 700027, 'x5t'),
                (signed(key=other.key), 700027, "not signed by the certificate's key"),
                (signed(headers={'x5t': cert.thumbprint}), 700027, 'x5t'),  # hex, not base64url
                (signed(headers={'x5t': cert.x5t + '='}), 700027, 'x5t'),  # padded
                (signed(headers={'x5t': None}), 700027, 'x5t missing'),
                (signed(headers={'x5t#S256': cert.x5t}), 700027, 'x5t#S256'),
                (signed(headers={'x5c': [other.x5c]}), 700027, 'x5c'),
                (signed(headers={'x5c': [az.b64url(cert.der)]}), 700027, 'x5c'),  # base64url
                (signed(headers={'kid': cert.thumbprint}), 50027, 'unexpected header'),
                (signed(headers={'typ': None}), 50027, 'typ'),
                (signed(algorithm='RS384'), 5002738, 'RS384'),
                (signed(algorithm='PS256'), 5002738, 'PS256'),
                (signed(aud=url.replace('/v2.0', '')), 700023, 'aud'),  # the v1 endpoint
                (signed(aud=f'https://login.microsoftonline.com/{idf.tenant_id}/oauth2/v2.0/'
                            'token'), 700023, 'aud'),
                (signed(aud=url.replace('127.0.0.1', 'localhost')), 700023, 'aud'),
                (signed(iss='someone'), 700021, 'iss'),
                (signed(sub='someone'), 700021, 'sub'),
                (signed(jti=None), 50027, "missing ['jti']"),
                (signed(jti=''), 50027, 'jti'),
                (signed(iat=None), 50027, "missing ['iat']"),
                (signed(scope='x'), 50027, 'unexpected'),
                (signed(nbf=now, iat=now, exp=now + 3600), 700024, 'at most 600'),
                (signed(exp=now + 600.5), 50027, 'integers'),
                (signed(nbf=now - 900, iat=now - 900, exp=now - 300), 700024, 'outside'),
                (signed(nbf=now + 600, iat=now + 600, exp=now + 1200), 700024, 'outside')]:
            r = grant(assertion)
            assert r.status_code == 401 and r.json()['error'] == 'invalid_client', \
                (why, r.text)
            assert r.json()['error_codes'] == [code], (why, r.text)
            assert r.json()['error_description'].startswith(f'AADSTS{code}: ')
            assert why in idf.violations[-1], (why, idf.violations[-1])
            assert idf.violations[-1].startswith('entra POST ')
        assert len(idf.pop_violations()) == 26
        # Entra names the thumbprint it does not know
        r = grant(signed(key=other.key, headers={'x5t': other.x5t}))
        assert f"Thumbprint of key used by client: '{other.thumbprint}'" in \
            r.json()['error_description']
        assert len(idf.pop_violations()) == 1
        # skew: five minutes early is taken, a second later not
        assert grant(signed(nbf=now + 290, iat=now + 290, exp=now + 890)).status_code == 200
        # not a certificate's: taken for a federated token that matches nothing
        r = grant(az.federated_token())
        assert r.status_code == 400 and r.json()['error_codes'] == [70021]
        assert 'wrong client_assertion' in idf.pop_violations()[0]
        # subject name/issuer authentication: the certificate must come along
        idf.require_x5c = True
        assert grant(signed()).status_code == 401
        assert 'x5c missing' in idf.pop_violations()[0]
        assert grant(signed(headers={'x5c': [cert.x5c]})).status_code == 200
        # the other credentials beside it
        assert requests.post(url, data=dict(base, client_assertion=idf.federated_token)) \
            .status_code == 200
        assert requests.post(url, data={k: v for k, v in dict(
            base, client_secret=idf.client_secret).items() if k != 'client_assertion_type'}) \
            .status_code == 200
        # a secret and a certificate's assertion together: one credential only
        r = requests.post(url, data=dict(base, client_assertion=signed(),
                                         client_secret=idf.client_secret))
        assert r.status_code == 400 and r.json()['error_codes'] == [90014]
        assert len(idf.pop_violations()) == 1 and idf.violations == []
        assert idf.n('entra-certificate') == 4 and idf.n('entra-assertion') == 1
        assert idf.n('entra-secret') == 1
        idf.reset()
        assert not idf.require_x5c and idf.counts == {}
        # reset() forgets no jti: an assertion is never good twice
        assert grant(full).status_code == 401 and 'replayed' in idf.pop_violations()[0]

    def test_fake_010_44_certificate_files(self, azure, tmp_path):
        """The files a client is given: the PEM with the certificate and
        its key in either order (PKCS#8 or PKCS#1, with or without
        openssl's bag attributes), the key encrypted, and a PKCS#12."""
        from cryptography import x509
        from cryptography.hazmat.primitives import serialization
        from cryptography.hazmat.primitives.serialization import pkcs12
        idf, fdy = azure
        cert = idf.certificate
        der = cert.der
        pub = cert.key.public_key().public_numbers()
        for order, fmt, bags, first in [('cert-first', 'pkcs8', False, '-----BEGIN CERTIFICATE'),
                                        ('key-first', 'rsa', False, '-----BEGIN RSA PRIVATE'),
                                        ('key-first', 'pkcs8', True, 'Bag Attributes'),
                                        ('cert-first', 'rsa', True, 'Bag Attributes')]:
            path = idf.certificate_pem(str(tmp_path / f'{order}-{fmt}-{bags}.pem'), order, fmt,
                                       bags)
            data = open(path, 'rb').read()
            assert data.startswith(first.encode()), (order, fmt, bags)
            assert data.count(b'-----BEGIN ') == 2 and b'ENCRYPTED' not in data
            blocks = data.split(b'-----END ')
            assert (b'CERTIFICATE' in blocks[0]) == (order == 'cert-first')
            assert x509.load_pem_x509_certificate(data).public_bytes(
                serialization.Encoding.DER) == der
            key = serialization.load_pem_private_key(data, None)
            assert key.public_key().public_numbers() == pub
            assert all(line in data.decode() for line in cert.key_lines(fmt))
        path = idf.encrypted_pem(str(tmp_path / 'enc.pem'), 'pa55word')
        data = open(path, 'rb').read()
        assert b'-----BEGIN ENCRYPTED PRIVATE KEY-----' in data
        assert not any(line in data.decode() for line in cert.key_lines())
        with pytest.raises(TypeError):
            serialization.load_pem_private_key(data, None)
        assert serialization.load_pem_private_key(data, b'pa55word').public_key() \
            .public_numbers() == pub
        data = open(idf.encrypted_pem(str(tmp_path / 'enc-rsa.pem'), 'pa55word',
                                      order='key-first', key_format='rsa'), 'rb').read()
        assert data.startswith(b'-----BEGIN RSA PRIVATE KEY-----\nProc-Type: 4,ENCRYPTED')
        for password in (None, 'pa55word'):
            data = open(idf.pfx(str(tmp_path / f'cert-{password}.pfx'), password), 'rb').read()
            assert b'-----BEGIN' not in data and b'\0' in data
            key, c, _ = pkcs12.load_key_and_certificates(
                data, password.encode() if password else None)
            assert c.public_bytes(serialization.Encoding.DER) == der
            assert key.public_key().public_numbers() == pub
        # another certificate: another key, other thumbprints
        other = az.Certificate()
        assert other.x5t != cert.x5t and other.key.public_key().public_numbers() != pub
        given = AzureIdentityFake(fdy, certificate=other)
        try:
            assert given.certificate is other and given.certificate_pem(
                str(tmp_path / 'other.pem')) and given.jtis == set()
        finally:
            given.httpd.server_close()


def test_fake_010_30_fakes_run_as_scripts(tmp_path):
    """Each fake also runs on its own (for `make run` and manual checks)."""
    import subprocess
    import sys
    import os
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    for mod in ('bedrock', 'vertex', 'foundry'):
        pf = tmp_path / f'{mod}.port'
        p = subprocess.Popen([sys.executable, os.path.join(here, 'fakes', f'{mod}.py'),
                              '--port-file', str(pf)], stdout=subprocess.PIPE)
        try:
            for _ in range(100):
                if pf.exists() and pf.read_text():
                    break
                time.sleep(0.05)
            port = int(pf.read_text())
            conn = http.client.HTTPConnection('127.0.0.1', port, timeout=5)
            conn.request('GET', '/_fake/stats')
            assert json.loads(conn.getresponse().read()) == {'count': 0}
        finally:
            p.terminate()
            p.wait(5)
