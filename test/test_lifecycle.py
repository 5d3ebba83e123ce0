"""The captioner's lifecycle through its real services, as ros2 lifecycle does."""

from camera_caption.nodes.captioner_node import CaptionerNode
from lifecycle_msgs.msg import Transition
from lifecycle_msgs.srv import ChangeState, GetState
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, feed, image_msg, make_captioner,
                         params, spinning, wait_until)
from sensor_msgs.msg import Image

pytestmark = pytest.mark.ros

RELIABLE = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)


class Lifecycle:
    """``ros2 lifecycle get/set`` for one node, through its services."""

    def __init__(self, node, target):
        self.node = node
        self.get = node.create_client(GetState, f'{target}/get_state')
        self.change = node.create_client(ChangeState,
                                         f'{target}/change_state')
        assert self.get.wait_for_service(timeout_sec=10)
        assert self.change.wait_for_service(timeout_sec=10)

    def state(self):
        future = self.get.call_async(GetState.Request())
        assert wait_until(future.done, 10)
        return future.result().current_state.label

    def transition(self, transition):
        request = ChangeState.Request()
        request.transition.id = transition
        future = self.change.call_async(request)
        assert wait_until(future.done, 60)
        return future.result().success


def test_autostart_brings_the_captioner_to_active(ros_context, tiny_backend):
    node = CaptionerNode(backend=tiny_backend, context=ros_context,
                         parameter_overrides=params(model='tiny')).autostart()
    client = rclpy.create_node('lifecycle_client', context=ros_context)
    with spinning(ros_context, node, client):
        assert Lifecycle(client, '/captioner').state() == 'active'


def test_configure_activate_deactivate_cleanup(ros_context, tiny_model_dir):
    node = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=tiny_model_dir, device='cpu', autostart=False, rate_hz=20.0,
        max_new_tokens=3)).autostart()
    driver = rclpy.create_node('driver', context=ros_context)
    pub = driver.create_publisher(Image, '/image_raw', RELIABLE)
    captions = CaptionListener(driver)
    with spinning(ros_context, node, driver):
        lifecycle = Lifecycle(driver, '/captioner')
        assert lifecycle.state() == 'unconfigured'
        assert node.backend is None                  # nothing loaded yet

        assert lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == 'inactive'
        assert node.backend is not None              # the model is loaded
        assert pub.get_subscription_count() == 0     # but nothing listens

        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert lifecycle.state() == 'active'
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        assert feed(pub, image_msg(40), lambda: len(captions.items))

        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)
        assert lifecycle.state() == 'inactive'
        assert wait_until(lambda: pub.get_subscription_count() == 0, 10)
        assert node.backend is not None              # still loaded
        assert not node.worker.running               # no inference runs

        assert lifecycle.transition(Transition.TRANSITION_ACTIVATE)
        assert wait_until(lambda: pub.get_subscription_count() == 1, 10)
        assert feed(pub, image_msg(90), lambda: len(captions.items))
        assert lifecycle.transition(Transition.TRANSITION_DEACTIVATE)

        assert lifecycle.transition(Transition.TRANSITION_CLEANUP)
        assert lifecycle.state() == 'unconfigured'
        assert node.backend is None                  # unloaded
        assert node.outputs == {}


def test_a_failed_configure_stays_unconfigured_with_one_line(
        ros_context, tmp_path, capfd):
    node = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=str(tmp_path / 'no_model'), device='cpu', autostart=False)).autostart()
    client = rclpy.create_node('lifecycle_client', context=ros_context)
    with spinning(ros_context, node, client):
        lifecycle = Lifecycle(client, '/captioner')
        assert not lifecycle.transition(Transition.TRANSITION_CONFIGURE)
        assert lifecycle.state() == 'unconfigured'
    errors = [line for line in capfd.readouterr().err.splitlines()
              if 'ERROR' in line]
    assert len(errors) == 1, errors
    assert 'no_model' in errors[0] and 'does not exist' in errors[0]


def test_a_destroyed_captioner_leaves_the_graph(ros_context, tiny_backend):
    # rclpy's LifecycleNode would keep a ghost 'captioner' (no topics) in
    # the graph until garbage collection, which confuses rqt_graph and
    # every by-name query.
    node = make_captioner(ros_context, tiny_backend)
    probe = rclpy.create_node('probe', context=ros_context)
    try:
        assert wait_until(lambda: 'captioner' in probe.get_node_names(), 10)
        node.destroy_node()
        assert wait_until(
            lambda: 'captioner' not in probe.get_node_names(), 10)
    finally:
        probe.destroy_node()
