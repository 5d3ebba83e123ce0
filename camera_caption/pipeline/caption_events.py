"""
Word-triggered events: a caption that newly matches a watched pattern.

No ROS import.  :func:`parse_watch` turns the ``watch`` parameter (one
string of comma-separated patterns, or a list of them) into compiled,
case-insensitive regular expressions, refusing a bad one with a
:class:`~camera_caption.parameters.ParameterError` that names the pattern
and the reason.  :class:`EventMatcher` is edge-triggered per camera and
pattern: an event fires when a caption matches and the camera's previous
caption did not, unless the same pattern fired for that camera less than
``holdoff_s`` ago, so a scene that stays the same (or flickers in and out
of the match) does not repeat it.
"""

import re
import threading


def split_watch(value):
    """Return the patterns of a ``watch`` value (string or list), stripped."""
    if isinstance(value, str):
        items = value.split(',')
    elif isinstance(value, (list, tuple)) and all(
            isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise ValueError('must be a string of comma-separated patterns or '
                         'a list of strings')
    return tuple(item.strip() for item in items if item.strip())


def compile_patterns(patterns):
    """Compile ``patterns`` (case-insensitive); raise ValueError naming one."""
    compiled = []
    for pattern in patterns:
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(
                f'pattern {pattern!r} is not a regular expression: '
                f'{exc}') from None
    return tuple(compiled)


class EventMatcher:
    """Say which watched patterns a camera's caption newly matches."""

    def __init__(self, patterns=(), holdoff_s=30.0):
        self._lock = threading.Lock()
        self._patterns = compile_patterns(patterns)
        self.holdoff_s = float(holdoff_s)
        self._matching = {}     # (camera, pattern) -> matched last caption
        self._last_event = {}   # (camera, pattern) -> time of last event
        self.events = 0
        self.held_off = 0       # rising edges not reported (hold-off)

    @property
    def patterns(self):
        """Return the watched pattern strings."""
        return tuple(p.pattern for p in self._patterns)

    def update(self, patterns, holdoff_s):
        """Watch ``patterns`` from now on; known patterns keep their state."""
        compiled = compile_patterns(patterns)
        with self._lock:
            self._patterns = compiled
            self.holdoff_s = float(holdoff_s)
            keep = set(self.patterns)
            self._matching = {k: v for k, v in self._matching.items()
                              if k[1] in keep}

    def match(self, camera, caption, now):
        """
        Return the patterns that fire for ``caption`` of ``camera``.

        ``now`` is a monotonic time in seconds (for the hold-off).
        """
        fired = []
        with self._lock:
            for regex in self._patterns:
                key = (camera, regex.pattern)
                matches = regex.search(caption) is not None
                was = self._matching.get(key, False)
                self._matching[key] = matches
                if not matches or was:
                    continue
                last = self._last_event.get(key)
                if last is not None and now - last < self.holdoff_s:
                    self.held_off += 1
                    continue
                self._last_event[key] = now
                self.events += 1
                fired.append(regex.pattern)
        return fired
