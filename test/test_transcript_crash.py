"""A transcript survives the logger being killed while captions arrive."""

import json
import os
import signal
import subprocess
import sys
import threading
import time

import pytest
import rclpy
from ros_helpers import spinning, wait_until
from std_msgs.msg import String

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def lines_of(path):
    return path.read_text().splitlines() if path.exists() else []


def captions_of(path):
    return [x for x in lines_of(path) if '"hello"' not in x]


def test_transcript_survives_sigkill_while_receiving(ros_context, tmp_path):
    path = tmp_path / 'crash.jsonl'
    env = dict(os.environ, PYTHONUNBUFFERED='1', PYTHONPATH=ROOT)
    proc = subprocess.Popen(
        [sys.executable, '-m', 'camera_caption.nodes.caption_logger_node',
         '--ros-args', '-p', f'transcript_path:={path}'], cwd=ROOT, env=env,
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    node = rclpy.create_node('sender', context=ros_context)
    pub = node.create_publisher(String, '/caption_info', 100)
    sending = threading.Event()
    sent = []

    def send():                 # captions keep coming until told to stop
        i = 0
        while sending.is_set():
            pub.publish(String(data=json.dumps(
                {'stamp': 1000.0 + i, 'caption': f'caption {i}',
                 'image_topic': '/image_raw'})))
            sent.append(i)
            i += 1
            time.sleep(0.02)    # pace: a 50 captions/s stream

    sender = threading.Thread(target=send, daemon=True)
    try:
        with spinning(ros_context, node):
            assert wait_until(lambda: pub.get_subscription_count() == 1, 30)
            # The publisher sees the logger before the logger sees the
            # publisher: say hello until the logger has written one line, so
            # that the stream below is heard from its first caption.
            hello = String(data=json.dumps(
                {'stamp': 1.0, 'caption': 'hello',
                 'image_topic': '/image_raw'}))

            def heard():
                pub.publish(hello)
                return bool(lines_of(path))
            assert wait_until(heard, 30)
            sending.set()
            sender.start()
            # Kill it in the middle of the stream, once it has written some.
            assert wait_until(lambda: len(captions_of(path)) >= 20, 20)
            proc.send_signal(signal.SIGKILL)     # no clean shutdown at all
            proc.wait(5)
            written_at_kill = len(sent)
            assert wait_until(lambda: len(sent) > written_at_kill + 10, 10)
    finally:
        sending.clear()
        if proc.poll() is None:
            proc.kill()
            proc.wait(5)
    sender.join(5)
    lines = lines_of(path)
    # Every line on disk is whole, and they are the first captions sent, in
    # order, with none missing: what was written before the kill is safe.
    records = [json.loads(line) for line in lines]
    while records and records[0]['caption'] == 'hello':
        records.pop(0)
    assert len(records) >= 20
    assert [r['caption'] for r in records] == [
        f'caption {i}' for i in range(len(records))]
    assert len(records) < len(sent)          # the stream went on past it
