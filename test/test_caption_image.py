"""caption_image on a real node: lazy, same size and header, compressed."""

import cv2
import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import feed, image_msg, make_captioner, spinning, wait_until
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def test_caption_image_is_drawn_only_for_subscribers(ros_context,
                                                     tiny_backend):
    node = make_captioner(ros_context, tiny_backend, rate_hz=20.0)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    source = image_msg(90, width=64, height=48, noise=20, frame_id='cam')
    source.header.stamp.sec, source.header.stamp.nanosec = 1234, 567891011
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 5)
        for _ in range(5):                      # nobody looks: no drawing
            assert feed(pub, source, lambda: node.worker.captions)
        assert node.service.overlay.rendered == 0
        images, jpegs = [], []
        driver.create_subscription(Image, '/caption_image', images.append,
                                   RELIABLE)
        driver.create_subscription(CompressedImage,
                                   '/caption_image/compressed',
                                   jpegs.append, RELIABLE)
        publishers = node.outputs['image_raw']
        assert wait_until(lambda: publishers['image'].get_subscription_count()
                          and publishers['image_compressed']
                          .get_subscription_count(), 5)
        assert feed(pub, source, lambda: len(images) and len(jpegs))
    assert node.service.overlay.rendered >= 1
    out = images[-1]
    assert out.header == source.header
    assert (out.width, out.height, out.encoding) == (64, 48, 'rgb8')
    pixels = np.frombuffer(out.data, np.uint8).reshape(48, 64, 3)
    before = np.frombuffer(source.data, np.uint8).reshape(48, 64, 3)
    rows = np.nonzero(np.any(pixels != before, axis=(1, 2)))[0]
    assert rows.size and rows.max() == 47 and rows.min() > 10
    jpeg = cv2.imdecode(np.frombuffer(jpegs[-1].data, np.uint8),
                        cv2.IMREAD_COLOR)
    assert jpeg.shape == (48, 64, 3) and jpegs[-1].header == source.header
