"""
camera node: publish frames from a device, file, folder or test pattern.

Publishes ``sensor_msgs/Image`` on ``image_raw`` with the capture time in
``header.stamp`` and the ``frame_id`` parameter.  Frames are read on a
capture thread (devices block there, files and the pattern are paced to
``fps``), so the executor stays free.
"""

import array
import sys
import threading
import time

from camera_caption.frame_sources import open_source, SourceError
from camera_caption.image_conversion import bgr_to_encoding
from camera_caption.node_runner import run_node
from camera_caption.parameters import CAMERA_PARAMETERS
from camera_caption.ros_parameters import declare_parameters, image_qos
from rclpy.node import Node
from sensor_msgs.msg import Image


class CameraNode(Node):
    """Publish frames from the ``source`` parameter on ``image_raw``."""

    def __init__(self, **kwargs):
        super().__init__('camera', **kwargs)
        self.params = declare_parameters(self, CAMERA_PARAMETERS)
        p = self.params
        self.source = open_source(p['source'], p['width'], p['height'],
                                  p['fps'], p['loop'])
        self.publisher = self.create_publisher(
            Image, 'image_raw', image_qos(p['reliability']))
        self.published = 0
        self._stop = threading.Event()
        self.context.on_shutdown(self._stop.set)
        self._thread = threading.Thread(target=self._capture_loop,
                                        name='camera_capture', daemon=True)
        self.get_logger().info(
            f'publishing {self.source.describe()} as {p["encoding"]} on '
            f'{self.publisher.topic_name}')
        self._thread.start()

    def _capture_loop(self):
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
            except SourceError as exc:
                self.get_logger().error(str(exc))
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
            except Exception:  # noqa: B902 - context shut down meanwhile
                if self._stop.is_set() or not self.context.ok():
                    break
                raise

    def publish_frame(self, frame_bgr):
        """Publish one BGR frame, stamped now."""
        image = bgr_to_encoding(frame_bgr, self.params['encoding'])
        msg = Image()
        msg.header.stamp = self.get_clock().now().to_msg()
        msg.header.frame_id = self.params['frame_id']
        msg.height, msg.width = image.shape[:2]
        msg.encoding = self.params['encoding']
        msg.is_bigendian = 0
        msg.step = msg.width * 3
        data = array.array('B')
        data.frombytes(image.data)
        msg.data = data
        self.publisher.publish(msg)
        self.published += 1

    def destroy_node(self):
        """Stop the capture thread and release the source."""
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(2.0)
        self.source.close()
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run camera_caption camera_node``."""
    sys.exit(run_node(CameraNode, args))


if __name__ == '__main__':
    main()
