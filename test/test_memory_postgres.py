"""
The PostgreSQL caption memory on a real, throw-away server.

One server per session (:mod:`postgres_server`, unix socket only), one new
database per test.  What SQLite does, PostgreSQL does the same: repeats,
ranking, Japanese, filters, thumbnails, retention; and what only a shared
server meets: robots that start and write at once, a lost connection, a
wrong password (never printed).
"""

import threading

from camera_caption.memory.postgres_store import connect, PostgresStore
from camera_caption.memory.recall_query import RecallQuery
from camera_caption.memory.records import (
    CaptionRecord, MemoryInputError, MemoryStoreError)
from camera_caption.memory.url_secrets import redact
from postgres_server import database_url, new_database, postgres_server
import pytest

pytestmark = pytest.mark.slow       # a PostgreSQL server process

CAM = '/front/image_raw'


@pytest.fixture(scope='session')
def pg_admin():
    """Start one PostgreSQL server for the session; yield its admin URL."""
    with postgres_server() as url:
        yield url


@pytest.fixture
def pg_url(pg_admin):
    """Return the URL of a new, empty database."""
    return new_database(pg_admin)


@pytest.fixture
def store(pg_url):
    """Open a store on a new database; close it afterwards."""
    opened = PostgresStore(pg_url)
    yield opened
    opened.close()


def rec(stamp, caption, camera=CAM, **extra):
    return CaptionRecord(stamp=stamp, camera=camera, caption=caption, **extra)


def captions(matches):
    return [m.caption for m in matches]


def test_add_stores_repeats_once_also_after_a_restart(store, pg_url):
    assert store.kind == 'postgresql'
    assert store.add(rec(1.0, 'a red square'), received=10.0) == (1, True)
    assert store.add(rec(2.0, 'a red square', clip_last=2.5)) == (1, False)
    assert store.add(rec(3.0, 'a blue circle', pose={'x': 1.5}))[1]
    assert store.add(rec(4.0, 'a red square', camera='/back/image_raw'))[1]
    assert (store.rows, store.added) == (3, 4)
    again = PostgresStore(pg_url)
    assert again.rows == 3
    assert again.add(rec(5.0, 'a blue circle'))[1] is False
    first, circle = again.recall(RecallQuery(camera='/front'))[::-1]
    assert (first.repeats, first.stamp, first.last_stamp) == (2, 1.0, 2.5)
    assert (circle.repeats, circle.last_stamp) == (2, 5.0)
    assert circle.pose == {'x': 1.5}
    assert circle.as_dict()['time'].startswith('1970-01-01')
    again.close()


def test_recall_ranks_the_whole_text_first_then_every_word(store):
    store.add(rec(1.0, 'a red square on a table'))
    store.add(rec(2.0, 'the square is RED'))
    store.add(rec(3.0, 'a green square'))
    store.add(rec(4.0, 'nothing at all'))
    found = store.recall(RecallQuery(text='red square'))
    assert captions(found) == ['a red square on a table', 'the square is RED']
    assert [m.score for m in found] == [2, 1]
    assert captions(store.recall(RecallQuery(text='Square'))) == [
        'a green square', 'the square is RED', 'a red square on a table']
    assert [m.score for m in store.recall(RecallQuery())] == [0] * 4
    assert store.recall(RecallQuery(text='purple')) == []


def test_japanese_and_like_wildcards_are_found_as_written(store):
    store.add(rec(1.0, '緑の三角形が見える'))
    store.add(rec(2.0, '赤い四角'))
    store.add(rec(3.0, '100% sure_thing a\\b'))
    store.add(rec(4.0, '1000 surely'))
    assert captions(store.recall(RecallQuery(text='三角形'))) == [
        '緑の三角形が見える']
    assert captions(store.recall(RecallQuery(text='赤'))) == ['赤い四角']
    for text in ('0%', 'e_t', 'a\\b'):
        assert captions(store.recall(RecallQuery(text=text))) == [
            '100% sure_thing a\\b'], text
    assert store.add(rec(5.0, 'nul\0inside'))[1]     # text cannot hold NUL
    assert captions(store.recall(RecallQuery(text='inside'))) == [
        'nul\ufffdinside']


def test_since_until_camera_and_robot_filter(store):
    store.add(rec(10.0, 'one', robot='r1'))
    store.add(rec(20.0, 'two', camera='/front/left/image_raw', robot='r2'))
    store.add(rec(30.0, 'three', camera='/frontier/image_raw', robot='r1'))
    store.add(rec(40.0, 'four', clip_last=45.0, robot='r2'))

    def found(**fields):
        return captions(store.recall(RecallQuery(**fields)))
    assert found(since=20.0) == ['four', 'three', 'two']
    assert found(since=44.0) == ['four']           # last_stamp counts
    assert found(until=20.0) == ['two', 'one']
    assert found(since=15.0, until=35.0) == ['three', 'two']
    assert found(camera='/front') == ['four', 'two', 'one']
    assert found(camera=CAM) == ['four', 'one']
    assert found(camera='/front/left/image_raw') == ['two']
    assert found(robot='r1') == ['three', 'one']
    assert found(robot='r2', camera='/front/image_raw') == ['four']
    assert found(robot='nobody') == []
    with pytest.raises(MemoryInputError, match="'/rear' is unknown"):
        store.recall(RecallQuery(camera='/rear'))
    assert store.cameras() == [CAM, '/front/left/image_raw',
                               '/frontier/image_raw']


def test_timeline_last_and_limit(store):
    for stamp, text in ((30.0, 'cat c'), (10.0, 'cat a'), (20.0, 'cat b'),
                        (40.0, 'dog')):
        store.add(rec(stamp, text))
    assert captions(store.recall(RecallQuery(text='cat', timeline=True))) == [
        'cat a', 'cat b', 'cat c']
    assert captions(store.recall(RecallQuery(text='cat', last=True))) == [
        'cat c']                              # seen last, though stored first
    assert captions(store.recall(RecallQuery(limit=2))) == ['dog', 'cat b']
    assert captions(store.recall(RecallQuery(text='cat x', limit=5))) == []


def test_thumbnails_attach_and_read(store):
    row, _ = store.add(rec(1.0, 'with', thumbnail=b'\xff\xd8one'))
    plain, _ = store.add(rec(2.0, 'without'))
    assert store.thumbnail(row) == b'\xff\xd8one'
    assert store.thumbnail(plain) is None
    assert store.attach_thumbnail(CAM, 2.0, b'\xff\xd8two\0')
    assert not store.attach_thumbnail(CAM, 2.0, b'again')     # has one
    assert not store.attach_thumbnail(CAM, 9.0, b'none')      # no such row
    assert not store.attach_thumbnail(CAM, 2.0, b'x', robot='r9')
    assert store.thumbnail(plain) == b'\xff\xd8two\0'
    assert [m.has_thumbnail for m in store.recall(RecallQuery())] == [True,
                                                                      True]
    assert store.size_bytes() > 0


def test_retention_deletes_the_oldest_rows_and_their_thumbnails(store):
    for i in range(10):
        store.add(rec(float(i), f'caption {i}', thumbnail=b'j%d' % i),
                  received=1000.0 + i)
    assert store.enforce_retention(max_rows=7, chunk=2) == 2
    assert store.enforce_retention(max_rows=7) == 1
    assert store.enforce_retention(max_rows=7) == 0
    assert store.rows == 7
    assert store.thumbnail(1) is None and store.thumbnail(4) == b'j3'
    assert store.enforce_retention(max_age_s=4.5, now=1009.0) == 2
    assert captions(store.recall(RecallQuery(timeline=True)))[0] == 'caption 5'
    assert store.add(rec(10.0, 'caption 9')) == (10, False)


def test_age_retention_keeps_a_caption_still_being_seen(store):
    for i in range(10):                       # one row, seen for 270 s
        store.add(rec(i * 30.0, 'an empty hallway'), received=1000.0 + i * 30)
    assert store.enforce_retention(max_age_s=100, now=1300.0) == 0
    assert store.rows == 1


def test_a_repeat_of_a_row_another_robot_deleted_is_a_new_row(store, pg_url):
    assert store.add(rec(1.0, 'same')) == (1, True)
    other = PostgresStore(pg_url)
    other.add(rec(2.0, 'elsewhere', robot='r2'))
    assert other.enforce_retention(max_rows=1) == 1      # deletes row 1
    other.close()
    assert store.add(rec(3.0, 'same')) == (3, True)
    assert store.add(rec(4.0, 'same')) == (3, False)
    assert (store.rows, store.added) == (2, 3)


def test_retention_by_size_trims_once_per_growth(store):
    for i in range(200):
        store.add(rec(float(i), f'caption {i}', thumbnail=bytes(4000)))
    assert store.enforce_retention(max_mb=0.01) == 2          # 1 %
    # Deleted rows' space is reused, not returned: no trim until it grows.
    assert store.enforce_retention(max_mb=0.01) == 0
    assert store.rows == 198


def test_two_robots_start_and_write_at_once(pg_url):
    start = threading.Barrier(2)
    stores, errors = {}, []

    def robot(name):
        try:
            start.wait(10)
            stores[name] = PostgresStore(pg_url)     # both create the tables
            start.wait(10)
            for i in range(50):
                stores[name].add(rec(float(i), f'{name} sees {i % 5}',
                                     robot=name), received=float(i))
        except Exception as exc:  # noqa: B902 (reported below)
            errors.append(exc)
    threads = [threading.Thread(target=robot, args=(name,))
               for name in ('r1', 'r2')]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert not errors, errors
    for name, other in (('r1', 'r2'), ('r2', 'r1')):
        mine = stores[name]
        assert len(mine.recall(RecallQuery(robot=other, limit=100))) == 50
        assert captions(mine.recall(RecallQuery(text=f'{other} sees 3',
                                                last=True))) == [
            f'{other} sees 3']
        mine.close()
    ids = [m.id for m in PostgresStore(pg_url).recall(RecallQuery(limit=200))]
    assert len(set(ids)) == 100


def test_read_only_reads_and_refuses_to_write(store, pg_url, pg_admin):
    store.add(rec(1.0, 'kept'))
    reader = PostgresStore(pg_url, read_only=True)
    assert reader.read_only and captions(reader.recall(RecallQuery())) == [
        'kept']
    with pytest.raises(MemoryStoreError, match='is read-only'):
        reader.add(rec(2.0, 'new'))
    reader.close()
    with pytest.raises(MemoryStoreError, match='holds no caption memory'):
        PostgresStore(new_database(pg_admin), read_only=True)


def test_a_lost_connection_fails_once_then_reconnects(store, pg_admin):
    store.add(rec(1.0, 'before'))
    backend = store._one('SELECT pg_backend_pid()')[0]
    admin = connect(pg_admin)
    admin.cursor().execute('SELECT pg_terminate_backend(%s)', (backend,))
    admin.close()
    with pytest.raises(MemoryStoreError) as error:
        store.add(rec(2.0, 'during'))
    assert len(str(error.value).splitlines()) == 1
    assert store.add(rec(3.0, 'after'))[1]
    assert captions(store.recall(RecallQuery())) == ['after', 'before']


def test_a_wrong_password_or_no_server_is_one_line_without_it(pg_admin):
    admin = connect(pg_admin)
    admin.cursor().execute("CREATE ROLE robot LOGIN PASSWORD 'right-pw'")
    admin.close()
    wrong = database_url(pg_admin, 'postgres').replace(
        'postgres@', 'robot:wrong-pw-42@')
    with pytest.raises(MemoryStoreError) as error:
        PostgresStore(wrong)
    message = str(error.value)
    assert 'wrong-pw-42' not in message and '\n' not in message
    assert message.startswith("memory_url 'postgresql://robot@/postgres?")
    assert 'password authentication failed' in message
    nowhere = 'postgresql://robot:s3cret-9@/memory?host=/nonexistent&port=1'
    with pytest.raises(MemoryStoreError) as error:
        PostgresStore(nowhere)
    assert 's3cret' not in str(error.value)
    assert len(str(error.value).splitlines()) == 1
    assert str(error.value).startswith(
        "memory_url 'postgresql://robot@/memory?host=/nonexistent&port=1': ")


def test_redact_drops_every_kind_of_password():
    assert redact('postgresql://robot:pw@db:5432/memory') == \
        'postgresql://robot@db:5432/memory'
    assert redact('postgresql://robot@db/memory') == \
        'postgresql://robot@db/memory'
    assert redact('postgresql:///memory?host=/run/pg&password=pw') == \
        'postgresql:///memory?host=/run/pg'
    assert redact('postgresql://r:p%40ss@db/m?sslmode=require') == \
        'postgresql://r@db/m?sslmode=require'
    assert 'secret' not in redact("host=db password='se cret' dbname=m")
    assert 'secret' not in redact('host=db password=secret dbname=m')


def test_without_a_driver_the_error_says_what_to_install(monkeypatch):
    import builtins
    real = builtins.__import__

    def refuse(name, *args, **kwargs):
        if name.split('.')[0] in ('psycopg', 'psycopg2'):
            raise ImportError(name)
        return real(name, *args, **kwargs)
    monkeypatch.setattr(builtins, '__import__', refuse)
    with pytest.raises(MemoryStoreError, match=r"pip install 'psycopg\[binary"):
        PostgresStore('postgresql:///memory')


def test_the_psycopg2_fallback_works_alike(pg_url, monkeypatch):
    import psycopg2    # requirements-test.txt: as apt's python3-psycopg2
    from camera_caption.memory import postgres_store
    monkeypatch.setattr(postgres_store, 'driver', lambda: psycopg2)
    store = PostgresStore(pg_url)
    store.add(rec(1.0, 'red square', thumbnail=b'\xff'))
    store.add(rec(2.0, 'square red'))
    assert [m.score for m in store.recall(RecallQuery(text='red square'))] \
        == [2, 1]
    assert store.thumbnail(1) == b'\xff'
    assert store.enforce_retention(max_rows=1) == 1
    store.close()
