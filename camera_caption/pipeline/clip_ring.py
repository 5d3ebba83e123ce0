"""
A short ring of one camera's frames, and clips sampled from it by stamp.

No ROS import.  In clip mode (``clip_frames`` N > 1) every frame that
arrives is *prepared* by the backend (for a local model: resized and
normalised to the model's size, so the ring holds ``3 x 224 x 224``
tensors, not full frames) and kept with its image stamp.  Frames closer
than a quarter of the clip's frame spacing to the one stored before them
replace the newest item instead of adding one, so a 30 Hz camera fills the
ring with about 4 N items, never more, whatever ``clip_seconds``.

:meth:`ClipRing.sample` picks N items for N evenly spaced target times
over ``[newest - clip_seconds, newest]``, the nearest stored item to each;
the newest item is always the last.  Until the ring spans the window, the
nearest item may serve several targets (the clip repeats a frame).
:func:`timed_clip` hands a sampled clip to the backend with its span.
"""

import bisect
import threading

from camera_caption.engine.caption_model import Clip

# Items kept beyond the window, as a margin for the nearest-item search.
_SLACK = 1.5


class ClipRing:
    """(stamp, item) pairs of one camera, newest last, thread-safe."""

    def __init__(self, frames, seconds):
        self._lock = threading.Lock()
        self._stamps = []
        self._items = []
        self.frames = int(frames)
        self.seconds = float(seconds)
        self.added = 0

    def configure(self, frames, seconds):
        """Use a new clip length and window (live settings)."""
        with self._lock:
            self.frames, self.seconds = int(frames), float(seconds)

    def _min_gap(self):
        return self.seconds / max(1, self.frames - 1) / 4.0

    def __len__(self):
        """Return how many items are stored."""
        with self._lock:
            return len(self._stamps)

    def clear(self):
        """Forget every item."""
        with self._lock:
            self._stamps.clear()
            self._items.clear()

    def add(self, stamp, item):
        """Store ``item`` taken at ``stamp`` (seconds) as the newest."""
        stamp = float(stamp)
        with self._lock:
            self.added += 1
            stamps, items = self._stamps, self._items
            if stamps and stamp < stamps[-1]:
                # The clock went back (a looping video file): start again.
                stamps.clear()
                items.clear()
            if len(stamps) >= 2 and stamps[-1] - stamps[-2] < \
                    self._min_gap():
                stamps[-1], items[-1] = stamp, item    # replace the newest
            else:
                stamps.append(stamp)
                items.append(item)
            oldest = stamp - self.seconds * _SLACK
            drop = bisect.bisect_left(stamps, oldest)
            # Keep one item older than the window: the nearest to its start.
            drop = max(0, drop - 1)
            if drop:
                del stamps[:drop]
                del items[:drop]

    def sample(self, frames=None, seconds=None, until=None):
        """
        Return N ``(stamp, item)`` pairs evenly spread, oldest first.

        N = ``frames`` (default: the ring's), over the last ``seconds``
        (default: the ring's) before the newest stamp (the newest not after
        ``until``, when given); the newest item is always the last.  Empty
        when the ring holds nothing.
        """
        with self._lock:
            end = len(self._stamps) if until is None else \
                bisect.bisect_right(self._stamps, float(until))
            stamps, items = self._stamps[:end], self._items[:end]
            frames = int(frames or self.frames)
            seconds = float(self.seconds if seconds is None else seconds)
        if not stamps:
            return []
        newest = stamps[-1]
        if frames <= 1:
            return [(newest, items[-1])]
        step = seconds / (frames - 1)
        picked = []
        for i in range(frames):
            target = newest - seconds + i * step
            j = bisect.bisect_left(stamps, target)
            if j >= len(stamps):
                j = len(stamps) - 1
            elif j > 0 and target - stamps[j - 1] <= stamps[j] - target:
                j -= 1
            picked.append(j)
        picked[-1] = len(stamps) - 1
        return [(stamps[j], items[j]) for j in picked]


def distinct_count(clip):
    """Return how many different frames a sampled clip holds."""
    return len({id(item) for _, item in clip})


def timed_clip(clip, settings):
    """
    Return a sampled clip's items as a :class:`Clip` with its span.

    The span is from its first stamp to its last; ``clip_seconds`` where
    they are one (a clip of one frame repeated, as captioning starts).
    """
    span = clip[-1][0] - clip[0][0] if clip else 0.0
    return Clip([item for _, item in clip],
                span if span > 0 else settings.clip_seconds)
