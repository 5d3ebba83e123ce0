"""
Summaries of a time window: the captions go to a real server's text model.

A real ``transformers serve`` serves the tiny chat VLM (it reads text
too); the caption_memory node asks it on ``recall`` with ``"summarize":
true`` and answers its paragraph on ``recall_result``.  What the request
holds (every caption in time order, the system message, Japanese when the
captions are) is read where it arrives, on a recording server.
"""

import json
import uuid

from camera_caption.memory.recall_query import parse_request
from camera_caption.memory.records import Match
from camera_caption.memory.summary import (summarize, SummaryError, SYSTEM,
                                           SYSTEM_JA)
from camera_caption.nodes.caption_memory_node import CaptionMemoryNode
from camera_caption.tools.tiny_server import TinyServer
from memory_helpers import info_json, T0
import pytest
import rclpy
from ros_helpers import params, spinning, wait_until
from serving_helpers import models_answer, RawServer
from std_msgs.msg import String
from test_memory_node import Asker, send
from tiny_chat_vlm import build_tiny_chat_vlm

pytestmark = pytest.mark.slow     # a real transformers serve process


@pytest.fixture(scope='module')
def text_server(tmp_path_factory):
    model = build_tiny_chat_vlm(str(tmp_path_factory.mktemp('summary_vlm')))
    log = tmp_path_factory.mktemp('summary_log') / 'serve.log'
    server = TinyServer(model, log_path=str(log), blip2_template=False)
    yield server.start()
    server.kill()


def test_recall_with_summarize_answers_a_paragraph_from_the_server(
        ros_context, tmp_path, text_server):
    ns = f'/s{uuid.uuid4().hex[:8]}'
    node = CaptionMemoryNode(context=ros_context, namespace=ns,
                             parameter_overrides=params(
                                 memory_path=str(tmp_path / 'memory.db'),
                                 memory_topics=f'{ns}/caption_info',
                                 memory_summary_endpoint=text_server.endpoint))
    probe = rclpy.create_node('probe', context=ros_context)
    infos = probe.create_publisher(String, f'{ns}/caption_info', 10)
    asker = Asker(probe, ns)
    with spinning(ros_context, node, probe):
        assert send(infos, [info_json(t, T0 + i) for i, t in enumerate(
            ['a person opens the door', 'a person walks in',
             'a dog follows the person'])], node)
        assert wait_until(
            lambda: asker.publisher.get_subscription_count() > 0, 10)

        def summarized(fields):
            """Ask once; return the answer that has the summary (or why)."""
            seen = len(asker.answers)
            asker.publisher.publish(String(data=json.dumps(fields)))
            assert wait_until(lambda: len(asker.answers) > seen, 120)
            return asker.answers[seen]

        answer = summarized({'text': 'person', 'summarize': True})
        assert answer['count'] == 3, answer
        assert isinstance(answer.get('summary'), str) and answer['summary'], \
            answer
        assert node.counts['summaries'] == 1
        answer = summarized({'text': 'cat', 'summarize': True})
        assert 'no captions in the window' in answer['summary_error']
        assert answer['count'] == 0


def summary_request(server):
    posts = [r for r in server.requests if r[0] == 'POST']
    assert len(posts) == 1
    return json.loads(posts[0][3])


def test_the_request_holds_every_caption_in_time_order():
    matches = [_match('a red box on the table', 20, '/front/image_raw'),
               _match('the box is gone', 40, '/front/image_raw'),
               _match('a person carries a red box', 30, '/back/image_raw')]
    answer = (200, 'application/json', json.dumps(
        {'choices': [{'message': {'content': ' Someone took the box. '}}]}))
    with RawServer({'/v1/models': models_answer('text-model'),
                    '/v1/chat/completions': answer}) as server:
        text = summarize(f'http://127.0.0.1:{server.port}/v1', '', matches)
        body = summary_request(server)
    assert text == 'Someone took the box.'
    assert body['model'] == 'text-model' and body['temperature'] == 0
    system, user = body['messages']
    assert system == {'role': 'system', 'content': SYSTEM}
    lines = user['content'].splitlines()
    assert [line.split(' ', 1)[1] for line in lines] == [
        '/front/image_raw: a red box on the table',
        '/back/image_raw: a person carries a red box',
        '/front/image_raw: the box is gone']


def test_japanese_captions_ask_for_a_japanese_summary():
    matches = [_match('台所に赤い箱がある', 1), _match('人が箱を運ぶ', 2),
               _match('a box', 3)]
    answer = (200, 'application/json', json.dumps(
        {'choices': [{'message': {'content': '箱が運ばれた。'}}]}))
    with RawServer({'/v1/chat/completions': answer}) as server:
        assert summarize(f'http://127.0.0.1:{server.port}/v1', 'm',
                         matches) == '箱が運ばれた。'
        body = summary_request(server)
    assert body['messages'][0]['content'] == SYSTEM_JA


@pytest.mark.parametrize('answers, message', [
    ({'/v1/models': models_answer('a', 'b')},
     "serves 2 models: name one in 'memory_summary_model'"),
    ({'/v1/models': models_answer('a'), '/v1/chat/completions': (
        500, 'text/plain', 'out of memory')}, 'HTTP 500 from'),
    ({'/v1/models': models_answer('a'), '/v1/chat/completions': (
        200, 'application/json', '{"choices": []}')}, 'malformed answer'),
])
def test_a_server_that_gives_no_summary_says_why(answers, message):
    with RawServer(answers) as server:
        with pytest.raises(SummaryError, match=message):
            summarize(f'http://127.0.0.1:{server.port}/v1', '',
                      [_match('a box', 1)])
    with pytest.raises(SummaryError, match='memory_summary_endpoint'):
        summarize('gpu-server:8000', '', [_match('a box', 1)])


def test_summarize_asks_for_the_newest_200_unless_told():
    assert parse_request('{"summarize": true}').limit == 200
    assert parse_request('{"summarize": true, "limit": 5}').limit == 5


def _match(caption, stamp, camera='/image_raw'):
    return Match(id=stamp, stamp=T0 + stamp, last_stamp=T0 + stamp,
                 repeats=1, camera=camera, frame_id='', caption=caption,
                 model='', latency_s=None, clip_first=None, clip_last=None,
                 pose=None, robot='', has_thumbnail=False)
