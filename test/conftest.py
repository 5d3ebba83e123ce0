"""Shared fixtures: DDS on this host, tiny and demo BLIP-2, rclpy contexts."""

import os

# Before rclpy is imported anywhere: stay on localhost and on a domain of
# our own so that parallel runs cannot cross-talk; never reach the hub.
from camera_caption.tools.domain_lock import localhost_only, pick_domain_id

os.environ['ROS_AUTOMATIC_DISCOVERY_RANGE'] = 'LOCALHOST'
localhost_only()                 # and ROS_LOCALHOST_ONLY=1 on Humble
os.environ['ROS_DOMAIN_ID'] = str(pick_domain_id())
os.environ['HF_HUB_OFFLINE'] = '1'
os.environ['TRANSFORMERS_OFFLINE'] = '1'
os.environ.setdefault('TOKENIZERS_PARALLELISM', 'false')
# dtype auto = float32 on every CPU here, so that exact captions hold on
# machines with and without AVX512-BF16 (test_cpu_kernels asks for
# bfloat16 by name, and checks the flag reading itself).
os.environ['CAMERA_CAPTION_NATIVE_BF16'] = '0'

import pytest  # noqa: E402


@pytest.fixture(scope='session')
def tiny_model_dir(tmp_path_factory):
    """
    Save a tiny random BLIP-2 once per session; return its directory.

    Weights are widened (weight_scale 4) so that captions vary with the
    image and some end early with EOS.
    """
    from camera_caption.tools.tiny_blip2 import build_tiny_blip2
    return build_tiny_blip2(str(tmp_path_factory.mktemp('tiny_blip2')),
                            seed=0, weight_scale=4.0)


@pytest.fixture(scope='session')
def demo_model_dir():
    """
    Return the directory of the shipped demo model (it tells the truth).

    The package carries its weights: the same model on every machine, with
    nothing to train or cache first.
    """
    from camera_caption.tools.demo_model import shipped_model
    return shipped_model()


@pytest.fixture(scope='session')
def tiny_engine(tiny_model_dir):
    """Load the tiny model through from_pretrained, as its family through from_pretrained."""
    from camera_caption.engine.model_loading import load_caption_model
    return load_caption_model(tiny_model_dir, device='cpu', dtype='float32',
                              max_new_tokens=8)


@pytest.fixture
def ros_context():
    """Give one test a fresh rclpy context, shut down afterwards."""
    import rclpy
    context = rclpy.Context()
    rclpy.init(context=context)
    yield context
    context.try_shutdown()


@pytest.fixture(scope='session')
def tiny_backend(tiny_model_dir):
    """
    Load the local backend on the tiny model once, fast path on.

    Node tests where loading is not what they test inject it
    (``CaptionerNode(backend=...)``) instead of loading the model again.
    """
    import logging
    from camera_caption.engine.local_backend import LocalBackend
    return LocalBackend.create(
        {'model': tiny_model_dir, 'device': 'cpu', 'dtype': 'float32',
         'max_new_tokens': 8, 'cpu_threads': 0, 'engine': 'auto',
         'prompt': ''}, 1, logging.getLogger('tiny_backend'))


# Every test belongs to one tier (README, "Tests"): `-m unit` runs the
# plain-module tests in well under a minute.
TIERS = {
    'unit': 'plain modules and tiny models, no ROS graph',
    'ros': 'real rclpy nodes on real topics, in this process',
    'slow': 'separate processes: executables, two processes, soak',
    'linter': 'flake8 and pep257',
}


def pytest_configure(config):
    for name, text in TIERS.items():
        config.addinivalue_line('markers', f'{name}: {text}')
    for name in ('flake8', 'pep257'):
        config.addinivalue_line('markers', f'{name}: ament linter')


def pytest_collection_modifyitems(config, items):
    for item in items:
        tiers = {m.name for m in item.iter_markers() if m.name in TIERS}
        if len(tiers) != 1:
            raise pytest.UsageError(
                f'{item.nodeid} must have exactly one tier marker of '
                f'{", ".join(TIERS)} (has {sorted(tiers) or "none"})')
