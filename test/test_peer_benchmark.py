"""The peer benchmark on tiny random weights: ours, HF and a real server."""

import json

from camera_caption.tools import peer_benchmark
import pytest

pytestmark = pytest.mark.slow     # a real transformers serve process


def test_peers_run_interleaved_with_ours_and_decode_every_token(
        tmp_path, capsys):
    out = tmp_path / 'peers.json'
    assert peer_benchmark.main([
        '--random-weights', 'tiny', '--dtype', 'float32', '--new-tokens', '4',
        '--repeats', '2', '--peers', 'hf', 'transformers_serve',
        '--model-dir', str(tmp_path / 'model'), '--json', str(out)]) == 0
    result = json.loads(out.read_text())
    rows = result['rows']
    assert set(rows) == {'ours', 'hf', 'transformers_serve'}
    assert [p['peer'] for p in rows['ours']['phases']] == [
        'hf', 'transformers_serve']
    for name in ('hf', 'transformers_serve'):
        row = rows[name]
        # Every contender decoded exactly the tokens asked for (words-only
        # head: no early EOS), in every round of its phase.
        assert row['tokens_ok'] and row['rounds'] == 2, row
        assert row['ms_per_caption_min'] <= row['ms_per_caption_median'] \
            <= row['ms_per_caption_max']
        assert row['speed_vs_ours'] > 0 and row['first_caption_s'] > 0
    assert rows['transformers_serve']['rss_mb'] > 100   # a whole process
    assert all(p['tokens_ok'] for p in rows['ours']['phases'])
    table = capsys.readouterr().out
    assert '| transformers_serve |' in table and '| hf |' in table
