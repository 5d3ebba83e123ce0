"""
caption_logger node: log every caption, optionally keep a transcript.

Logs each ``std_msgs/String`` on ``caption``, and every ``caption_event``
(a watched word appeared) as a warning that stands out.  With
``transcript_path`` set it also writes every caption of ``caption_info``
(the captioner's JSON with the image stamp) to a JSON Lines, SubRip or
WebVTT file, flushed per caption.  Whoever publishes, what it logs and
writes is one line without control characters or escape sequences, at
most :data:`LINE_CHARS` characters.
"""

import json

from camera_caption.contract.parameters import CAPTION_LOGGER_PARAMETERS
from camera_caption.nodes.node_runner import exit_now, run_node
from camera_caption.nodes.ros_parameters import declare_parameters
from camera_caption.pipeline.transcript import TranscriptWriter
from camera_caption.utilities.safe_text import safe_text
from rclpy.node import Node
from std_msgs.msg import String

# Longest caption logged or written, in characters (a longer one is cut).
LINE_CHARS = 4096


class CaptionLoggerNode(Node):
    """Echo ``std_msgs/String`` captions through the node's logger."""

    node_name = 'caption_logger'   # also what start-up errors are logged as

    def __init__(self, **kwargs):
        self.transcript = None  # set first: destroy_node() runs on failure too
        super().__init__('caption_logger', **kwargs)
        self.params = declare_parameters(self, CAPTION_LOGGER_PARAMETERS)
        self.count = 0
        self.event_count = 0
        self.subscription = self.create_subscription(
            String, 'caption', self._on_caption, 10)
        self.event_subscription = self.create_subscription(
            String, 'caption_event', self._on_event, 10)
        self.transcript = None
        if self.params['transcript_path']:
            self.transcript = TranscriptWriter(
                self.params['transcript_path'],
                self.params['transcript_format'],
                self.params['subtitle_duration_s'])
            self.info_subscription = self.create_subscription(
                String, 'caption_info', self._on_info, 10)
            self.get_logger().info(
                f'writing {self.params["transcript_format"]} transcript to '
                f'{self.transcript.path}')
        self.get_logger().info(
            f'logging captions of {self.subscription.topic_name}')

    def _on_caption(self, msg):
        self.count += 1
        self.get_logger().info(f'caption: {safe_text(msg.data, LINE_CHARS)}')

    def _on_event(self, msg):
        try:
            event = json.loads(msg.data)
            line = safe_text(
                f'*** EVENT {str(event["pattern"])!r} on {event["camera"]}: '
                f'{event["caption"]} ***', LINE_CHARS)
        except (ValueError, KeyError, TypeError) as exc:
            self.get_logger().warning(
                f'caption_event not understood ({exc}): '
                f'{safe_text(msg.data, 80)!r}', throttle_duration_sec=5.0)
            return
        self.event_count += 1
        self.get_logger().warning(line)

    def _on_info(self, msg):
        try:
            info = json.loads(msg.data)
            clip = None
            if 'clip_first_stamp' in info:
                clip = (float(info['clip_first_stamp']),
                        float(info['clip_last_stamp']))
            self.transcript.write(
                float(info['stamp']), safe_text(info['caption'], LINE_CHARS),
                safe_text(info.get('image_topic', ''), 256), clip)
        except (ValueError, KeyError, TypeError) as exc:
            self.get_logger().warning(
                f'caption_info not understood ({exc}): '
                f'{safe_text(msg.data, 80)!r}', throttle_duration_sec=5.0)

    def destroy_node(self):
        """Close the transcript."""
        if self.transcript is not None:
            self.transcript.close()
        return super().destroy_node()


def main(args=None):
    """Entry point of ``ros2 run camera_caption caption_logger``."""
    exit_now(run_node(CaptionLoggerNode, args))


if __name__ == '__main__':
    main()
