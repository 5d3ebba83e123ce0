"""caption_logger node: log every caption received on ``caption``."""

import sys

from camera_caption.node_runner import run_node
from rclpy.node import Node
from std_msgs.msg import String


class CaptionLoggerNode(Node):
    """Echo ``std_msgs/String`` captions through the node's logger."""

    def __init__(self, **kwargs):
        super().__init__('caption_logger', **kwargs)
        self.count = 0
        self.subscription = self.create_subscription(
            String, 'caption', self._on_caption, 10)

    def _on_caption(self, msg):
        self.count += 1
        self.get_logger().info(f'caption: {msg.data}')


def main(args=None):
    """Entry point of ``ros2 run camera_caption caption_logger``."""
    sys.exit(run_node(CaptionLoggerNode, args))


if __name__ == '__main__':
    main()
