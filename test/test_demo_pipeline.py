"""
Real captions on real topics: the demo model says what each frame shows.

A publisher node sends rendered scenes to a real CaptionerNode loaded with
the demo model through from_pretrained.  A red square sent as bgr8 but
read as rgb8 would be captioned blue, so these tests catch channel-order
bugs, stale frames and gates that drop the wrong captions.
"""

from camera_caption.frames.image_conversion import bgr_to_encoding
from camera_caption.frames.scenes import (canonical_scenes, caption_of,
                                          render_scene)
from camera_caption.nodes.camera_node import CameraNode
from camera_caption.nodes.captioner_node import CaptionerNode
import cv2
import numpy as np
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, params, spinning,
                         wait_until)
from sensor_msgs.msg import CompressedImage, Image

pytestmark = pytest.mark.ros
RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
RED_SQUARE = ('red', 'square', 'white')
BLUE_CIRCLE = ('blue', 'circle', 'black')


def captioner(context, model, **extra):
    values = {'model': model, 'device': 'cpu', 'rate_hz': 20.0,
              'max_new_tokens': 12, 'reliability': 'reliable'}
    values.update(extra)
    return CaptionerNode(context=context, parameter_overrides=params(**values)).autostart()


def image_msg(scene, encoding='rgb8', width=320, height=240):
    frame = render_scene(*scene, width, height)
    msg = Image(width=width, height=height, encoding=encoding,
                step=width * 3)
    msg.header.frame_id = 'scene'
    msg.data = bgr_to_encoding(frame, encoding).tobytes()
    return msg


def jpeg_msg(scene, width=320, height=240):
    ok, data = cv2.imencode('.jpg', render_scene(*scene, width, height))
    assert ok
    return CompressedImage(format='jpeg', data=data.tobytes())


@pytest.mark.parametrize('encoding', ['rgb8', 'bgr8'])
def test_a_red_square_is_said_to_be_red_and_square(ros_context,
                                                   demo_model_dir, encoding):
    node = captioner(ros_context, demo_model_dir)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        assert feed(pub, image_msg(RED_SQUARE, encoding),
                    lambda: node.worker.captions)
        assert captions.wait_for(1, 10)
    text = captions.items[0][1]
    assert 'red' in text.split() and 'square' in text.split(), text
    assert text == caption_of(*RED_SQUARE)


def test_a_red_square_over_jpeg_transport(ros_context, demo_model_dir):
    node = captioner(ros_context, demo_model_dir,
                     image_transport='compressed')
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(CompressedImage, '/image_raw/compressed',
                                  RELIABLE)
    captions = CaptionListener(driver)
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        assert feed(pub, jpeg_msg(RED_SQUARE), lambda: node.worker.captions)
        assert captions.wait_for(1, 10)
    assert captions.items[0][1] == caption_of(*RED_SQUARE)


def test_the_caption_follows_the_scene(ros_context, demo_model_dir):
    node = captioner(ros_context, demo_model_dir)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    sequence = [RED_SQUARE, BLUE_CIRCLE, ('yellow', 'triangle', 'black'),
                RED_SQUARE]
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for scene in sequence:
            assert feed(pub, image_msg(scene, 'bgr8'),
                        lambda: node.worker.captions)
        assert captions.wait_for(len(sequence), 10)
    assert [text for _, text in captions.items] == [
        caption_of(*scene) for scene in sequence]


def test_camera_test_pattern_captions_are_true(ros_context, demo_model_dir):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=320, height=240, fps=20.0))
    node = captioner(ros_context, demo_model_dir, rate_hz=5.0,
                     reliability='best_effort')
    probe = rclpy.create_node('probe', context=ros_context)
    captions = CaptionListener(probe)
    order = [caption_of(*scene) for scene in canonical_scenes()]
    with spinning(ros_context, camera, node, probe):
        # A new scene every 3 s (60 frames at 20 fps): see three of them.
        assert wait_until(lambda: len({t for _, t in captions.items}) >= 3,
                          40)
    said = [text for _, text in captions.items]
    assert all(text in order for text in said), said
    # Scenes come up in the pattern's order, none skipped, none stale.
    changes = [said[0]] + [b for a, b in zip(said, said[1:]) if a != b]
    start = order.index(changes[0])
    assert changes == [order[(start + i) % len(order)]
                       for i in range(len(changes))], said


def noisy(scene, seed, width=320, height=240, sigma=3.0):
    """Return the canonical scene with sensor noise (same scene, new pixels)."""
    frame = render_scene(*scene, width, height).astype(np.float32)
    frame += np.random.default_rng(seed).normal(0, sigma, frame.shape)
    frame = np.clip(np.round(frame), 0, 255).astype(np.uint8)
    msg = Image(width=width, height=height, encoding='bgr8', step=width * 3)
    msg.data = frame.tobytes()
    return msg


def test_scene_change_gate_on_real_captions(ros_context, demo_model_dir):
    node = captioner(ros_context, demo_model_dir, scene_change_threshold=5.0)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)

    def handled():                            # captioned or held back
        return node.worker.captions + node.worker.gate_skipped

    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for seed in range(10):                # one scene, sensor noise
            assert feed(pub, noisy(RED_SQUARE, seed), handled)
        assert (node.worker.captions, node.worker.gate_skipped) == (1, 9)
        for seed in range(10, 15):            # a new scene, then static
            assert feed(pub, noisy(BLUE_CIRCLE, seed), handled)
        assert (node.worker.captions, node.worker.gate_skipped) == (2, 13)
        assert captions.wait_for(2, 10)
    assert [text for _, text in captions.items] == [
        caption_of(*RED_SQUARE), caption_of(*BLUE_CIRCLE)]


def test_dedupe_on_real_captions(ros_context, demo_model_dir):
    node = captioner(ros_context, demo_model_dir, dedupe=True)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    sequence = [RED_SQUARE] * 5 + [BLUE_CIRCLE] * 3 + [RED_SQUARE]
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for seed, scene in enumerate(sequence):  # every frame differs
            assert feed(pub, noisy(scene, seed),
                        lambda: node.worker.captions)
        assert captions.wait_for(3, 10)
        # Near-identical sentences count as repeats below similarity 1.
        node.set_parameters([rclpy.parameter.Parameter(
            'dedupe_similarity', value=0.8)])
        for seed, scene in enumerate([('red', 'circle', 'white'),
                                      ('blue', 'triangle', 'black')]):
            assert feed(pub, noisy(scene, 100 + seed),
                        lambda: node.worker.captions)
        assert captions.wait_for(4, 10)
    assert node.worker.captions == len(sequence) + 2
    assert [text for _, text in captions.items] == [
        caption_of(*RED_SQUARE), caption_of(*BLUE_CIRCLE),
        caption_of(*RED_SQUARE), caption_of('blue', 'triangle', 'black')]
    assert node.worker.dedupe_suppressed == len(sequence) + 2 - 4
