"""Every catalogued input converts correctly or is refused, naming the field."""

from camera_caption.frames.image_conversion import (compressed_to_rgb,
                                                    ImageConversionError,
                                                    raw_to_rgb)
from hypothesis import given, settings, strategies as st
from input_catalogue import COMPRESSED_CASES, RAW_CASES
import numpy as np
import pytest

pytestmark = pytest.mark.unit


def check(result_or_error, expected):
    if isinstance(expected, tuple):
        assert isinstance(result_or_error, ImageConversionError), \
            f'accepted, expected a rejection of {expected[1]!r}'
        assert result_or_error.field == expected[1]
        assert f"'{expected[1]}'=" in str(result_or_error)
        return
    assert not isinstance(result_or_error, Exception), result_or_error
    assert result_or_error.dtype == np.uint8
    assert result_or_error.ndim == 3 and result_or_error.shape[2] == 3
    if callable(expected):
        assert expected(result_or_error)
    else:
        np.testing.assert_array_equal(result_or_error, expected)


def attempt(func, *args, **kwargs):
    try:
        return func(*args, **kwargs)
    except ImageConversionError as exc:
        return exc


@pytest.mark.parametrize('fields,expected', [c[1:] for c in RAW_CASES],
                         ids=[c[0] for c in RAW_CASES])
def test_raw_image(fields, expected):
    check(attempt(raw_to_rgb, **fields), expected)


@pytest.mark.parametrize('payload,expected',
                         [c[1:] for c in COMPRESSED_CASES],
                         ids=[c[0] for c in COMPRESSED_CASES])
def test_compressed_image(payload, expected):
    check(attempt(compressed_to_rgb, *payload), expected)


ENCODINGS = st.sampled_from(
    ['rgb8', 'bgr8', 'mono8', 'rgba8', 'bgra8', 'mono16', '16UC1', '32FC1',
     'yuv422', 'yuv422_yuy2', 'bayer_rggb8', '8UC3', 'rgb16', '', 'jpeg',
     '\x00', 'RGB8'])
INTS = st.one_of(st.integers(-5, 70), st.integers(-2**40, 2**40),
                 st.sampled_from([0, 1, 2, 3, 4, 6, 8, 12, 24, 48]))


@settings(max_examples=400, deadline=None)
@given(width=INTS, height=INTS, step=INTS, encoding=ENCODINGS,
       data=st.binary(max_size=600), bigendian=st.integers(0, 1))
def test_random_headers_and_bytes_raise_only_our_error(
        width, height, step, encoding, data, bigendian):
    try:
        out = raw_to_rgb(width, height, encoding, step, data, bigendian)
    except ImageConversionError as exc:
        assert exc.field in ('width', 'height', 'step', 'data', 'encoding')
        return
    assert out.shape == (height, width, 3) and out.dtype == np.uint8


@settings(max_examples=150, deadline=None)
@given(data=st.binary(max_size=300),
       fmt=st.sampled_from(['jpeg', 'png', '']))
def test_random_compressed_payloads_raise_only_our_error(data, fmt):
    try:
        out = compressed_to_rgb(fmt, data)
    except ImageConversionError as exc:
        assert exc.field == 'data'
        return
    assert out.ndim == 3 and out.shape[2] == 3
