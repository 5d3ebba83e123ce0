"""
Bring up camera -> captioner -> /caption -> caption_logger.

    ros2 launch camera_caption caption.launch.py
    ros2 launch camera_caption caption.launch.py source:=/path/video.mp4 \
        model:=Salesforce/blip2-opt-2.7b rate_hz:=2.0
    ros2 launch camera_caption caption.launch.py use_camera:=false \
        image_topic:=/camera/color/image_raw

An empty argument keeps the value from params_file (config/caption.yaml).
``ros2 launch camera_caption caption.launch.py --show-args`` lists them.
"""

import os

from ament_index_python.packages import get_package_share_directory
from camera_caption.launch_arguments import LAUNCH_ARGUMENTS, node_overrides
from launch import LaunchDescription
from launch.actions import DeclareLaunchArgument, OpaqueFunction
from launch_ros.actions import Node


def _nodes(context):
    values = {arg.name: context.launch_configurations.get(arg.name,
                                                          arg.default)
              for arg in LAUNCH_ARGUMENTS}
    overrides, remappings, use_camera = node_overrides(values)
    params_file = values['params_file'] or os.path.join(
        get_package_share_directory('camera_caption'), 'config',
        'caption.yaml')

    def node(executable, name):
        remap = remappings[name]
        return Node(
            package='camera_caption', executable=executable, name=name,
            namespace=values['namespace'], output='screen', emulate_tty=True,
            parameters=[params_file, overrides[name]],
            remappings=[tuple(r.split(':=')) for r in remap[1::2]])

    nodes = [node('captioner_node', 'captioner'),
             node('caption_logger', 'caption_logger')]
    if use_camera:
        nodes.insert(0, node('camera_node', 'camera'))
    return nodes


def generate_launch_description():
    """Declare the launch arguments and the three nodes."""
    return LaunchDescription(
        [DeclareLaunchArgument(arg.name, default_value=arg.default,
                               description=arg.description)
         for arg in LAUNCH_ARGUMENTS]
        + [OpaqueFunction(function=_nodes)])
