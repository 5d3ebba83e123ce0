"""The benchmark runs HF generate() and the fast path side by side."""

import json

from camera_caption.tools import benchmark
import pytest

pytestmark = pytest.mark.unit


def test_benchmark_on_random_tiny_weights(tmp_path, capsys):
    out = tmp_path / 'bench.json'
    assert benchmark.main(['--random-weights', 'tiny', '--device', 'cpu',
                           '--batch', '1', '3', '--new-tokens', '6',
                           '--repeats', '3', '--json', str(out)]) == 0
    results = json.loads(out.read_text())
    assert [r['batch'] for r in results] == [1, 3]
    for r in results:
        assert r['token_agreement'] == 1.0 and r['tokens_equal']
        assert r['hf_ms_per_caption'] > 0 and r['fast_ms_per_caption'] > 0
        assert r['new_tokens'] == 6 and r['cuda_graph'] is False
        assert r['engine'] == 'fast' and r['decoder_weight_bytes'] > 0
        assert r['fast_encode_ms'] > 0
        # Interleaved runs: medians with their spread, and the floor.
        assert r['interleaved'] and r['repeats'] == 3
        for name in ('hf_ms_per_caption', 'fast_ms_per_caption'):
            low, high = r[name + '_min_max']
            assert low <= r[name] <= high
        assert r['speedup_median'] == pytest.approx(
            r['hf_ms_per_caption'] / r['fast_ms_per_caption'])
        low, high = r['fast_ms_per_token_step_min_max']
        assert low <= r['fast_ms_per_token_step_median'] <= high
        assert r['bandwidth_gb_s'] > 0.1
        assert r['floor_ms_per_token_step'] == pytest.approx(
            r['decoder_weight_bytes'] / r['bandwidth_gb_s'] / 1e6)
        assert r['fast_step_pct_of_floor'] == pytest.approx(
            100 * r['fast_ms_per_token_step'] / r['floor_ms_per_token_step'])
    table = capsys.readouterr().out
    assert 'speed-up' in table and 'tiny (random weights) on cpu' in table
    assert 'medians of 3 interleaved runs' in table and 'of the floor' in table


@pytest.mark.parametrize('dtype', ['float32', 'float16'])
def test_benchmark_loads_a_local_directory(tiny_model_dir, capsys, dtype):
    # float16 through from_pretrained keeps the Q-Former in float32.
    assert benchmark.main(['--model', tiny_model_dir, '--device', 'cpu',
                           '--dtype', dtype, '--batch', '2',
                           '--new-tokens', '4', '--repeats', '1']) == 0
    out = capsys.readouterr().out
    assert f'{tiny_model_dir} on cpu ({dtype}), 4 new tokens; engine: fast' \
        in out


def test_benchmark_refuses_when_the_fast_path_cannot_run(tiny_model_dir,
                                                         tmp_path, capsys):
    import shutil
    target = tmp_path / 'beams'
    shutil.copytree(tiny_model_dir, target)
    config = json.loads((target / 'generation_config.json').read_text())
    config['num_beams'] = 3
    (target / 'generation_config.json').write_text(json.dumps(config))
    assert benchmark.main(['--model', str(target), '--device', 'cpu',
                           '--batch', '1', '--repeats', '1']) == 1
    captured = capsys.readouterr()
    assert captured.err.strip().splitlines()[-1] == (
        'engine: generate (generation_config.num_beams = 3 needs '
        'generate()): the fast path cannot run, nothing measured')
    assert captured.out == ''


def test_random_weights_keep_fp32_parts_as_from_pretrained_does(
        tiny_model_dir):
    from camera_caption.tools.tiny_blip2 import build_config
    import torch
    from transformers import Blip2ForConditionalGeneration

    def dtypes(model):
        return {name: p.dtype for name, p in model.named_parameters()}

    loaded = Blip2ForConditionalGeneration.from_pretrained(
        tiny_model_dir, **benchmark_dtype(torch.float16))
    model = Blip2ForConditionalGeneration(build_config(
        loaded.config.text_config.vocab_size, 3, 0, 1))
    model = benchmark.keep_fp32_like_from_pretrained(
        model.to(torch.float16), torch.float16)
    assert dtypes(model) == dtypes(loaded)
    assert model.language_projection.weight.dtype == torch.float16


def benchmark_dtype(dtype):
    from camera_caption.engine.model_loading import dtype_kwarg
    return dtype_kwarg(dtype)


def test_benchmark_measures_clips_of_several_lengths(tmp_path, capsys):
    out = tmp_path / 'clips.json'
    assert benchmark.main(['--random-weights', 'tiny', '--device', 'cpu',
                           '--batch', '2', '--new-tokens', '3',
                           '--repeats', '1', '--clip-frames', '1', '4',
                           '--json', str(out)]) == 0
    results = json.loads(out.read_text())
    assert [(r['clip_frames'], r['batch']) for r in results] == [(1, 2),
                                                                 (4, 2)]
    assert all(r['fast_ms_per_caption'] > 0 and r['fast_encode_ms'] > 0
               for r in results)
    assert 'clips on the fast path' in capsys.readouterr().out
