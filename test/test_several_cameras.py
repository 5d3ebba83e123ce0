"""Several cameras: one batched forward pass, a caption topic per camera."""

import time

from camera_caption.contract.parameters import (caption_topic_for,
                                                caption_topics,
                                                image_topic_list,
                                                ParameterError)
from camera_caption.nodes.captioner_node import CaptionerNode
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, image_msg, params, spinning,
                         wait_until)
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('image_topic,caption_topic', [
    ('image_raw', 'caption'), ('/cam1/image_raw', '/cam1/caption'),
    ('/front/color/image_raw', '/front/color/caption'),
    ('left', 'left/caption'), ('cam2/image_raw', 'cam2/caption')])
def test_caption_topic_naming(image_topic, caption_topic):
    assert caption_topic_for(image_topic) == caption_topic


def test_topic_list_and_collisions():
    assert image_topic_list('') == ['image_raw']
    assert image_topic_list(' /a/image_raw, /b/image_raw ') == [
        '/a/image_raw', '/b/image_raw']
    with pytest.raises(ParameterError, match="'image_topics'"):
        caption_topics(['/a/left_raw', '/a/right_raw'])


def test_two_cameras_are_captioned_in_one_batch(ros_context,
                                                tiny_model_dir):
    captioner = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=tiny_model_dir, device='cpu', rate_hz=5.0, max_new_tokens=4,
        reliability='reliable',
        image_topics='/cam1/image_raw,/cam2/image_raw')).autostart()
    assert captioner.backend.stats()['engine'] == 'fast'
    assert captioner.backend.model.decoder.max_batch == 2
    driver = rclpy.create_node('driver', context=ros_context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [driver.create_publisher(Image, f'/cam{i}/image_raw', qos)
            for i in (1, 2)]
    listeners = [CaptionListener(driver, f'/cam{i}/caption') for i in (1, 2)]
    with spinning(ros_context, captioner, driver):
        assert wait_until(lambda: all(p.get_subscription_count() == 1
                                      for p in pubs), 10)
        for i in range(25):
            for n, pub in enumerate(pubs):
                pub.publish(image_msg((i * 10 + n * 100) % 256))
            time.sleep(0.04)
        assert all(lst.wait_for(3, 10) for lst in listeners)
    worker = captioner.worker
    # Both cameras' frames went through together: fewer forward passes
    # than captions, and the last batch held both.
    assert worker.captions >= 2 * 3
    assert worker.batches <= worker.captions * 0.6, (worker.batches,
                                                     worker.captions)
    assert worker.last_batch_size == 2
