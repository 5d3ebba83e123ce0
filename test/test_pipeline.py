"""camera -> captioner -> /caption -> caption_logger on real rclpy nodes."""

import json
import time

from camera_caption.nodes.camera_node import CameraNode
from camera_caption.nodes.caption_logger_node import CaptionLoggerNode
from camera_caption.nodes.captioner_node import CaptionerNode
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, params, spinning,
                         wait_until)
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


def test_camera_to_caption_at_the_throttled_rate(ros_context,
                                                 tiny_model_dir):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=320, height=240, fps=30.0))
    captioner = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=tiny_model_dir, device='cpu', rate_hz=2.0,
        max_new_tokens=6)).autostart()
    logger = CaptionLoggerNode(context=ros_context)
    probe = rclpy.create_node('probe', context=ros_context)
    captions = CaptionListener(probe)
    infos = CaptionListener(probe, '/caption_info')
    with spinning(ros_context, camera, captioner, logger, probe):
        assert captions.wait_for(1, timeout=30), 'no caption within 30 s'
        assert wait_until(lambda: logger.count >= 1, 5)
        # The graph rqt_graph draws: /camera -> /image_raw -> /captioner
        # -> /caption -> /caption_logger.
        pubs = dict(probe.get_publisher_names_and_types_by_node(
            'camera', '/'))
        assert 'sensor_msgs/msg/Image' in pubs['/image_raw']
        assert wait_until(lambda: 'captioner' in [
            info.node_name for info in
            probe.get_subscriptions_info_by_topic('/image_raw')], 5)
        pubs = dict(probe.get_publisher_names_and_types_by_node(
            'captioner', '/'))
        assert 'std_msgs/msg/String' in pubs['/caption']
        subs = dict(probe.get_subscriber_names_and_types_by_node(
            'caption_logger', '/'))
        assert '/caption' in subs

        # A 30 fps flood with rate_hz 2 gives ~2 captions/s, no backlog.
        # Rates from the node's own clock: the capture stamps of the frames
        # it captioned (caption_info), never faster than rate_hz; slower
        # only by what a busy 2-core machine costs.
        start = len(infos.items)
        assert infos.wait_for(start + 11, 30)
        stamps = [json.loads(text)['stamp']
                  for _, text in infos.items[start:start + 11]]
        rate = 10 / (stamps[-1] - stamps[0])
        assert 1.0 <= rate <= 2.2, (rate, stamps)
        # 30 frames a second came in, all but the newest were dropped.
        assert camera.published > 100
        # The newest frame is captioned: latency stays well under a second.
        assert captioner.last_latency < 1.0, captioner.last_latency
        end = time.monotonic()
    assert logger.count >= captions.count_between(0, end) - 2


def test_own_driver_reliable_topic_and_bad_frames(ros_context,
                                                  tiny_model_dir, capfd):
    captioner = CaptionerNode(
        context=ros_context,
        cli_args=['--ros-args', '-r', 'image_raw:=/cam/color/image_raw'],
        parameter_overrides=params(model=tiny_model_dir, device='cpu',
                                   rate_hz=20.0, reliability='reliable',
                                   max_new_tokens=4)).autostart()
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(
        Image, '/cam/color/image_raw',
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    captions = CaptionListener(driver)
    with spinning(ros_context, captioner, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        bad = image_msg(10, encoding='bgr8', frame_id='own_driver')
        bad.encoding = 'no_such_encoding'
        for _ in range(20):                    # each one handled in turn
            assert feed(pub, bad, lambda: captioner.skipped_frames)
        assert captioner.skipped_frames == 20
        assert captioner.worker.slots.received == 0
        assert captioner.worker.captions == 0  # bad frames are skipped
        assert captions.items == []
        good = image_msg(40, encoding='bgr8', frame_id='own_driver')
        assert feed(pub, good, lambda: captioner.worker.captions)
        assert captions.wait_for(1, timeout=10), 'good frame not captioned'
    # One warning line for 20 bad frames, naming the field and value.
    warnings = [line for line in capfd.readouterr().err.splitlines()
                if 'frame skipped' in line]
    assert len(warnings) == 1, warnings
    assert "'encoding'='no_such_encoding'" in warnings[0]
