"""
Draw a caption onto its frame: a dark band at the bottom, wrapped text.

No ROS import.  :func:`wrap_text` breaks a caption into lines that fit a
width (between words; inside a word, or between CJK characters, when it
must).  :class:`CaptionOverlay` returns a copy of the RGB frame, of the
same size, with the caption drawn in a band across its bottom; the rows
above the band are untouched.  It draws with TrueType fonts found on the
machine (:mod:`camera_caption.frames.overlay_font`), Japanese included;
where there is none, with OpenCV's Hershey font (ASCII only), said once
through ``log``.  Fonts are looked up on the first frame, per text size.
"""

import re
import threading

from camera_caption.frames.overlay_font import find_fonts
import cv2
import numpy as np

MAX_LINES = 3
BAND_DARKEN = 0.35           # band pixels keep 35 % of their brightness
ELLIPSIS = '…'
# One token per CJK character (no spaces between words), else words and
# runs of spaces.
_TOKENS = re.compile(r'[\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af\uff00-\uffef]'
                     r'|[^\s\u3000-\u30ff\u3400-\u9fff\uac00-\ud7af'
                     r'\uff00-\uffef]+|\s+')


def wrap_text(text, width_of, max_width):
    """Return the lines of ``text`` that each fit ``max_width``."""
    lines, line = [], ''
    for token in _TOKENS.findall(' '.join(text.split())):
        if width_of((line + token).rstrip()) <= max_width:
            line += token
            continue
        if line.strip():
            lines.append(line.rstrip())
        line = ''
        if token.isspace():
            continue
        for ch in token:              # too long alone: break inside it
            if line and width_of(line + ch) > max_width:
                lines.append(line)
                line = ''
            line += ch
    if line.strip():
        lines.append(line.rstrip())
    return lines


def fit_lines(lines, width_of, max_width, max_lines=MAX_LINES,
              ellipsis=ELLIPSIS):
    """Keep ``max_lines``; end the last kept one with ``ellipsis``."""
    if len(lines) <= max_lines:
        return lines
    last = lines[max_lines - 1]
    while last and width_of(last + ellipsis) > max_width:
        last = last[:-1]
    return lines[:max_lines - 1] + [last.rstrip() + ellipsis]


class CaptionOverlay:
    """Render captions onto frames; thread-safe; counts what it drew."""

    def __init__(self, log=None, latin=None, cjk=None):
        self._log = log or (lambda message: None)
        self._latin, self._cjk = latin, cjk     # None: search the machine
        self._chains = {}                       # text size -> FontChain
        self._lock = threading.Lock()
        self._said_fallback = False
        self.rendered = 0
        self.fallback = False   # True once a frame was drawn with Hershey

    def _chain(self, size):
        with self._lock:
            if size not in self._chains:
                chain, has_cjk = find_fonts(size, self._latin, self._cjk)
                self._chains[size] = chain
                if not self._said_fallback and (chain is None or
                                                not has_cjk):
                    self._said_fallback = True
                    self._log(
                        'caption_image: no font with Japanese glyphs found '
                        '(install fonts-droid-fallback, fonts-noto-cjk or '
                        'fonts-ipafont-gothic); ' + (
                            "drawing with OpenCV's Hershey font, ASCII only"
                            if chain is None else
                            f'drawing with {", ".join(chain.paths)}, '
                            'Japanese as boxes'))
            return self._chains[size]

    @staticmethod
    def text_size(height):
        """Text height in pixels for a frame ``height`` pixels high."""
        return max(10, round(height / 22))

    def render(self, image, text):
        """Return a copy of RGB ``image`` with ``text`` in a bottom band."""
        height, width = image.shape[:2]
        size = self.text_size(height)
        pad = max(2, size // 3)
        chain = self._chain(size)
        if chain is None:
            out = self._render_hershey(image, text, size, pad)
        else:
            out = self._render_truetype(image, text, chain, size, pad)
        with self._lock:
            self.rendered += 1
            self.fallback = self.fallback or chain is None
        return out

    @staticmethod
    def max_lines(image, line_height):
        """Lines that fit a third of the frame (1 to MAX_LINES)."""
        return min(MAX_LINES, max(1, image.shape[0] // 3 // line_height))

    @staticmethod
    def _band(image, n_lines, line_height, pad):
        out = image.copy()
        top = max(0, out.shape[0] - n_lines * line_height - 2 * pad)
        band = out[top:]
        band[:] = (band * BAND_DARKEN).astype(np.uint8)
        return out, top

    def _render_truetype(self, image, text, chain, size, pad):
        from PIL import Image, ImageDraw
        max_width = image.shape[1] - 2 * pad
        line_height = round(size * 1.25)
        lines = fit_lines(wrap_text(text, chain.length, max_width),
                          chain.length, max_width,
                          self.max_lines(image, line_height)) or ['']
        out, top = self._band(image, len(lines), line_height, pad)
        band = Image.fromarray(out[top:])
        draw = ImageDraw.Draw(band)
        for i, line in enumerate(lines):
            baseline = pad + i * line_height + size
            chain.draw(draw, (pad, baseline), line, (255, 255, 255))
        out[top:] = np.asarray(band)
        return out

    def _render_hershey(self, image, text, size, pad):
        font, thickness = cv2.FONT_HERSHEY_SIMPLEX, 1
        scale = size / 22.0
        ascii_text = ''.join(ch if ' ' <= ch <= '~' else '?' for ch in text)

        def width_of(part):
            return cv2.getTextSize(part, font, scale, thickness)[0][0]

        max_width = image.shape[1] - 2 * pad
        line_height = round(size * 1.25)
        lines = fit_lines(wrap_text(ascii_text, width_of, max_width),
                          width_of, max_width,
                          self.max_lines(image, line_height),
                          ellipsis='...') or ['']
        out, top = self._band(image, len(lines), line_height, pad)
        band = np.ascontiguousarray(out[top:])
        for i, line in enumerate(lines):
            cv2.putText(band, line, (pad, pad + i * line_height + size),
                        font, scale, (255, 255, 255), thickness,
                        cv2.LINE_AA)
        out[top:] = band
        return out
