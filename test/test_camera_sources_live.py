"""The camera node on real peers: an ffmpeg HTTP stream, files, JPEG out."""

import os
import shutil
import socket
import subprocess
import time
import uuid

from camera_caption.nodes.camera_node import CameraNode
import cv2
import numpy as np
import pytest
import rclpy
from ros_helpers import params, spinning, wait_until
from sensor_msgs.msg import CameraInfo, CompressedImage, Image

pytestmark = pytest.mark.ros


@pytest.fixture
def ns():
    """
    Give one test a namespace of its own for its topics.

    A node of an earlier test, destroyed but not yet forgotten by DDS
    discovery, would otherwise count as a subscriber on ``/image_raw``.
    """
    return f'/t{uuid.uuid4().hex[:12]}'


def camera_node(context, ns, **values):
    """Start a camera node in namespace ``ns`` with parameters ``values``."""
    return CameraNode(context=context, namespace=ns,
                      parameter_overrides=params(**values))


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


def test_http_stream_is_published_and_reconnected(ros_context, ns, capfd):
    port = free_port()
    server = serve_http_stream(port)
    assert wait_until(lambda: listening(port), 10)
    camera = camera_node(
        ros_context, ns,
        source=f'http://127.0.0.1:{port}/cam.mjpg', width=0, height=0,
        stream_timeout_s=1.0, reconnect_initial_s=0.2, reconnect_max_s=0.5)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
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


def test_video_file_end_without_loop_stops_cleanly(ros_context, ns, tmp_path,
                                                   capfd):
    path = str(tmp_path / 'clip.avi')
    writer = cv2.VideoWriter(path, cv2.VideoWriter_fourcc(*'MJPG'), 20.0,
                             (64, 48))
    for i in range(6):
        writer.write(np.full((48, 64, 3), i * 30, np.uint8))
    writer.release()
    camera = camera_node(ros_context, ns, source=path, loop=False, fps=0.0,
                         width=0, height=0)
    assert camera.source.fps == pytest.approx(20.0)
    log = []

    def logged(text):
        log.append(capfd.readouterr().err)
        return text in ''.join(log)

    # Played once: it waits for a subscriber, so no frame goes to nobody.
    assert wait_until(lambda: logged(
        f'waiting for a subscriber on {ns}/image_raw before playing'), 10)
    assert camera.published == 0
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: not camera._thread.is_alive(), 10)
        assert wait_until(lambda: images.count == 6, 5), images.count
    assert camera.published == 6
    assert logged('after 6 frames (loop is false): publishing stopped')


def folder_camera(context, ns, folder, **extra):
    """Write 0.png, 1.png, 2.png (grey 0, 50, 100); play them as bgr8."""
    for i in range(3):
        cv2.imwrite(str(folder / f'{i}.png'),
                    np.full((10, 12, 3), 50 * i, np.uint8))
    return camera_node(context, ns, source=str(folder), width=0, height=0,
                       encoding='bgr8', **extra)


def test_image_folder_source_publishes_each_image(ros_context, ns, tmp_path):
    camera = folder_camera(ros_context, ns, tmp_path, fps=20.0, loop=False)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: images.count == 3, 10), images.count
        assert wait_until(lambda: not camera._thread.is_alive(), 5)
    assert images.count == 3
    assert [msg.data[0] for msg in images.all] == [0, 50, 100]
    assert images.last.encoding == 'bgr8' and images.last.width == 12


def test_jpeg_compressed_output(ros_context, ns):
    camera = camera_node(
        ros_context, ns,
        source='test_pattern', width=160, height=120, fps=30.0,
        publish_compressed=True, jpeg_quality=70)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    jpegs = Counter(probe, CompressedImage, 'image_raw/compressed')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: jpegs.count >= 3, 10)
    msg = jpegs.last
    assert msg.format == 'rgb8; jpeg compressed bgr8'
    decoded = cv2.imdecode(np.frombuffer(bytes(msg.data), np.uint8),
                           cv2.IMREAD_COLOR)
    assert decoded.shape == (120, 160, 3)
    assert msg.header.frame_id == 'camera' and msg.header.stamp.sec > 0


def test_missing_stream_at_start_is_a_clear_error(ros_context, ns):
    from camera_caption.frames.frame_sources import SourceError
    port = free_port()
    with pytest.raises(SourceError, match=f'127.0.0.1:{port}'):
        camera_node(
            ros_context, ns,
            source=f'http://127.0.0.1:{port}/none.mjpg',
            stream_timeout_s=1.0)


def test_camera_info_beside_each_image_uncalibrated_and_from_a_file(
        ros_context, ns, tmp_path):
    camera = camera_node(
        ros_context, ns,
        source='test_pattern', width=160, height=120, fps=30.0)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
    infos = Counter(probe, CameraInfo, 'camera_info')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: infos.count >= 3 and images.count >= 3, 10)
    info = infos.last
    assert (info.width, info.height) == (160, 120)
    assert list(info.k) == [0.0] * 9        # uncalibrated, as drivers do
    stamps = {(m.header.stamp.sec, m.header.stamp.nanosec)
              for m in images.all}
    assert (info.header.stamp.sec, info.header.stamp.nanosec) in stamps
    assert info.header.frame_id == 'camera'

    calibration = tmp_path / 'cam.yaml'
    calibration.write_text(
        'image_width: 160\nimage_height: 120\ncamera_name: cam\n'
        'camera_matrix:\n  rows: 3\n  cols: 3\n'
        '  data: [100.0, 0.0, 80.0, 0.0, 101.0, 60.0, 0.0, 0.0, 1.0]\n'
        'distortion_model: plumb_bob\n'
        'distortion_coefficients:\n  rows: 1\n  cols: 5\n'
        '  data: [0.1, -0.2, 0.0, 0.0, 0.0]\n')
    camera = camera_node(
        ros_context, ns,
        source='test_pattern', width=160, height=120, fps=30.0,
        camera_info_url=f'file://{calibration}')
    probe = rclpy.create_node('probe2', context=ros_context, namespace=ns)
    infos = Counter(probe, CameraInfo, 'camera_info')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: infos.count >= 2, 10)
    info = infos.last
    assert list(info.k) == [100.0, 0.0, 80.0, 0.0, 101.0, 60.0, 0.0, 0.0,
                            1.0]
    assert info.distortion_model == 'plumb_bob'
    assert list(info.d) == [0.1, -0.2, 0.0, 0.0, 0.0]
    assert list(info.p)[:3] == [100.0, 0.0, 80.0]


def test_bad_calibration_file_is_a_clear_start_error(ros_context, ns, tmp_path):
    from camera_caption.contract.parameters import ParameterError
    with pytest.raises(ParameterError, match='camera_info_url'):
        camera_node(
            ros_context, ns,
            source='test_pattern', camera_info_url=str(tmp_path / 'no.yaml'))
    bad = tmp_path / 'bad.yaml'
    bad.write_text('just: text\n')
    with pytest.raises(ParameterError, match="no 'camera_matrix'"):
        camera_node(
            ros_context, ns,
            source='test_pattern', camera_info_url=str(bad))


def test_a_corrupt_image_in_a_folder_is_skipped_and_the_rest_published(
        ros_context, ns, tmp_path, capfd):
    (tmp_path / '1b.png').write_bytes(b'\x89PNG\r\n\x1a\n not an image')
    camera = folder_camera(ros_context, ns, tmp_path, fps=50.0, loop=True)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
    with spinning(ros_context, camera, probe):
        # Three rounds of the folder: the corrupt file each time.
        assert wait_until(lambda: camera.frames_failed >= 3, 10)
        assert wait_until(lambda: images.count >= 6, 10)
        assert camera._thread.is_alive()
    warnings = [line for line in capfd.readouterr().err.splitlines()
                if 'frame skipped' in line]
    assert len(warnings) == 1, warnings       # rate-limited: one line
    assert '1b.png' in warnings[0] and 'could not be decoded' in warnings[0]
    assert {msg.data[0] for msg in images.all} == {0, 50, 100}


class OddFrames:
    """A camera that now and then delivers a frame with 4 channels."""

    def __init__(self, source):
        self.source, self.reads = source, 0
        for attr in ('name', 'paced', 'fps', 'width', 'height'):
            setattr(self, attr, getattr(source, attr))

    def read(self):
        self.reads += 1
        frame = self.source.read()
        if self.reads % 3 == 0:
            return np.dstack([frame, frame[:, :, :1]])  # BGRA-like
        return frame

    def close(self):
        self.source.close()


def test_capture_thread_survives_publish_errors(ros_context, ns, capfd):
    camera = camera_node(
        ros_context, ns,
        source='test_pattern', width=32, height=24, fps=60.0)
    camera.source = OddFrames(camera.source)
    probe = rclpy.create_node('probe', context=ros_context, namespace=ns)
    images = Counter(probe, Image, 'image_raw')
    with spinning(ros_context, camera, probe):
        assert wait_until(lambda: camera.frames_failed >= 5, 10)
        seen = images.count
        assert wait_until(lambda: images.count >= seen + 5, 10)
        assert camera._thread.is_alive()
    warnings = [line for line in capfd.readouterr().err.splitlines()
                if 'frame skipped, publish failed' in line]
    assert len(warnings) == 1, warnings
