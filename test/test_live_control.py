"""Live control on real nodes: enable, diagnostics, gates, transcripts."""

import json
import time

from camera_caption.nodes.camera_node import CameraNode
from camera_caption.nodes.caption_logger_node import CaptionLoggerNode
from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         params, spinning, wait_until)
from sensor_msgs.msg import Image
from std_srvs.srv import SetBool

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class Diagnostics:
    """Latest DiagnosticStatus per node name."""

    def __init__(self, node):
        self.latest = {}
        node.create_subscription(DiagnosticArray, '/diagnostics',
                                 self._on_msg, 10)

    def _on_msg(self, msg):
        for status in msg.status:
            self.latest[status.name] = status

    def values(self, name):
        status = self.latest.get(name)
        return None if status is None else {
            kv.key: kv.value for kv in status.values}


def test_enable_service_pauses_without_inference_and_resumes(
        ros_context, tiny_backend):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=160, height=120, fps=20.0))
    node = make_captioner(ros_context, tiny_backend,
                          reliability='best_effort')
    client_node = rclpy.create_node('client', context=ros_context)
    captions = CaptionListener(client_node)
    client = client_node.create_client(SetBool, '/captioner/enable')
    with spinning(ros_context, camera, node, client_node):
        assert captions.wait_for(3, 20)
        assert client.wait_for_service(timeout_sec=5)
        future = client.call_async(SetBool.Request(data=False))
        assert wait_until(future.done, 5)
        assert future.result().success
        assert future.result().message == 'captioning paused'
        assert wait_until(lambda: node.worker.paused, 5)
        inferences = node.worker.captions + node.worker.errors
        received = len(captions.items)
        time.sleep(1.5)                       # a window with no inference
        assert node.worker.captions + node.worker.errors == inferences
        assert len(captions.items) == received
        assert node.params['enable'] is False
        future = client.call_async(SetBool.Request(data=True))
        assert wait_until(future.done, 5) and future.result().success
        assert captions.wait_for(received + 3, 10)


def test_diagnostics_report_rates_latency_and_model(ros_context,
                                                    tiny_backend,
                                                    tiny_model_dir):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=160, height=120, fps=20.0))
    node = make_captioner(ros_context, tiny_backend, rate_hz=4.0,
                          reliability='best_effort')
    probe = rclpy.create_node('probe', context=ros_context)
    diag = Diagnostics(probe)
    with spinning(ros_context, camera, node, probe):
        # Rates are taken over the last seconds: wait until 16 captions
        # (about 4 s) are reported.
        assert wait_until(lambda: int((diag.values('/captioner') or {}).get(
            'captions_total', 0)) >= 16, 20)
        cap = diag.values('/captioner')
        cam = diag.values('/camera')
        status = diag.latest['/captioner']
    assert status.level == DiagnosticStatus.OK, status.message
    # The nodes' own rates; lower bounds leave what a busy 2-core machine
    # costs (the upper ones are the throttles' and the camera's promise).
    assert 10 <= float(cam['frames_per_s']) <= 25, cam
    assert cam['size'] == '160x120' and cam['source'] == 'test_pattern'
    assert float(cam['publish_ms_mean']) > 0
    assert 10 <= float(cap['frames_in_per_s']) <= 25, cap
    assert 2.0 <= float(cap['captions_per_s']) <= 5.0, cap
    assert int(cap['frames_dropped_by_throttle']) >= 8, cap
    assert 0 < float(cap['latency_mean_s']) < 1.0
    assert 0 < float(cap['inference_mean_s']) < float(cap['latency_mean_s'])
    assert cap['model'] == tiny_model_dir and cap['device'] == 'cpu'
    assert cap['dtype'] == 'float32' and cap['gpu_memory_mb'] == ''
    assert cap['enabled'] == 'True'


def test_diagnostics_warn_without_frames_and_on_latency(ros_context,
                                                        tiny_backend):
    node = make_captioner(ros_context, tiny_backend)
    driver = rclpy.create_node('driver', context=ros_context)
    diag = Diagnostics(driver)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: '/captioner' in diag.latest, 5)
        status = diag.latest['/captioner']
        assert status.level == DiagnosticStatus.WARN
        assert status.message == 'no frames arriving on /image_raw'
        node.set_parameters([rclpy.parameter.Parameter(
            'latency_warn_s', value=1e-6)])
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pub.publish(image_msg(int(time.monotonic() * 50) % 256))
            status = diag.latest['/captioner']
            if 'exceeds latency_warn_s' in status.message:
                break
            time.sleep(0.05)
        assert status.level == DiagnosticStatus.WARN
        assert 'exceeds latency_warn_s' in status.message


def test_scene_change_gate_skips_static_scenes(ros_context, tiny_backend):
    node = make_captioner(ros_context, tiny_backend, rate_hz=20.0,
                          scene_change_threshold=5.0)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 5)

        def handled():                        # captioned or held back
            return node.worker.captions + node.worker.gate_skipped

        for i in range(30):                   # static, with sensor noise
            assert feed(pub, image_msg(90, noise=3, seed=i), handled)
        assert node.worker.captions == 1
        assert node.worker.gate_skipped == 29
        for i in range(1, 11):                # a changing scene
            assert feed(pub, image_msg((90 + i * 60) % 256), handled)
        assert node.worker.captions == 11
        assert captions.wait_for(11, 5)
        assert len(captions.items) == 11


def test_dedupe_suppresses_repeated_captions(ros_context, tiny_backend):
    node = make_captioner(ros_context, tiny_backend, rate_hz=20.0,
                          dedupe=True)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    with spinning(ros_context, node, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 5)
        for _ in range(20):                   # the same frame: same caption
            assert feed(pub, image_msg(123), lambda: node.worker.captions)
        assert captions.wait_for(1, 5)
    assert node.worker.captions >= 20
    assert len(captions.items) == 1
    assert node.worker.dedupe_suppressed == node.worker.captions - 1


def test_transcripts_from_a_live_pipeline(ros_context, tiny_backend,
                                          tmp_path):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=160, height=120, fps=20.0))
    node = make_captioner(ros_context, tiny_backend, rate_hz=5.0,
                          reliability='best_effort')
    loggers = {fmt: CaptionLoggerNode(
        context=ros_context, cli_args=['--ros-args', '-r',
                                       f'__node:=logger_{fmt}'],
        parameter_overrides=params(
            transcript_path=str(tmp_path / f'run.{fmt}'),
            transcript_format=fmt, subtitle_duration_s=1.5))
        for fmt in ('jsonl', 'srt', 'vtt')}
    with spinning(ros_context, camera, node, *loggers.values()):
        assert wait_until(
            lambda: all(lg.transcript.count >= 4 for lg in loggers.values()),
            20)
    records = [json.loads(line) for line in
               (tmp_path / 'run.jsonl').read_text().splitlines()]
    assert len(records) >= 4
    stamps = [r['stamp'] for r in records]
    assert stamps == sorted(stamps) and stamps[0] > 1e9
    assert all(r['topic'] == '/image_raw' and isinstance(r['caption'], str)
               for r in records)
    srt = (tmp_path / 'run.srt').read_text().split('\n\n')
    assert srt[0].startswith('1\n00:00:00,000 --> 00:00:01,500\n')
    second = srt[1].splitlines()
    assert second[0] == '2'
    start = second[1].split(' --> ')[0]
    assert start > '00:00:00,000' and start < '00:00:10,000'
    vtt = (tmp_path / 'run.vtt').read_text()
    assert vtt.startswith('WEBVTT\n\n00:00:00.000 --> 00:00:01.500\n')
