"""The benchmark runs HF generate() and the fast path side by side."""

import json

from camera_caption.tools import benchmark
import pytest


def test_benchmark_on_random_tiny_weights(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert benchmark.main(['--random-weights', 'tiny', '--device', 'cpu',
                           '--batch', '1', '3', '--new-tokens', '6',
                           '--repeats', '1', '--json', str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r['batch'] for r in results] == [1, 3]
    for r in results:
        assert r['token_agreement'] == 1.0 and r['tokens_equal']
        assert r['hf_ms_per_caption'] > 0 and r['fast_ms_per_caption'] > 0
        assert r['speedup'] == pytest.approx(
            r['hf_ms_per_caption'] / r['fast_ms_per_caption'])
        assert r['new_tokens'] == 6 and r['cuda_graph'] is False
    table = capsys.readouterr().out
    assert 'speed-up' in table and 'tiny (random weights) on cpu' in table


def test_benchmark_loads_a_local_directory(tiny_model_dir, capsys):
    assert benchmark.main(['--model', tiny_model_dir, '--device', 'cpu',
                           '--batch', '2', '--new-tokens', '4',
                           '--repeats', '1']) == 0
    assert f'{tiny_model_dir} on cpu' in capsys.readouterr().out


def test_known_configs_have_the_real_shapes():
    config = benchmark.random_config('blip2-opt-2.7b')
    assert config.text_config.hidden_size == 2560
    assert config.text_config.num_hidden_layers == 32
    assert config.vision_config.num_hidden_layers == 39
    assert config.num_query_tokens == 32
