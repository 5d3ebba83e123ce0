"""
The caption memory in one SQLite file (the standard library's sqlite3).

No ROS import.  WAL journal and one commit per caption: a ``kill -9``
loses no committed caption and never corrupts the file (a power cut may
lose the last moment, with ``synchronous=NORMAL``).  Words are found with
an FTS5 index and the trigram tokenizer, so that text without spaces
(Japanese) is searchable by any part of three characters or more; shorter
words are matched with ``LIKE``.  Thumbnails live in a table of their own,
so that searches never read them.
"""

import datetime
import os
import sqlite3
import time

from camera_caption.memory.records import MemoryStoreError
from camera_caption.memory.store_base import (CaptionStore, insert_sql,
                                              MATCH_COLUMNS, row_values,
                                              STAMP_TOLERANCE,
                                              window_filters, window_order)

SCHEMA_VERSION = '1'
SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT);
CREATE TABLE IF NOT EXISTS captions (
    id INTEGER PRIMARY KEY,
    stamp REAL NOT NULL,
    last_stamp REAL NOT NULL,
    repeats INTEGER NOT NULL DEFAULT 1,
    camera TEXT NOT NULL,
    robot TEXT NOT NULL DEFAULT '',
    frame_id TEXT NOT NULL DEFAULT '',
    caption TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '',
    latency_s REAL,
    clip_first REAL,
    clip_last REAL,
    pose TEXT,
    has_thumbnail INTEGER NOT NULL DEFAULT 0,
    received REAL NOT NULL);
CREATE INDEX IF NOT EXISTS captions_last_stamp ON captions (last_stamp);
CREATE INDEX IF NOT EXISTS captions_stamp ON captions (stamp);
CREATE INDEX IF NOT EXISTS captions_camera ON captions (camera, robot, id);
CREATE INDEX IF NOT EXISTS captions_camera_stamp ON captions (camera, robot, stamp);
CREATE INDEX IF NOT EXISTS captions_received ON captions (received);
CREATE INDEX IF NOT EXISTS captions_span ON captions (last_stamp - stamp);
CREATE TABLE IF NOT EXISTS thumbnails (
    id INTEGER PRIMARY KEY, jpeg BLOB NOT NULL);
CREATE TABLE IF NOT EXISTS cameras (
    camera TEXT NOT NULL, robot TEXT NOT NULL,
    PRIMARY KEY (camera, robot));
CREATE VIRTUAL TABLE IF NOT EXISTS captions_fts USING fts5(
    caption, content='captions', content_rowid='id', tokenize='trigram');
CREATE TRIGGER IF NOT EXISTS captions_added AFTER INSERT ON captions BEGIN
    INSERT INTO captions_fts (rowid, caption) VALUES (new.id, new.caption);
END;
CREATE TRIGGER IF NOT EXISTS captions_deleted AFTER DELETE ON captions BEGIN
    INSERT INTO captions_fts (captions_fts, rowid, caption)
        VALUES ('delete', old.id, old.caption);
    DELETE FROM thumbnails WHERE id = old.id;
END;
"""
SELECTED = ', '.join('c.' + name for name in MATCH_COLUMNS)


def set_aside(path):
    """Rename a corrupt database (and its WAL) aside; return the new name."""
    suffix = datetime.datetime.now().strftime('%Y%m%d-%H%M%S')
    aside = f'{path}.corrupt-{suffix}'
    for extra in ('', '-wal', '-shm'):
        if os.path.exists(path + extra):
            os.replace(path + extra, aside + extra)
    return aside


class SQLiteStore(CaptionStore):
    """Captions in the SQLite file ``path``."""

    kind = 'sqlite'

    def __init__(self, path, read_only=False, check=None):
        """
        Open (or create) the memory at ``path``.

        ``check``: run SQLite's quick check first (default: when writing;
        it reads the whole file).
        """
        super().__init__()
        self.path = os.path.abspath(os.path.expanduser(path))
        directory = os.path.dirname(self.path)
        exists = os.path.exists(self.path)
        if os.path.isdir(self.path):
            raise MemoryStoreError(f"memory_path '{self.path}' is a folder: "
                                   'give a file, e.g. memory.db in it')
        if not read_only and exists and not os.access(self.path, os.W_OK):
            read_only = True          # keep what is there readable
        if not read_only and not exists:
            try:
                os.makedirs(directory, exist_ok=True)
            except OSError as exc:
                raise MemoryStoreError(
                    f"memory_path '{self.path}': cannot create its folder: "
                    f'{exc.strerror}') from None
        if read_only and not exists:
            raise MemoryStoreError(f"memory_path '{self.path}' does not exist")
        self.read_only = read_only
        try:
            self.db = self._connect()
            if check if check is not None else not read_only:
                self._check()
            if not read_only:
                self._create()
            self._spans = self.db.execute(
                "SELECT 1 FROM sqlite_master WHERE name = 'captions_span'"
            ).fetchone() is not None
            self.rows = self.db.execute(
                'SELECT count(*) FROM captions').fetchone()[0]
        except sqlite3.DatabaseError as exc:
            # Locked, or not openable: not a reason to set the file aside.
            corrupt = not isinstance(exc, sqlite3.OperationalError) or any(
                word in str(exc) for word in ('not a database', 'malformed'))
            raise MemoryStoreError(
                f"memory_path '{self.path}' is not a readable caption memory: "
                f'{exc}', path=self.path, corrupt=corrupt) from None

    def _connect(self):
        if self.read_only:
            uri = 'file:' + self.path + '?mode=ro'
            db = sqlite3.connect(uri, uri=True, timeout=5.0,
                                 isolation_level=None,
                                 check_same_thread=False)
        else:
            db = sqlite3.connect(self.path, timeout=5.0,
                                 isolation_level=None,
                                 check_same_thread=False)
            db.execute('PRAGMA auto_vacuum = INCREMENTAL')
            db.execute('PRAGMA journal_mode = WAL')
            db.execute('PRAGMA synchronous = NORMAL')
        return db

    def _check(self):
        problem = self.db.execute('PRAGMA quick_check(1)').fetchone()[0]
        if problem != 'ok':
            raise sqlite3.DatabaseError(f'integrity check (malformed): '
                                        f'{problem}')

    def _read(self, sql, args=(), one=False):
        """Return the rows (or the first) of a query; raise MemoryStoreError."""
        try:
            cursor = self.db.execute(sql, args)
            return cursor.fetchone() if one else cursor.fetchall()
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            raise MemoryStoreError(
                f"memory_path '{self.path}': {exc}") from None

    def _create(self):
        self.db.executescript('BEGIN;' + SCHEMA + 'COMMIT;')
        self.db.execute("INSERT OR IGNORE INTO meta VALUES ('schema', ?)",
                        (SCHEMA_VERSION,))

    def _write(self, statements):
        """Run ``[(sql, args)]`` in one transaction; raise MemoryStoreError."""
        if self.read_only:
            raise MemoryStoreError(
                f"memory_path '{self.path}' is read-only: captions are not "
                'stored')
        try:
            self.db.execute('BEGIN IMMEDIATE')
            cursor = None
            for sql, args in statements:
                cursor = self.db.execute(sql, args)
            self.db.execute('COMMIT')
            return cursor
        # ValueError: text SQLite cannot take (UnicodeEncodeError), which
        # must not leave the transaction open either.
        except (sqlite3.Error, ValueError, OverflowError) as exc:
            if self.db.in_transaction:
                self.db.execute('ROLLBACK')
            raise MemoryStoreError(
                f"memory_path '{self.path}': {exc}") from None

    # -- writing -------------------------------------------------------
    def _load_last(self, robot, camera):
        return self._read(
            'SELECT id, caption, last_stamp FROM captions WHERE camera = ? '
            'AND robot = ? ORDER BY id DESC LIMIT 1', (camera, robot), one=True)

    def _insert(self, record, received):
        cursor = self._write([
            ('INSERT OR IGNORE INTO cameras VALUES (?, ?)',
             (record.camera, record.robot)),
            (insert_sql('?'), row_values(record, received))])
        row = cursor.lastrowid
        if record.thumbnail is not None:
            self._write([('INSERT OR REPLACE INTO thumbnails VALUES (?, ?)',
                          (row, record.thumbnail))])
        return row

    def _extend(self, row, record, received):
        return self._write([(
            'UPDATE captions SET last_stamp = max(last_stamp, ?), '
            'repeats = repeats + 1, received = ? WHERE id = ?',
            (record.clip_last or record.stamp, received, row))]).rowcount > 0

    def attach_thumbnail(self, camera, stamp, jpeg, robot=''):
        """Keep ``jpeg`` with the row of ``camera`` that began at ``stamp``."""
        row = self._read(
            'SELECT id FROM captions WHERE camera = ? AND robot = ? AND '
            'stamp BETWEEN ? AND ? AND has_thumbnail = 0',
            (camera, robot, stamp - STAMP_TOLERANCE, stamp + STAMP_TOLERANCE),
            one=True)
        if row is None:
            return False
        self._write([
            ('INSERT OR REPLACE INTO thumbnails VALUES (?, ?)',
             (row[0], jpeg)),
            ('UPDATE captions SET has_thumbnail = 1 WHERE id = ?', (row[0],))])
        return True

    def enforce_retention(self, max_age_s=0.0, max_rows=0, max_mb=0.0,
                          now=None, chunk=5000):
        """Delete the oldest rows beyond the limits, ``chunk`` at most."""
        now = time.time() if now is None else now
        deleted = 0
        if max_age_s > 0:
            deleted += self._delete_oldest(
                'SELECT id FROM captions WHERE received < ? ORDER BY id '
                'LIMIT ?', (now - max_age_s, chunk))
        if max_rows > 0 and self.rows > max_rows:
            deleted += self._delete_oldest(
                'SELECT id FROM captions ORDER BY id LIMIT ?',
                (min(chunk, self.rows - max_rows),))
        if max_mb > 0 and self.size_bytes() > max_mb * 2**20 and self.rows:
            deleted += self._delete_oldest(
                'SELECT id FROM captions ORDER BY id LIMIT ?',
                (max(1, min(chunk, self.rows // 100)),))
            try:
                self.db.execute('PRAGMA incremental_vacuum').fetchall()
            except sqlite3.Error as exc:
                raise MemoryStoreError(
                    f"memory_path '{self.path}': {exc}") from None
        return deleted

    def _delete_oldest(self, select, args):
        cursor = self._write([(
            f'DELETE FROM captions WHERE id IN ({select})', args)])
        count = max(0, cursor.rowcount)
        if count:
            self.rows -= count
            self.forget_last()
        return count

    # -- reading -------------------------------------------------------
    def _select(self, query, terms, limit, exclude=()):
        span = None
        if query.since is not None and self._spans:
            span = self._read('SELECT max(last_stamp - stamp) FROM captions',
                              one=True)[0] or 0.0
        where, args = window_filters(query, '?', span)
        fts = [t for t in terms if len(t) >= 3]
        for term in terms:
            if len(term) < 3:
                where.append("c.caption LIKE ? ESCAPE '\\'")
                args.append('%' + _like_escape(term) + '%')
        if exclude:
            where.append(f'c.id NOT IN ({",".join("?" * len(exclude))})')
            args += list(exclude)
        order = window_order(query)
        if fts:
            source = ('captions_fts f JOIN captions c ON c.id = f.rowid')
            where.insert(0, 'captions_fts MATCH ?')
            args.insert(0, ' '.join('"' + t.replace('"', '""') + '"'
                                    for t in fts))
            if not query.timeline and not query.last:
                order = 'f.rowid DESC'
        else:
            source = 'captions c'
        sql = (f'SELECT {SELECTED} FROM {source}'
               + (' WHERE ' + ' AND '.join(where) if where else '')
               + f' ORDER BY {order} LIMIT ?')
        return self._read(sql, args + [limit])

    def cameras(self):
        """Return the names of every camera stored."""
        return sorted({row[0] for row in self._read(
            'SELECT camera FROM cameras')})

    def thumbnail(self, row):
        """Return the JPEG kept with row ``row``, or None."""
        found = self._read('SELECT jpeg FROM thumbnails WHERE id = ?',
                           (row,), one=True)
        return bytes(found[0]) if found else None

    def size_bytes(self):
        """Return the bytes in use (free pages not counted)."""
        pages, free, size = (self._read(f'PRAGMA {name}', one=True)[0] for name
                             in ('page_count', 'freelist_count', 'page_size'))
        return (pages - free) * size

    def close(self):
        """Close the connection (the WAL is checkpointed by SQLite)."""
        self.db.close()


def _like_escape(text):
    return (text.replace('\\', '\\\\').replace('%', '\\%')
            .replace('_', '\\_'))
