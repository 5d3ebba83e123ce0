"""
The openai backend against a real ``transformers serve`` on 127.0.0.1.

Faults a real server cannot show on demand (malformed answers, 401, 404)
come from a raw HTTP server that answers fixed bytes; everything else,
hangs included (SIGSTOP), from the real one.
"""

import json
import os
import subprocess
import threading
import time

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.openai_backend import OpenAIBackend
import numpy as np
import pytest
from ros_helpers import wait_until
import serving_helpers
from serving_helpers import (backend_params, ensure_running, ListLog,
                             models_answer, RawServer)

# The fixtures a test names: a real transformers serve.
served_model_dir = serving_helpers.served_model_dir
tiny_server = serving_helpers.tiny_server

pytestmark = pytest.mark.slow     # a real transformers serve process

WORDS = r'^[a-z]+( [a-z]+)*$'


def frames(count, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for _ in range(count)]


def open_backend(endpoint, log=None, **changes):
    return OpenAIBackend.create(backend_params(endpoint, **changes), 4,
                                log or ListLog())


def test_captions_are_words_and_the_model_is_named_at_start(tiny_server):
    log = ListLog()
    backend = open_backend(tiny_server.endpoint, log)
    try:
        texts = backend.caption(frames(3), 'Question: what? Answer:', 6)
        plain = backend.caption(frames(1, seed=5), '', 6)
    finally:
        backend.close()
    import re
    assert len(texts) == 3 and len(plain) == 1
    for text in texts + plain:
        assert re.match(WORDS, text), text
    assert log.matching('info', f"remote model '{tiny_server.model_dir}' "
                        f'at {tiny_server.endpoint}')
    assert backend.stats()['requests_ok'] == 4


def test_at_most_max_in_flight_requests_and_nothing_queued_beyond_the_batch(
        tiny_server):
    backend = open_backend(tiny_server.endpoint, max_in_flight=2)
    out = []
    try:
        tiny_server.pause()            # requests hang: count them
        thread = threading.Thread(
            target=lambda: out.append(backend.caption(frames(5), '', 4)))
        thread.start()
        assert wait_until(lambda: backend.in_flight == 2, 5)
        assert not wait_until(lambda: backend.in_flight > 2, 0.5)
        tiny_server.resume()
        thread.join(15)
        assert not thread.is_alive()
    finally:
        ensure_running(tiny_server)
        backend.close()
    assert len(out[0]) == 5 and None not in out[0], out
    assert backend.most_in_flight == 2
    assert backend.stats()['requests_ok'] == 5


def test_a_hung_server_times_out_backs_off_and_recovers(tiny_server):
    log = ListLog()
    backend = open_backend(tiny_server.endpoint, log, request_timeout_s=1.0,
                           retry_max_s=1.0)
    try:
        assert None not in backend.caption(frames(1), '', 4)
        tiny_server.pause()
        started = time.monotonic()
        assert backend.caption(frames(2), '', 4) == [None, None]
        took = time.monotonic() - started
        assert 0.9 < took < 3.0, took
        assert 'request_timeout_s' in backend.problem()
        assert backend.stats()['server'] == 'down'
        # In the back-off nothing is sent: the frames are dropped at once.
        started = time.monotonic()
        assert backend.caption(frames(1), '', 4) == [None]
        assert time.monotonic() - started < 0.2
        assert backend.stats()['frames_dropped_while_down'] == 1
        tiny_server.resume()
        assert wait_until(lambda: backend.caption(frames(1), '', 4)[0], 10)
    finally:
        ensure_running(tiny_server)
        backend.close()
    assert backend.problem() == ''
    assert len(log.matching('warning', 'failed: no complete answer within '
                            '1 s (request_timeout_s)')) == 1, log.lines
    assert len(log.matching('info', 'answers again after')) == 1, log.lines


def test_close_aborts_requests_in_flight_at_once(tiny_server):
    backend = open_backend(tiny_server.endpoint, request_timeout_s=30.0)
    out = []
    try:
        tiny_server.pause()
        thread = threading.Thread(
            target=lambda: out.append(backend.caption(frames(3), '', 4)))
        thread.start()
        assert wait_until(lambda: backend.in_flight == 3, 5)
        started = time.monotonic()
        backend.close()
        thread.join(2)
        assert not thread.is_alive()
        assert time.monotonic() - started < 0.5
    finally:
        ensure_running(tiny_server)
    assert out == [[None, None, None]]


def test_a_wrong_model_name_fails_at_start_with_one_line(tiny_server):
    with pytest.raises(ModelLoadError) as error:
        open_backend(tiny_server.endpoint, remote_model='blip2-typo')
    assert str(error.value) == (
        "parameter 'remote_model' = 'blip2-typo' is not served at "
        f'{tiny_server.endpoint}; it serves: {tiny_server.model_dir}')


def test_a_model_gone_at_run_time_names_remote_model(tiny_server):
    # transformers serve is pinned to its model: another name is a 400.
    log = ListLog()
    backend = open_backend(tiny_server.endpoint, log)
    backend.model = 'replaced-model'
    try:
        assert backend.caption(frames(1), '', 4) == [None]
    finally:
        backend.close()
    line, = log.matching('warning', 'HTTP 400')
    assert "check parameter 'remote_model' = 'replaced-model'" in line
    assert '\n' not in line
    assert 'HTTP 400' in backend.problem()


@pytest.mark.parametrize('endpoint,expected', [
    ('gpu-server:8000/v1', "parameter 'endpoint' = 'gpu-server:8000/v1' is "
     'invalid: must be a base URL'),
    ('ftp://host/v1', "parameter 'endpoint' = 'ftp://host/v1' is invalid"),
    ('', "parameter 'endpoint' = '' is invalid: backend openai needs"),
])
def test_a_bad_endpoint_is_refused_with_one_line(endpoint, expected):
    with pytest.raises(ModelLoadError, match='^' + expected.replace(
            '.', r'\.').replace('(', r'\(')):
        open_backend(endpoint)


def test_an_unreachable_server_fails_at_start_naming_endpoint():
    from camera_caption.tools.tiny_server import free_port
    endpoint = f'http://127.0.0.1:{free_port()}/v1'
    with pytest.raises(ModelLoadError) as error:
        open_backend(endpoint)
    assert str(error.value).startswith(
        f"parameter 'endpoint' = '{endpoint}': cannot reach the server: "
        'ConnectionRefusedError')


CHAT = '/v1/chat/completions'


@pytest.mark.parametrize('answer,counted', [
    ((200, 'application/json', '{"choices": []}'), 'malformed answer'),
    ((200, 'application/json', 'not json'), 'malformed answer'),
    ((200, 'application/json', ''), 'malformed answer'),
    ((200, 'application/json', json.dumps({'choices': [
        {'message': {'role': 'assistant', 'content': '  '}}]})),
     'empty caption'),
])
def test_malformed_or_empty_answers_are_an_outage(answer, counted):
    log = ListLog()
    with RawServer({'/v1/models': models_answer('m'), CHAT: answer}) as raw:
        backend = open_backend(f'http://127.0.0.1:{raw.port}/v1', log)
        try:
            assert backend.caption(frames(2), '', 4) == [None, None]
            # Down: the next frame waits for the back-off, unsent.
            assert backend.caption(frames(1), '', 4) == [None]
        finally:
            backend.close()
    stats = backend.stats()
    assert stats['bad_responses'] == 2 and stats['server'] == 'down'
    # Answers that hold no caption: the server is not captioning (WARN).
    assert counted in backend.problem()
    assert len(log.matching('warning', counted)) == 1, log.lines


@pytest.mark.parametrize('status,kind,body,names', [
    (401, 'application/json', '{"error": "invalid api key"}',
     "check parameter 'api_key_env' (the key was refused)"),
    (404, 'application/json', json.dumps({'error': {
        'message': 'The model `m` does not exist.', 'code': 404}}),
     "check parameter 'remote_model' = 'm'"),
    (413, 'text/plain', 'request entity too large',
     "check parameter 'image_max_side' = 512, 'jpeg_quality' = 90"),
    (500, 'text/plain', 'Internal Server Error', ''),
])
def test_error_statuses_give_one_line_naming_the_parameter(status, kind,
                                                           body, names):
    log = ListLog()
    key = 'sk-secret-0123456789'
    os.environ['CAMCAP_TEST_KEY'] = key
    answers = {'/v1/models': models_answer('m'), CHAT: (status, kind, body)}
    try:
        with RawServer(answers) as raw:
            backend = open_backend(f'http://127.0.0.1:{raw.port}/v1', log,
                                   api_key_env='CAMCAP_TEST_KEY')
            try:
                for _ in range(3):      # one line, however many failures
                    backend.caption(frames(1), '', 4)
                    backend._next_try = 0.0
            finally:
                backend.close()
    finally:
        del os.environ['CAMCAP_TEST_KEY']
    lines = log.matching('warning', f'HTTP {status} from http://127.0.0.1')
    assert len(lines) == 1, log.lines
    assert names in lines[0] and ' '.join(body.split())[:60] in lines[0]
    assert all(h.get('Authorization') == f'Bearer {key}'
               for _, _, h, _ in raw.requests)
    sent = json.loads(raw.requests[-1][3])
    assert sent['temperature'] == 0 and sent['max_tokens'] == 4
    assert sent['model'] == 'm'
    assert key not in repr(log.lines) + repr(backend.stats()) \
        + backend.problem() + backend.describe()


def test_a_missing_key_variable_is_refused_at_start():
    os.environ.pop('CAMCAP_NO_SUCH_KEY', None)
    with pytest.raises(ModelLoadError, match="^parameter 'api_key_env' = "
                       "'CAMCAP_NO_SUCH_KEY': the environment variable is "
                       'not set or empty$'):
        open_backend('http://127.0.0.1:9/v1', api_key_env='CAMCAP_NO_SUCH_KEY')


def make_ca_and_cert(folder):
    """Make a CA and a 127.0.0.1 certificate it signed (openssl CLI)."""
    def run(*args):
        subprocess.run(['openssl'] + list(args), cwd=folder, check=True,
                       capture_output=True)
    run('req', '-x509', '-newkey', 'rsa:2048', '-nodes', '-days', '2',
        '-subj', '/CN=camera_caption test CA', '-keyout', 'ca.key',
        '-out', 'ca.pem')
    run('req', '-newkey', 'rsa:2048', '-nodes', '-subj', '/CN=127.0.0.1',
        '-keyout', 'server.key', '-out', 'server.csr')
    with open(os.path.join(folder, 'ext.cnf'), 'w') as f:
        f.write('subjectAltName=IP:127.0.0.1\n')
    run('x509', '-req', '-in', 'server.csr', '-CA', 'ca.pem', '-CAkey',
        'ca.key', '-CAcreateserial', '-days', '2', '-extfile', 'ext.cnf',
        '-out', 'server.pem')
    return (os.path.join(folder, 'ca.pem'), os.path.join(folder, 'server.pem'),
            os.path.join(folder, 'server.key'))


def test_tls_with_a_custom_ca(tmp_path):
    import ssl
    ca, cert, key = make_ca_and_cert(str(tmp_path))
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    caption = json.dumps({'choices': [{'message': {'content': 'a door'}}]})
    answers = {'/v1/models': models_answer('m'),
               CHAT: (200, 'application/json', caption)}
    with RawServer(answers, context) as raw:
        endpoint = f'https://127.0.0.1:{raw.port}/v1'
        with pytest.raises(ModelLoadError) as error:
            open_backend(endpoint)                  # the system's CAs
        backend = open_backend(endpoint, ca_file=ca)
        try:
            assert backend.caption(frames(2), '', 4) == ['a door', 'a door']
        finally:
            backend.close()
    assert 'CERTIFICATE_VERIFY_FAILED' in str(error.value)
    assert "(is 'ca_file' set to the server's CA?)" in str(error.value)
    with pytest.raises(ModelLoadError, match="^parameter 'ca_file' = "):
        open_backend(endpoint, ca_file=str(tmp_path / 'missing.pem'))


def test_frames_are_resized_and_jpeg_encoded():
    import base64
    import cv2
    from camera_caption.engine.openai_protocol import encode_frame
    image = np.zeros((480, 640, 3), np.uint8)
    image[:, :, 0] = 255                           # red, as RGB
    url = encode_frame(image, 320, 90)
    assert url.startswith('data:image/jpeg;base64,')
    decoded = cv2.imdecode(np.frombuffer(base64.b64decode(
        url.split(',', 1)[1]), np.uint8), cv2.IMREAD_COLOR)
    assert decoded.shape == (240, 320, 3)
    assert decoded[..., 2].mean() > 240 and decoded[..., 0].mean() < 15
    full = encode_frame(image, 0, 90)
    assert cv2.imdecode(np.frombuffer(base64.b64decode(full.split(',', 1)[
        1]), np.uint8), cv2.IMREAD_COLOR).shape == (480, 640, 3)
