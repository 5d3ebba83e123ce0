"""
Fonts for the caption overlay: Latin and Japanese, never downloaded.

No ROS import.  :func:`find_fonts` looks for installed TrueType/OpenType
fonts with fontconfig (``fc-match sans-serif``, ``fc-list :lang=ja``) and
at known paths of Debian/Ubuntu font packages, keeping each one that
Pillow loads and that really has its probe glyphs.  A :class:`FontChain`
draws every character with the first font that has it (CJK fallback
fonts such as Droid Sans Fallback have no Latin letters), so one caption
may mix scripts.  No font at all: the caller draws with OpenCV's Hershey
font (ASCII only) instead.
"""

import os
import subprocess

LATIN_PATHS = (
    '/usr/share/fonts/truetype/dejavu/DejaVuSans.ttf',
    '/usr/share/fonts/truetype/liberation/LiberationSans-Regular.ttf',
    '/usr/share/fonts/truetype/freefont/FreeSans.ttf',
)
# Debian/Ubuntu packages, smallest first: fonts-droid-fallback,
# fonts-ipafont-gothic, fonts-wqy-zenhei, fonts-noto-cjk.
CJK_PATHS = (
    '/usr/share/fonts/truetype/droid/DroidSansFallbackFull.ttf',
    '/usr/share/fonts/opentype/ipafont-gothic/ipag.ttf',
    '/usr/share/fonts/truetype/wqy/wqy-zenhei.ttc',
    '/usr/share/fonts/opentype/noto/NotoSansCJK-Regular.ttc',
)
LATIN_PROBE = 'Aag'
CJK_PROBE = 'あア字'          # hiragana, katakana, kanji
_ABSENT = '\U0010fffd'        # a private-use code point no font maps


def _run(args):
    try:
        return subprocess.run(args, capture_output=True, text=True,
                              timeout=5, check=False).stdout
    except (OSError, subprocess.SubprocessError):
        return ''


def fontconfig_latin():
    """Return fontconfig's sans-serif font file (may be [])."""
    path = _run(['fc-match', '-f', '%{file}', 'sans-serif']).strip()
    return [path] if path else []


def fontconfig_cjk(lang='ja'):
    """Return the font files fontconfig says cover ``lang`` (may be [])."""
    files = [line.strip().rstrip(':') for line in
             _run(['fc-list', f':lang={lang}', 'file']).splitlines()
             if line.strip()]
    # Sans / gothic faces first: they read best over a busy image.
    return sorted(files, key=lambda f: (
        not any(w in os.path.basename(f).lower()
                for w in ('sans', 'gothic', 'goth')), f))


def _signature(font, char):
    mask = font.getmask(char)
    return font.getbbox(char), mask.size, bytes(mask)


def has_glyphs(font, text):
    """Return whether ``font`` draws every character of ``text``."""
    absent = _signature(font, _ABSENT)
    return all(ch.isspace() or _signature(font, ch) != absent
               for ch in text)


def load_font(candidates, size, probe):
    """Return ``(path, font)`` of the first candidate with ``probe``."""
    from PIL import ImageFont
    for path in candidates:
        if not path or not os.path.isfile(path):
            continue
        try:
            font = ImageFont.truetype(path, size)
        except OSError:
            continue
        if has_glyphs(font, probe):
            return path, font
    return None


class FontChain:
    """Draw each character with the first of ``fonts`` that has it."""

    def __init__(self, fonts):
        self.fonts = list(fonts)          # [(path, FreeTypeFont)]
        self._choice = {}
        self._absent = [_signature(f, _ABSENT) for _, f in self.fonts]

    @property
    def paths(self):
        """Return the font files, in order."""
        return [path for path, _ in self.fonts]

    def font_index(self, char):
        """Index of the font for ``char``; None when none has it."""
        if char not in self._choice:
            self._choice[char] = next(
                (i for i, (_, font) in enumerate(self.fonts)
                 if char.isspace() or
                 _signature(font, char) != self._absent[i]), None)
        return self._choice[char]

    def missing(self, text):
        """Return the characters of ``text`` that no font has."""
        return sorted({ch for ch in text if self.font_index(ch) is None})

    def runs(self, text):
        """Split ``text`` into ``[(font, part)]`` runs of one font each."""
        out = []
        for ch in text:
            index = self.font_index(ch)
            font = self.fonts[0 if index is None else index][1]
            if out and out[-1][0] is font:
                out[-1] = (font, out[-1][1] + ch)
            else:
                out.append((font, ch))
        return out

    def length(self, text):
        """Width of ``text`` in pixels."""
        return sum(font.getlength(part) for font, part in self.runs(text))

    def draw(self, draw, xy, text, fill):
        """Draw ``text`` at ``xy`` (left, baseline) with Pillow's ``draw``."""
        x, y = xy
        for font, part in self.runs(text):
            draw.text((x, y), part, font=font, fill=fill, anchor='ls')
            x += font.getlength(part)


def find_fonts(size, latin=None, cjk=None):
    """
    Return ``(FontChain or None, has_cjk)`` for text ``size`` px high.

    ``latin`` and ``cjk`` (lists of paths) replace the search.
    """
    if latin is None:
        latin = fontconfig_latin() + list(LATIN_PATHS)
    if cjk is None:
        cjk = fontconfig_cjk() + list(CJK_PATHS)
    fonts = [found for found in (load_font(latin, size, LATIN_PROBE),
                                 load_font(cjk, size, CJK_PROBE))
             if found is not None]
    if not fonts:
        return None, False
    chain = FontChain(fonts)
    return chain, not chain.missing(CJK_PROBE)
