"""The camera node on real peers: an ffmpeg HTTP stream, files, JPEG out."""

import os
import shutil
import socket
import subprocess
import time

from camera_caption.camera_node import CameraNode
import cv2
import numpy as np
import pytest
import rclpy
from ros_helpers import params, spinning, wait_until
from sensor_msgs.msg import CompressedImage, Image


def free_port():
    with socket.socket() as sock:
        sock.bind(('127.0.0.1', 0))
        return sock.getsockname()[1]


def serve_http_stream(port):
    """Serve a live MJPEG test stream on 127.0.0.1 with Debian's ffmpeg."""
    ffmpeg = shutil.which('ffmpeg')
    if not ffmpeg:
        message = 'the stream tests need ffmpeg (apt-get install ffmpeg)'
        if os.environ.get('CI'):              # .ci/run installs it
            pytest.fail(message)
        pytest.skip(message)
    return subprocess.Popen(
        [ffmpeg, '-hide_banner', '-loglevel', 'error', '-re', '-f', 'lavfi',
         '-i', 'testsrc=size=160x120:rate=15', '-c:v', 'mjpeg', '-q:v', '5',
         '-f', 'mpjpeg', '-listen', '1',
         f'http://127.0.0.1:{port}/cam.mjpg'],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


def listening(port):
    """
    Whether something listens on 127.0.0.1:``port``.

    Read from the kernel's table, without connecting: ffmpeg's
    ``-listen 1`` serves a single client.
    """
    wanted = f'0100007F:{port:04X}'
    with open('/proc/net/tcp') as table:
        rows = [line.split() for line in table.readlines()[1:]]
    return any(row[1] == wanted and row[3] == '0A' for row in rows)


def stop(proc):
    proc.kill()
    proc.wait(5)


class Counter:
    """Count messages on a topic."""

    def __init__(self, node, msg_type, topic):
        self.all = []
        node.create_subscription(msg_type, topic, self._on_msg, 10)

    @property
    def count(self):
        return len(self.all)

    @property
    def last(self):
        return self.all[-1] if self.all else None

    def _on_msg(self, msg):
        self.all.append(msg)


def test_http_stream_is_published_and_reconnected(ros_context, capfd):
    port = free_port()
    server = serve_http_stream(port)
    assert wait_until(lambda: listening(port), 10)
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source=f'http://127.0.0.1:{port}/cam.mjpg', width=0, height=0,
        stream_timeout_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=0.5))
    probe = rclpy.create_node('probe', context=ros_context)
    images = Counter(probe, Image, '/image_raw')
    try:
        with spinning(ros_context, camera, probe):
            assert wait_until(lambda: images.count >= 10, 15), images.count
            assert (images.last.width, images.last.height) == (160, 120)
            stop(server)                       # the stream goes away
            assert wait_until(lambda: camera.source.outages == 1, 10)
            during_outage = images.count
            time.sleep(1.0)                    # a window with no frames
            assert images.count == during_outage  # nothing while it is down
            server = serve_http_stream(port)   # ... and comes back
            assert wait_until(lambda: images.count >= during_outage + 10,
                              20), 'camera did not resume after reconnection'
            assert camera.source.reconnects >= 1
    finally:
        stop(server)
    log = capfd.readouterr().err
    assert log.count('reconnecting') == 1, log
    assert 'is back after' in log


def test_video_file_end_without_loop_stops_cleanly(ros_context, tmp_path,
                                                   capfd):
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 20.0,
                             (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source=path, loop=False, fps=0.0, width=0, height=0))
    assert camera.source.fps == pytest.approx(20.0)
    probe = rclpy.create_node('probe', context=ros_context)
    images = Counter(probe, Image, '/image_raw')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: not camera._thread.is_alive(), 10)
        assert wait_until(lambda: images.count == 6, 5), images.count
    assert camera.published == 6
    log = capfd.readouterr().err
    # Played once: it waited for a subscriber, so no frame went to nobody.
    assert 'waiting for a subscriber on /image_raw before playing' in log
    assert 'after 6 frames (loop is false): publishing stopped' in log


def test_image_folder_source_publishes_each_image(ros_context, tmp_path):
    for i in range(3):
        cv2.imwrite(str(tmp_path / f'{i}.png'),
                    np.full((10, 12, 3), 50 * i, np.uint8))
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source=str(tmp_path), fps=20.0, loop=False, width=0, height=0,
        encoding='bgr8'))
    probe = rclpy.create_node('probe', context=ros_context)
    images = Counter(probe, Image, '/image_raw')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: images.count == 3, 10), images.count
        assert wait_until(lambda: not camera._thread.is_alive(), 5)
    assert images.count == 3
    assert [msg.data[0] for msg in images.all] == [0, 50, 100]
    assert images.last.encoding == 'bgr8' and images.last.width == 12


def test_jpeg_compressed_output(ros_context):
    camera = CameraNode(context=ros_context, parameter_overrides=params(
        source='test_pattern', width=160, height=120, fps=30.0,
        publish_compressed=True, jpeg_quality=70))
    probe = rclpy.create_node('probe', context=ros_context)
    jpegs = Counter(probe, CompressedImage, '/image_raw/compressed')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: jpegs.count >= 3, 10)
    msg = jpegs.last
    assert msg.format == 'rgb8; jpeg compressed bgr8'
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8),
                           cv2.IMREAD_COLOR)
    assert decoded.shape == (120, 160, 3)
    assert msg.header.frame_id == 'camera' and msg.header.stamp.sec > 0


def test_missing_stream_at_start_is_a_clear_error(ros_context):
    from camera_caption.frame_sources import SourceError
    port = free_port()
    with pytest.raises(SourceError, match=f'127.0.0.1:{port}'):
        CameraNode(context=ros_context, parameter_overrides=params(
            source=f'http://127.0.0.1:{port}/none.mjpg',
            stream_timeout_s=1.0))
