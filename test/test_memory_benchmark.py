"""The memory load benchmark at a tiny size: every figure, exact rows, no empty timings."""

import json

from camera_caption.tools import memory_benchmark
import pytest

pytestmark = pytest.mark.unit


def test_captions_differ_per_camera_and_some_are_japanese():
    captions = memory_benchmark.Captions(seed=3)
    records = [captions.record(n % 10, float(n)) for n in range(5000)]
    for earlier, later in zip(records, records[10:]):
        assert earlier.camera == later.camera and earlier.caption != later.caption
    japanese = sum(1 for r in records if r.caption[0] > '\u3000')
    assert 350 < japanese < 650, japanese


def test_benchmark_at_tiny_size_writes_every_figure(tmp_path, capsys):
    out = tmp_path / 'memory.json'
    assert memory_benchmark.main([
        '--rows-hour', '2000', '--rows-big', '5000', '--queries', '10',
        '--path', str(tmp_path / 'db'), '--json', str(out)]) == 0
    printed = capsys.readouterr().out
    assert 'checks against brute force: 12/12 ok' in printed
    results = json.loads(out.read_text())
    for key in ('cpu', 'cores', 'sqlite', 'python', 'date', 'load_avg', 'load_avg_end'):
        assert results['machine'][key], key
    assert results['store'] == 'sqlite' and results['wall_s'] > 0
    hour, big = results['hour'], results['big']
    # Every caption of the hour is a row of its own (no repeat folded).
    assert hour['captions'] == hour['rows'] == 2000
    assert hour['insert_per_s'] > 0 and hour['db_mb'] > 0
    assert big['prefilled'] == 3000 and big['rows_before_writer'] == 5000
    writer = big['writer']
    assert writer['errors'] == 0 and writer['added'] > 0
    assert big['rows'] == 5000 + writer['added']
    assert set(writer['add']) == {'min_ms', 'p50_ms', 'p95_ms', 'max_ms'}
    assert isinstance(big['missed_p95_target'], list)
    for phase in (hour, big):
        assert set(phase['queries']) == set(memory_benchmark.KINDS)
        for kind, figures in phase['queries'].items():
            assert figures['n'] == 10, kind
            assert 0 < figures['min_ms'] <= figures['p50_ms'] <= figures['p95_ms'] \
                <= figures['max_ms'], (kind, figures)
            assert figures['matches_mean'] > 0, (kind, figures)
        # A 20 s hour fits in any 10-minute window: every row, or the first 100.
        for check in phase['checks']:
            assert check['ok'], check
        known = {c['kind']: c for c in phase['checks'] if c['known_match']}
        assert set(known) == set(memory_benchmark.KINDS)
        assert all(c['expected'] > 0 for c in known.values()), known
        assert known['last']['got'] == 1 and known['timeline_100']['got'] == 100
    assert hour['queries']['timeline_all']['matches_mean'] == 2000
    assert hour['queries']['timeline_100']['matches_mean'] == 100
    for kind in ('timeline_100', 'timeline_all'):
        assert hour['queries'][kind]['empty'] == big['queries'][kind]['empty'] == 0
