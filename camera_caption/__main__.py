"""
Run camera, captioner and caption_logger in one process, without launch.

The same nodes, parameters and YAML config as ``caption.launch.py``, for
machines without a ROS 2 install (rclpy from PyPI) or for a quick try::

    python -m camera_caption --source test_pattern --model /path/to/model

The options mirror the launch arguments; anything after ``--ros-args`` is
passed to rclpy unchanged.
"""

import argparse
import os
import re
import sys

from camera_caption.contract.launch_arguments import (
    LAUNCH_ARGUMENTS, node_overrides, parse_bool)
from camera_caption.contract.parameters import find, NODE_PARAMETERS


def default_params_file():
    """Return the installed config/caption.yaml, or the source tree's."""
    try:
        from ament_index_python.packages import get_package_share_directory
        return os.path.join(get_package_share_directory('camera_caption'),
                            'config', 'caption.yaml')
    except (ImportError, LookupError, OSError):
        pass  # not installed with colcon: use the source tree's copy
    here = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    return os.path.join(here, 'config', 'caption.yaml')


def cli_advice(message):
    """Rewrite launch syntax in advice (``device:=cpu``) as our options."""
    return re.sub(r'\b(\w+):=(\S+?)([,.;)]?(?:\s|$))', r'--\1 \2\3', message)


def shown_default(arg):
    """Return the value an option takes when not given, for --help."""
    if arg.node:       # empty: the node parameter's value in params_file
        spec = find(NODE_PARAMETERS[arg.node], arg.name)
        value = spec.default
        text = str(value).lower() if isinstance(value, bool) else str(value)
        return f'{text or repr(text)}, from params_file'
    if arg.name == 'params_file':
        return "the package's config/caption.yaml"
    return arg.default or "''"


def parse_args(argv):
    """Parse our options; return (options, rclpy args)."""
    ros_args = []
    if '--ros-args' in argv:
        cut = argv.index('--ros-args')
        argv, ros_args = argv[:cut], argv[cut:]
    parser = argparse.ArgumentParser(
        prog='python -m camera_caption',
        description='camera -> BLIP-2 captioner -> /caption -> logger, in '
                    'one process. Options mirror caption.launch.py.')
    for arg in LAUNCH_ARGUMENTS:
        parser.add_argument('--' + arg.name, default=arg.default,
                            metavar=arg.name.upper(),
                            help=f'{arg.description} (default: '
                                 f'{shown_default(arg)})')
    options = parser.parse_args(argv)
    if not options.params_file:
        options.params_file = default_params_file()
    return options, ros_args


def main(argv=None):
    """Entry point of ``python -m camera_caption``."""
    options, ros_args = parse_args(sys.argv[1:] if argv is None else argv)
    if not os.path.isfile(options.params_file):
        print(f"params_file '{options.params_file}' does not exist",
              file=sys.stderr)
        return 1
    from rclpy.parameter import Parameter

    from camera_caption.nodes.camera_node import CameraNode
    from camera_caption.nodes.caption_logger_node import CaptionLoggerNode
    from camera_caption.nodes.captioner_node import CaptionerNode
    from camera_caption.nodes.node_runner import run_nodes
    from camera_caption.contract.parameters import ParameterError

    try:
        overrides, remap, use_camera = node_overrides(vars(options))
    except ParameterError as exc:
        print(cli_advice(str(exc)), file=sys.stderr)
        return 1

    def factory(cls, name):
        def make():
            node = cls(namespace=options.namespace,
                       parameter_overrides=[
                           Parameter(k, value=v)
                           for k, v in overrides[name].items()],
                       cli_args=['--ros-args'] + [
                           arg for pair in remap[name]
                           for arg in ('-r', ':='.join(pair))])
            # A lifecycle node is driven here, as its own main() does.
            return node.autostart() if hasattr(node, 'autostart') else node
        make.node_name = name
        return make

    factories = [factory(CaptionerNode, 'captioner'),
                 factory(CaptionLoggerNode, 'caption_logger')]
    if parse_bool('memory', options.memory):
        from camera_caption.nodes.caption_memory_node import (
            CaptionMemoryNode)
        factories.append(factory(CaptionMemoryNode, 'caption_memory'))
    if use_camera:
        factories.insert(0, factory(CameraNode, 'camera'))
    args = ['camera_caption', '--ros-args', '--params-file',
            options.params_file] + ros_args[1:]
    return run_nodes(factories, args, advice=cli_advice)


if __name__ == '__main__':
    from camera_caption.nodes.node_runner import exit_now
    exit_now(main())
