"""
A catalogue of bad and unusual image messages, and what each must give.

Each entry: an id, the sensor_msgs/Image fields (or CompressedImage
payload), and either the expected RGB result (converted correctly) or the
field the rejection must name.
"""

import cv2
import numpy as np

W, H = 8, 6
RNG = np.random.default_rng(7)
RGB = RNG.integers(0, 256, (H, W, 3), dtype=np.uint8)
GREY = RGB[..., 1].copy()
DEPTH16 = RNG.integers(1, 5000, (H, W), dtype=np.uint16)


def raw(encoding, pixels, step=None, data=None, width=W, height=H,
        bigendian=0):
    """Fields of a sensor_msgs/Image (header fields may lie about pixels)."""
    if pixels is not None:
        pixels = np.ascontiguousarray(pixels)
        rows = pixels.reshape(pixels.shape[0], -1).view(np.uint8)
        if step is None:
            step = rows.shape[1]
        if data is None:
            if rows.shape[1] < step:
                rows = np.hstack([rows, np.zeros(
                    (rows.shape[0], step - rows.shape[1]), np.uint8)])
            data = rows.tobytes()
    return {'width': width, 'height': height, 'encoding': encoding,
            'step': step, 'data': data, 'is_bigendian': bigendian}


def _stretch(depth):
    d = depth.astype(np.float32)
    grey = ((d - d.min()) * (255.0 / (d.max() - d.min()))).astype(np.uint8)
    return np.dstack([grey] * 3)


def _jpeg(bgr):
    return cv2.imencode('.jpg', bgr, [cv2.IMWRITE_JPEG_QUALITY, 100])[1] \
        .tobytes()


BIG = 7680 * 4320  # 8K UHD

# (id, fields, expected): expected is an RGB array, a callable check on the
# result, or ('reject', field).
RAW_CASES = [
    ('rgb8', raw('rgb8', RGB), RGB),
    ('bgr8', raw('bgr8', RGB[..., ::-1]), RGB),
    ('rgba8', raw('rgba8', np.dstack([RGB, GREY])), RGB),
    ('bgra8', raw('bgra8', np.dstack([RGB[..., ::-1], GREY])), RGB),
    ('mono8', raw('mono8', GREY), np.dstack([GREY] * 3)),
    ('8UC1', raw('8UC1', GREY), np.dstack([GREY] * 3)),
    ('8UC3', raw('8UC3', RGB[..., ::-1]), RGB),
    ('mono16', raw('mono16', DEPTH16 * 13),
     np.dstack([((DEPTH16 * 13) >> 8).astype(np.uint8)] * 3)),
    ('mono16 big-endian', raw('mono16', (DEPTH16 * 13).astype('>u2'),
                              bigendian=1),
     np.dstack([((DEPTH16 * 13) >> 8).astype(np.uint8)] * 3)),
    ('16UC1 depth', raw('16UC1', DEPTH16), _stretch(DEPTH16)),
    ('32FC1 depth', raw('32FC1', DEPTH16.astype(np.float32) / 1000),
     _stretch(DEPTH16)),
    ('yuv422 (uyvy)', raw('yuv422', cv2.cvtColor(
        np.full((H, W, 3), (10, 200, 60), np.uint8),
        cv2.COLOR_RGB2YUV_UYVY)), lambda out: np.abs(
            out.astype(int) - (10, 200, 60)).max() <= 6),
    ('yuv422_yuy2', raw('yuv422_yuy2', cv2.cvtColor(
        np.full((H, W, 3), (10, 200, 60), np.uint8),
        cv2.COLOR_RGB2YUV_YUY2)), lambda out: np.abs(
            out.astype(int) - (10, 200, 60)).max() <= 6),
    ('bayer_rggb8 grey', raw('bayer_rggb8', np.full((H, W), 90, np.uint8)),
     np.full((H, W, 3), 90, np.uint8)),
    ('bayer_gbrg8 grey', raw('bayer_gbrg8', np.full((H, W), 90, np.uint8)),
     np.full((H, W, 3), 90, np.uint8)),
    ('step with padding', raw('rgb8', RGB, step=W * 3 + 9), RGB),
    ('mono8 step with padding', raw('mono8', GREY, step=W + 3),
     np.dstack([GREY] * 3)),
    ('8K rgb8 frame', raw('rgb8', None, width=7680, height=4320,
                          step=7680 * 3, data=bytes(BIG * 3)),
     lambda out: out.shape == (4320, 7680, 3)),
    ('unknown encoding', raw('rgb42', RGB), ('reject', 'encoding')),
    ('empty encoding', raw('', RGB), ('reject', 'encoding')),
    ('width 0', raw('rgb8', RGB, width=0), ('reject', 'width')),
    ('height 0', raw('rgb8', RGB, height=0), ('reject', 'height')),
    ('step smaller than a row', raw('rgb8', RGB, step=W * 3 - 1,
                                    data=RGB.tobytes()), ('reject', 'step')),
    ('step 0', raw('rgb8', RGB, step=0, data=RGB.tobytes()),
     ('reject', 'step')),
    ('data shorter than step*height', raw('rgb8', RGB,
                                          data=RGB.tobytes()[:-1]),
     ('reject', 'data')),
    ('data longer than step*height', raw('rgb8', RGB,
                                         data=RGB.tobytes() + b'\0' * 24),
     ('reject', 'data')),
    ('empty data', raw('rgb8', RGB, data=b''), ('reject', 'data')),
    ('odd width for yuv422', raw('yuv422', None, width=7, step=14,
                                 data=bytes(14 * H)), ('reject', 'width')),
    ('16-bit step not a sample multiple', raw('mono16', None, step=17,
                                              data=bytes(17 * H)),
     ('reject', 'step')),
    ('frame beyond the size limit', raw('mono8', None, width=100000,
                                        height=100000, step=100000,
                                        data=b''), ('reject', 'width')),
]

COMPRESSED_CASES = [
    ('jpeg', ('jpeg', _jpeg(np.full((16, 16, 3), (90, 180, 30), np.uint8))),
     lambda out: np.abs(out.astype(int) - (30, 180, 90)).max() <= 6),
    ('png', ('png', cv2.imencode('.png', RGB[..., ::-1])[1].tobytes()), RGB),
    ('corrupt jpeg', ('jpeg', b'\xff\xd8\xff' + bytes(50)),
     ('reject', 'data')),
    ('truncated jpeg', ('jpeg', _jpeg(RGB[..., ::-1])[:30]),
     ('reject', 'data')),
    ('empty CompressedImage', ('jpeg', b''), ('reject', 'data')),
]
