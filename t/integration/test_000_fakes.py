"""The fakes are part of the test equipment: check that they are strict and
that they report what they received, so the gateway tests can trust them."""
import base64
import hashlib
import http.client
import json
import struct
import time

import jwt
import pytest
import requests

from fakes.anthropic import AnthropicFake
from fakes.idp import IdpFake
from fakes.otlp import OtlpFake, attrs
from pyclaude.client import post, stream

KEY = 'sk-ant-fake-test'


def body(**extra):
    b = {'model': 'claude-sonnet-4-5', 'max_tokens': 8,
         'messages': [{'role': 'user', 'content': 'hi'}]}
    b.update(extra)
    return json.dumps(b).encode()


@pytest.fixture
def api():
    fake = AnthropicFake(api_key=KEY).start()
    yield fake
    fake.stop()


class TestAnthropicFake:

    def test_fake_000_01_json_reply_and_record(self, api):
        raw = body()
        r = post(api.port, '/v1/messages?beta=true', raw, headers={'x-api-key': KEY})
        assert r.status == 200
        assert r.json['usage']['input_tokens'] == 12 and r.json['model'] == 'claude-sonnet-4-5'
        rec = api.last
        assert rec['query'] == 'beta=true' and rec['framing'] == 'content-length'
        assert rec['body_sha256'] == hashlib.sha256(raw).hexdigest()
        assert rec['violations'] == []

    def test_fake_000_02_chunked_request_recorded(self, api):
        raw = body(pad='x' * 50000)
        r = post(api.port, '/v1/messages', raw, headers={'x-api-key': KEY}, chunked=True)
        assert r.status == 200
        assert api.last['framing'] == 'chunked'
        assert api.last['body_sha256'] == hashlib.sha256(raw).hexdigest()

    def test_fake_000_03_wrong_key_and_bad_body(self, api):
        r = post(api.port, '/v1/messages', body(), headers={'x-api-key': 'nope'})
        assert r.status == 401 and r.json['error']['type'] == 'authentication_error'
        r = post(api.port, '/v1/messages', b'{"model": 1}', headers={'x-api-key': KEY})
        assert r.status == 400
        assert [v for rec in api.requests for v in rec['violations']] == [
            'missing or wrong credential', 'body must be an object with a string model']

    def test_fake_000_04_sse_paced(self, api):
        r = stream(api.port, '/v1/messages',
                   body(stream=True, _fake={'events': 3, 'pace_ms': 200, 'split': True,
                                            'usage': {'output_tokens': 99}}),
                   headers={'x-api-key': KEY})
        names = [n for _, n, _ in r.events]
        assert names[0] == 'message_start' and names[-1] == 'message_stop'
        times = [t for t, n, _ in r.events if n == 'content_block_delta']
        assert all(b - a > 0.15 for a, b in zip(times, times[1:]))
        delta = [json.loads(d) for _, n, d in r.events if n == 'message_delta'][0]
        assert delta['usage']['output_tokens'] == 99

    def test_fake_000_05_disconnect_and_status(self, api):
        r = stream(api.port, '/v1/messages', body(stream=True, _fake={'disconnect_after': 4}),
                   headers={'x-api-key': KEY})
        assert 'message_stop' not in [n for _, n, _ in r.events]
        requests.post(api.url + '/_fake/script', json=[{'status': 529}])
        r = post(api.port, '/v1/messages', body(), headers={'x-api-key': KEY})
        assert r.status == 529 and r.json['error']['type'] == 'overloaded_error'
        r = post(api.port, '/v1/messages/count_tokens', body(), headers={'x-api-key': KEY})
        assert r.status == 200 and r.json['input_tokens'] > 0


class TestIdpFake:

    def test_fake_000_10_code_flow_refresh_deprovision(self):
        redirect = 'http://127.0.0.1:1/cb'
        idp = IdpFake(client_id='c1', client_secret='s1', redirect_uris=[redirect]).start()
        try:
            conf = requests.get(idp.url + '/.well-known/openid-configuration').json()
            verifier = 'v' * 50
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(verifier.encode()).digest()).rstrip(b'=').decode()
            r = requests.get(conf['authorization_endpoint'], allow_redirects=False, params={
                'client_id': 'c1', 'redirect_uri': redirect, 'response_type': 'code',
                'scope': 'openid email', 'state': 'st', 'nonce': 'n1',
                'code_challenge': challenge, 'code_challenge_method': 'S256'})
            assert r.status_code == 302
            q = dict(x.split('=') for x in r.headers['location'].split('?')[1].split('&'))
            assert q['state'] == 'st'
            form = {'grant_type': 'authorization_code', 'code': q['code'],
                    'redirect_uri': redirect, 'code_verifier': verifier}
            assert requests.post(conf['token_endpoint'], data=dict(form, code_verifier='x'),
                                 auth=('c1', 's1')).status_code == 400  # code now used
            r = requests.get(conf['authorization_endpoint'], allow_redirects=False, params={
                'client_id': 'c1', 'redirect_uri': redirect, 'response_type': 'code',
                'scope': 'openid', 'state': 'st', 'nonce': 'n2'})
            code = r.headers['location'].split('code=')[1].split('&')[0]
            tok = requests.post(conf['token_endpoint'], auth=('c1', 's1'), data={
                'grant_type': 'authorization_code', 'code': code, 'redirect_uri': redirect}).json()
            jwks = jwt.PyJWKClient(conf['jwks_uri'])
            key = jwks.get_signing_key_from_jwt(tok['id_token']).key
            claims = jwt.decode(tok['id_token'], key, algorithms=['RS256'], audience='c1')
            assert claims['sub'] == 'user-alice' and claims['nonce'] == 'n2'
            assert claims['groups'] == ['eng', 'claude-users']
            r = requests.post(conf['token_endpoint'], data={
                'grant_type': 'refresh_token', 'refresh_token': tok['refresh_token'],
                'client_id': 'c1', 'client_secret': 's1'})
            assert r.status_code == 200
            new_rt = r.json()['refresh_token']
            r = requests.post(conf['token_endpoint'], data={
                'grant_type': 'refresh_token', 'refresh_token': tok['refresh_token'],
                'client_id': 'c1', 'client_secret': 's1'})
            assert r.json() == {'error': 'invalid_grant'}  # rotated
            requests.post(idp.url + '/_fake/deprovision', json={'username': 'alice'})
            r = requests.post(conf['token_endpoint'], data={
                'grant_type': 'refresh_token', 'refresh_token': new_rt,
                'client_id': 'c1', 'client_secret': 's1'})
            assert r.json() == {'error': 'invalid_grant'}
            r = requests.post(conf['token_endpoint'], data={'grant_type': 'refresh_token',
                              'refresh_token': new_rt, 'client_id': 'c1',
                              'client_secret': 'wrong'})
            assert r.status_code == 401
            assert idp.violations == ['PKCE verifier does not match', 'bad client authentication']
        finally:
            idp.stop()


def pb_varint(n):
    out = b''
    while True:
        b = n & 0x7f
        n >>= 7
        out += bytes([b | (0x80 if n else 0)])
        if not n:
            return out


def pb_field(num, wire, payload):
    key = pb_varint((num << 3) | wire)
    if wire == 2:
        return key + pb_varint(len(payload)) + payload
    return key + payload


def pb_kv(k, v):
    return pb_field(1, 2, k.encode()) + pb_field(2, 2, pb_field(1, 2, v.encode()))


class TestOtlpFake:

    def test_fake_000_20_protobuf_metrics_decoded(self):
        otlp = OtlpFake().start()
        try:
            point = (pb_field(7, 2, pb_kv('model', 'claude-x')) +
                     pb_field(3, 1, struct.pack('<Q', 1700000000000000000)) +
                     pb_field(6, 1, struct.pack('<q', 42)))
            sum_ = pb_field(1, 2, point) + pb_field(2, 0, pb_varint(1)) + pb_field(3, 0, b'\x01')
            hist_point = (pb_field(4, 1, struct.pack('<Q', 3)) + pb_field(5, 1, struct.pack('<d', 1.5))
                          + pb_field(6, 2, struct.pack('<QQ', 1, 2))
                          + pb_field(7, 2, struct.pack('<d', 0.5)))
            metrics = (pb_field(2, 2, pb_field(1, 2, b'claude_code.token.usage') +
                                pb_field(7, 2, sum_)) +
                       pb_field(2, 2, pb_field(1, 2, b'latency') +
                                pb_field(9, 2, pb_field(1, 2, hist_point))))
            rm = pb_field(1, 2, pb_field(1, 2, pb_kv('user.id', 'user-alice'))) + \
                pb_field(2, 2, metrics)
            req = pb_field(1, 2, rm)
            r = requests.post(otlp.url + '/v1/metrics', data=req,
                              headers={'content-type': 'application/x-protobuf'})
            assert r.status_code == 200 and r.content == b''
            pts = otlp.metric_points('claude_code.token.usage')
            assert pts[0]['asInt'] == 42 and pts[0]['attrs'] == {'model': 'claude-x'}
            assert pts[0]['resource'] == {'user.id': 'user-alice'}
            h = otlp.metric_points('latency')[0]
            assert h['count'] == '3' and h['bucketCounts'] == ['1', '2']
            assert h['explicitBounds'] == [0.5]
            r = requests.post(otlp.url + '/v1/logs', json={'resourceLogs': []})
            assert r.status_code == 200
            r = requests.post(otlp.url + '/v1/traces', data=b'x',
                              headers={'content-type': 'text/plain'})
            assert r.status_code == 415
            r = requests.post(otlp.url + '/v1/metrics', data=b'\x0a\xff',
                              headers={'content-type': 'application/x-protobuf'})
            assert r.status_code == 400
            assert len(otlp.violations) == 2
            assert attrs([{'key': 'a', 'value': {'intValue': '5'}}]) == {'a': 5}
        finally:
            otlp.stop()
