"""camera_caption: live camera -> BLIP-2 -> text captions on ROS 2."""

__version__ = '0.1.0'
