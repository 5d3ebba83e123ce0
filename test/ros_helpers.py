"""Helpers for tests that drive real rclpy nodes on real topics."""

import contextlib
import threading
import time

from rclpy.executors import SingleThreadedExecutor
from rclpy.parameter import Parameter
from std_msgs.msg import String


@contextlib.contextmanager
def spinning(context, *nodes):
    """Spin ``nodes`` on a background executor; destroy them afterwards."""
    executor = SingleThreadedExecutor(context=context)
    for node in nodes:
        executor.add_node(node)
    thread = threading.Thread(target=executor.spin, daemon=True)
    thread.start()
    try:
        yield executor
    finally:
        executor.shutdown(timeout_sec=2.0)
        thread.join(2.0)
        for node in nodes:
            node.destroy_node()


def params(**values):
    """Parameter overrides for a node constructor."""
    return [Parameter(name, value=value) for name, value in values.items()]


class CaptionListener:
    """Collect (arrival time, text) of every String on a topic."""

    def __init__(self, node, topic='/caption'):
        self.items = []
        self._lock = threading.Lock()
        node.create_subscription(String, topic, self._on_msg, 10)

    def _on_msg(self, msg):
        with self._lock:
            self.items.append((time.monotonic(), msg.data))

    def wait_for(self, count, timeout):
        """Wait until ``count`` messages arrived; return whether they did."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self._lock:
                if len(self.items) >= count:
                    return True
            time.sleep(0.02)
        return False

    def count_between(self, start, end):
        """Messages that arrived in [start, end) (monotonic seconds)."""
        with self._lock:
            return sum(1 for t, _ in self.items if start <= t < end)


def feed(publisher, msg, count, timeout=10.0, resend=2.0):
    """
    Publish ``msg`` until ``count()`` grows; return whether it did.

    ``count`` reads how far the receiver got (frames taken, captions
    made, ...), so the next message is only sent once this one was handled.
    The message is sent again after ``resend`` seconds in case a newer one
    from another publisher replaced it in a depth-1 queue.
    """
    before = count()
    deadline = time.monotonic() + timeout
    while True:
        publisher.publish(msg)
        if wait_until(lambda: count() > before, resend):
            return True
        if time.monotonic() > deadline:
            return False


def wait_until(predicate, timeout, interval=0.02):
    """Poll ``predicate`` until true or ``timeout``; return its last value."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value or time.monotonic() > deadline:
            return value
        time.sleep(interval)


def image_msg(value=128, encoding='rgb8', width=32, height=24, noise=0,
              seed=0, frame_id=''):
    """
    Build a ``sensor_msgs/Image`` of one grey level, optionally noisy.

    ``value`` 0-255 fills every channel; ``noise`` adds uniform integer
    noise of that amplitude (seeded), as a real sensor would.
    """
    import numpy as np
    from sensor_msgs.msg import Image
    pixels = np.full((height, width, 3), value, np.int16)
    if noise:
        pixels += np.random.default_rng(seed).integers(
            -noise, noise + 1, pixels.shape, dtype=np.int16)
    msg = Image(width=width, height=height, encoding=encoding,
                step=width * 3)
    msg.header.frame_id = frame_id
    msg.data = np.clip(pixels, 0, 255).astype(np.uint8).tobytes()
    return msg


def make_captioner(context, backend, **parameters):
    """
    Make a captioner node around an already loaded ``backend``.

    For tests where loading a model is not what they test: defaults are a
    fast rate, short captions and a reliable subscription.
    """
    from camera_caption.nodes.captioner_node import CaptionerNode
    values = {'model': backend.describe().split(' ')[0], 'device': 'cpu',
              'rate_hz': 10.0, 'max_new_tokens': 3, 'reliability': 'reliable'}
    values.update(parameters)
    return CaptionerNode(backend=backend, context=context,
                         parameter_overrides=params(**values)).autostart()
