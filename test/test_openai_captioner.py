"""
The captioner with backend openai, end to end, against a real server.

Real nodes on real topics, and a real ``transformers serve`` on 127.0.0.1
serving the readable tiny BLIP-2; the server is killed mid-run and
restarted on the same port.
"""

import json
import os
import re

from camera_caption.contract.errors import ModelLoadError
from camera_caption.nodes.captioner_node import CaptionerNode
from camera_caption.nodes.ros_diagnostics import WARN
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, image_msg, params, spinning,
                         wait_until)
from sensor_msgs.msg import Image
import serving_helpers
from serving_helpers import ensure_running

# The fixtures a test names: a real transformers serve.
served_model_dir = serving_helpers.served_model_dir
tiny_server = serving_helpers.tiny_server

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)
KEY = 'sk-never-logged-4242'


def remote_captioner(context, endpoint, **changes):
    values = {'backend': 'openai', 'endpoint': endpoint, 'rate_hz': 10.0,
              'max_new_tokens': 5, 'reliability': 'reliable',
              'request_timeout_s': 2.0, 'retry_max_s': 0.5,
              'api_key_env': 'CAMCAP_E2E_KEY'}
    values.update(changes)
    return CaptionerNode(context=context,
                         parameter_overrides=params(**values)).autostart()


@pytest.fixture
def api_key():
    os.environ['CAMCAP_E2E_KEY'] = KEY
    yield KEY
    del os.environ['CAMCAP_E2E_KEY']


def test_captions_through_the_server_and_survive_its_restart(
        ros_context, tiny_server, api_key, capfd):
    captioner = remote_captioner(ros_context, tiny_server.endpoint)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    infos = CaptionListener(driver, '/caption_info')
    frame = image_msg(90, width=64, height=48, noise=40)
    try:
        with spinning(ros_context, captioner, driver):
            def fed_until(predicate, timeout):
                # A camera: a frame every 50 ms while waiting.
                def send():
                    frame.header.stamp = driver.get_clock().now().to_msg()
                    pub.publish(frame)
                return wait_until(lambda: send() or predicate(), timeout,
                                  interval=0.05)

            assert fed_until(lambda: len(captions.items) >= 3, 20)
            # /diagnostics says the first problem only: none from the server.
            assert 'server at' not in captioner._diagnostics()[1]
            tiny_server.kill()
            # A request in flight as the server dies may end in a reset;
            # the retries after it are refused (the problem says the last).
            assert fed_until(lambda: 'ConnectionRefusedError'
                             in captioner.backend.problem(), 10)
            level, message, values = captioner._diagnostics()
            assert level == WARN, message
            down_at = len(captions.items)
            received = captioner.worker.slots.received
            # Frames keep coming while it is down: none is queued.
            assert fed_until(lambda: captioner.worker.slots.received
                             >= received + 20, 10)
            assert len(captioner.worker.slots.take_all(timeout=0)) <= 1
            assert captioner.worker.not_captioned >= 1
            tiny_server.start()
            assert fed_until(lambda: len(captions.items) >= down_at + 3, 20)
            assert captioner.backend.problem() == ''
            assert 'server at' not in captioner._diagnostics()[1]
            stats = captioner.backend.stats()
    finally:
        ensure_running(tiny_server)
    err = capfd.readouterr().err
    assert len(re.findall(r'server at \S+ failed: ', err)) == 1, err
    assert len(re.findall(r'server at \S+ answers again after', err)) == 1
    assert f"remote model '{tiny_server.model_dir}' at " in err
    assert 'model ready: ' in err
    assert 'caption failed' not in err
    for _, text in captions.items:
        assert re.match(r'^[a-z]+( [a-z]+)*$', text), text
    info = json.loads(infos.items[-1][1])
    assert info['caption'] == captions.items[-1][1]
    assert stats['outages'] == 1 and stats['requests_ok'] >= 6
    everything = err + repr(infos.items) + json.dumps(stats) + repr(values)
    assert KEY not in everything


def test_a_wrong_model_stops_the_start_with_one_line(ros_context,
                                                     tiny_server):
    with pytest.raises(ModelLoadError) as error:
        remote_captioner(ros_context, tiny_server.endpoint,
                         remote_model='Salesforce/blip2-opt-2.7b',
                         api_key_env='')
    assert str(error.value) == (
        "parameter 'remote_model' = 'Salesforce/blip2-opt-2.7b' is not "
        f'served at {tiny_server.endpoint}; it serves: '
        f'{tiny_server.model_dir}')


def test_system_prompt_is_the_system_message_and_changes_live(ros_context):
    from rclpy.parameter import Parameter
    from serving_helpers import models_answer, RawServer
    answer = (200, 'application/json', json.dumps(
        {'choices': [{'message': {'role': 'assistant',
                                  'content': 'a robot arm'}}]}))
    with RawServer({'/v1/models': models_answer('m'),
                    '/v1/chat/completions': answer}) as server:
        captioner = remote_captioner(
            ros_context, f'http://127.0.0.1:{server.port}/v1',
            api_key_env='', system_prompt='あなたはロボットの目です。')
        driver = rclpy.create_node('driver', context=ros_context)
        pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
        frame = image_msg(90, width=64, height=48)

        def systems():
            return [json.loads(body)['messages'][0]
                    for method, path, _, body in list(server.requests)
                    if path == '/v1/chat/completions']

        def sent(predicate):
            return wait_until(lambda: pub.publish(frame) or any(
                predicate(m) for m in systems()), 20, interval=0.05)

        with spinning(ros_context, captioner, driver):
            assert sent(lambda m: m == {
                'role': 'system', 'content': 'あなたはロボットの目です。'}), \
                systems()
            result = captioner.set_parameters([Parameter(
                'system_prompt', value='Answer in English.')])
            assert result[0].successful
            assert sent(lambda m: m == {'role': 'system',
                                        'content': 'Answer in English.'})
            captioner.set_parameters([Parameter('system_prompt', value='')])
            assert sent(lambda m: m['role'] == 'user')
