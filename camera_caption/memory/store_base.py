"""
What every caption store does, whatever the database.

No ROS import.  :class:`CaptionStore` keeps the rules that do not depend
on SQL: consecutive identical captions of a camera are stored once (the
row's ``last_stamp`` and ``repeats`` grow), a camera named in a recall
must be known, and :meth:`CaptionStore.recall` ranks matches by text
(the whole text first, then every word) and then by recency.  A subclass
(SQLite, PostgreSQL) supplies the statements.
"""

import dataclasses
import json
import time

from camera_caption.memory.recall_query import checked
from camera_caption.memory.records import Match, MemoryInputError

# Identical captions of a camera this far apart at most are one row: a
# longer gap is a new sighting (and keeps a window's bound on stamps tight).
REPEAT_GAP_S = 60.0
# Stamps that differ by less are the same image (float seconds from JSON
# and from a header may differ in the last bits).
STAMP_TOLERANCE = 1e-6
# Columns a new row is written with, in the order of :func:`row_values`.
INSERT_COLUMNS = ('stamp', 'last_stamp', 'camera', 'robot', 'frame_id',
                  'caption', 'model', 'latency_s', 'clip_first', 'clip_last',
                  'pose', 'has_thumbnail', 'received')
# Columns of a match, in the order the stores select them.
MATCH_COLUMNS = ('id', 'stamp', 'last_stamp', 'repeats', 'camera',
                 'frame_id', 'caption', 'model', 'latency_s', 'clip_first',
                 'clip_last', 'pose', 'robot', 'has_thumbnail')


class CaptionStore:
    """Store captions; find them by words, time, camera and robot."""

    kind = ''           # 'sqlite' or 'postgresql'
    read_only = False

    def __init__(self):
        # (robot, camera) -> (row id, caption text, its last stamp)
        self._last = {}
        self.rows = 0           # rows stored (a repeat adds none)
        self.added = 0          # captions added, repeats included

    # -- writing -------------------------------------------------------
    def add(self, record, received=None):
        """
        Store one :class:`CaptionRecord`; return ``(row id, new row)``.

        A caption equal to the previous one of the same camera, at most
        :data:`REPEAT_GAP_S` after it, extends that row instead of adding
        one (a row that is gone meanwhile is written anew).
        """
        received = time.time() if received is None else received
        key = (record.robot, record.camera)
        last = self._last.get(key)
        if last is None:
            last = self._load_last(record.robot, record.camera)
        stamp = record.clip_last or record.stamp
        if last is not None and last[1] == record.caption \
                and 0 <= record.stamp - last[2] <= REPEAT_GAP_S \
                and self._extend(last[0], record, received):
            self._last[key] = (last[0], last[1], max(last[2], stamp))
            self.added += 1
            return last[0], False
        row = self._insert(record, received)
        self._last[key] = (row, record.caption, stamp)
        self.rows += 1
        self.added += 1
        return row, True

    def forget_last(self):
        """Forget the cached last rows (after rows were deleted)."""
        self._last.clear()

    # -- reading -------------------------------------------------------
    def recall(self, query):
        """Return the :class:`Match` list of a :class:`RecallQuery`."""
        query = checked(query)
        if query.last:              # the newest match, whatever the order
            query = dataclasses.replace(query, timeline=False)
        if query.camera:
            known = self.cameras()
            if not any(_same_camera(name, query.camera) for name in known):
                raise MemoryInputError(
                    f"recall field 'camera' = {query.camera!r} is unknown; "
                    'the memory knows ' + (', '.join(sorted(known)[:10])
                                           or 'no camera yet'))
        limit = 1 if query.last else query.limit
        words = query.words()
        if not words:
            rows = self._select(query, [], limit)
            return [self._match(row, 0) for row in rows]
        phrase = ' '.join(words)
        matches = [self._match(row, 2)
                   for row in self._select(query, [phrase], limit)]
        if len(words) > 1 and len(matches) < limit:
            seen = {m.id for m in matches}
            more = self._select(query, words, limit - len(matches),
                                exclude=seen)
            matches += [self._match(row, 1) for row in more]
        if query.timeline:
            matches.sort(key=lambda m: m.stamp)
        return matches

    def _match(self, row, score):
        values = dict(zip(MATCH_COLUMNS, row))
        values['pose'] = self._pose(values['pose'])
        values['has_thumbnail'] = bool(values['has_thumbnail'])
        return Match(score=score, **values)

    @staticmethod
    def _pose(value):
        if not value:
            return None
        return value if isinstance(value, dict) else json.loads(value)

    # -- what a database supplies --------------------------------------
    def _load_last(self, robot, camera):
        """Return (row id, caption, last stamp) of its newest row, or None."""
        raise NotImplementedError

    def _insert(self, record, received):
        raise NotImplementedError

    def _extend(self, row, record, received):
        """Extend row ``row`` by a repeat; return False if it is gone."""
        raise NotImplementedError

    def _select(self, query, terms, limit, exclude=()):
        """
        Return rows (:data:`MATCH_COLUMNS`) matching ``query``.

        Every term in ``terms`` must occur in the caption (ignoring case),
        newest first, or oldest first for a timeline.
        """
        raise NotImplementedError

    def cameras(self):
        """Return the names of every camera stored."""
        raise NotImplementedError

    def attach_thumbnail(self, camera, stamp, jpeg, robot=''):
        """Keep ``jpeg`` with the row of ``camera`` at ``stamp``; say if found."""
        raise NotImplementedError

    def thumbnail(self, row):
        """Return the JPEG bytes kept with row ``row``, or None."""
        raise NotImplementedError

    def size_bytes(self):
        """Return the bytes the stored rows take."""
        raise NotImplementedError

    def enforce_retention(self, max_age_s=0.0, max_rows=0, max_mb=0.0,
                          now=None, chunk=5000):
        """Delete the oldest rows beyond the limits (0 = none); return how many."""
        raise NotImplementedError

    def close(self):
        """Close the connection."""
        raise NotImplementedError


def row_values(record, received):
    """Return the values of :data:`INSERT_COLUMNS` for ``record``."""
    return (record.stamp, record.clip_last or record.stamp, record.camera,
            record.robot, record.frame_id, record.caption, record.model,
            record.latency_s, record.clip_first, record.clip_last,
            json.dumps(record.pose) if record.pose else None,
            record.thumbnail is not None, received)


def insert_sql(placeholder):
    """Return the INSERT of a new row, with ``placeholder`` per value."""
    return (f'INSERT INTO captions ({", ".join(INSERT_COLUMNS)}) VALUES ('
            + ', '.join([placeholder] * len(INSERT_COLUMNS)) + ')')


def window_filters(query, placeholder, span=None):
    """
    Return ``(conditions, args)`` of a query's time window, camera, robot.

    ``span``: the longest ``last_stamp - stamp`` stored (None: unknown).
    No row lasts longer, so it bounds ``stamp`` from below too, and the
    stamp index reads the window only, not every row before it.
    """
    p = placeholder
    where, args = [], []
    if query.since is not None:
        where.append(f'c.last_stamp >= {p}')
        args.append(query.since)
        if span is not None:
            where.append(f'c.stamp >= {p}')
            args.append(query.since - span - 1.0)
    if query.until is not None:
        where.append(f'c.stamp <= {p}')
        args.append(query.until)
    if query.camera:            # the topic, or a namespace above it
        where.append(f'(c.camera = {p} OR substr(c.camera, 1, length({p}))'
                     f' = {p})')
        prefix = query.camera.rstrip('/') + '/'
        args += [query.camera, prefix, prefix]
    if query.robot:
        where.append(f'c.robot = {p}')
        args.append(query.robot)
    return where, args


def window_order(query):
    """Return the ORDER BY of a query (SQLite's word search has its own)."""
    if query.last:          # a row that repeats keeps its id and first stamp
        return 'c.last_stamp DESC, c.id DESC'
    if query.timeline:
        return 'c.stamp, c.id'
    if query.since is not None or query.until is not None:
        return 'c.stamp DESC, c.id DESC'     # the stamp index, backwards
    return 'c.id DESC'


def _same_camera(stored, asked):
    """Whether ``asked`` (a topic or a namespace) names ``stored``."""
    return stored == asked or stored.startswith(asked.rstrip('/') + '/')
