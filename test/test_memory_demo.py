"""
The caption memory as a user meets it: ``ros2 launch … memory:=true``.

The demo model captions the test pattern for a minute; then the README's
``ros2 run camera_caption recall "green triangle" --last`` line, run as
written, must name the time the green triangle was last on screen, which
this test saw for itself on ``/image_raw``.  Also: a memory the node may
only read is still recalled from, in a process of its own.
"""

import datetime
import json
import os
import re
import signal
import subprocess
import sys
import uuid

from camera_caption.frames.scenes import BACKGROUNDS, COLOURS, SHAPES
import numpy as np
import pytest
import rclpy
from ros2_cli import require_ros2, run, Running, stop_daemon
from ros_helpers import feed, spinning, wait_until
from sensor_msgs.msg import Image
from std_msgs.msg import String
from test_memory_store import without_write_override

pytestmark = pytest.mark.slow

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
LAUNCH = 'ros2 launch camera_caption caption.launch.py'


def scene_of(msg):
    """Return (colour, shape, background) that an rgb8 test frame shows."""
    frame = np.frombuffer(bytes(msg.data), np.uint8).reshape(
        msg.height, msg.width, 3).astype(np.int16)
    corner = frame[1, 1]
    background = min(BACKGROUNDS, key=lambda b: np.abs(
        corner - BACKGROUNDS[b][::-1]).sum())
    shape = np.abs(frame - corner).sum(axis=2) > 150
    ys, xs = np.nonzero(shape)
    if len(xs) < 50:
        return None
    colour = min(COLOURS, key=lambda c: np.abs(
        frame[shape].mean(axis=0) - COLOURS[c][::-1]).sum())
    fill = len(xs) / ((np.ptp(xs) + 1) * (np.ptp(ys) + 1))
    kind = 'square' if fill > 0.92 else 'circle' if fill > 0.66 \
        else 'triangle'
    assert kind in SHAPES
    return colour, kind, background


class SceneLog:
    """(stamp, scene) of every frame on /image_raw."""

    def __init__(self, node):
        self.seen = []
        node.create_subscription(Image, '/image_raw', self._on_image, 50)

    def _on_image(self, msg):
        stamp = msg.header.stamp.sec + msg.header.stamp.nanosec * 1e-9
        self.seen.append((stamp, scene_of(msg)))

    def span(self):
        return self.seen[-1][0] - self.seen[0][0] if self.seen else 0.0

    def last_run(self, scene):
        """(first, last) stamp of the last unbroken run of ``scene``."""
        run_, inside = None, False
        for stamp, seen in self.seen:
            if seen == scene:
                run_ = (run_[0] if inside else stamp, stamp)
            inside = seen == scene
        return run_


def readme_recall_line():
    with open(os.path.join(ROOT, 'README.md'), encoding='utf-8') as f:
        lines = [re.sub(r'\s{2,}#.*$', '', line).strip() for line in f
                 if line.startswith('ros2 run camera_caption recall')]
    assert lines, 'the README shows no recall line'
    return lines[0]


def local_time(text):
    return datetime.datetime.strptime(
        text, '%Y-%m-%d %H:%M:%S.%f').astimezone().timestamp()


def test_recall_names_when_the_green_triangle_was_last_seen(
        demo_model_dir, tmp_path, ros_context):
    require_ros2()
    home = tmp_path / 'ros_home'        # the memory's default place
    probe = rclpy.create_node('scene_probe', context=ros_context)
    scenes = SceneLog(probe)
    launch = Running(f'{LAUNCH} source:=test_pattern model:={demo_model_dir}'
                     ' fps:=20 width:=320 height:=240 rate_hz:=4 '
                     'memory:=true', ROS_HOME=str(home))
    triangle = ('green', 'triangle', 'white')   # scene 17: the second one
    try:
        with spinning(ros_context, probe):
            assert launch.wait_for(lambda x: 'storing the captions of '
                                   '/caption_info' in x, 120), launch.output
            # A minute of the pattern, ending past the last green triangle.
            assert wait_until(lambda: scenes.span() >= 60 and scenes.seen[
                -1][1] not in (None, triangle), 150), (scenes.span(),
                                                       launch.output)
        status, took, ended = launch.ctrl_c()
    finally:
        launch.kill()
        stop_daemon()
    assert status == 0 and len(ended) == 4, (status, ended, launch.output)
    assert 'ERROR' not in launch.output, launch.output
    first, last = scenes.last_run(triangle)
    assert scenes.last_run(('green', 'triangle', 'black'))[1] < first

    line = readme_recall_line()
    status, output = run(f'ROS_HOME={home} {line}')
    assert status == 0, output
    shown = re.search(r'last seen (\S+ \S+)  /image_raw  (.*)$', output, re.M)
    assert shown, output
    assert shown.group(2) == 'a green triangle on a white background'
    when = local_time(shown.group(1))
    assert first - 0.001 <= when <= last + 0.001, (first, when, last)
    status, output = run(f'ROS_HOME={home} {line} --json')
    (match,) = json.loads(output[output.index('['):])
    assert first <= match['last_stamp'] <= last
    assert first <= match['stamp'] <= match['last_stamp']
    assert match['repeats'] >= 2 and match['model'] == demo_model_dir


def test_a_memory_it_may_not_write_is_still_recalled(tmp_path, ros_context):
    from camera_caption.memory.sqlite_store import SQLiteStore
    from memory_helpers import record
    os.chmod(tmp_path, 0o755)
    path = tmp_path / 'memory.db'
    store = SQLiteStore(str(path))
    store.add(record('a red box', 1))
    store.close()
    os.chmod(path, 0o444)
    ns = f'/ro{uuid.uuid4().hex[:8]}'
    import camera_caption
    package = os.path.dirname(os.path.dirname(camera_caption.__file__))
    node = subprocess.Popen(
        without_write_override() + [
            sys.executable, '-m', 'camera_caption.nodes.caption_memory_node',
            '--ros-args', '-r', f'__ns:={ns}', '-p', f'memory_path:={path}'],
        env=dict(os.environ, PYTHONPATH=package, PYTHONUNBUFFERED='1'),
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    probe = rclpy.create_node('probe', context=ros_context)
    answers = []
    probe.create_subscription(String, f'{ns}/recall_result',
                              lambda m: answers.append(json.loads(m.data)),
                              10)
    ask = probe.create_publisher(String, f'{ns}/recall', 10)
    try:
        with spinning(ros_context, probe):
            assert feed(ask, String(data='red'), lambda: len(answers), 30)
        node.send_signal(signal.SIGINT)
        output, _ = node.communicate(timeout=10)
    finally:
        node.kill()
    assert node.returncode == 0, output
    assert [m['caption'] for m in answers[0]['matches']] == ['a red box']
    assert 'is read-only: recall answers from it, but new captions are not ' \
        'stored' in output
    assert os.stat(path).st_mode & 0o777 == 0o444


def test_an_unreachable_server_is_one_line_without_the_password():
    require_ros2()
    status, output = run(
        'ros2 run camera_caption caption_memory --ros-args -p '
        'memory_url:=postgresql://robot:s3cret@127.0.0.1:1/memory',
        timeout=60)
    lines = [x for x in output.splitlines()      # ros2 run adds its own
             if x.strip() and not x.startswith('[ros2run]')]
    assert status == 1, output
    assert len(lines) == 1, output
    assert "memory_url 'postgresql://robot@127.0.0.1:1/memory'" in lines[0]
    assert 's3cret' not in output
