"""The caption overlay: layout, band pixels, Japanese glyphs, fallback."""

from camera_caption.frames.caption_overlay import (CaptionOverlay, fit_lines,
                                                   wrap_text)
from camera_caption.frames.frame_sources import TestPatternSource
from camera_caption.frames.overlay_font import find_fonts
import numpy as np
import pytest

pytestmark = pytest.mark.unit

JAPANESE = '猫がドアの前に座っている、人が入ってくる'


def frame(width=320, height=240):
    return TestPatternSource(width, height).read()[:, :, ::-1].copy()


def test_wrap_between_words_and_inside_long_words_and_cjk():
    def width(s):
        return len(s)                    # one unit per character
    assert wrap_text('a man  at the door', width, 8) == ['a man at',
                                                         'the door']
    assert wrap_text('abcdefghij xy', width, 4) == ['abcd', 'efgh', 'ij', 'xy']
    assert wrap_text('猫がドアの前に', width, 3) == ['猫がド', 'アの前', 'に']
    assert wrap_text('', width, 5) == []
    assert fit_lines(['aaaa', 'bbbb', 'cccc', 'dddd'], width, 4, 3) == [
        'aaaa', 'bbbb', 'ccc…']


@pytest.mark.parametrize('size', [(320, 240), (640, 480), (64, 48)])
def test_band_is_drawn_and_the_rest_of_the_frame_is_unchanged(size):
    image = frame(*size)
    original = image.copy()
    overlay = CaptionOverlay()
    out = overlay.render(image, 'a person is standing at the open door of '
                         'a room with a dog and a cat')
    assert np.array_equal(image, original)          # the input is kept
    assert out.shape == image.shape and out.dtype == np.uint8
    changed = np.nonzero(np.any(out != image, axis=(1, 2)))[0]
    top = changed.min()
    assert changed.max() == image.shape[0] - 1      # the band is at the bottom
    assert np.array_equal(out[:top], image[:top])   # above it: untouched
    assert image.shape[0] * 0.05 < image.shape[0] - top < image.shape[0] / 2
    band = out[top:].astype(int)
    white = (band.min(axis=2) > 200).mean()         # the text
    assert 0.01 < white < 0.5, white
    assert overlay.rendered == 1


def test_japanese_renders_without_missing_glyphs_or_says_it_falls_back():
    lines = []
    overlay = CaptionOverlay(lines.append)
    out = overlay.render(frame(), JAPANESE)
    chain, has_cjk = find_fonts(CaptionOverlay.text_size(240))
    if has_cjk:
        assert chain.missing(JAPANESE) == []
        assert lines == []
        assert (out[-40:].min(axis=2) > 200).sum() > 100   # glyphs drawn
    else:                                 # CI installs a font: not there
        assert len(lines) == 1 and 'no font with Japanese glyphs' in lines[0]


def test_without_fonts_hershey_draws_ascii_and_says_so_once():
    lines = []
    overlay = CaptionOverlay(lines.append, latin=[], cjk=[])
    image = frame()
    for text in ('a door', '猫 café'):
        out = overlay.render(image, text)
        assert (out[-30:].min(axis=2) > 200).sum() > 20
    assert overlay.fallback and overlay.rendered == 2
    assert len(lines) == 1
    assert "OpenCV's Hershey font, ASCII only" in lines[0]
