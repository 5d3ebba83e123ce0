"""Our own DDS traffic stays on this host with the switch each distro reads."""

from camera_caption.tools.domain_lock import (localhost_only, others_on,
                                              pick_domain_id)
import pytest
import rclpy

pytestmark = pytest.mark.ros


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


def test_a_domain_with_someone_on_it_is_never_picked():
    # A user's robot on domain 220 (outside the range runs pick from).
    busy = 220
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=busy)
    try:
        node = rclpy.create_node('a_users_robot', context=context)
        assert others_on(busy, wait=5.0) == ['a_users_robot']
        assert pick_domain_id(first=busy, last=busy + 2) == busy + 1
        node.destroy_node()
    finally:
        context.try_shutdown()
