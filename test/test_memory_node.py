"""The caption_memory node on real topics, over a real SQLite file."""

import json
import os
import uuid

from camera_caption.memory.recall_query import RecallQuery
from camera_caption.nodes.caption_memory_node import CaptionMemoryNode
from camera_caption.nodes.ros_diagnostics import WARN
import cv2
from diagnostic_msgs.msg import DiagnosticArray
from memory_helpers import info_json, T0
import numpy as np
import pytest
import rclpy
from ros_helpers import feed, params, spinning, wait_until
from sensor_msgs.msg import CompressedImage
from std_msgs.msg import String

pytestmark = pytest.mark.ros


@pytest.fixture
def ns():
    """Give one test a namespace of its own."""
    return f'/m{uuid.uuid4().hex[:10]}'


def memory_node(context, ns, path, **values):
    return CaptionMemoryNode(context=context, namespace=ns,
                             parameter_overrides=params(
                                 memory_path=str(path), **values))


class Asker:
    """Publish recall requests; collect recall_result answers."""

    def __init__(self, probe, ns):
        self.answers = []
        self.publisher = probe.create_publisher(String, f'{ns}/recall', 10)
        probe.create_subscription(String, f'{ns}/recall_result',
                                  lambda m: self.answers.append(
                                      json.loads(m.data)), 10)

    def ask(self, text):
        """Send ``text`` until it is answered; return the answer."""
        seen = len(self.answers)
        assert feed(self.publisher, String(data=text),
                    lambda: len(self.answers) - seen, 10)
        return self.answers[seen]


def send(publisher, infos, node):
    """Publish caption_info JSONs once the node listens; wait for them."""
    def handled():
        return sum(node.counts[k] for k in (
            'rows_added', 'repeats', 'bad_caption_info', 'kept_to_retry'))

    assert wait_until(lambda: publisher.get_subscription_count() > 0, 10)
    before = handled()
    for info in infos:
        publisher.publish(String(data=info))
    return wait_until(lambda: handled() >= before + len(infos), 10)


def test_every_camera_is_found_stored_and_recalled_on_the_topic(
        ros_context, ns, tmp_path):
    node = memory_node(ros_context, ns, tmp_path / 'memory.db')
    probe = rclpy.create_node('probe', context=ros_context)
    front = probe.create_publisher(String, f'{ns}/front/caption_info', 10)
    back = probe.create_publisher(String, f'{ns}/back/caption_info', 10)
    asker = Asker(probe, ns)
    with spinning(ros_context, node, probe):
        assert send(front, [
            info_json('a red box on the table', T0 + 1, f'{ns}/front/image_raw'),
            info_json('a red box on the table', T0 + 2, f'{ns}/front/image_raw'),
            info_json('台所に人がいる', T0 + 3, f'{ns}/front/image_raw')], node)
        assert send(back, [info_json('a red door', T0 + 4,
                                     f'{ns}/back/image_raw')], node)
        answer = asker.ask('red box')
        assert answer['count'] == 1
        (match,) = answer['matches']
        assert (match['caption'], match['repeats'], match['stamp'],
                match['last_stamp']) == ('a red box on the table', 2, T0 + 1,
                                         T0 + 2)
        assert match['camera'] == f'{ns}/front/image_raw'
        assert match['model'] == 'demo' and match['time'].startswith('2026')
        answer = asker.ask(json.dumps({'text': 'red', 'camera': f'{ns}/back'}))
        assert [m['caption'] for m in answer['matches']] == ['a red door']
        answer = asker.ask(json.dumps({'text': '人', 'last': True}))
        assert [m['caption'] for m in answer['matches']] == ['台所に人がいる']
    assert node.counts['rows_added'] == 3 and node.counts['repeats'] == 1


def test_bad_input_is_one_line_counted_and_nothing_stored_is_lost(
        ros_context, ns, tmp_path, capfd):
    node = memory_node(ros_context, ns, tmp_path / 'memory.db',
                       memory_topics=f'{ns}/caption_info')
    probe = rclpy.create_node('probe', context=ros_context)
    infos = probe.create_publisher(String, f'{ns}/caption_info', 10)
    asker = Asker(probe, ns)
    statuses = []
    probe.create_subscription(DiagnosticArray, '/diagnostics',
                              lambda m: statuses.extend(m.status), 10)
    with spinning(ros_context, node, probe):
        assert send(infos, [info_json('a blue cup', T0)], node)
        assert send(infos, ['{"stamp": "noon", "caption": "x"}'] * 5
                    + ['not json at all'], node)
        assert send(infos, [info_json('a blue cup and a plate', T0 + 1)],
                    node)
        bad = asker.ask('{"text": "cup"')
        assert 'not valid JSON' in bad['error']
        unknown = asker.ask('{"camera": "/nowhere"}')
        assert "'/nowhere' is unknown" in unknown['error']
        assert [m['caption'] for m in asker.ask('cup')['matches']] == [
            'a blue cup and a plate', 'a blue cup']

        def counted():
            mine = [s for s in statuses if s.name.endswith(
                f'{ns}/caption_memory')]
            values = {v.key: v.value for v in mine[-1].values} if mine \
                else {}
            return values.get('bad_caption_info') == '6' and values.get(
                'bad_recalls') == '2'
        assert wait_until(counted, 5)
    log = capfd.readouterr().err
    lines = [x for x in log.splitlines() if 'not stored' in x]
    assert len(lines) == 1, lines                      # rate-limited
    assert "caption_info field 'stamp' = 'noon' is not a finite number" \
        in lines[0] and f'{ns}/caption_info' in lines[0]
    assert sum('recall not answered' in x for x in log.splitlines()) == 1


def test_a_full_database_keeps_captions_until_it_takes_them_again(
        ros_context, ns, tmp_path, capfd):
    node = memory_node(ros_context, ns, tmp_path / 'memory.db',
                       memory_topics=f'{ns}/caption_info')
    probe = rclpy.create_node('probe', context=ros_context)
    infos = probe.create_publisher(String, f'{ns}/caption_info', 10)
    with spinning(ros_context, node, probe):
        assert send(infos, [info_json('first ' + 'w' * 3000, T0)], node)
        pages = node.store.db.execute('PRAGMA page_count').fetchone()[0]
        node.store.db.execute(f'PRAGMA max_page_count = {pages}')
        texts = [f'caption {i} ' + 'w' * 3000 for i in range(8)]
        assert send(infos, [info_json(t, T0 + 1 + i)
                            for i, t in enumerate(texts)], node)
        assert node.pending and node._diagnostics()[0] == WARN
        node.store.db.execute('PRAGMA max_page_count = 1000000')
        assert wait_until(lambda: not node.pending, 5)
        stored = node.store.recall(RecallQuery(limit=100, timeline=True))
    assert [m.caption for m in stored] == ['first ' + 'w' * 3000] + texts
    warnings = [x for x in capfd.readouterr().err.splitlines()
                if 'to write when it works again' in x]
    assert len(warnings) == 1 and 'full' in warnings[0], warnings


def test_a_corrupt_file_is_set_aside_whole_and_a_new_memory_begins(
        ros_context, ns, tmp_path, capfd):
    path = tmp_path / 'memory.db'
    path.write_bytes(b'\x00garbage' * 1000)
    node = memory_node(ros_context, ns, path,
                       memory_topics=f'{ns}/caption_info')
    probe = rclpy.create_node('probe', context=ros_context)
    infos = probe.create_publisher(String, f'{ns}/caption_info', 10)
    with spinning(ros_context, node, probe):
        assert send(infos, [info_json('a new start', T0)], node)
    (aside,) = [p for p in os.listdir(tmp_path) if '.corrupt-' in p]
    assert (tmp_path / aside).read_bytes() == b'\x00garbage' * 1000
    assert node.counts['rows_added'] == 1
    log = capfd.readouterr().err
    assert f'moved it to {tmp_path / aside} (nothing deleted)' in log


def jpeg_msg(stamp, width=640, height=480):
    msg = CompressedImage(format='rgb8; jpeg compressed bgr8')
    msg.header.stamp.sec = int(stamp)
    msg.header.stamp.nanosec = int(round((stamp - int(stamp)) * 1e9))
    frame = np.zeros((height, width, 3), np.uint8)
    frame[:, : width // 2] = (0, 0, 255)
    msg.data = cv2.imencode('.jpg', frame)[1].tobytes()
    return msg


def test_thumbnails_before_or_after_their_caption(ros_context, ns, tmp_path):
    node = memory_node(ros_context, ns, tmp_path / 'memory.db',
                       memory_topics=f'{ns}/caption_info',
                       memory_thumbnails=True)
    probe = rclpy.create_node('probe', context=ros_context)
    infos = probe.create_publisher(String, f'{ns}/caption_info', 10)
    images = probe.create_publisher(
        CompressedImage, f'{ns}/caption_image/compressed', 10)
    with spinning(ros_context, node, probe):
        assert wait_until(lambda: images.get_subscription_count() > 0, 10)
        first, second = T0 + 0.123456789, T0 + 1.5
        assert send(infos, [info_json('a red half', first)], node)
        images.publish(jpeg_msg(first))        # after its caption
        assert wait_until(lambda: node.counts['thumbnails'] == 1, 5)
        images.publish(jpeg_msg(second))       # before its caption
        assert wait_until(lambda: node._thumbnails[f'{ns}/'][1], 5)
        assert send(infos, [info_json('a red half again', second)], node)
        matches = node.store.recall(RecallQuery(timeline=True))
        jpegs = [node.store.thumbnail(m.id) for m in matches]
    assert [m.has_thumbnail for m in matches] == [True, True]
    for jpeg in jpegs:
        small = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
        assert small.shape == (120, 160, 3)
        assert small[60, 20, 2] > 200 and small[60, 140, 2] < 50
