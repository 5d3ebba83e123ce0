"""The transport benchmark: camera and receiver processes, a table, JSON."""

import json

from camera_caption.tools import transport_benchmark
import pytest

pytestmark = pytest.mark.slow


def test_summarize_and_percentile():
    assert transport_benchmark.percentile([], 0.95) is None
    assert transport_benchmark.percentile([3, 1, 2, 4], 0.5) == 3
    figures = transport_benchmark.summarize(
        [0.0] * 20, [0.01] * 19 + [0.05], 30.0, 2.0)
    assert figures == {'published_per_s': 30.0, 'received_per_s': 10.0,
                       'delivered': 0.333, 'age_ms_mean': 12.0,
                       'age_ms_p95': 50.0}


def test_benchmark_runs_camera_and_receiver_processes(tmp_path, capsys):
    out = tmp_path / 'transport.json'
    assert transport_benchmark.main([
        '--sizes', 'vga', '--qos', 'reliable', '--fps', '10',
        '--seconds', '2', '--warmup', '1', '--json', str(out)]) == 0
    [result] = json.loads(out.read_text())
    assert 'error' not in result, result
    assert result['size'] == '640x480' and result['subscriber'] == 'reliable'
    # A reliable depth-1 reader of an idle receiver gets nearly every frame.
    assert result['published_per_s'] >= 8, result
    assert result['received_per_s'] >= 8, result
    assert 0 < result['age_ms_mean'] <= result['age_ms_p95'] < 1000, result
    table = capsys.readouterr().out
    assert 'reliable -> reliable' in table and 'recv/s' in table
