"""
Export recalled captions as JSON Lines, SubRip or WebVTT.

No ROS import.  The transcript writers of the caption logger write the
file, without control characters or escape sequences; a run of
identical captions is one subtitle from its first to its last stamp.
"""

import os

from camera_caption.pipeline.transcript import FORMATS, TranscriptWriter
from camera_caption.utilities.safe_text import safe_text


def format_of(path, fmt=''):
    """Return the format of ``path``: ``fmt``, else its extension."""
    fmt = fmt or os.path.splitext(path)[1].lstrip('.').lower()
    if fmt == 'json':
        fmt = 'jsonl'
    if fmt not in FORMATS:
        raise ValueError(f"export '{path}': the format is taken from the "
                         'extension: .jsonl, .srt or .vtt')
    return fmt


def export_matches(matches, path, fmt='', duration=3.0):
    """Write ``matches`` oldest first to ``path``; return how many."""
    writer = TranscriptWriter(path, format_of(path, fmt), duration)
    try:
        for match in sorted(matches, key=lambda m: m.stamp):
            clip = None
            if match.last_stamp > match.stamp or match.clip_first is not None:
                clip = (match.clip_first if match.clip_first is not None
                        else match.stamp, match.last_stamp)
            writer.write(match.stamp, safe_text(match.caption, 4096),
                         safe_text(match.camera, 256), clip)
    finally:
        writer.close()
    return writer.count
