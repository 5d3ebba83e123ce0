"""
Write captions to a transcript: JSON Lines, SubRip (.srt) or WebVTT.

No ROS import.  Every caption is written, flushed and fsync'ed at once, so
a crash loses no line.  Subtitle times are the image stamps relative to the
first caption's stamp (or ``origin``), each shown for ``duration`` seconds.
A clip's caption starts at the clip's first image stamp and is shown until
its last one, at least ``duration`` seconds.  Text is written as UTF-8, as
it is (Japanese included, no escapes).
"""

import json
import os

from camera_caption.contract.constants import TRANSCRIPT_FORMATS

FORMATS = TRANSCRIPT_FORMATS


def _clock(seconds, separator):
    millis = int(round(max(0.0, seconds) * 1000))
    hours, millis = divmod(millis, 3600000)
    minutes, millis = divmod(millis, 60000)
    secs, millis = divmod(millis, 1000)
    return f'{hours:02d}:{minutes:02d}:{secs:02d}{separator}{millis:03d}'


class TranscriptWriter:
    """Append captions to ``path`` in ``fmt`` (jsonl, srt or vtt)."""

    def __init__(self, path, fmt='jsonl', duration=3.0, origin=None):
        if fmt not in FORMATS:
            raise ValueError(f"transcript_format '{fmt}' is not one of "
                             'jsonl, srt, vtt')
        self.path = path
        self.fmt = fmt
        self.duration = duration
        self.origin = origin
        self.count = 0
        directory = os.path.dirname(os.path.abspath(path))
        os.makedirs(directory, exist_ok=True)
        self._file = open(path, 'w', encoding='utf-8')
        if fmt == 'vtt':
            self._emit('WEBVTT\n\n')

    def write(self, stamp, caption, topic='', clip=None):
        """
        Append one caption with its image stamp (seconds).

        ``clip``: ``(first, last)`` image stamps of a clip's caption (the
        JSON line gets them as ``clip_first_stamp``/``clip_last_stamp``).
        """
        self.count += 1
        if self.fmt == 'jsonl':
            line = {'stamp': stamp, 'caption': caption, 'topic': topic}
            if clip:
                line.update(clip_first_stamp=clip[0],
                            clip_last_stamp=clip[1])
            self._emit(json.dumps(line, ensure_ascii=False) + '\n')
            return
        first, last = clip if clip else (stamp, stamp)
        if self.origin is None:
            self.origin = first
        start = first - self.origin
        end = max(last - self.origin, start + self.duration)
        sep = ',' if self.fmt == 'srt' else '.'
        timing = f'{_clock(start, sep)} --> {_clock(end, sep)}\n'
        text = ' '.join(caption.split()) or '…'
        number = f'{self.count}\n' if self.fmt == 'srt' else ''
        self._emit(f'{number}{timing}{text}\n\n')

    def _emit(self, text):
        self._file.write(text)
        self._file.flush()
        os.fsync(self._file.fileno())

    def close(self):
        """Close the file."""
        self._file.close()
