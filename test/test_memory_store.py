"""The caption memory on a real SQLite file: store, find, keep, survive."""

import datetime
import os
import signal
import sqlite3
import subprocess
import sys

from camera_caption.memory.open_store import open_store
from camera_caption.memory.recall_query import (DEFAULT_LIMIT, MAX_LIMIT,
                                                parse_request, RecallQuery)
from camera_caption.memory.records import (iso_time, MemoryInputError,
                                           MemoryStoreError,
                                           record_from_info)
from camera_caption.memory.sqlite_store import set_aside, SQLiteStore
from camera_caption.memory.store_base import REPEAT_GAP_S
from memory_helpers import info_json, record, T0
import pytest

pytestmark = pytest.mark.unit


@pytest.fixture
def store(tmp_path):
    store = SQLiteStore(str(tmp_path / 'memory.db'))
    yield store
    store.close()


def texts(matches):
    return [m.caption for m in matches]


def test_identical_captions_in_a_row_are_one_row_and_a_restart_continues(
        tmp_path):
    path = str(tmp_path / 'memory.db')
    store = SQLiteStore(path)
    for i in range(3):
        store.add(record('a red circle on a white background', i))
    store.add(record('a red circle on a white background', 1.5, '/cam2'))
    store.close()
    store = SQLiteStore(path)                # a restart: the same memory
    row, new = store.add(record('a red circle on a white background', 3))
    assert not new and store.rows == 2
    store.add(record('a green square', 4))
    (match,) = store.recall(RecallQuery(text='red', camera='/image_raw'))
    assert (match.repeats, match.stamp, match.last_stamp) == (4, T0, T0 + 3)
    assert store.rows == 3
    store.close()


def test_words_rank_the_whole_text_first_then_newest(store):
    for i, text in enumerate(['a green triangle on a black background',
                              'a triangle, green and small',
                              'a green square on a white background',
                              'the triangle is green']):
        store.add(record(text, i))
    matches = store.recall(parse_request('green triangle'))
    assert texts(matches) == ['a green triangle on a black background',
                              'the triangle is green',
                              'a triangle, green and small']
    assert [m.score for m in matches] == [2, 1, 1]
    assert texts(store.recall(parse_request('GREEN Square'))) == [
        'a green square on a white background']
    assert store.recall(parse_request('purple')) == []


def test_japanese_is_found_by_any_part_and_short_words_too(store):
    store.add(record('台所に赤い箱がある', 0))
    store.add(record('廊下に人がいる', 1))
    store.add(record('a cat on a mat', 2))
    assert texts(store.recall(parse_request('赤い箱'))) == ['台所に赤い箱がある']
    assert texts(store.recall(parse_request('人'))) == ['廊下に人がいる']
    assert texts(store.recall(parse_request('at'))) == ['a cat on a mat']
    assert texts(store.recall(parse_request('50%'))) == []   # LIKE escaped


def test_time_camera_and_robot_filters_and_the_timeline(store):
    for i in range(10):
        store.add(record(f'scene {i}', i * 10, '/front/image_raw'))
        store.add(record(f'scene {i}', i * 10 + 1, '/back/image_raw',
                         robot='r2'))
    query = parse_request(
        f'{{"text": "scene", "since": {T0 + 30}, "until": {T0 + 51}, '
        '"camera": "/front"}')
    assert texts(store.recall(query)) == ['scene 5', 'scene 4', 'scene 3']
    timeline = store.recall(RecallQuery(since=T0 + 30, until=T0 + 41,
                                        timeline=True))
    assert [(m.caption, m.camera[:5]) for m in timeline] == [
        ('scene 3', '/fron'), ('scene 3', '/back'), ('scene 4', '/fron'),
        ('scene 4', '/back')]
    assert texts(store.recall(RecallQuery(robot='r2', limit=2))) == [
        'scene 9', 'scene 8']
    last = store.recall(RecallQuery(text='scene', last=True,
                                    camera='front/image_raw'))
    assert [(m.caption, m.stamp) for m in last] == [('scene 9', T0 + 90)]
    with pytest.raises(MemoryInputError, match="'/side' is unknown.*/back"):
        store.recall(RecallQuery(camera='/side'))


@pytest.mark.parametrize('request_text, message', [
    ('{"text": "red"', 'not valid JSON'),
    ('{"since": "yesterday"}', "'since' = 'yesterday' is not a time"),
    ('{"limit": 0}', "'limit' = 0 is not within"),
    ('{"limit": "5"}', "'limit' = '5' is not an integer"),
    ('{"colour": "red"}', "'colour' is unknown"),
    ('{"since": "1h", "until": "2h"}', "'since' .* is after 'until'"),
    ('{"last": "yes"}', "'last' = 'yes' is not true or false"),
    ('{"since": 1' + '0' * 400 + '}', "'since' = '.a huge number.' is not a"),
    ('{"since": "' + '9' * 400 + 'd"}', "'since' = '999.* is not a time"),
    ('{"text": "a \\ud800 box"}', r"'text' = 'a \\ud800 box' is not UTF-8"),
])
def test_bad_requests_name_the_field_and_value(request_text, message):
    with pytest.raises(MemoryInputError, match=message):
        parse_request(request_text)


def test_times_read_as_a_user_writes_them():
    now = T0 + 1000
    assert parse_request('{"since": "10m"}', now).since == now - 600
    assert parse_request('{"since": "2h"}', now).since == now - 7200
    assert parse_request(f'{{"since": {T0}}}', now).since == T0
    iso = parse_request('{"since": "2026-12-03T10:00:00+00:00"}', now)
    assert iso.since == 1796292000.0
    assert parse_request('{"since": "9:05"}', now).since == parse_request(
        '{"since": "09:05"}', now).since
    # A clock time is the last time the clock showed it.
    night = datetime.datetime(2026, 12, 3, 0, 30).timestamp()   # local
    window = parse_request('{"since": "23:00", "until": "0:10"}', night)
    assert (window.since, window.until) == (
        datetime.datetime(2026, 12, 2, 23, 0).timestamp(),
        datetime.datetime(2026, 12, 3, 0, 10).timestamp())
    # A timeline is every caption of its window, unless a limit is given.
    assert parse_request('{"timeline": true}').limit == MAX_LIMIT
    assert parse_request('{"timeline": true, "limit": 5}').limit == 5
    assert parse_request('{"text": "box"}').limit == DEFAULT_LIMIT


@pytest.mark.parametrize('info, message', [
    ('not json', 'caption_info is not JSON'),
    ('[1, 2]', 'not a JSON object'),
    ('{"caption": "x"}', "caption_info has no 'stamp'"),
    ('{"stamp": "noon", "caption": "x"}', "'stamp' = 'noon' is not a finite"),
    ('{"stamp": 1.0, "caption": 5}', "'caption' = 5 is not a string"),
    ('{"stamp": -1.0, "caption": "x"}', "'stamp' = -1.0 is not seconds"),
    ('{"stamp": 1.7e12, "caption": "x"}',         # milliseconds
     r"'stamp' = 1700000000000.0 is not seconds since the epoch \(0 to"),
    ('{"stamp": 1.0, "clip_last_stamp": 1e19, "caption": "x"}',
     r"'clip_last_stamp' = 1e\+19 is not seconds"),
    ('{"stamp": 1.0, "caption": "a \\ud800 box"}',
     r"'caption' = 'a \\ud800 box' is not UTF-8 text"),
])
def test_malformed_caption_info_names_the_field(info, message):
    with pytest.raises(MemoryInputError, match=message):
        record_from_info(info, '/caption_info')


def test_caption_info_as_the_captioner_publishes_it():
    rec = record_from_info(info_json('a red box', 12.5, '/cam1/image_raw',
                                     clip_first_stamp=10.5,
                                     clip_last_stamp=12.5),
                           '/cam1/caption_info')
    assert (rec.stamp, rec.camera, rec.caption, rec.model) == (
        12.5, '/cam1/image_raw', 'a red box', 'demo')
    assert (rec.clip_first, rec.clip_last) == (10.5, 12.5)


def test_retention_by_age_and_rows(store):
    for i in range(300):
        store.add(record(f'caption number {i}', i), received=1000.0 + i)
    assert store.enforce_retention(max_age_s=100, now=1300.0) == 200
    assert store.rows == 100
    assert store.enforce_retention(max_rows=60) == 40
    assert texts(store.recall(RecallQuery(limit=1, timeline=True))) == [
        'caption number 240']
    assert store.enforce_retention(max_age_s=1000, max_rows=60,
                                   now=1300.0) == 0


def test_retention_by_size_keeps_the_newest(store):
    for i in range(1000):
        store.add(record(f'caption number {i} ' + 'z' * 2000, i))
    half = store.size_bytes() / 2
    for _ in range(200):
        if store.size_bytes() <= half:
            break
        assert store.enforce_retention(max_mb=half / 2**20, chunk=50) > 0
    assert store.size_bytes() <= half
    assert 300 < store.rows < 700
    assert store.recall(RecallQuery(text='number 999'))
    assert not [m for m in store.recall(RecallQuery(text='number 0 z'))
                if m.score == 2]                # the oldest went first


def test_thumbnails_are_kept_beside_the_row(store):
    store.add(record('a red box', 1.0))
    assert store.attach_thumbnail('/image_raw', T0 + 1.0 + 1e-9, b'jpeg')
    assert not store.attach_thumbnail('/image_raw', T0 + 2.0, b'jpeg')
    (match,) = store.recall(RecallQuery(text='red'))
    assert match.has_thumbnail and store.thumbnail(match.id) == b'jpeg'


def test_a_full_database_refuses_and_keeps_what_it_has(store):
    for i in range(20):
        store.add(record(f'caption {i} ' + 'y' * 500, i))
    store.db.execute(f'PRAGMA max_page_count = '
                     f'{store.db.execute("PRAGMA page_count").fetchone()[0]}')
    with pytest.raises(MemoryStoreError, match='full'):
        for i in range(20, 200):
            store.add(record(f'caption {i} ' + 'y' * 500, i))
    assert len(store.recall(RecallQuery(limit=1000))) == store.rows >= 20
    assert store.db.execute('PRAGMA quick_check').fetchone()[0] == 'ok'


def test_a_corrupt_file_is_refused_then_set_aside_whole(tmp_path):
    path = tmp_path / 'memory.db'
    path.write_bytes(b'this is not a database' * 200)
    with pytest.raises(MemoryStoreError, match='not a readable caption '
                       'memory') as caught:
        SQLiteStore(str(path))
    assert caught.value.corrupt and caught.value.path == str(path)
    aside = set_aside(str(path))
    assert open(aside, 'rb').read() == b'this is not a database' * 200
    store = SQLiteStore(str(path))
    assert store.rows == 0
    store.close()


WRITER = r"""
import sys, time
sys.path.insert(0, sys.argv[2])
from camera_caption.memory.sqlite_store import SQLiteStore
from memory_helpers import record
store = SQLiteStore(sys.argv[1])
i = store.rows
while True:
    row, _ = store.add(record(f'caption {i}', i))
    print(row, flush=True)      # committed
    i += 1
"""


def test_kill_9_at_any_moment_loses_nothing_committed(tmp_path):
    path = str(tmp_path / 'memory.db')
    here = os.path.dirname(os.path.abspath(__file__))
    committed = []
    for round_ in range(6):
        writer = subprocess.Popen(
            [sys.executable, '-c', WRITER, path, here],
            stdout=subprocess.PIPE, text=True)
        for _ in range(50 + 37 * round_):   # a different moment each time
            committed.append(int(writer.stdout.readline()))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        writer.stdout.close()
        db = sqlite3.connect(path)
        assert db.execute('PRAGMA integrity_check').fetchone()[0] == 'ok'
        stored = {r[0] for r in db.execute('SELECT id FROM captions')}
        db.close()
        assert set(committed) <= stored
    store = SQLiteStore(path)               # the next start continues it
    assert store.rows >= len(committed)
    assert store.recall(RecallQuery(text=f'caption {len(committed) - 1}'))
    store.close()


READ_ONLY = r"""
import sys
sys.path.insert(0, sys.argv[2])
from camera_caption.memory.recall_query import RecallQuery
from camera_caption.memory.records import MemoryStoreError
from camera_caption.memory.sqlite_store import SQLiteStore
from memory_helpers import record
store = SQLiteStore(sys.argv[1])
print('read_only', store.read_only)
print('found', [m.caption for m in store.recall(RecallQuery(text='red'))])
try:
    store.add(record('a blue box', 9))
except MemoryStoreError as exc:
    print('refused', exc)
"""


def without_write_override():
    """
    Return the command prefix that cannot write a file it may only read.

    root may write anything; without the capabilities that let it
    (setpriv), root meets file permissions as any user does.
    """
    if os.geteuid() != 0:
        return []
    return ['setpriv', '--bounding-set=-dac_override,-dac_read_search,'
            '-fowner', '--']


def test_a_read_only_file_is_read_and_never_written(tmp_path):
    os.chmod(tmp_path, 0o755)
    path = str(tmp_path / 'memory.db')
    store = SQLiteStore(path)
    store.add(record('a red box', 1))
    store.close()
    os.chmod(path, 0o444)
    here = os.path.dirname(os.path.abspath(__file__))
    package = os.path.dirname(here)
    done = subprocess.run(
        without_write_override() + [sys.executable, '-c', READ_ONLY, path, here],
        capture_output=True, text=True, timeout=60,
        env=dict(os.environ, PYTHONPATH=package))
    assert done.returncode == 0, done.stderr
    assert 'read_only True' in done.stdout
    assert "found ['a red box']" in done.stdout
    assert 'is read-only: captions are not stored' in done.stdout
    assert os.stat(path).st_mode & 0o777 == 0o444


def test_a_repeat_after_a_gap_is_a_new_sighting(store):
    store.add(record('a red box', 0))
    store.add(record('a red box', 30))
    store.add(record('a red box', 30 + REPEAT_GAP_S + 1))     # seen again
    rows = store.recall(RecallQuery(text='red box', timeline=True))
    assert [(m.stamp - T0, m.last_stamp - T0, m.repeats) for m in rows] == [
        (0, 30, 2), (30 + REPEAT_GAP_S + 1, 30 + REPEAT_GAP_S + 1, 1)]
    window = RecallQuery(since=T0 + 40, until=T0 + 80)    # nothing seen then
    assert store.recall(window) == []


def test_last_is_the_newest_match_also_in_a_window(store):
    for i in range(5):
        store.add(record(f'box {i}', i * 100))
    last = store.recall(parse_request(
        f'{{"text": "box", "since": {T0}, "until": {T0 + 1000}, '
        '"timeline": true, "last": true}'))
    assert [m.caption for m in last] == ['box 4']


def test_last_is_when_it_was_last_seen_also_while_a_row_repeats(store):
    for i in range(11):                       # /a sees it every 10 s
        store.add(record('a red box on a table', i * 10, '/a'))
    store.add(record('a red box on a table', 15, '/b'))    # /b once, early
    for query in ('{"text": "red box", "last": true}', '{"last": true}',
                  f'{{"text": "red box", "last": true, "since": {T0}}}',
                  '{"text": "box", "last": true, "timeline": true}'):
        (match,) = store.recall(parse_request(query))
        assert (match.camera, match.last_stamp) == ('/a', T0 + 100), query


def test_age_retention_keeps_a_caption_still_being_seen(store):
    for i in range(10):                       # one row, seen for 270 s
        store.add(record('an empty hallway', i * 30), received=1000.0 + i * 30)
    assert store.enforce_retention(max_age_s=100, now=1300.0) == 0
    assert store.rows == 1
    assert store.enforce_retention(max_age_s=10, now=1300.0) == 1


def test_stamps_beyond_what_a_clock_can_show_do_not_break_a_recall(store):
    assert iso_time(1e15) == '1000000000000000.000'    # a row from before
    store.add(record('a red box', 0))
    store.db.execute('UPDATE captions SET last_stamp = 1e15')   # the bound
    store.db.commit()
    (match,) = store.recall(RecallQuery(text='red'))
    assert match.as_dict()['last_time'] == '1000000000000000.000'


def test_a_url_that_is_not_postgresql_is_refused_without_its_password():
    with pytest.raises(MemoryStoreError) as error:
        open_store(url='postgresql+psycopg://robot:hunter2@db/fleet')
    assert 'hunter2' not in str(error.value)
    assert "memory_url 'postgresql+psycopg://robot@db/fleet' is not a " \
        'postgresql:// URL' == str(error.value)


def test_a_repeat_of_a_row_deleted_meanwhile_is_written_anew(store):
    store.add(record('a red box', 0))
    other = sqlite3.connect(store.path)          # another writer deletes it
    other.execute('DELETE FROM captions')
    other.commit()
    other.close()
    row, new = store.add(record('a red box', 1))
    assert new and texts(store.recall(RecallQuery(text='red'))) == [
        'a red box']


@pytest.mark.parametrize('request_text, message', [
    ('{"text": "red\\u0000box"}', 'holds a control character'),
    ('{"since": NaN}', "'since' = nan is not a time"),
    ('{"since": "inf"}', "'since' = 'inf' is not a time"),
])
def test_requests_that_would_break_the_search_are_refused(request_text,
                                                          message):
    with pytest.raises(MemoryInputError, match=message):
        parse_request(request_text)


def test_iso_times_as_python_3_10_would_refuse_them():
    assert parse_request('{"since": "2026-12-03T10:00:00Z"}').since == \
        1796292000.0
    assert parse_request(
        '{"since": "2026-12-03T10:00:00.5+00:00"}').since == 1796292000.5


def test_a_folder_or_a_locked_file_is_not_taken_for_a_corrupt_one(tmp_path):
    with pytest.raises(MemoryStoreError, match='is a folder') as caught:
        SQLiteStore(str(tmp_path))
    assert not caught.value.corrupt
    path = str(tmp_path / 'memory.db')
    SQLiteStore(path).close()
    holder = sqlite3.connect(path, isolation_level=None)
    holder.execute('PRAGMA locking_mode = EXCLUSIVE')
    holder.execute('BEGIN EXCLUSIVE')
    try:
        with pytest.raises(MemoryStoreError) as caught:
            store = SQLiteStore(path)
            store.add(record('a red box', 0))
        assert not caught.value.corrupt, caught.value
    finally:
        holder.close()
