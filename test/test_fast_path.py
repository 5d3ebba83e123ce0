"""The fast path's greedy tokens equal HF generate()'s, exactly (CPU, fp32)."""

from camera_caption.engine.fast_blip2 import FastBlip2Opt
from camera_caption.engine.fast_blip2_captioner import (FastBlip2Captioner,
                                                        FastPathUnavailable)
from camera_caption.engine.fast_path_policy import fast_path_reason
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.engine.preprocess import FramePreprocessor
from camera_caption.tools.tiny_blip2 import build_tiny_blip2
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.unit

PROMPTS = ['', 'question: what is happening? answer:']


# Two widened tiny models (default init would repeat one token): seed 0
# ends sequences early at EOS, seed 1 produces many different tokens.
MODELS = {'early_eos': (0, 4.0), 'varied': (1, 4.0)}


@pytest.fixture(scope='module', params=sorted(MODELS))
def wide_engine(request, tmp_path_factory):
    """Tiny BLIP-2 with widened weights, and its fast path."""
    seed, scale = MODELS[request.param]
    path = build_tiny_blip2(str(tmp_path_factory.mktemp(request.param)),
                            seed=seed, weight_scale=scale)
    engine = load_caption_model(path, device='cpu', dtype='float32')
    fast = FastBlip2Opt(engine.model, max_batch=4, max_len=64)
    return engine, fast


def frames(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            for _ in range(n)]


def hf_greedy(engine, images, prompt, max_new, eos):
    """Run processor + generate(); return new tokens cut after EOS."""
    inputs = engine.processor(images=images, text=[prompt] * len(images),
                              return_tensors='pt')
    with torch.no_grad():
        out = engine.model.generate(**inputs, max_new_tokens=max_new,
                                    do_sample=False, num_beams=1)
    rows = []
    for row in out[:, inputs['input_ids'].shape[1]:].tolist():
        cut = []
        for token in row:
            cut.append(token)
            if token in eos:
                break
        rows.append(cut)
    return rows, inputs['pixel_values']


@pytest.mark.parametrize('prompt', PROMPTS, ids=['no_prompt', 'prompt'])
@pytest.mark.parametrize('batch', [1, 2, 3, 4])
def test_fast_tokens_equal_generate(wide_engine, batch, prompt):
    engine, fast = wide_engine
    for seed in range(3):
        images = frames(batch, seed=100 * batch + seed)
        reference, pixels = hf_greedy(engine, images, prompt, 12, fast.eos)
        ids = engine.processor.tokenizer(prompt)['input_ids']
        assert fast.generate(pixels, ids, 12) == reference


def test_the_references_hit_eos_early_and_vary(tmp_path):
    lengths, tokens = set(), set()
    for name, (seed, scale) in MODELS.items():
        engine = load_caption_model(build_tiny_blip2(
            str(tmp_path / name), seed=seed, weight_scale=scale), 'cpu')
        fast = FastBlip2Opt(engine.model, max_batch=4, max_len=64)
        for image_seed in range(6):
            for prompt in PROMPTS:
                rows, pixels = hf_greedy(engine, frames(4, image_seed),
                                         prompt, 12, fast.eos)
                lengths.update(len(r) for r in rows)
                tokens.update(t for r in rows for t in r)
                ids = engine.processor.tokenizer(prompt)['input_ids']
                assert fast.generate(pixels, ids, 12) == rows
    assert 12 in lengths and min(lengths) < 12, lengths
    assert len(tokens) >= 10, tokens


def test_engine_uses_the_fast_path_and_matches_generate(tiny_model_dir):
    plain = load_caption_model(tiny_model_dir, device='cpu')
    fast = FastBlip2Captioner.upgrade(
        load_caption_model(tiny_model_dir, device='cpu'), max_batch=3)
    assert fast.engine == 'fast' and fast.preprocess is not None
    # Same pixel_values both ways: the processor's.
    fast.preprocess = None
    for prompt in PROMPTS:
        images = frames(3, seed=7)
        assert fast.caption(images, prompt, 8) == plain.caption(images,
                                                                prompt, 8)
    # Larger batches than captured fall back to generate(), same answer.
    images = frames(5, seed=8)
    assert fast.caption(images, '', 8) == plain.caption(images, '', 8)


def test_torch_preprocessing_matches_the_image_processor(tiny_engine):
    processor = tiny_engine.processor.image_processor
    assert FramePreprocessor.supports(processor)
    pre = FramePreprocessor(processor, torch.device('cpu'), torch.float32)
    images = frames(2, seed=1) + [np.ascontiguousarray(
        frames(1, seed=2)[0][..., ::-1])[..., ::-1]]      # a BGR view
    ours = pre(images)
    # torchvision's processors refuse the reversed view: give them a copy.
    theirs = processor([np.ascontiguousarray(i) for i in images],
                       return_tensors='pt')['pixel_values']
    assert ours.shape == theirs.shape
    # torch's bicubic (a=-0.75, antialiased) vs PIL's (a=-0.5): a fraction
    # of a grey level on average, a few grey levels at worst.
    assert (ours - theirs).abs().mean() < 0.005
    assert (ours - theirs).abs().max() < 0.1


def test_other_generation_settings_fall_back(tiny_model_dir):
    engine = load_caption_model(tiny_model_dir, device='cpu')
    engine.model.generation_config.num_beams = 3
    assert 'num_beams' in fast_path_reason(engine.model)
    with pytest.raises(FastPathUnavailable, match='num_beams'):
        FastBlip2Captioner.upgrade(engine)
    assert engine.engine.startswith('generate (') and \
        'num_beams' in engine.engine
    assert len(engine.caption(frames(2, seed=0), '', 4)) == 2
    engine.model.generation_config.num_beams = 1
    engine.model.generation_config.repetition_penalty = 1.3
    assert 'repetition_penalty' in fast_path_reason(engine.model)


def test_ignore_eos_forces_the_full_length(wide_engine):
    engine, fast = wide_engine
    pixels = engine.processor.image_processor(
        frames(2, seed=5), return_tensors='pt')['pixel_values']
    ids = engine.processor.tokenizer('')['input_ids']
    rows = fast.generate(pixels, ids, 10, ignore_eos=True)
    assert [len(r) for r in rows] == [10, 10]


def test_graph_captured_on_first_use_keeps_the_prefilled_cache(
        wide_engine):
    # A stand-in for CUDA graphs that runs the capture's warm-up steps (they
    # write the KV cache, as on a GPU) and replays by running the step
    # again: capturing after the prefill would overwrite query token 0.
    engine, _ = wide_engine
    fast = FastBlip2Opt(engine.model, max_batch=4, graphs=RerunGraphs())
    for batch in (1, 3, 2):
        images = frames(batch, seed=40 + batch)
        reference, pixels = hf_greedy(engine, images, PROMPTS[1], 12,
                                      fast.eos)
        ids = engine.prompt_token_ids(PROMPTS[1])
        assert fast.generate(pixels, ids, 12) == reference
    assert sorted(fast._runs) == [1, 2, 3]


def test_kv_cache_sized_to_the_need_and_grown_with_a_log_line(wide_engine):
    engine, _ = wide_engine
    logs = []
    fast = FastBlip2Opt(engine.model, max_batch=2, max_len=6,
                        log=logs.append, graphs=RerunGraphs())
    fast.warm_up([2])
    assert fast.max_len == 6 and fast.k_cache.shape[3] == 6
    images = frames(2, seed=9)
    reference, pixels = hf_greedy(engine, images, PROMPTS[1], 12, fast.eos)
    ids = engine.prompt_token_ids(PROMPTS[1])
    assert fast.generate(pixels, ids, 12) == reference
    need = fast.queries + len(ids) + 12
    assert need <= fast.max_len < need + 16
    assert len(logs) == 1 and 'KV cache grown from 6 to' in logs[0]
    assert sorted(fast._runs) == [2]          # captured again after growth
    with pytest.raises(ValueError, match='positions'):
        fast.generate(pixels, ids, fast.limit)


class RerunGraphs:
    """CUDA-graph stand-in on CPU: warm-up steps run, replay re-runs."""

    def context(self):
        import contextlib
        return contextlib.nullcontext()

    def reset(self):
        pass

    def capture(self, step):
        for _ in range(2):
            step()
        out = step()
        return (lambda: out.copy_(step())), out
