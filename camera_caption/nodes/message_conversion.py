"""
sensor_msgs/Image -> RGB array, through cv_bridge when it can help.

Our numpy path (:mod:`camera_caption.frames.image_conversion`) handles every
common encoding zero-copy or with one OpenCV call and checks each header
field.  Encodings it does not know are handed to ``cv_bridge`` when a ROS
install provides it; without cv_bridge they are refused with the list of
supported encodings.
"""

from camera_caption.frames.image_conversion import (ImageConversionError,
                                                    raw_to_rgb,
                                                    SUPPORTED_ENCODINGS)

try:
    from cv_bridge import CvBridge, CvBridgeError
except ImportError:
    CvBridge = None


_bridge = CvBridge() if CvBridge is not None else None


def image_msg_to_rgb(msg):
    """Return an H x W x 3 uint8 RGB array for a sensor_msgs/Image."""
    if _bridge is not None and msg.encoding not in SUPPORTED_ENCODINGS:
        try:
            return _bridge.imgmsg_to_cv2(msg, desired_encoding='rgb8')
        except (CvBridgeError, TypeError, ValueError) as exc:
            raise ImageConversionError('encoding', msg.encoding,
                                       f'cv_bridge: {exc}') from exc
    return raw_to_rgb(msg.width, msg.height, msg.encoding, msg.step,
                      msg.data, msg.is_bigendian)
