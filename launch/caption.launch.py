"""
Bring up camera -> captioner -> /caption -> caption_logger.

    ros2 launch camera_caption caption.launch.py
    ros2 launch camera_caption caption.launch.py source:=/path/video.mp4 \
        model:=Salesforce/blip2-opt-2.7b rate_hz:=2.0
    ros2 launch camera_caption caption.launch.py use_camera:=false \
        image_topic:=/camera/color/image_raw
    ros2 launch camera_caption caption.launch.py memory:=true

An empty argument keeps the value from params_file (config/caption.yaml).
``ros2 launch camera_caption caption.launch.py --show-args`` lists them.
The captioner is a lifecycle node that configures and activates itself
(``autostart``), so ``ros2 lifecycle get /captioner`` says ``active``.
This file imports no torch or OpenCV: only the argument table.
"""

import os

from ament_index_python.packages import get_package_share_directory
from camera_caption.contract.launch_arguments import LAUNCH_ARGUMENTS, node_overrides
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction, Shutdown
from launch.conditions import IfCondition
from launch.substitutions import LaunchConfiguration
from launch_ros.actions import Node


def _end_launch_on_failure(name):
    """
    Return an ``on_exit`` that ends the launch when ``name`` failed.

    Only a failed exit (a camera that cannot open, a model that does not
    load) stops the launch, and only while it is still running: on Ctrl-C
    every node exits 0 while launch is already shutting down, and a second
    Shutdown there ended launch with an ERROR and exit status 1.
    """
    def on_exit(event, context):
        if event.returncode == 0 or getattr(context, 'is_shutdown', False):
            return None
        return [Shutdown(reason=f'{name} stopped')]
    return on_exit


def _nodes(context):
    # The overrides are typed and validated here, so a bad value stops the
    # launch with one line that names the argument.
    values = {arg.name: context.launch_configurations.get(arg.name,
                                                          arg.default)
              for arg in LAUNCH_ARGUMENTS}
    overrides, remappings, _ = node_overrides(values)
    params_file = values['params_file'] or os.path.join(
        get_package_share_directory('camera_caption'), 'config',
        'caption.yaml')
    common = {'package': 'camera_caption', 'output': 'screen',
              'emulate_tty': True, 'namespace': values['namespace']}

    def parameters(name):
        return [params_file, overrides[name]]

    return [
        # If the camera or the captioner cannot start (no camera, no
        # model), the launch ends with it instead of idling on the logger.
        Node(executable='camera_node', name='camera',
             parameters=parameters('camera'),
             remappings=remappings['camera'],
             condition=IfCondition(LaunchConfiguration('use_camera')),
             on_exit=_end_launch_on_failure('camera'), **common),
        # A lifecycle node that drives itself (autostart); a plain Node
        # action, since launch_ros's LifecycleNode action only adds a ROS
        # adapter whose 1 s spin made every Ctrl-C of the launch take 1.2 s.
        # ros2 lifecycle get/set talk to the node's own services either way.
        Node(executable='captioner_node', name='captioner',
             parameters=parameters('captioner'),
             remappings=remappings['captioner'],
             on_exit=_end_launch_on_failure('captioner'), **common),
        Node(executable='caption_logger', name='caption_logger',
             parameters=parameters('caption_logger'),
             remappings=remappings['caption_logger'], **common),
        # memory:=true: every caption stored, recall answered.
        Node(executable='caption_memory', name='caption_memory',
             parameters=parameters('caption_memory'),
             remappings=remappings['caption_memory'],
             condition=IfCondition(LaunchConfiguration('memory')),
             on_exit=_end_launch_on_failure('caption_memory'), **common),
    ]


def generate_launch_description():
    """Declare the launch arguments and the nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(arg.name, default_value=arg.default,
                               description=arg.description)
         for arg in LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
