"""
float16 and bfloat16: the fast path is enabled and agrees with generate().

The tiny BLIP-2 goes through save_pretrained -> from_pretrained at each
dtype, as a user's checkpoint does: since transformers 4.51 a float16
BLIP-2 keeps query_tokens and the Q-Former in float32.
"""

from camera_caption.engine.caption_model import strip_prompt_tokens
from camera_caption.engine.fast_blip2 import cut_at_eos
from camera_caption.engine.fast_blip2_captioner import FastBlip2Captioner
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.tools.tiny_blip2 import build_tiny_blip2
import numpy as np
import pytest
import torch
import transformers

pytestmark = pytest.mark.unit

PROMPTS = ['', 'question: what is happening? answer:']
# Teacher-forced logits vs generate()'s, relative to the largest |logit|
# (measured on CPU: about 1e-3 in float16, 8e-3 in bfloat16).
TOLERANCE = {torch.float16: 1e-2, torch.bfloat16: 3e-2}


@pytest.fixture(scope='module', params=[True, False], ids=['bos', 'no_bos'])
def model_dir(request, tmp_path_factory):
    """Widened tiny BLIP-2 whose tokenizer adds BOS, or does not."""
    return build_tiny_blip2(str(tmp_path_factory.mktemp('m')), seed=1,
                            weight_scale=4.0, add_bos=request.param)


def frames(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            for _ in range(n)]


def version():
    return tuple(int(x) for x in transformers.__version__.split('.')[:2])


@pytest.mark.parametrize('dtype', ['float16', 'bfloat16'])
def test_fast_path_enabled_and_agrees_with_generate(model_dir, dtype):
    engine = load_caption_model(model_dir, device='cpu', dtype=dtype,
                                max_new_tokens=12)
    torch_dtype = getattr(torch, dtype)
    if torch_dtype == torch.float16 and version() >= (4, 51):
        assert engine.model.query_tokens.dtype == torch.float32
    engine = FastBlip2Captioner.upgrade(engine, max_batch=4)
    fast = engine.decoder
    assert fast.dtype == torch_dtype
    assert fast.k_cache.dtype == torch_dtype
    bos = engine.processor.tokenizer.bos_token_id
    with_bos = engine.processor.tokenizer('')['input_ids'] == [bos]
    assert engine.prompt_token_ids('') == ([bos] if with_bos else [])
    same_rows = rows_total = agree = tokens = 0
    worst = 0.0
    for batch in (1, 2, 3, 4):
        for prompt in PROMPTS:
            out, inputs = engine.generate_raw(
                frames(batch, seed=batch), prompt, 12, output_logits=True,
                return_dict_in_generate=True)
            reference = strip_prompt_tokens(out.sequences,
                                            inputs['input_ids'])
            logits = torch.stack(out.logits, dim=1).float()
            ids = engine.prompt_token_ids(prompt)
            rows = fast.generate(inputs['pixel_values'], ids, 12)
            forced = fast.score(inputs['pixel_values'], ids, reference)
            scale = max(1.0, float(logits.abs().max()))
            for r in range(batch):
                ref = cut_at_eos(reference[r].tolist(), fast.eos)
                n = len(ref)
                worst = max(worst, float((forced[r, :n] - logits[r, :n])
                                         .abs().max()) / scale)
                agree += int((forced[r, :n].argmax(-1)
                              == torch.tensor(ref)).sum())
                tokens += n
                same_rows += rows[r] == ref
                rows_total += 1
    assert tokens >= 100
    assert worst <= TOLERANCE[torch_dtype], worst
    # Equal tokens, or (a near-tie flipped) teacher-forced agreement.
    assert same_rows == rows_total or agree >= 0.99 * tokens, \
        (same_rows, rows_total, agree, tokens)
    # And the captions a user gets come from the fast path.
    images = frames(2, seed=11)
    captions = engine.caption(images, PROMPTS[1])
    assert len(captions) == 2 and engine.decoder is fast
