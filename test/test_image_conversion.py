"""Image message fields -> RGB: every encoding, checked pixel values."""

from camera_caption.frames.image_conversion import (bgr_to_encoding,
                                                    compressed_to_rgb,
                                                    ImageConversionError,
                                                    raw_to_rgb)
import cv2
import numpy as np
import pytest

pytestmark = pytest.mark.unit

RNG = np.random.default_rng(1)
RGB = RNG.integers(0, 256, (6, 8, 3), dtype=np.uint8)


def convert(image, encoding, step=None, pad=0, bigendian=0):
    """Pack ``image`` as message fields (optional row padding), convert."""
    h, w = image.shape[:2]
    rows = image.reshape(h, -1).view(np.uint8)
    if pad:
        rows = np.hstack([rows, np.full((h, pad), 7, np.uint8)])
    step = rows.shape[1] if step is None else step
    return raw_to_rgb(w, h, encoding, step, rows.tobytes(), bigendian)


@pytest.mark.parametrize('encoding,packed', [
    ('rgb8', RGB),
    ('bgr8', RGB[..., ::-1]),
    ('8UC3', RGB[..., ::-1]),
    ('rgba8', np.dstack([RGB, np.full(RGB.shape[:2], 9, np.uint8)])),
    ('bgra8', np.dstack([RGB[..., ::-1], np.full(RGB.shape[:2], 9,
                                                 np.uint8)])),
])
def test_colour_encodings_give_rgb(encoding, packed):
    out = convert(np.ascontiguousarray(packed), encoding)
    assert out.shape == (6, 8, 3) and out.dtype == np.uint8
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('encoding', ['mono8', '8UC1'])
def test_mono8_is_grey_rgb(encoding):
    grey = RGB[..., 0].copy()
    out = convert(grey[..., None], encoding)
    np.testing.assert_array_equal(out, np.dstack([grey] * 3))


def test_rgb8_is_zero_copy_view_of_message_buffer():
    data = bytearray(RGB.tobytes())
    out = raw_to_rgb(8, 6, 'rgb8', 24, data)
    assert np.shares_memory(out, np.frombuffer(data, np.uint8))


def test_row_padding_is_skipped():
    out = convert(RGB, 'rgb8', pad=5)
    np.testing.assert_array_equal(out, RGB)
    out = convert(RGB[..., ::-1].copy(), 'bgr8', pad=8)
    np.testing.assert_array_equal(out, RGB)


@pytest.mark.parametrize('bigendian', [0, 1])
def test_mono16_takes_high_byte_in_either_byte_order(bigendian):
    values = RNG.integers(0, 65536, (6, 8), dtype=np.uint16)
    packed = values.astype('>u2' if bigendian else '<u2')
    out = convert(packed.view(np.uint8).reshape(6, 8, 2), 'mono16',
                  bigendian=bigendian)
    np.testing.assert_array_equal(out[..., 0], (values >> 8).astype(np.uint8))


def test_depth_16uc1_and_32fc1_are_stretched_to_full_range():
    depth = np.array([[0, 1000], [2000, 3000]], np.uint16)
    out = convert(depth.view(np.uint8).reshape(2, 2, 2), '16UC1')
    assert out[0, 0, 0] == 0 and out[1, 1, 0] == 255
    assert out[0, 1, 0] == 0  # the smallest valid depth maps to 0
    metres = np.array([[np.nan, 1.0], [2.0, np.inf]], np.float32)
    out = convert(metres.view(np.uint8).reshape(2, 2, 4), '32FC1')
    assert out[0, 0, 0] == 0 and out[0, 1, 0] == 0 and out[1, 0, 0] == 255


@pytest.mark.parametrize('encoding,code', [
    ('yuv422', cv2.COLOR_RGB2YUV_UYVY if hasattr(cv2, 'COLOR_RGB2YUV_UYVY')
     else None),
    ('yuv422_yuy2', cv2.COLOR_RGB2YUV_YUY2 if hasattr(
        cv2, 'COLOR_RGB2YUV_YUY2') else None),
])
def test_yuv422_round_trip_is_close(encoding, code):
    flat = np.full((4, 8, 3), (200, 40, 90), np.uint8)
    if code is None:
        pytest.fail('OpenCV lacks RGB->YUV422 conversion')
    packed = cv2.cvtColor(flat, code)
    out = convert(packed.reshape(4, 8, 2), encoding)
    assert np.abs(out.astype(int) - flat.astype(int)).max() <= 6


@pytest.mark.parametrize('encoding', ['bayer_rggb8', 'bayer_bggr8',
                                      'bayer_gbrg8', 'bayer_grbg8'])
def test_bayer_patterns_give_the_right_colour(encoding):
    # A flat red scene sampled through each pattern.
    pattern = encoding[6:10]
    mosaic = np.zeros((8, 8), np.uint8)
    for i, colour in enumerate(pattern):
        if colour == 'r':
            mosaic[i // 2::2, i % 2::2] = 220
    out = convert(mosaic[..., None], encoding)
    centre = out[2:6, 2:6].reshape(-1, 3).mean(axis=0)
    assert centre[0] > 150 and centre[1] < 60 and centre[2] < 60


@pytest.mark.parametrize('kwargs,field', [
    ({'encoding': 'rgb16'}, 'encoding'),
    ({'encoding': ''}, 'encoding'),
    ({'width': 0}, 'width'),
    ({'height': 0}, 'height'),
    ({'width': -3}, 'width'),
    ({'step': 23}, 'step'),
    ({'data': b'\0' * 100}, 'data'),
    ({'data': b'\0' * 200}, 'data'),
    ({'data': b''}, 'data'),
    ({'width': 1.5}, 'width'),
    ({'data': None}, 'data'),
    ({'width': 100000, 'height': 100000, 'step': 300000}, 'width'),
])
def test_bad_fields_are_named_in_the_error(kwargs, field):
    fields = {'width': 8, 'height': 6, 'encoding': 'rgb8', 'step': 24,
              'data': RGB.tobytes()}
    fields.update(kwargs)
    with pytest.raises(ImageConversionError) as info:
        raw_to_rgb(**fields)
    assert info.value.field == field
    assert f"'{field}'" in str(info.value)


def test_odd_width_yuv_is_refused():
    with pytest.raises(ImageConversionError, match="'width'=3"):
        raw_to_rgb(3, 2, 'yuv422', 6, b'\0' * 12)


def test_compressed_jpeg_decodes_and_bad_payloads_are_refused():
    bgr = np.zeros((16, 16, 3), np.uint8)
    bgr[..., 2] = 255  # red
    ok, jpeg = cv2.imencode('.jpg', bgr)
    assert ok
    out = compressed_to_rgb('jpeg', jpeg.tobytes())
    assert out.shape == (16, 16, 3) and out[8, 8, 0] > 200
    with pytest.raises(ImageConversionError, match="'data'"):
        compressed_to_rgb('jpeg', b'')
    with pytest.raises(ImageConversionError, match='could not be decoded'):
        compressed_to_rgb('jpeg', jpeg.tobytes()[:40] + b'\xff' * 10)


def test_camera_side_encoding_from_bgr():
    bgr = RGB[..., ::-1].copy()
    np.testing.assert_array_equal(bgr_to_encoding(bgr, 'rgb8'), RGB)
    np.testing.assert_array_equal(bgr_to_encoding(bgr, 'bgr8'), bgr)
    with pytest.raises(ImageConversionError, match="'encoding'='mono8'"):
        bgr_to_encoding(bgr, 'mono8')


def _png(width, height):
    import io
    from PIL import Image
    out = io.BytesIO()
    Image.new('L', (width, height)).save(out, 'PNG')
    return out.getvalue()


@pytest.mark.parametrize('width,height', [(9000, 8000), (20000, 20000)])
def test_a_compressed_image_that_decodes_too_large_is_refused_undecoded(
        width, height):
    data = _png(width, height)           # well under a megabyte each
    assert len(data) < 2**20
    with pytest.raises(ImageConversionError, match='more than 67108864 '
                       'pixels') as error:
        compressed_to_rgb('png', data)
    assert error.value.field == 'data'
