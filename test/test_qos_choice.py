"""reliability: auto follows the publishers; the starvation WARN names QoS."""

from camera_caption.contract.parameters import CAPTIONER_PARAMETERS, find
from camera_caption.nodes.ros_qos import image_qos, offered_reliability
from camera_caption.pipeline.qos_choice import (choose_reliability,
                                                describe_offered,
                                                ReliabilityChooser,
                                                starvation_warning)
import pytest
from rclpy.qos import ReliabilityPolicy

pytestmark = pytest.mark.ros


@pytest.mark.parametrize('setting,offered,expected', [
    ('auto', [], 'best_effort'),                  # matches whoever comes
    ('auto', ['reliable'], 'reliable'),
    ('auto', ['reliable', 'reliable'], 'reliable'),
    ('auto', ['reliable', 'best_effort'], 'best_effort'),
    ('auto', ['best_effort'], 'best_effort'),
    ('reliable', [], 'reliable'),
    ('reliable', ['best_effort'], 'reliable'),    # explicit stays explicit
    ('best_effort', ['reliable'], 'best_effort'),
])
def test_choose_reliability(setting, offered, expected):
    assert choose_reliability(setting, offered) == expected


def test_auto_is_the_default_and_validated():
    spec = find(CAPTIONER_PARAMETERS, 'reliability')
    assert spec.default == 'auto'
    assert spec.coerce('auto') == 'auto'
    with pytest.raises(ValueError, match="'reliability' = 'sometimes'"):
        spec.coerce('sometimes')


def test_chooser_reports_each_change_once():
    chooser = ReliabilityChooser('/image_raw', 'auto')
    assert chooser.update([]) == (
        'best_effort', '/image_raw: subscribing best_effort (reliability: '
        'auto, no publisher yet)')
    assert chooser.update([]) is None
    choice, line = chooser.update(['reliable'])
    assert choice == 'reliable'
    assert line == ('/image_raw: subscribing reliable (reliability: auto, '
                    '1 reliable publisher); subscription recreated')
    assert chooser.update(['reliable']) is None
    choice, line = chooser.update(['reliable', 'best_effort'])
    assert choice == 'best_effort'
    assert '1 best_effort, 1 reliable publishers' in line
    assert chooser.update(['best_effort', 'reliable']) is None
    assert chooser.update(['reliable'])[0] == 'reliable'


def test_explicit_setting_is_reported_once_and_never_changes():
    chooser = ReliabilityChooser('/cam/image_raw', 'reliable')
    assert chooser.update(['best_effort']) == (
        'reliable', '/cam/image_raw: subscribing reliable (reliability: '
        'reliable)')
    assert chooser.update([]) is None
    assert chooser.update(['reliable']) is None


def test_describe_offered():
    assert describe_offered([]) == 'no publisher yet'
    assert describe_offered(['reliable'] * 3) == '3 reliable publishers'


def test_starvation_warning_names_qos_and_the_fix():
    line = starvation_warning('/image_raw', 1.2, 4.0, 'best_effort',
                              ['reliable'])
    assert line.startswith('frames on /image_raw arrive at 1.2/s, below '
                           'rate_hz 4')
    assert 'best_effort' in line and 'offers reliable' in line
    assert line.endswith('fix: set reliability: auto (or reliable) on the '
                         'captioner')
    mixed = starvation_warning('/image_raw', 1.2, 4.0, 'best_effort',
                               ['reliable', 'best_effort'])
    assert 'publish reliably from every publisher' in mixed


@pytest.mark.parametrize('frames,subscribed,offered', [
    (4.0, 'best_effort', ['reliable']),      # enough frames
    (9.0, 'best_effort', ['reliable']),
    (0.0, 'best_effort', ['reliable']),      # none: another WARN says so
    (1.0, 'reliable', ['reliable']),         # QoS is not why
    (1.0, 'best_effort', ['best_effort']),   # publisher offers no better
    (1.0, 'best_effort', []),
])
def test_no_starvation_warning_when_qos_is_not_why(frames, subscribed,
                                                   offered):
    assert starvation_warning('/image_raw', frames, 4.0, subscribed,
                              offered) is None


def test_offered_reliability_reads_a_qos_profile():
    assert offered_reliability(image_qos('reliable')) == 'reliable'
    assert offered_reliability(image_qos('best_effort')) == 'best_effort'
    assert image_qos('reliable').reliability == ReliabilityPolicy.RELIABLE
    assert image_qos('reliable').depth == 1


def _image(value):
    from sensor_msgs.msg import Image
    import numpy as np
    msg = Image(width=32, height=24, encoding='rgb8', step=96)
    msg.data = np.full((24, 32, 3), value, np.uint8).tobytes()
    return msg


def test_auto_subscription_follows_publishers_as_they_come_and_go(
        ros_context, tiny_model_dir):
    import rclpy
    from camera_caption.nodes.captioner_node import CaptionerNode
    from ros_helpers import CaptionListener, params, spinning, wait_until
    from sensor_msgs.msg import Image

    node = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=tiny_model_dir, device='cpu', rate_hz=10.0, max_new_tokens=3)).autostart()
    driver = rclpy.create_node('driver', context=ros_context)
    captions = CaptionListener(driver)

    def subscribed():
        sub = node.images.subscriptions['image_raw']
        policy = sub.qos_profile.reliability
        assert (policy == ReliabilityPolicy.RELIABLE) == (
            node.images.reliability['image_raw'] == 'reliable')
        return node.images.reliability['image_raw']

    assert node.params['reliability'] == 'auto'
    assert subscribed() == 'best_effort'          # no publisher yet
    with spinning(ros_context, node, driver):
        reliable = driver.create_publisher(Image, 'image_raw',
                                           image_qos('reliable'))
        assert wait_until(lambda: subscribed() == 'reliable', 10)
        # Frames reach the recreated subscription.
        count = [0]

        def publish_and_check():
            count[0] += 1
            reliable.publish(_image(count[0] % 256))
            return len(captions.items) >= 2
        assert wait_until(publish_and_check, 20, interval=0.05)
        other = driver.create_publisher(Image, 'image_raw',
                                        image_qos('best_effort'))
        assert wait_until(lambda: subscribed() == 'best_effort', 10)
        assert node.images.choosers['image_raw'].offered.count('reliable') == 1
        driver.destroy_publisher(other)
        assert wait_until(lambda: subscribed() == 'reliable', 10)


def test_diagnostics_warn_names_qos_when_best_effort_starves(
        ros_context, tiny_model_dir):
    import rclpy
    from camera_caption.nodes.captioner_node import CaptionerNode
    from diagnostic_msgs.msg import DiagnosticArray, DiagnosticStatus
    from ros_helpers import params, spinning, wait_until
    from sensor_msgs.msg import Image

    node = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=tiny_model_dir, device='cpu', rate_hz=10.0, max_new_tokens=3,
        reliability='best_effort')).autostart()
    driver = rclpy.create_node('driver', context=ros_context)
    statuses = []
    driver.create_subscription(
        DiagnosticArray, '/diagnostics',
        lambda msg: statuses.extend(s for s in msg.status
                                    if s.name == '/captioner'), 10)
    publisher = driver.create_publisher(Image, 'image_raw',
                                        image_qos('reliable'))
    count = [0]

    def starving():
        # Frames at about 3/s against rate_hz 10.
        count[0] += 1
        publisher.publish(_image(count[0] % 256))
        return any('offers reliable' in s.message for s in statuses)

    with spinning(ros_context, node, driver):
        assert wait_until(starving, 20, interval=0.3), [
            s.message for s in statuses]
    status = next(s for s in statuses if 'offers reliable' in s.message)
    assert status.level == DiagnosticStatus.WARN
    assert 'subscription is best_effort' in status.message
    assert 'fix: set reliability: auto (or reliable)' in status.message
    values = {kv.key: kv.value for kv in status.values}
    assert values['reliability'] == 'best_effort'
    assert values['publishers_offer'] == 'reliable'
    assert 0 < float(values['frames_in_per_s']) < 10
