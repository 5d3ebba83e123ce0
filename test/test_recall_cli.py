"""The recall command on a real SQLite memory: lines, JSON, exports, codes."""

import json

from camera_caption.memory.recall_cli import main
from camera_caption.memory.records import iso_time
from camera_caption.memory.sqlite_store import SQLiteStore
from memory_helpers import record, T0
import pytest

pytestmark = pytest.mark.unit


@pytest.fixture
def memory(tmp_path):
    path = str(tmp_path / 'memory.db')
    store = SQLiteStore(path)
    for i in range(3):
        store.add(record('a red circle \x1b[31mon white', i))
    store.add(record('a green triangle on a black background', 10))
    store.add(record('a green triangle on a white background', 20,
                     '/back/image_raw'))
    store.add(record('緑の三角形が見える', 30))
    store.close()
    return path


def recall(capsys, *args):
    status = main(list(args))
    out = capsys.readouterr()
    return status, out.out, out.err


def test_lines_name_time_camera_and_caption(memory, capsys):
    status, out, _ = recall(capsys, 'green', 'triangle', '--memory_path',
                            memory)
    assert status == 0
    assert out.splitlines() == [
        f'{iso_time(T0 + 20)[:23].replace("T", " ")}  /back/image_raw  a '
        'green triangle on a white background',
        f'{iso_time(T0 + 10)[:23].replace("T", " ")}  /image_raw  a green '
        'triangle on a black background']
    status, out, _ = recall(capsys, 'red', '--memory_path', memory)
    assert out.strip().endswith(
        f'a red circle on white  (×3 until {iso_time(T0 + 2)[11:23]})')
    assert '\x1b' not in out                      # escapes never printed


def test_last_between_camera_and_json(memory, capsys):
    status, out, _ = recall(capsys, 'red', '--last', '--memory_path', memory)
    assert out.startswith('last seen ' + iso_time(T0 + 2)[:10])
    status, out, _ = recall(capsys, '--between', str(T0 + 5), str(T0 + 25),
                            '--json', '--memory_path', memory)
    assert [m['caption'][:16] for m in json.loads(out)] == [
        'a green triangle', 'a green triangle']
    status, out, _ = recall(capsys, 'triangle', '--camera', '/back',
                            '--json', '--memory_path', memory)
    (match,) = json.loads(out)
    assert match['camera'] == '/back/image_raw' and match['score'] == 2
    status, out, _ = recall(capsys, '三角形', '--memory_path', memory)
    assert out.rstrip().endswith('緑の三角形が見える')


@pytest.mark.parametrize('suffix, start', [
    ('srt', '1\n00:00:00,000 --> 00:00:03,000\na red circle on white\n'),
    ('vtt', 'WEBVTT\n\n00:00:00.000 --> 00:00:03.000\na red circle'),
    ('jsonl', '{"stamp": 1796300000.0, "caption": "a red circle on white"'),
])
def test_export_writes_the_transcript_formats(memory, capsys, tmp_path,
                                              suffix, start):
    target = tmp_path / f'out.{suffix}'
    status, out, _ = recall(capsys, '--between', str(T0), str(T0 + 100),
                            '--export', str(target), '--memory_path', memory)
    assert status == 0 and out == f'wrote 4 captions to {target}\n'
    assert target.read_text(encoding='utf-8').startswith(start)


@pytest.mark.parametrize('args, status, message', [
    (['purple'], 1, 'recall: no caption matches'),
    (['--since', 'yesterday'], 2, "'since' = 'yesterday' is not a time"),
    (['--camera', '/side'], 2, "'/side' is unknown"),
    (['--export', 'out.doc'], 2, 'the format is taken from the extension'),
    (['\udcffbox'], 2, "'text' = '\\udcffbox' is not UTF-8 text"),  # \xff
])
def test_exit_status_and_one_line_on_bad_input(memory, capsys, args, status,
                                               message):
    code, _, err = recall(capsys, *args, '--memory_path', memory)
    assert code == status and message in err and len(err.splitlines()) == 1


def test_a_memory_that_is_not_there(tmp_path, capsys):
    code, _, err = recall(capsys, 'x', '--memory_path',
                          str(tmp_path / 'none.db'))
    assert code == 2 and 'does not exist' in err
    assert not (tmp_path / 'none.db').exists()


def test_words_may_follow_options_and_a_cut_says_so(memory, capsys):
    status, out, _ = recall(capsys, 'green', '--camera', '/back', 'triangle',
                            '--memory_path', memory)
    assert status == 0 and out.count('\n') == 1 and 'white' in out
    status, out, err = recall(capsys, '--between', str(T0), str(T0 + 100),
                              '--limit', '2', '--memory_path', memory)
    assert status == 0 and out.count('\n') == 2
    assert 'stopped at 2 captions' in err and len(err.splitlines()) == 1
