"""Shared fixtures: DDS on this host, tiny and demo BLIP-2, rclpy contexts."""

import os

# Before rclpy is imported anywhere: stay on localhost and on a domain of
# our own so that parallel runs cannot cross-talk; never reach the hub.
from camera_caption.domain_lock import pick_domain_id

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
os.environ['ROS_DOMAIN_ID'] = str(pick_domain_id())
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    """
    Save a tiny random BLIP-2 once per session; return its directory.

    Weights are widened (weight_scale 4) so that captions vary with the
    image and some end early with EOS.
    """
    from camera_caption.tiny_blip2 import build_tiny_blip2
    return build_tiny_blip2(str(tmp_path_factory.mktemp('tiny_blip2')),
                            seed=0, weight_scale=4.0)


@pytest.fixture(scope='session')
def demo_model_dir():
    """
    Return the directory of the trained demo model (it tells the truth).

    Trained once per machine and recipe into the user's cache directory
    ($XDG_CACHE_HOME/camera_caption, about a minute), reused afterwards.
    """
    from camera_caption.demo_model import cached_demo_model
    return cached_demo_model(log=lambda line: print(f'demo model: {line}'))


@pytest.fixture(scope='session')
def tiny_engine(tiny_model_dir):
    """Load a CaptionEngine from the tiny model through from_pretrained."""
    from camera_caption.caption_engine import CaptionEngine
    return CaptionEngine.load(tiny_model_dir, device='cpu', dtype='float32',
                              max_new_tokens=8)


@pytest.fixture
def ros_context():
    """Give one test a fresh rclpy context, shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()
