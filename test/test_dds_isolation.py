"""Our own DDS traffic stays on this host with the switch each distro reads."""

from camera_caption.tools.domain_lock import localhost_only
import pytest

pytestmark = pytest.mark.unit


def test_humble_gets_localhost_only_and_later_distros_the_range():
    humble = {'ROS_DISTRO': 'humble'}
    assert localhost_only(humble) == {
        'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST',
        'ROS_LOCALHOST_ONLY': '1'}
    assert humble['ROS_LOCALHOST_ONLY'] == '1'
    for distro in ('jazzy', 'kilted', ''):
        env = {'ROS_DISTRO': distro} if distro else {}
        assert localhost_only(env) == {
            'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
        assert 'ROS_LOCALHOST_ONLY' not in env   # no deprecation warning


def test_a_users_own_setting_is_kept():
    env = {'ROS_DISTRO': 'jazzy', 'ROS_AUTOMATIC_DISCOVERY_RANGE': 'SUBNET'}
    assert localhost_only(env)['ROS_AUTOMATIC_DISCOVERY_RANGE'] == 'SUBNET'
