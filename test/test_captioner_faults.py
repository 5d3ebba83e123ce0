"""The captioner keeps running through bad frames, failures and bad params."""

from camera_caption.nodes.camera_node import CameraNode
from input_catalogue import COMPRESSED_CASES, RAW_CASES
import numpy as np
import pytest
from rcl_interfaces.msg import Parameter as ParameterMsg
from rcl_interfaces.msg import ParameterType, ParameterValue
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         params, spinning, wait_until)
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=10, reliability=ReliabilityPolicy.RELIABLE)


def catalogue_msg(fields):
    msg = Image()
    msg.width, msg.height = fields['width'], fields['height']
    msg.encoding, msg.step = fields['encoding'], fields['step']
    msg.is_bigendian = fields['is_bigendian']
    msg.data = fields['data']
    return msg


def keys_of_warnings(text):
    return [line for line in text.splitlines() if 'frame skipped' in line]


def test_every_catalogued_bad_frame_is_skipped_and_the_next_captioned(
        ros_context, tiny_backend, capfd):
    captioner = make_captioner(ros_context, tiny_backend)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    bad = [c for c in RAW_CASES if isinstance(c[2], tuple)]
    with spinning(ros_context, captioner, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for i in range(3):                      # each problem three times
            for j, (_, fields, _) in enumerate(bad):
                pub.publish(catalogue_msg(fields))
                # depth 1 keeps only the newest: let each one be taken.
                n = i * len(bad) + j + 1
                assert wait_until(lambda: captioner.skipped_frames == n, 5)
        assert captions.items == []
        pub.publish(image_msg())
        assert captions.wait_for(1, 10), 'next good frame not captioned'
    warnings = keys_of_warnings(capfd.readouterr().err)
    # One line per distinct problem (field + reason), not per frame.
    distinct = {(c[2][1], c[0]) for c in bad}
    assert len(bad) >= 10
    assert len(warnings) < 3 * len(bad)
    assert len(warnings) <= len(distinct)
    for field in {c[2][1] for c in bad}:
        assert any(f"'{field}'=" in line for line in warnings), field


def test_compressed_transport_end_to_end_and_corrupt_jpeg(
        ros_context, tiny_backend, capfd):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=160, height=120, fps=10.0,
        publish_compressed=True))
    captioner = make_captioner(ros_context, tiny_backend,
                               image_transport='compressed', rate_hz=5.0)
    driver = rclpy.create_node('driver', context=ros_context)
    captions = CaptionListener(driver)
    corrupt = driver.create_publisher(CompressedImage,
                                      '/image_raw/compressed', RELIABLE)
    with spinning(ros_context, camera, captioner, driver):
        assert captions.wait_for(2, 30)
        refused = [CompressedImage(format=fmt, data=data)
                   for _, (fmt, data), expected in COMPRESSED_CASES
                   if isinstance(expected, tuple)]
        assert len(refused) >= 3
        for msg in refused:      # each one skipped, whatever the camera sends
            assert feed(corrupt, msg, lambda: captioner.skipped_frames)
        assert captioner.skipped_frames >= len(refused)
        before = len(captions.items)
        assert captions.wait_for(before + 2, 10)
    assert "'data'=" in capfd.readouterr().err


def test_a_failed_inference_is_logged_and_the_next_frame_captioned(
        ros_context, tiny_backend, capfd):
    captioner = make_captioner(ros_context, tiny_backend)
    failures = []

    def fail_once(module, args):
        if not failures:
            failures.append(1)
            raise RuntimeError('CUDA out of memory (injected)')

    hook = captioner.backend.model.model.vision_model.register_forward_pre_hook(
        fail_once)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    try:
        with spinning(ros_context, captioner, driver):
            assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
            pub.publish(image_msg(10))
            assert wait_until(lambda: captioner.worker.errors == 1, 10)
            pub.publish(image_msg(200))
            assert captions.wait_for(1, 10)
    finally:
        hook.remove()
    assert 'caption failed, batch of 1 frame(s) skipped: RuntimeError: ' \
        'CUDA out of memory (injected)' in capfd.readouterr().err


def set_parameter(node, target, name, value):
    client = node.create_client(SetParameters, f'/{target}/set_parameters')
    assert client.wait_for_service(timeout_sec=10)
    if isinstance(value, float):
        pv = ParameterValue(type=ParameterType.PARAMETER_DOUBLE,
                            double_value=value)
    elif isinstance(value, int):
        pv = ParameterValue(type=ParameterType.PARAMETER_INTEGER,
                            integer_value=value)
    else:
        pv = ParameterValue(type=ParameterType.PARAMETER_STRING,
                            string_value=value)
    future = client.call_async(SetParameters.Request(
        parameters=[ParameterMsg(name=name, value=pv)]))
    assert wait_until(future.done, 10)
    return future.result().results[0]


@pytest.mark.parametrize('name,value,reason', [
    ('rate_hz', -1.0, "parameter 'rate_hz' = -1.0 is invalid: must be > 0"),
    ('rate_hz', 0, "parameter 'rate_hz' = 0 is invalid: must be > 0"),
    ('max_new_tokens', -3, "parameter 'max_new_tokens' = -3 is invalid"),
    ('max_new_tokens', 'many', "'max_new_tokens' = 'many' is invalid"),
    ('model', 'other/model', 'read-only'),
    ('reliability', 'reliable', 'read-only'),
])
def test_param_set_with_bad_values_is_refused_with_a_reason(
        ros_context, tiny_backend, name, value, reason):
    captioner = make_captioner(ros_context, tiny_backend)
    client = rclpy.create_node('param_client', context=ros_context)
    with spinning(ros_context, captioner, client):
        result = set_parameter(client, 'captioner', name, value)
    assert not result.successful
    assert reason in result.reason
    assert captioner.params['rate_hz'] == 10.0     # unchanged


def test_param_set_live_values_take_effect(ros_context, tiny_backend):
    captioner = make_captioner(ros_context, tiny_backend)
    client = rclpy.create_node('param_client', context=ros_context)
    with spinning(ros_context, captioner, client):
        assert set_parameter(client, 'captioner', 'rate_hz', 3).successful
        assert set_parameter(client, 'captioner', 'prompt',
                             'Question: what? Answer:').successful
        assert set_parameter(client, 'captioner', 'max_new_tokens',
                             7).successful
    assert captioner.params['rate_hz'] == 3.0
    assert isinstance(captioner.params['rate_hz'], float)
    assert captioner.params['prompt'] == 'Question: what? Answer:'
    assert captioner.params['max_new_tokens'] == 7


def test_good_frames_still_flow_between_bad_ones(ros_context,
                                                 tiny_backend):
    captioner = make_captioner(ros_context, tiny_backend, rate_hz=20.0)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    bad = catalogue_msg(RAW_CASES[-3][1])
    with spinning(ros_context, captioner, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for i in range(20):      # each frame handled before the next
            assert feed(pub, bad if i % 2 else image_msg(
                int(np.uint8(i * 9))), lambda: captioner.worker.captions
                + captioner.skipped_frames)
        assert captioner.skipped_frames == 10
        assert captions.wait_for(10, 10), len(captions.items)
