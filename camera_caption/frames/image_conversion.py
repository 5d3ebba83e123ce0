"""
Convert raw image messages (sensor_msgs/Image fields) to RGB arrays.

No ROS import: the functions take the message fields (or any object that
has them) and return an ``H x W x 3`` ``uint8`` RGB array.  8-bit colour
encodings with no row padding come back as views of the message buffer
(zero-copy); other encodings are converted with numpy/OpenCV.

Every rejected input raises :class:`ImageConversionError`, which names the
offending field and value.
"""

import io

from camera_caption.contract.parameters import CAMERA_ENCODINGS
import numpy as np

try:  # OpenCV is only needed for the YUV and Bayer encodings.
    import cv2
except ImportError:  # pragma: no cover - opencv is a declared dependency
    cv2 = None


class ImageConversionError(ValueError):
    """An image message that cannot be converted; names field and value."""

    def __init__(self, field, value, reason):
        self.field = field
        self.value = value
        self.reason = reason
        super().__init__(f"image field '{field}'={value!r}: {reason}")

    @property
    def key(self):
        """Identify the kind of problem (for rate-limited logging)."""
        return (self.field, self.reason)


# encoding -> (channels, numpy dtype, kind)
_ENCODINGS = {
    'rgb8': (3, np.uint8, 'rgb'),
    'bgr8': (3, np.uint8, 'bgr'),
    'rgba8': (4, np.uint8, 'rgba'),
    'bgra8': (4, np.uint8, 'bgra'),
    'mono8': (1, np.uint8, 'mono'),
    '8UC1': (1, np.uint8, 'mono'),
    '8UC3': (3, np.uint8, 'bgr'),
    '8UC4': (4, np.uint8, 'bgra'),
    'mono16': (1, np.uint16, 'mono16'),
    '16UC1': (1, np.uint16, 'depth'),
    '32FC1': (1, np.float32, 'depth'),
    'yuv422': (2, np.uint8, 'uyvy'),
    'uyvy': (2, np.uint8, 'uyvy'),
    'UYVY': (2, np.uint8, 'uyvy'),
    'yuv422_yuy2': (2, np.uint8, 'yuyv'),
    'yuyv': (2, np.uint8, 'yuyv'),
    'YUYV': (2, np.uint8, 'yuyv'),
    'bayer_rggb8': (1, np.uint8, 'bayer_rggb'),
    'bayer_bggr8': (1, np.uint8, 'bayer_bggr'),
    'bayer_gbrg8': (1, np.uint8, 'bayer_gbrg'),
    'bayer_grbg8': (1, np.uint8, 'bayer_grbg'),
}

SUPPORTED_ENCODINGS = tuple(_ENCODINGS)

# Largest frame accepted (pixels): 8K UHD and then some.
MAX_PIXELS = 8192 * 8192

_CV2_CODES = {
    'uyvy': 'COLOR_YUV2RGB_UYVY',
    'yuyv': 'COLOR_YUV2RGB_YUY2',
    # OpenCV names Bayer patterns by the second row's first two pixels.
    'bayer_rggb': 'COLOR_BayerBG2RGB',
    'bayer_bggr': 'COLOR_BayerRG2RGB',
    'bayer_gbrg': 'COLOR_BayerGR2RGB',
    'bayer_grbg': 'COLOR_BayerGB2RGB',
}


def _as_int(field, value):
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)):
        raise ImageConversionError(field, value, 'must be an integer')
    return int(value)


def _buffer(data):
    try:
        return np.frombuffer(data, dtype=np.uint8)
    except (TypeError, ValueError, BufferError):
        pass
    try:
        return np.frombuffer(bytes(data), dtype=np.uint8)
    except (TypeError, ValueError, OverflowError):
        raise ImageConversionError(
            'data', type(data).__name__, 'is not a byte buffer') from None


def raw_to_rgb(width, height, encoding, step, data, is_bigendian=0):
    """
    Return an ``H x W x 3`` uint8 RGB array for raw image fields.

    Raises :class:`ImageConversionError` naming the field at fault.
    """
    width = _as_int('width', width)
    height = _as_int('height', height)
    step = _as_int('step', step)
    if not isinstance(encoding, str):
        raise ImageConversionError('encoding', encoding, 'must be a string')
    if encoding not in _ENCODINGS:
        raise ImageConversionError(
            'encoding', encoding,
            'unsupported encoding (supported: %s)'
            % ', '.join(SUPPORTED_ENCODINGS))
    if width <= 0:
        raise ImageConversionError('width', width, 'must be positive')
    if height <= 0:
        raise ImageConversionError('height', height, 'must be positive')
    if width * height > MAX_PIXELS:
        raise ImageConversionError(
            'width', width, f'{width}x{height} exceeds {MAX_PIXELS} pixels')
    channels, dtype, kind = _ENCODINGS[encoding]
    itemsize = np.dtype(dtype).itemsize
    row_bytes = width * channels * itemsize
    if step < row_bytes:
        raise ImageConversionError(
            'step', step,
            f'smaller than width*bytes_per_pixel = {row_bytes} for '
            f'{encoding}')
    if step % itemsize:
        raise ImageConversionError(
            'step', step, f'not a multiple of the {itemsize}-byte sample')
    if kind in ('uyvy', 'yuyv') and width % 2:
        raise ImageConversionError(
            'width', width, f'must be even for {encoding}')
    buf = _buffer(data)
    expected = step * height
    if buf.size != expected:
        raise ImageConversionError(
            'data', f'{buf.size} bytes',
            f'expected step*height = {step}*{height} = {expected} bytes')

    rows = buf.reshape(height, step)[:, :row_bytes]
    if itemsize == 1:
        pixels = rows.reshape(height, width, channels)
    else:
        order = '>' if is_bigendian else '<'
        pixels = rows.copy().view(np.dtype(dtype).newbyteorder(order))
        pixels = pixels.reshape(height, width).astype(dtype)
    return _to_rgb(kind, pixels)


def _to_rgb(kind, pixels):
    if kind == 'rgb':
        return pixels
    if kind == 'bgr':
        return pixels[..., ::-1]
    if kind == 'rgba':
        return pixels[..., :3]
    if kind == 'bgra':
        return pixels[..., 2::-1]
    if kind == 'mono':
        return np.repeat(pixels, 3, axis=2)
    if kind == 'mono16':
        grey = (pixels >> 8).astype(np.uint8)
        return np.repeat(grey[..., None], 3, axis=2)
    if kind == 'depth':
        return _depth_to_rgb(pixels)
    if cv2 is None:  # pragma: no cover
        raise ImageConversionError('encoding', kind, 'needs OpenCV (cv2)')
    code = getattr(cv2, _CV2_CODES[kind])
    if kind in ('uyvy', 'yuyv'):
        pixels = np.ascontiguousarray(pixels)
    else:
        pixels = np.ascontiguousarray(pixels[..., 0])
    return cv2.cvtColor(pixels, code)


def _depth_to_rgb(depth):
    """Stretch a depth image's valid range to 0..255 grey."""
    values = depth.astype(np.float32)
    valid = np.isfinite(values) & (values > 0)
    grey = np.zeros(values.shape, np.uint8)
    if valid.any():
        lo = float(values[valid].min())
        hi = float(values[valid].max())
        scale = 255.0 / (hi - lo) if hi > lo else 0.0
        grey[valid] = np.clip((values[valid] - lo) * scale, 0, 255).astype(
            np.uint8)
        if hi == lo:
            grey[valid] = 255
    return np.repeat(grey[..., None], 3, axis=2)


def check_encoded_size(source, field, value):
    """
    Refuse an encoded image that decodes to more than MAX_PIXELS.

    ``source`` is a path or the bytes.  Only the header is read, so that a
    small file that would decode to gigabytes (a decompression bomb) is
    refused before it is decoded; a format Pillow does not know is left to
    OpenCV.  Raises :class:`ImageConversionError` naming ``field``.
    """
    from PIL import Image
    try:
        with Image.open(source if isinstance(source, str)
                        else io.BytesIO(source)) as image:
            width, height = image.size
    except Image.DecompressionBombError:
        raise ImageConversionError(field, value, f'decodes to more than '
                                   f'{MAX_PIXELS} pixels') from None
    except (OSError, ValueError, SyntaxError):
        return
    if width * height > MAX_PIXELS:
        raise ImageConversionError(
            field, value, f'decodes to {width}x{height}, more than '
            f'{MAX_PIXELS} pixels')


def compressed_to_rgb(fmt, data):
    """Decode a sensor_msgs/CompressedImage payload (JPEG/PNG) to RGB."""
    buf = _buffer(data)
    if buf.size == 0:
        raise ImageConversionError('data', '0 bytes', 'empty compressed image')
    check_encoded_size(buf.tobytes(), 'data', f'{buf.size} bytes')
    image = cv2.imdecode(buf, cv2.IMREAD_COLOR)
    if image is None:
        raise ImageConversionError(
            'data', f'{buf.size} bytes',
            f'could not be decoded as {fmt or "an image"}')
    return image[..., ::-1]


def bgr_to_encoding(image, encoding):
    """
    Return a contiguous copy-free-where-possible frame in ``encoding``.

    ``image`` is a BGR uint8 frame as OpenCV delivers it; the camera node
    publishes ``rgb8`` or ``bgr8``.
    """
    if image.ndim != 3 or image.shape[2] != 3 or image.dtype != np.uint8:
        raise ImageConversionError(
            'frame', f'{image.dtype} {"x".join(map(str, image.shape))}',
            'a camera frame must be height x width x 3 (BGR) uint8')
    if encoding == 'bgr8':
        return np.ascontiguousarray(image)
    if encoding == 'rgb8':
        return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)
    raise ImageConversionError(
        'encoding', encoding,
        'camera publishes %s only' % ' or '.join(CAMERA_ENCODINGS))
