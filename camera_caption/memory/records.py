"""
What the caption memory stores and returns, read from ``caption_info``.

No ROS import.  :func:`record_from_info` turns one ``caption_info`` JSON
into a :class:`CaptionRecord`, or raises :class:`MemoryInputError` with one
line that names the field and its value.  :class:`Match` is one stored row
as ``recall`` returns it.
"""

from dataclasses import asdict, dataclass
import datetime
import json
import math

from camera_caption.contract.errors import MemoryInputError, MemoryStoreError

__all__ = ['CaptionRecord', 'Match', 'MemoryInputError', 'MemoryStoreError',
           'record_from_info', 'iso_time', 'camera_of_info_topic']
# Longest caption stored, in characters (the captioner already cuts at
# max_caption_chars; this guards the database against anyone else).
MAX_CAPTION_CHARS = 8192
MAX_NAME_CHARS = 512
# Image stamps are seconds since the epoch (or since a simulation began);
# 1e10 s is the year 2286, so a larger one was given in ms or ns.
MAX_STAMP = 1e10


@dataclass
class CaptionRecord:
    """One caption to store."""

    stamp: float                 # image stamp, seconds
    camera: str                  # the camera's image topic
    caption: str
    frame_id: str = ''
    model: str = ''
    latency_s: float = None
    clip_first: float = None     # a clip's first and last image stamps
    clip_last: float = None
    pose: dict = None            # frame_id in memory_fixed_frame, from tf
    thumbnail: bytes = None      # small JPEG of the captioned frame
    robot: str = ''              # which machine stored it (a fleet shares one)


@dataclass
class Match:
    """One stored caption, as recall returns it."""

    id: int  # noqa: A003 - the row's id, as the JSON names it
    stamp: float                 # first image stamp of this caption
    last_stamp: float            # last stamp of identical captions in a row
    repeats: int                 # how many captions in a row it stands for
    camera: str
    frame_id: str
    caption: str
    model: str
    latency_s: float
    clip_first: float
    clip_last: float
    pose: dict
    robot: str
    has_thumbnail: bool
    score: int = 0               # 2: the whole text, 1: every word, 0: no text

    def as_dict(self):
        """Return the JSON-ready dict of this match, with ISO times."""
        out = asdict(self)
        out['time'] = iso_time(self.stamp)
        out['last_time'] = iso_time(self.last_stamp)
        return out


def iso_time(stamp):
    """Return ``stamp`` (seconds since the epoch) as local ISO 8601 time."""
    try:
        return datetime.datetime.fromtimestamp(stamp).astimezone().isoformat(
            timespec='milliseconds')
    except (ValueError, OverflowError, OSError):   # a row stored before
        return f'{stamp:.3f}'                      # stamps were bounded


def _field(info, name, kind, required=False, default=None, stamp=False):
    """
    Return ``info[name]`` as ``kind``, or raise naming the field.

    ``stamp``: a float that must be seconds since the epoch.
    """
    if name not in info or info[name] is None:
        if required:
            raise MemoryInputError(f"caption_info has no '{name}'")
        return default
    value = info[name]
    if kind is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value):
            raise MemoryInputError(
                f"caption_info field '{name}' = {_short(value)} is not a "
                'finite number')
        if stamp and not 0 <= value < MAX_STAMP:
            raise MemoryInputError(
                f"caption_info field '{name}' = {_short(value)} is not "
                f'seconds since the epoch (0 to {MAX_STAMP:g})')
        return float(value)
    if not isinstance(value, str):
        raise MemoryInputError(
            f"caption_info field '{name}' = {_short(value)} is not a string")
    return text_or_refuse(value, f"caption_info field '{name}'")


def text_or_refuse(value, what):
    """Return ``value`` if it can be stored as UTF-8 (no lone surrogate)."""
    try:
        value.encode('utf-8')
    except UnicodeEncodeError:
        raise MemoryInputError(
            f'{what} = {ascii(value)[:60]} is not UTF-8 text (a lone '
            'surrogate)') from None
    return value


def _short(value, limit=60):
    text = json.dumps(value, ensure_ascii=False) if not isinstance(
        value, str) else repr(value)
    return text if len(text) <= limit else text[:limit - 1] + '…'


def record_from_info(text, topic=''):
    """
    Read one ``caption_info`` JSON into a :class:`CaptionRecord`.

    ``topic`` (the ``caption_info`` topic it came on) names the camera
    when the JSON has no ``image_topic``.  Control characters are not
    removed here: the stores keep text as received, and whoever prints it
    makes it safe.
    """
    try:
        info = json.loads(text)
    except (TypeError, ValueError) as exc:
        raise MemoryInputError(
            f'caption_info is not JSON ({exc}): {_short(text)}') from None
    if not isinstance(info, dict):
        raise MemoryInputError(
            f'caption_info is not a JSON object: {_short(info)}')
    stamp = _field(info, 'stamp', float, required=True, stamp=True)
    caption = _field(info, 'caption', str, required=True)
    camera = _field(info, 'image_topic', str) or camera_of_info_topic(topic)
    if not camera:
        raise MemoryInputError("caption_info has no 'image_topic'")
    clip_first = _field(info, 'clip_first_stamp', float, stamp=True)
    clip_last = _field(info, 'clip_last_stamp', float, stamp=True)
    latency = _field(info, 'latency_s', float)
    model = _field(info, 'model', str) or _field(info, 'family', str) or ''
    return CaptionRecord(
        stamp=stamp, camera=camera[:MAX_NAME_CHARS],
        caption=caption[:MAX_CAPTION_CHARS],
        frame_id=(_field(info, 'frame_id', str) or '')[:MAX_NAME_CHARS],
        model=model[:MAX_NAME_CHARS], latency_s=latency,
        clip_first=clip_first, clip_last=clip_last)


def camera_of_info_topic(topic):
    """``/cam1/caption_info`` -> ``/cam1/image_raw`` (the usual camera topic)."""
    if not topic:
        return ''
    prefix = topic[:-len('caption_info')] if topic.endswith(
        'caption_info') else topic.rstrip('/') + '/'
    return prefix + 'image_raw'
