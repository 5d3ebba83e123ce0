"""
Japanese captions of clips, end to end on real topics and in transcripts.

A backend that answers in Japanese (it says how many frames its clip had)
stands in for a multilingual model: what is under test is the pipeline,
the clip ring and the UTF-8 path: /caption, caption_info (no escapes,
so ros2 topic echo stays readable), and JSONL, SubRip and WebVTT files.
"""

import json

from camera_caption.engine.backend import CaptionBackend
from camera_caption.nodes.caption_logger_node import CaptionLoggerNode
from camera_caption.pipeline.transcript import _clock
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         params, spinning, wait_until)
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

JAPANESE = '人が箱を持ち上げている'


class JapaneseBackend(CaptionBackend):
    """Caption every clip in Japanese; prepare marks the frames it saw."""

    def __init__(self):
        self.prepared = 0

    @classmethod
    def create(cls, params, max_batch, log):
        return cls()

    def prepare(self, frame):
        self.prepared += 1
        return ('prepared', int(frame[0, 0, 0]))

    def caption(self, frames, prompt, max_new_tokens, system_prompt=''):
        out = []
        for clip in frames:
            assert all(item[0] == 'prepared' for item in clip)
            out.append(f'{JAPANESE}（{len(clip)}枚、{prompt}）')
        return out

    def describe(self):
        return 'japanese-stand-in'


def logger(context, fmt, path):
    return CaptionLoggerNode(
        context=context,
        cli_args=['--ros-args', '-r', f'__node:=logger_{fmt}'],
        parameter_overrides=params(transcript_path=str(path),
                                   transcript_format=fmt,
                                   subtitle_duration_s=0.25))


def test_japanese_clip_captions_through_topics_and_transcripts(
        ros_context, tmp_path):
    prompt = 'この映像の状況を日本語で一文で説明してください'
    backend = JapaneseBackend()
    captioner = make_captioner(ros_context, backend, clip_frames=3,
                               clip_seconds=1.0, prompt=prompt)
    formats = ('jsonl', 'srt', 'vtt')
    files = {fmt: tmp_path / f'captions.{fmt}' for fmt in formats}
    loggers = [logger(ros_context, fmt, path) for fmt, path in files.items()]
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(
        Image, 'image_raw',
        QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE))
    captions = CaptionListener(driver, '/caption')
    infos = CaptionListener(driver, '/caption_info')
    with spinning(ros_context, captioner, driver, *loggers):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        for i in range(5):                          # 2 Hz: 100.0 .. 102.0
            msg = image_msg(10 * i, frame_id='cam')
            msg.header.stamp.sec = 100 + i // 2
            msg.header.stamp.nanosec = 500_000_000 * (i % 2)
            assert feed(pub, msg, lambda: captioner.worker.captions)
        assert wait_until(lambda: infos.items and json.loads(
            infos.items[-1][1])['stamp'] == 102.0, 10)
        count = len(infos.items)
        assert wait_until(lambda: all(
            path.exists() and path.read_text(encoding='utf-8').count(
                JAPANESE) >= count for path in files.values()), 10)
    expected = f'{JAPANESE}（3枚、{prompt}）'
    assert captions.items[-1][1] == expected
    raw = infos.items[-1][1]
    assert expected in raw and '\\u' not in raw     # readable in echo
    info = json.loads(raw)
    assert (info['clip_first_stamp'], info['clip_last_stamp'],
            info['clip_frames']) == (101.0, 102.0, 3)
    assert info['input'] == 'images'          # how: a clip as 3 images
    assert backend.prepared >= 5
    first = json.loads(infos.items[0][1])['clip_first_stamp']
    lines = files['jsonl'].read_text(encoding='utf-8').splitlines()
    last = json.loads(lines[-1])
    assert last['caption'] == expected
    assert (last['clip_first_stamp'], last['clip_last_stamp']) == (
        101.0, 102.0)
    assert expected in lines[-1]                     # UTF-8, not escaped
    for fmt, sep in (('srt', ','), ('vtt', '.')):
        text = files[fmt].read_text(encoding='utf-8')
        block = text.strip().split('\n\n')[-1].splitlines()
        # The subtitle spans the clip: its first to its last image stamp.
        assert block[-2:] == [
            f'{_clock(101.0 - first, sep)} --> {_clock(102.0 - first, sep)}',
            expected], (fmt, block)
    assert files['vtt'].read_text(encoding='utf-8').startswith('WEBVTT')
