"""
camera node: publish frames from a device, file, folder, stream or pattern.

Publishes ``sensor_msgs/Image`` on ``image_raw`` and its
``sensor_msgs/CameraInfo`` on ``camera_info`` (from ``camera_info_url``, or
uncalibrated with the frame size), and when asked JPEG
``sensor_msgs/CompressedImage`` on ``image_raw/compressed``, with the
capture time in ``header.stamp`` and the ``frame_id`` parameter.  Frames
are read on a capture thread (devices block there, files and the pattern
are paced to ``fps``), so the executor stays free.  A device or stream that
stops delivering is reopened with backoff; a frame that cannot be read or
published is skipped with a rate-limited warning, and the next one goes
out.  A source that ends (a video file or image folder with ``loop`` false)
waits for its first subscriber before it plays, so that no frame of it is
published to nobody.
"""

import array
import threading
import time

from camera_caption.contract.parameters import CAMERA_PARAMETERS
from camera_caption.frames.camera_info import load_calibration, uncalibrated
from camera_caption.frames.frame_sources import (classify, FrameError,
                                                 open_source,
                                                 ReconnectingSource,
                                                 SourceError)
from camera_caption.frames.image_conversion import bgr_to_encoding
from camera_caption.nodes.node_runner import exit_now, run_node
from camera_caption.nodes.ros_diagnostics import DiagnosticsPublisher, OK, WARN
from camera_caption.nodes.ros_parameters import declare_parameters
from camera_caption.nodes.ros_qos import image_qos
from camera_caption.utilities.jpeg import encode_jpeg
from camera_caption.utilities.rate_window import RateWindow
from camera_caption.utilities.throttles import LogThrottle
from rclpy.duration import Duration
from rclpy.node import Node
from sensor_msgs.msg import CameraInfo, CompressedImage, Image


class CameraNode(Node):
    """Publish frames from the ``source`` parameter on ``image_raw``."""

    node_name = 'camera'   # also what start-up errors are logged as

    def __init__(self, **kwargs):
        # Set first: destroy_node() also runs when __init__ failed.
        self._stop = threading.Event()
        self._thread = None
        super().__init__('camera', **kwargs)
        self.params = declare_parameters(self, CAMERA_PARAMETERS)
        p = self.params
        self.calibration = (load_calibration(p['camera_info_url'])
                            if p['camera_info_url'] else None)
        self.source = self._open_source()
        qos = image_qos(p['reliability'])
        self.publisher = self.create_publisher(Image, 'image_raw', qos)
        self.info_publisher = self.create_publisher(CameraInfo,
                                                    'camera_info', qos)
        self._info = None            # CameraInfo of the current frame size
        self.compressed_publisher = None
        if p['publish_compressed']:
            self.compressed_publisher = self.create_publisher(
                CompressedImage, 'image_raw/compressed', qos)
        self.published = 0
        self.publish_seconds = 0.0   # total time spent in publish_frame
        self.frames_failed = 0       # frames skipped: unreadable, unpublished
        self.jpeg_failures = 0       # frames JPEG encoding refused
        self._warn = LogThrottle(5.0).bound(self.get_logger().warning)
        self.rate = RateWindow()
        self._cost_seen = (0, 0.0)
        self.diagnostics = DiagnosticsPublisher(self, str(p['source']),
                                                self._diagnostics)
        self.context.on_shutdown(self._stop.set)
        self._thread = threading.Thread(target=self._capture_loop,
                                        name='camera_capture', daemon=True)
        self.get_logger().info(
            f'publishing {self.source.describe()} as {p["encoding"]} on '
            f'{self.publisher.topic_name}'
            + (' and JPEG on ' + self.compressed_publisher.topic_name
               if self.compressed_publisher else ''))
        self._thread.start()

    def _open_source(self):
        p = self.params

        def opener():
            return open_source(p['source'], p['width'], p['height'], p['fps'],
                               p['loop'], p['stream_timeout_s'])

        source = opener()
        if getattr(source, 'negotiation', ''):
            self.get_logger().warning(source.negotiation)
        if classify(p['source'])[0] in ('device', 'stream'):
            source = ReconnectingSource(
                opener, source, p['reconnect_initial_s'],
                p['reconnect_max_s'], p['reconnect_attempts'],
                log=self.get_logger().warning, stop=self._stop)
        return source

    def _finite(self):
        """Whether the source ends (a file or folder played once)."""
        kind = classify(self.params['source'])[0]
        return kind in ('file', 'folder') and not self.params['loop']

    def _wait_for_subscriber(self):
        """Block until something subscribes; False when stopped first."""
        publishers = [self.publisher, self.compressed_publisher]

        def subscribed():
            return any(pub is not None and pub.get_subscription_count() > 0
                       for pub in publishers)

        if subscribed():
            return True
        self.get_logger().info(
            f'waiting for a subscriber on {self.publisher.topic_name} before '
            f"playing '{self.source.name}' (loop is false)")
        while not self._stop.wait(0.02):
            if subscribed():
                return True
        return False

    def _capture_loop(self):
        finite = self._finite()
        if finite and not self._wait_for_subscriber():
            return
        period = 1.0 / self.source.fps if self.source.fps > 0 else 0.0
        next_time = time.monotonic()
        while not self._stop.is_set():
            if not self.source.paced:
                delay = next_time - time.monotonic()
                if delay > 0 and self._stop.wait(delay):
                    break
                next_time = max(next_time + period, time.monotonic() - period)
            try:
                frame = self.source.read()
            except FrameError as exc:
                self._frame_failed('read', exc)
                continue
            except SourceError as exc:
                if not self._stop.is_set():
                    self.get_logger().error(f'{exc}: publishing stopped')
                break
            if frame is None:
                self.get_logger().info(
                    f"end of '{self.source.name}' after {self.published} "
                    'frames (loop is false): publishing stopped')
                break
            if self._stop.is_set():
                break
            try:
                self.publish_frame(frame)
                if finite and self.published == 1:
                    # A subscriber is matched, but it may not have matched
                    # us yet: with depth 1, a second frame sent now would
                    # replace the first before it is delivered.
                    self.publisher.wait_for_all_acked(Duration(seconds=1))
            except Exception as exc:  # noqa: B902 - the next frame may do
                if self._stop.is_set() or not self.context.ok():
                    break                  # shutting down meanwhile
                self._frame_failed('publish', exc)

    def _frame_failed(self, what, exc):
        """Count and report (rate-limited) a frame that was skipped."""
        self.frames_failed += 1
        self._warn((what, type(exc).__name__),
                   f'frame skipped, {what} failed: {type(exc).__name__}: '
                   f'{exc}')

    def publish_frame(self, frame_bgr):
        """Publish one BGR frame, stamped now."""
        start = time.perf_counter()
        stamp = self.get_clock().now().to_msg()
        encoding = self.params['encoding']
        image = bgr_to_encoding(frame_bgr, encoding)
        msg = Image()
        msg.header.stamp = stamp
        msg.header.frame_id = self.params['frame_id']
        msg.height, msg.width = image.shape[:2]
        msg.encoding = encoding
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        data = array.array('B')
        data.frombytes(image.data)
        msg.data = data
        self.publisher.publish(msg)
        self.info_publisher.publish(self._camera_info(msg))
        if self.compressed_publisher is not None:
            jpeg = self._compress(frame_bgr, msg.header)
            if jpeg is not None:
                self.compressed_publisher.publish(jpeg)
        self.published += 1
        self.rate.add()
        self.publish_seconds += time.perf_counter() - start

    def _diagnostics(self):
        count, seconds = self.published, self.publish_seconds
        frames = count - self._cost_seen[0]
        cost = (seconds - self._cost_seen[1]) / frames if frames else None
        self._cost_seen = (count, seconds)
        per_second = self.rate.per_second()
        values = {
            'source': self.source.name,
            'size': f'{self.source.width}x{self.source.height}',
            'encoding': self.params['encoding'],
            'fps_target': self.source.fps,
            'frames_per_s': per_second,
            'publish_ms_mean': None if cost is None else cost * 1000,
            'frames_total': count,
            'reconnects': getattr(self.source, 'reconnects', 0),
            'frames_failed': self.frames_failed,
            'jpeg_failures': self.jpeg_failures,
            'camera_info': ('calibrated' if self.calibration is not None
                            and self.calibration.calibrated
                            else 'uncalibrated'),
            'capturing': self._thread.is_alive(),
        }
        if per_second == 0:
            return WARN, 'camera delivers no frames', values
        return OK, 'publishing', values

    def _camera_info(self, image):
        """Return the CameraInfo for ``image``: its header and size."""
        size = (image.width, image.height)
        if self._info is None or (self._info.width,
                                  self._info.height) != size:
            calibration = self.calibration or uncalibrated(*size)
            if (calibration.width, calibration.height) != size:
                self.get_logger().warning(
                    f"camera_info_url '{self.params['camera_info_url']}' is "
                    f'a calibration for {calibration.width}x'
                    f'{calibration.height}, the frames are {size[0]}x'
                    f'{size[1]}: camera_info keeps the calibration as it is')
            info = CameraInfo()
            info.width, info.height = calibration.width, calibration.height
            info.distortion_model = calibration.distortion_model
            info.d = [float(v) for v in calibration.d]
            info.k = [float(v) for v in calibration.k]
            info.r = [float(v) for v in calibration.r]
            info.p = [float(v) for v in calibration.p]
            self._info = info
        self._info.header = image.header
        return self._info

    def _compress(self, frame_bgr, header):
        jpeg = encode_jpeg(frame_bgr, self.params['jpeg_quality'], rgb=False)
        if jpeg is None:
            self.jpeg_failures += 1
            self._warn(('jpeg',), f'JPEG encoding of a {frame_bgr.shape} '
                       'frame failed: image_raw/compressed skipped it')
            return None
        msg = CompressedImage()
        msg.header = header
        # image_transport's format string: "<encoding>; jpeg compressed bgr8"
        msg.format = f'{self.params["encoding"]}; jpeg compressed bgr8'
        data = array.array('B')
        data.frombytes(jpeg)
        msg.data = data
        return msg

    def destroy_node(self):
        """Stop the capture thread and release the source."""
        self._stop.set()
        thread = self._thread                    # None: __init__ failed
        if thread is not None and thread.is_alive():
            thread.join(2.0)
        if thread is not None and not thread.is_alive():
            # A read still blocked in a stream ends with the process.
            self.source.close()
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run camera_caption camera_node``."""
    exit_now(run_node(CameraNode, args))


if __name__ == '__main__':
    main()
