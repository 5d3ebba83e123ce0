"""
The one JPEG encoder of the package.

It makes the camera's ``image_raw/compressed``, ``caption_image/compressed``
and the frames sent to a serving engine.

No ROS import.  OpenCV is imported on first use, so that importing this
module costs nothing where no JPEG is ever made.
"""


def encode_jpeg(image, quality, rgb=True, max_side=0):
    """
    Return ``image`` (H x W x 3 uint8) as JPEG bytes, or None if refused.

    ``rgb``: the channel order of ``image`` (OpenCV wants BGR).
    ``max_side``: shrink so that the longer side is at most this (0 = no).
    """
    import cv2
    height, width = image.shape[:2]
    if max_side and max(height, width) > max_side:
        scale = max_side / max(height, width)
        image = cv2.resize(image, (max(1, round(width * scale)),
                                   max(1, round(height * scale))),
                           interpolation=cv2.INTER_AREA)
    ok, data = cv2.imencode('.jpg', image[:, :, ::-1] if rgb else image,
                            [cv2.IMWRITE_JPEG_QUALITY, int(quality)])
    return data.tobytes() if ok else None


def shrink_jpeg(data, max_side, quality=70):
    """Return JPEG (or PNG) ``data`` as a JPEG of at most ``max_side``; None if unreadable."""
    import cv2
    import numpy as np
    image = cv2.imdecode(np.frombuffer(data, np.uint8), cv2.IMREAD_COLOR)
    if image is None:
        return None
    return encode_jpeg(image, quality, rgb=False, max_side=max_side)
