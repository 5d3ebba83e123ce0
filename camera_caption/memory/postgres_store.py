"""
The caption memory on a PostgreSQL server, which a fleet of robots shares.

No ROS import.  The driver is psycopg (3) where it is installed, else
psycopg2.  Every robot creates the tables with ``IF NOT EXISTS`` under an
advisory lock, so that robots that start together do not race; each
caption is one transaction.  Words are found with ``ILIKE`` and a
``pg_trgm`` GIN index, so that text without spaces (Japanese) is found by
any part of it.  A deleted row's thumbnail goes with it (``ON DELETE
CASCADE``).  Errors name the server's URL without its password.
"""

import re
import threading
import time

from camera_caption.memory.records import MemoryStoreError
from camera_caption.memory.store_base import (CaptionStore, insert_sql,
                                              MATCH_COLUMNS, row_values,
                                              STAMP_TOLERANCE,
                                              window_filters, window_order)
from camera_caption.memory.url_secrets import redact, secrets_of

SCHEMA_VERSION = '1'
# Seconds between two counts of the shared table's rows (retention).
RECOUNT_S = 60.0
# pg_advisory_xact_lock key of the schema's creation ('caption' in ASCII).
SCHEMA_LOCK = 0x63617074696f6e
TABLES = [
    'CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT)',
    """CREATE TABLE IF NOT EXISTS captions (
    id BIGSERIAL PRIMARY KEY, stamp DOUBLE PRECISION NOT NULL,
    last_stamp DOUBLE PRECISION NOT NULL, repeats INTEGER NOT NULL DEFAULT 1,
    camera TEXT NOT NULL, robot TEXT NOT NULL DEFAULT '',
    frame_id TEXT NOT NULL DEFAULT '', caption TEXT NOT NULL,
    model TEXT NOT NULL DEFAULT '', latency_s DOUBLE PRECISION,
    clip_first DOUBLE PRECISION, clip_last DOUBLE PRECISION, pose TEXT,
    has_thumbnail BOOLEAN NOT NULL DEFAULT FALSE,
    received DOUBLE PRECISION NOT NULL)""",
    'CREATE INDEX IF NOT EXISTS captions_last_stamp ON captions (last_stamp)',
    'CREATE INDEX IF NOT EXISTS captions_stamp ON captions (stamp)',
    'CREATE INDEX IF NOT EXISTS captions_camera ON captions (camera, robot, id)',
    'CREATE INDEX IF NOT EXISTS captions_received ON captions (received)',
    'CREATE INDEX IF NOT EXISTS captions_span ON captions ((last_stamp - stamp))',
    'CREATE TABLE IF NOT EXISTS thumbnails (id BIGINT PRIMARY KEY '
    'REFERENCES captions (id) ON DELETE CASCADE, jpeg BYTEA NOT NULL)',
    'CREATE TABLE IF NOT EXISTS cameras (camera TEXT NOT NULL, '
    'robot TEXT NOT NULL, PRIMARY KEY (camera, robot))',
]
TRIGRAM = [
    'CREATE EXTENSION IF NOT EXISTS pg_trgm',
    'CREATE INDEX IF NOT EXISTS captions_caption_trgm ON captions '
    'USING gin (caption gin_trgm_ops)',
]
SELECTED = ', '.join('c.' + name for name in MATCH_COLUMNS)
NO_DRIVER = ('memory_url needs the psycopg package: pip install '
             "'psycopg[binary]' (or apt install python3-psycopg2)")


def driver():
    """Return the psycopg (3) module, else psycopg2; raise if neither."""
    try:
        import psycopg
        return psycopg
    except ImportError:
        pass
    try:
        import psycopg2
        return psycopg2
    except ImportError:
        raise MemoryStoreError(NO_DRIVER) from None


def connect(url, module=None):
    """Open an autocommit connection to ``url`` (5 s to connect)."""
    module = module or driver()
    if module.__name__ == 'psycopg':
        return module.connect(url, connect_timeout=5, autocommit=True,
                              application_name='camera_caption')
    db = module.connect(url, connect_timeout=5,
                        application_name='camera_caption')
    db.autocommit = True
    return db


def _no_nul(args):
    """Replace NUL in text arguments (PostgreSQL text cannot hold it)."""
    return [arg.replace('\0', '\ufffd') if isinstance(arg, str) else arg
            for arg in args] or None


class PostgresStore(CaptionStore):
    """Captions on the PostgreSQL server at ``url``."""

    kind = 'postgresql'

    def __init__(self, url, read_only=False, check=True):
        """Connect to ``url``; create the tables unless read-only (``check``: unused)."""
        super().__init__()
        self.url = redact(url)
        self.path = self.url             # where it is, for messages
        self.read_only = read_only
        self._secrets = secrets_of(url)
        self._dsn = url
        self._module = driver()
        self._lock = threading.RLock()
        self._trimmed_size = 0           # size after the last max_mb trim
        self._recount_at = 0.0           # when retention counts rows again
        self.db = None
        self.trigram = False             # whether the GIN index exists
        with self._lock:
            self._run(self._open)
            self.rows = self._one('SELECT count(*) FROM captions')[0]

    def _open(self):
        self.db = connect(self._dsn, self._module)
        cursor = self.db.cursor()
        if self.read_only:
            cursor.execute('SET default_transaction_read_only = on')
        cursor.execute('SELECT ' + ', '.join(f"to_regclass('{name}')" for name in (
            'captions', 'thumbnails', 'cameras', 'meta', 'captions_caption_trgm')))
        found = cursor.fetchone()
        self.trigram = found[4] is not None
        if self.read_only and found[0] is None:
            self.db.close()
            raise MemoryStoreError(
                f"memory_url '{self.url}' holds no caption memory (read-only:"
                ' nothing is created)')
        if not self.read_only and None in found:
            self._create()

    def _create(self):
        """Create what is missing, one robot at a time."""
        def body(cursor):
            cursor.execute('SELECT pg_advisory_xact_lock(%s)', (SCHEMA_LOCK,))
            for sql in TABLES:
                cursor.execute(sql)
            cursor.execute('SAVEPOINT trigram')
            try:
                for sql in TRIGRAM:
                    cursor.execute(sql)
                self.trigram = True
            except self._module.Error:
                # No right to create the extension: ILIKE still finds
                # every caption, without the index.
                cursor.execute('ROLLBACK TO SAVEPOINT trigram')
            cursor.execute('INSERT INTO meta VALUES (%s, %s) ON CONFLICT '
                           'DO NOTHING', ('schema', SCHEMA_VERSION))
        self._transaction(body)

    def _transaction(self, body):
        """Return ``body(cursor)`` run in one transaction."""
        cursor = self.db.cursor()
        cursor.execute('BEGIN')
        try:
            result = body(cursor)
            cursor.execute('COMMIT')
            return result
        except BaseException:
            if not self.db.closed:
                try:
                    cursor.execute('ROLLBACK')
                except self._module.Error:
                    pass                # the first error is the one to say
            raise

    # -- the connection ------------------------------------------------
    def _run(self, work):
        """Return ``work()``; driver errors become one MemoryStoreError."""
        try:
            if self.db is not None and self.db.closed:
                self._open()            # the server restarted: once more
            return work()
        except self._module.Error as exc:
            raise MemoryStoreError(
                f"memory_url '{self.url}': {self._why(exc)}") from None

    def _why(self, exc):
        """Return the first line of a driver error, without the password."""
        lines = str(exc).strip().splitlines()
        text = lines[0].strip() if lines else type(exc).__name__
        failed = re.match(r'^.*?connection to server .*? failed: (.*)$', text)
        if failed:
            text = failed.group(1)
        text = re.sub(r'^(FATAL|ERROR):\s+', '', text)
        for secret in self._secrets:
            text = text.replace(secret, '***')
        return text

    def _rows(self, sql, args=(), fetch=True):
        def work():
            cursor = self.db.cursor()
            cursor.execute(sql, _no_nul(args))
            return cursor.fetchall() if fetch else None
        with self._lock:
            return self._run(work)

    def _one(self, sql, args=()):
        rows = self._rows(sql, args)
        return rows[0] if rows else None

    def _write(self, statements):
        """Run ``[(sql, args)]`` in one transaction; return the last rows."""
        if self.read_only:
            raise MemoryStoreError(
                f"memory_url '{self.url}' is read-only: captions are not "
                'stored')

        def body(cursor):
            result = None
            for sql, args in statements:
                cursor.execute(sql, _no_nul(args))
                result = (cursor.rowcount,
                          cursor.fetchall() if cursor.description else [])
            return result
        with self._lock:
            return self._run(lambda: self._transaction(body))

    # -- writing -------------------------------------------------------
    def _load_last(self, robot, camera):
        return self._one(
            'SELECT id, caption, last_stamp FROM captions WHERE camera = %s '
            'AND robot = %s ORDER BY id DESC LIMIT 1', (camera, robot))

    def _insert(self, record, received):
        statements = [
            ('INSERT INTO cameras VALUES (%s, %s) ON CONFLICT DO NOTHING',
             (record.camera, record.robot)),
            (insert_sql('%s') + ' RETURNING id', row_values(record, received))]
        if record.thumbnail is not None:
            statements.append((
                'INSERT INTO thumbnails VALUES (currval(pg_get_serial_sequence('
                "'captions', 'id')), %s) RETURNING id", (record.thumbnail,)))
        return self._write(statements)[1][0][0]

    def _extend(self, row, record, received):
        count, _ = self._write([(
            'UPDATE captions SET last_stamp = greatest(last_stamp, %s), '
            'repeats = repeats + 1, received = %s WHERE id = %s',
            (record.clip_last or record.stamp, received, row))])
        return count > 0     # another robot's retention may have deleted it

    def attach_thumbnail(self, camera, stamp, jpeg, robot=''):
        """Keep ``jpeg`` with the row of ``camera`` that began at ``stamp``."""
        row = self._one(
            'SELECT id FROM captions WHERE camera = %s AND robot = %s AND '
            'stamp BETWEEN %s AND %s AND NOT has_thumbnail ORDER BY id DESC '
            'LIMIT 1', (camera, robot, stamp - STAMP_TOLERANCE,
                        stamp + STAMP_TOLERANCE))
        if row is None:
            return False
        count, _ = self._write([
            ('INSERT INTO thumbnails SELECT id, %s FROM captions WHERE id = %s '
             'ON CONFLICT (id) DO UPDATE SET jpeg = excluded.jpeg', (jpeg, row[0])),
            ('UPDATE captions SET has_thumbnail = TRUE WHERE id = %s',
             (row[0],))])
        return count > 0

    def enforce_retention(self, max_age_s=0.0, max_rows=0, max_mb=0.0,
                          now=None, chunk=5000):
        """
        Delete the oldest rows beyond the limits, ``chunk`` at most.

        Rows and bytes count every robot's captions.  PostgreSQL reuses
        the space of deleted rows rather than giving it back, so ``max_mb``
        deletes again only once the tables grew past their size after the
        last trim.
        """
        now = time.time() if now is None else now
        deleted = 0
        if max_age_s > 0:
            deleted += self._delete_oldest(
                'SELECT id FROM captions WHERE received < %s ORDER BY id '
                'LIMIT %s', (now - max_age_s, chunk))
        if (max_rows > 0 or max_mb > 0) and now >= self._recount_at:
            # Every robot's rows count; counting them all costs, so once a
            # minute (between counts this robot's own adds are added).
            self.rows = self._one('SELECT count(*) FROM captions')[0]
            self._recount_at = now + RECOUNT_S
        if max_rows > 0 and self.rows > max_rows:
            deleted += self._delete_oldest(
                'SELECT id FROM captions ORDER BY id LIMIT %s',
                (min(chunk, self.rows - max_rows),))
        if max_mb > 0 and self.rows:
            size = self.size_bytes()
            if size > max_mb * 2**20 and size > self._trimmed_size:
                deleted += self._delete_oldest(
                    'SELECT id FROM captions ORDER BY id LIMIT %s',
                    (max(1, min(chunk, self.rows // 100)),))
                # Deleted rows' space reusable now (not the tables' owner:
                # a warning, and autovacuum does it later).
                self._rows('VACUUM captions, thumbnails', fetch=False)
                self._trimmed_size = self.size_bytes()
        return deleted

    def _delete_oldest(self, select, args):
        count, _ = self._write([(
            f'DELETE FROM captions WHERE id IN ({select})', args)])
        count = max(0, count)
        if count:
            self.rows = max(0, self.rows - count)
            self.forget_last()
        return count

    # -- reading -------------------------------------------------------
    def _select(self, query, terms, limit, exclude=()):
        span = None
        if query.since is not None:
            span = self._one('SELECT max(last_stamp - stamp) FROM '
                             'captions')[0] or 0.0
        where, args = window_filters(query, '%s', span)
        for term in terms:
            where.append("c.caption ILIKE %s ESCAPE '\\'")
            args.append('%' + _like_escape(term) + '%')
        if exclude:
            where.append('c.id <> ALL(%s::bigint[])')
            args.append(sorted(exclude))
        sql = (f'SELECT {SELECTED} FROM captions c'
               + (' WHERE ' + ' AND '.join(where) if where else '')
               + f' ORDER BY {window_order(query)} LIMIT %s')
        return self._rows(sql, args + [limit])

    def cameras(self):
        """Return the names of every camera stored."""
        return sorted({row[0] for row in self._rows(
            'SELECT DISTINCT camera FROM cameras')})

    def thumbnail(self, row):
        """Return the JPEG kept with row ``row``, or None."""
        found = self._one('SELECT jpeg FROM thumbnails WHERE id = %s', (row,))
        return bytes(found[0]) if found else None

    def size_bytes(self):
        """Return the bytes the caption and thumbnail tables take on disk."""
        return int(self._one(
            "SELECT pg_total_relation_size('captions') + "
            "pg_total_relation_size('thumbnails')")[0])

    def close(self):
        """Close the connection."""
        with self._lock:
            if self.db is not None and not self.db.closed:
                self.db.close()


def _like_escape(text):
    return (text.replace('\\', '\\\\').replace('%', '\\%')
            .replace('_', '\\_'))
