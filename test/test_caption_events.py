"""Word-triggered events: edge, hold-off, live patterns, refusal."""

import json
import re

from camera_caption.contract.parameters import CAPTIONER_PARAMETERS, find, \
    ParameterError
from camera_caption.nodes.caption_logger_node import CaptionLoggerNode
from camera_caption.pipeline.caption_events import EventMatcher
import pytest
from rcl_interfaces.srv import SetParameters
import rclpy
from rclpy.parameter import Parameter
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         spinning, wait_until)
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('value,patterns', [
    ('', ()), ('door', ('door',)), ('door|person', ('door|person',)),
    (' door , \\bdogs?\\b ,', ('door', '\\bdogs?\\b')),
    (['door', 'a{1,3}'], ('door', 'a{1,3}'))])
def test_watch_values(value, patterns):
    assert find(CAPTIONER_PARAMETERS, 'watch').coerce(value) == patterns


@pytest.mark.parametrize('value', ['door(', 'ok,[a-', ['*x'], 3])
def test_bad_watch_values_name_parameter_and_pattern(value):
    with pytest.raises(ParameterError, match="parameter 'watch' = "):
        find(CAPTIONER_PARAMETERS, 'watch').coerce(value)


def test_events_are_edge_triggered_per_camera_and_pattern():
    matcher = EventMatcher(['door', 'person|man'], holdoff_s=10.0)
    assert matcher.match('a', 'a room', 0.0) == []
    assert matcher.match('a', 'an open DOOR', 1.0) == ['door']
    assert matcher.match('a', 'the door again', 2.0) == []   # stays: once
    assert matcher.match('b', 'a door', 2.0) == ['door']     # other camera
    assert matcher.match('a', 'a man at the door', 3.0) == ['person|man']
    assert matcher.events == 3 and matcher.held_off == 0


def test_holdoff_stops_a_flickering_match_repeating():
    matcher = EventMatcher(['door'], holdoff_s=10.0)
    assert matcher.match('a', 'door', 0.0) == ['door']
    assert matcher.match('a', 'wall', 1.0) == []
    assert matcher.match('a', 'door', 2.0) == []             # held off
    assert matcher.held_off == 1
    assert matcher.match('a', 'wall', 11.0) == []
    assert matcher.match('a', 'door', 12.0) == ['door']      # 12 s later
    matcher.update(['door'], 0.0)
    assert matcher.match('a', 'wall', 12.5) == []
    assert matcher.match('a', 'door', 12.5) == ['door']


def test_update_keeps_state_of_known_patterns():
    matcher = EventMatcher(['door'], holdoff_s=0.0)
    assert matcher.match('a', 'door', 0.0) == ['door']
    matcher.update(['door', 'cat'], 0.0)
    assert matcher.match('a', 'door and cat', 1.0) == ['cat']


RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


def test_one_caption_event_when_a_watched_caption_appears(
        ros_context, tiny_backend):
    node = make_captioner(ros_context, tiny_backend, rate_hz=20.0)
    logger = CaptionLoggerNode(context=ros_context)
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    events = CaptionListener(driver, '/caption_event')
    frame_a, frame_b = image_msg(0), image_msg(128)   # ',, box', 'redr..'
    with spinning(ros_context, node, logger, driver):
        assert wait_until(lambda: pub.get_subscription_count() == 1, 5)

        def caption_of(msg):
            done = len(captions.items)
            assert feed(pub, msg, lambda: len(captions.items))
            return captions.items[done][1]

        text_a, text_b = caption_of(frame_a), caption_of(frame_b)
        pattern = re.escape(text_a.split()[-1])       # a word of caption a
        assert ',' not in pattern and not re.search(
            pattern, text_b, re.IGNORECASE), (text_a, text_b)
        node.set_parameters([Parameter('watch', value=pattern)])
        for msg in (frame_a, frame_a, frame_a, frame_b, frame_a):
            assert caption_of(msg) == (text_a if msg is frame_a else text_b)
        assert events.wait_for(1, 5)
        # The same scene, and its return within the hold-off: told once.
        assert len(events.items) == 1 and node.service.events.held_off == 1
        node.set_parameters([Parameter('event_holdoff_s', value=0.0)])
        caption_of(frame_b)
        caption_of(frame_a)
        assert events.wait_for(2, 5)
        assert wait_until(lambda: logger.event_count == 2, 5)
        values = node._diagnostics()[2]
    event = json.loads(events.items[0][1])
    assert event['pattern'] == pattern
    assert event['caption'] == text_a and event['camera'] == '/image_raw'
    assert event['stamp'] == 0.0                   # the image's stamp
    assert values['events_total'] == 2
    assert values['events_held_off'] == 1


def test_bad_regex_refused_through_set_parameters_service(ros_context,
                                                          tiny_backend):
    node = make_captioner(ros_context, tiny_backend, watch='door')
    client_node = rclpy.create_node('client', context=ros_context)
    client = client_node.create_client(SetParameters,
                                       '/captioner/set_parameters')
    with spinning(ros_context, node, client_node):
        assert client.wait_for_service(timeout_sec=5)
        request = SetParameters.Request(parameters=[
            Parameter('watch', value='door,(unclosed').to_parameter_msg()])
        future = client.call_async(request)
        assert wait_until(future.done, 5)
        result = future.result().results[0]
        assert not result.successful
        assert result.reason.startswith(
            "parameter 'watch' = 'door,(unclosed' is invalid: pattern "
            "'(unclosed' is not a regular expression: missing )")
        assert node.service.events.patterns == ('door',)
        request = SetParameters.Request(parameters=[
            Parameter('watch', value='door|person').to_parameter_msg()])
        future = client.call_async(request)
        assert wait_until(future.done, 5)
        assert future.result().results[0].successful
        assert node.service.events.patterns == ('door|person',)
