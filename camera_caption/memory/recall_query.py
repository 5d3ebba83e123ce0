"""
What a recall asks: words, a time window, a camera, how many.

No ROS import.  A request is free text (``red square``) or JSON with
``text``, ``since``, ``until``, ``camera``, ``robot``, ``limit``, ``last``
(only the newest match), ``timeline`` (in time order, oldest first) and
``summarize`` (also one paragraph of what happened, from the matches).
Times are seconds since the epoch, a duration back from now (``10m``,
``2h``, ``90s``, ``1d``), a clock time, the last time the clock showed it
(``14:05``, ``14:05:30``: today, or yesterday if it is still to come) or an
ISO 8601 date and time (``2026-12-03T14:05``).  A bad request raises
:class:`~camera_caption.memory.records.MemoryInputError` naming the field
and its value.
"""

from dataclasses import dataclass
import datetime
import json
import math
import re
import time

from camera_caption.memory.records import MemoryInputError, text_or_refuse

DEFAULT_LIMIT = 20
MAX_LIMIT = 100000
MAX_TEXT_CHARS = 1000
_DURATION = re.compile(r'^(\d+(?:\.\d+)?)\s*(s|sec|m|min|h|d)$', re.I)
_UNITS = {'s': 1, 'sec': 1, 'm': 60, 'min': 60, 'h': 3600, 'd': 86400}
_CLOCK = re.compile(r'^\d{1,2}:\d{2}(:\d{2}(\.\d+)?)?$')
FIELDS = ('text', 'since', 'until', 'camera', 'robot', 'limit', 'last',
          'timeline', 'summarize')
# Captions a summary is made from, unless the request says how many.
SUMMARY_LIMIT = 200


@dataclass
class RecallQuery:
    """One recall: every field optional."""

    text: str = ''
    since: float = None
    until: float = None
    camera: str = ''
    robot: str = ''
    limit: int = DEFAULT_LIMIT
    last: bool = False           # the newest match only
    timeline: bool = False       # every match in time order (oldest first)
    summarize: bool = False      # also one paragraph of what happened

    def words(self):
        """Split the text at white space (matching ignores case)."""
        return self.text.split()


def parse_time(value, name, now=None):
    """Return ``value`` (see the module doc) as seconds since the epoch."""
    now = time.time() if now is None else now
    if isinstance(value, bool):
        raise MemoryInputError(f"recall field '{name}' = {value!r} is not a "
                               'time')
    if isinstance(value, (int, float)):
        try:
            return _finite(float(value), value, name)
        except OverflowError:                      # a huge JSON integer
            return _finite(math.inf, '(a huge number)', name)
    text = str(value).strip()
    try:
        return _finite(float(text), value, name)
    except ValueError:
        pass
    match = _DURATION.match(text)
    if match:
        return _finite(now - float(match.group(1))
                       * _UNITS[match.group(2).lower()], value, name)
    try:
        # What Python 3.10's fromisoformat does not read: Z, 1-5 digits.
        text = re.sub(r'Z$', '+00:00', text)
        text = re.sub(r'\.(\d{1,6})(?=$|[+-])',
                      lambda m: '.' + m.group(1).ljust(6, '0'), text)
        if _CLOCK.match(text):
            text = ('0' if text.index(':') == 1 else '') + text     # 9:05
            day = datetime.datetime.fromtimestamp(now).date()
            if datetime.datetime.fromisoformat(f'{day}T{text}').timestamp() \
                    > now:                  # at 00:30, 23:00 is last night
                day -= datetime.timedelta(days=1)
            text = f'{day.isoformat()}T{text}'
        moment = datetime.datetime.fromisoformat(text)
    except ValueError:
        raise MemoryInputError(
            f"recall field '{name}' = {str(value)[:60]!r} is not a time: give "
            "seconds since the epoch, a duration ago ('10m', '2h'), a clock "
            "time ('14:05') or an ISO date and time") from None
    if moment.tzinfo is None:
        moment = moment.astimezone()       # local time, as a user means it
    return moment.timestamp()


def _finite(number, value, name):
    if not math.isfinite(number):
        raise MemoryInputError(f"recall field '{name}' = {value!r} is not a "
                               'time')
    return number


def parse_request(text, now=None):
    """Return the :class:`RecallQuery` of a ``recall`` message's text."""
    stripped = str(text).strip()
    if not stripped.startswith('{'):
        return checked(RecallQuery(text=stripped))
    try:
        fields = json.loads(stripped)
    except ValueError as exc:
        raise MemoryInputError(
            f'recall request is not valid JSON ({exc}): '
            f'{stripped[:60]!r}') from None
    return query_from_fields(fields, now)


def query_from_fields(fields, now=None):
    """Return the :class:`RecallQuery` of a dict of fields, checked."""
    unknown = sorted(set(fields) - set(FIELDS))
    if unknown:
        raise MemoryInputError(
            f"recall field '{unknown[0]}' is unknown; the fields are "
            + ', '.join(FIELDS))
    query = RecallQuery()
    for name in ('text', 'camera', 'robot'):
        value = _given(fields, name, str, 'a string')
        if value is not None:
            setattr(query, name, value.strip())
    for name in ('since', 'until'):
        if fields.get(name) not in (None, ''):
            setattr(query, name, parse_time(fields[name], name, now))
    limit = _given(fields, 'limit', int, 'an integer')
    for name in ('last', 'timeline', 'summarize'):
        value = _given(fields, name, bool, 'true or false')
        if value is not None:
            setattr(query, name, value)
    if limit is not None:
        query.limit = limit
    elif query.summarize:
        query.limit = SUMMARY_LIMIT
    elif query.timeline:            # every caption of the window
        query.limit = MAX_LIMIT
    return checked(query)


def _given(fields, name, kind, what):
    """Return ``fields[name]`` if given, refused unless a ``kind``."""
    value = fields.get(name)
    if value is not None and (not isinstance(value, kind) or (
            kind is not bool and isinstance(value, bool))):
        raise MemoryInputError(
            f"recall field '{name}' = {value!r} is not {what}")
    return value


def checked(query):
    """Return ``query`` once its values are in range, or raise."""
    for name in ('text', 'camera', 'robot'):
        text_or_refuse(getattr(query, name), f"recall field '{name}'")
    if any(ord(c) < 32 or ord(c) == 127 for c in query.text):
        raise MemoryInputError(
            f"recall field 'text' = {query.text[:40]!r} holds a control "
            'character')
    if len(query.text) > MAX_TEXT_CHARS:
        raise MemoryInputError(
            f"recall field 'text' is {len(query.text)} characters long; at "
            f'most {MAX_TEXT_CHARS}')
    if not 1 <= query.limit <= MAX_LIMIT:
        raise MemoryInputError(
            f"recall field 'limit' = {query.limit} is not within 1 and "
            f'{MAX_LIMIT}')
    if query.since is not None and query.until is not None \
            and query.since > query.until:
        raise MemoryInputError(
            f"recall field 'since' ({query.since:.3f}) is after 'until' "
            f'({query.until:.3f})')
    if query.camera and not query.camera.startswith('/'):
        query.camera = '/' + query.camera
    return query
