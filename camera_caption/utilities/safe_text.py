"""
Text from outside made safe to publish and to log.

No ROS import.  A caption, an answer or an error body comes from a model or
a server that may misbehave: escape sequences would clear a user's
terminal or retitle it, carriage returns and newlines would forge log
lines, a NUL byte cuts C strings short, and megabytes of text would flood
every log.  :func:`safe_text` removes terminal escape sequences, control
characters and bidirectional overrides, turns line breaks and tabs into
spaces and cuts the text to a bounded length with a marker; any other
text (Japanese included) passes unchanged.  :func:`mask` hides a secret.
"""

import re

# ESC sequences: CSI (ESC [ ... final), OSC (ESC ] ... BEL or ST), DCS/PM/
# APC/SOS strings (ESC P/^/_/X ... ST) and two-byte ones (ESC + one char).
_ESCAPES = re.compile(
    r'\x1b\[[0-?]*[ -/]*[@-~]'
    r'|\x1b\][^\x07\x1b]*(?:\x07|\x1b\\)?'
    r'|\x1b[P^_X][^\x1b]*(?:\x1b\\)?'
    r'|\x1b[@-Z\\-_]'
    r'|\x9b[0-?]*[ -/]*[@-~]')
_SPACES = {ord(c): ' ' for c in '\x00\t\n\r\v\f\x85\u2028\u2029'}
# C0 and C1 controls, DEL, and the bidirectional overrides and isolates.
_DROP = {c: None for c in [*range(0x00, 0x20), 0x7f, *range(0x80, 0xa0),
                           *range(0x202a, 0x202f), *range(0x2066, 0x206a)]
         if c not in _SPACES}
_TABLE = {**_DROP, **_SPACES}
MARKER = '…'


def safe_text(text, limit=0):
    """
    Return ``text`` fit for a topic and a log line: one line, no controls.

    ``limit`` > 0 cuts it to at most that many characters, the last one
    being the marker ``…``.
    """
    text = _ESCAPES.sub('', str(text)).translate(_TABLE)
    text = re.sub(' {2,}', ' ', text).strip()
    if limit and len(text) > limit:
        text = text[:max(0, limit - 1)] + MARKER
    return text


def mask(text, *secrets):
    """Return ``text`` with every non-empty ``secret`` in it as ``***``."""
    for secret in secrets:
        if secret:
            text = text.replace(secret, '***')
    return text
