"""Questions about the live view: routing, order, turns, overflow, frames."""

import itertools
import json
import threading

from camera_caption.frames.latest_frame import Frame
from camera_caption.pipeline.caption_worker import CaptionWorker
from camera_caption.pipeline.question_queue import (question_prompt,
                                                    QuestionQueue)
from camera_caption.pipeline.settings import CaptionSettings
import numpy as np
import pytest
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         spinning, wait_until)
from sensor_msgs.msg import Image
from std_msgs.msg import String

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def test_question_prompt():
    assert question_prompt(' is the door open? ') == \
        'Question: is the door open? Answer:'
    assert question_prompt('Question: why? Answer:') == \
        'Question: why? Answer:'


def test_queue_is_fifo_and_bounded():
    queue = QuestionQueue(2, clock=lambda: 5.0)
    first = queue.put('a')
    assert first.number == 1 and first.received == 5.0
    assert queue.put('b').number == 2
    assert queue.put('c') is None                 # full: refused, counted
    assert (queue.asked, queue.dropped, len(queue)) == (3, 1, 2)
    assert queue.peek().text == 'a'
    assert [queue.take().text, queue.take().text] == ['a', 'b']
    assert queue.take() is None and queue.peek() is None


def test_questions_and_captions_take_turns():
    # Captions are always due (a new frame arrives with each inference) and
    # five questions wait: the worker alternates, starving neither.
    calls, done, ticks = [], threading.Event(), itertools.count()
    questions = QuestionQueue(10)
    worker = None

    def caption_fn(images, prompt, max_new_tokens, system_prompt=''):
        calls.append(prompt)
        worker.submit(Frame(np.zeros((4, 4, 3), np.uint8), len(calls),
                            topic='cam'))
        if len(calls) >= 12:
            done.set()
        return ['text'] * len(images)

    answers = []
    worker = CaptionWorker(caption_fn, lambda result: None,
                           lambda batch, exc: None,
                           CaptionSettings(rate_hz=1.0),
                           clock=lambda: float(next(ticks)),  # 1 s a read
                           questions=questions, on_answer=answers.append)
    for i in range(5):
        questions.put(f'q{i}?')
    worker.submit(Frame(np.zeros((4, 4, 3), np.uint8), 0.0, topic='cam'))
    worker.start()
    try:
        assert done.wait(10)
    finally:
        worker.stop()
    assert calls[:11] == ['', 'Question: q0? Answer:', '',
                          'Question: q1? Answer:', '',
                          'Question: q2? Answer:', '',
                          'Question: q3? Answer:', '',
                          'Question: q4? Answer:', '']
    assert [a.question.text for a in answers] == [f'q{i}?' for i in range(5)]
    # Each answer is about the newest frame when it was asked: the one the
    # caption before it had submitted (stamp = calls made so far).
    assert [a.frame.stamp for a in answers] == [1, 3, 5, 7, 9]


def stamped(msg, sec, frame_id):
    msg.header.stamp.sec = sec
    msg.header.frame_id = frame_id
    return msg


def test_answers_per_camera_in_order_tied_to_the_newest_frame(
        ros_context, tiny_backend):
    node = make_captioner(ros_context, tiny_backend, rate_hz=2.0,
                          image_topics='/cam1/image_raw,/cam2/image_raw')
    user = rclpy.create_node('user', context=ros_context)
    cams = {c: user.create_publisher(Image, f'/{c}/image_raw', RELIABLE)
            for c in ('cam1', 'cam2')}
    ask = user.create_publisher(String, '/question', 10)
    infos = {c: CaptionListener(user, f'/{c}/answer_info') for c in cams}
    answers = {c: CaptionListener(user, f'/{c}/answer') for c in cams}
    with spinning(ros_context, node, user):
        assert wait_until(lambda: all(p.get_subscription_count() == 1
                                      for p in cams.values())
                          and ask.get_subscription_count() == 1, 5)
        for round_, base in enumerate((100, 200)):
            for n, (cam, pub) in enumerate(cams.items()):
                assert feed(pub, stamped(image_msg(60 * n), base + n, cam),
                            lambda: node.worker.slots.received)
            for i in range(4):
                # Escape codes and line breaks are taken out of questions.
                ask.publish(String(
                    data=f'r{round_} q{i}:\x1b[2J is the door\nopen?'))
            assert all(lst.wait_for(4 * (round_ + 1), 20)
                       for lst in infos.values())
            for n, cam in enumerate(cams):
                got = [json.loads(text) for _, text in
                       infos[cam].items[4 * round_:]]
                assert [g['question'] for g in got] == [
                    f'r{round_} q{i}: is the door open?' for i in range(4)]
                assert {g['camera'] for g in got} == {f'/{cam}/image_raw'}
                assert {(g['stamp'], g['frame_id']) for g in got} == {
                    (float(base + n), cam)}
                assert all(g['latency_s'] >= g['inference_s'] > 0
                           for g in got)
        assert all(lst.wait_for(8, 5) for lst in answers.values())
        assert [json.loads(t)['answer'] for _, t in infos['cam1'].items] == \
            [t for _, t in answers['cam1'].items]
        values = node._diagnostics()[2]
    assert values['questions_total'] == 8 and values['questions_answered'] == 8
    assert values['questions_dropped'] == 0


def test_overflow_is_refused_and_logged_the_rest_answered_in_order(
        ros_context, tiny_backend):
    node = make_captioner(ros_context, tiny_backend, question_queue_size=2)
    user = rclpy.create_node('user', context=ros_context)
    cam = user.create_publisher(Image, '/image_raw', RELIABLE)
    ask = user.create_publisher(String, '/question', 10)
    infos = CaptionListener(user, '/answer_info')
    warnings = []
    node.service.warn = lambda key, message: warnings.append((key, message))
    with spinning(ros_context, node, user):
        assert wait_until(lambda: cam.get_subscription_count() == 1
                          and ask.get_subscription_count() == 1, 5)
        assert feed(cam, image_msg(80), lambda: node.worker.captions)
        node.set_parameters([Parameter('enable', value=False)])
        assert wait_until(lambda: node.worker.paused, 5)
        for text in ('first?', 'second?', 'third?', ''):
            ask.publish(String(data=text))
        assert wait_until(lambda: node.service.questions.asked == 3
                          and len(warnings) == 2, 5)
        questions = node.service.questions
        assert len(questions) == 2 and questions.dropped == 1
        assert not infos.items                    # paused: no inference
        node.set_parameters([Parameter('enable', value=True)])
        assert infos.wait_for(2, 10)
    assert [json.loads(t)['question'] for _, t in infos.items] == [
        'first?', 'second?']
    assert warnings == [
        ('question_overflow', 'question dropped: 2 already waiting '
         "(question_queue_size): 'third?'"),
        ('question', "question ignored: field 'data' = '' is empty")]
