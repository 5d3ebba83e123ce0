"""The engine on a real (tiny) BLIP-2 loaded through from_pretrained."""

import os
import shutil

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.caption_model import strip_prompt_text
from camera_caption.engine.fast_blip2_captioner import FastBlip2Captioner
from camera_caption.engine.model_loading import (checkpoint_dtype,
                                                 dtype_choice, dtype_kwarg,
                                                 load_caption_model,
                                                 resolve_device,
                                                 resolve_dtype)
import numpy as np
import pytest
import torch

pytestmark = pytest.mark.unit

PROMPT = 'question: what is happening? answer:'


def frames(n, seed=0):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for _ in range(n)]


def reference_captions(engine, images, prompt):
    """Plain HF: processor + generate(), decode the new tokens."""
    inputs = engine.processor(images=images, text=[prompt] * len(images),
                              return_tensors='pt', padding=True)
    with torch.no_grad():
        out = engine.model.generate(**inputs, max_new_tokens=8,
                                    do_sample=False)
    new = out[:, inputs['input_ids'].shape[1]:]
    return [t.strip() for t in engine.processor.batch_decode(
        new, skip_special_tokens=True)]


def test_loads_from_a_local_directory(tiny_engine, tiny_model_dir):
    assert tiny_engine.device == 'cpu'
    assert tiny_engine.dtype == torch.float32
    assert tiny_engine.model_id == tiny_model_dir
    assert tiny_engine.load_seconds > 0
    assert 'cpu' in tiny_engine.describe()


@pytest.mark.parametrize('prompt', ['', PROMPT])
def test_batch_of_two_matches_plain_generate(tiny_engine, prompt):
    images = frames(2)
    captions = tiny_engine.caption(images, prompt)
    assert len(captions) == 2 and all(isinstance(c, str) for c in captions)
    assert captions == reference_captions(tiny_engine, images, prompt)
    # Batched captions equal one-by-one captions.
    assert captions == [tiny_engine.caption([im], prompt)[0]
                        for im in images]


def test_a_bgr8_view_captions_as_its_copy(tiny_engine, tiny_model_dir):
    # bgr8 images arrive as reversed views (negative strides), which
    # torchvision's image processors refuse; the engines take them, in
    # stills and clips, on the fast path and through generate().
    stored = frames(2, seed=4)
    views = [np.ascontiguousarray(f[..., ::-1])[..., ::-1] for f in stored]
    assert views[0].strides[-1] < 0
    fast = FastBlip2Captioner.upgrade(load_caption_model(
        tiny_model_dir, device='cpu', max_new_tokens=8))
    for engine in (tiny_engine, fast):          # generate(), the fast path
        assert engine.caption(views) == engine.caption(stored)
        assert engine.caption([views]) == engine.caption([stored])


def test_captions_depend_on_the_image(tiny_engine):
    captions = tiny_engine.caption(frames(6, seed=3))
    assert len(set(captions)) > 1, captions


def test_prompt_is_not_repeated(tiny_engine):
    captions = tiny_engine.caption(frames(3), PROMPT)
    assert not any(c.startswith(PROMPT) or PROMPT in c for c in captions)


def test_max_new_tokens_limits_length(tiny_engine):
    one = tiny_engine.caption(frames(4), max_new_tokens=1)
    eight = tiny_engine.caption(frames(4), max_new_tokens=8)
    assert sum(map(len, one)) < sum(map(len, eight))


def test_empty_batch(tiny_engine):
    assert tiny_engine.caption([]) == []


def test_strip_prompt_text():
    assert strip_prompt_text(' Q: what? A: a dog ', 'Q: what? A:') == 'a dog'
    assert strip_prompt_text('a dog', '') == 'a dog'


def test_missing_directory_is_a_clear_error(tmp_path):
    with pytest.raises(ModelLoadError, match='does not exist'):
        load_caption_model(str(tmp_path / 'nope'), device='cpu')


def test_directory_without_weights_says_what_it_needs(tiny_model_dir,
                                                      tmp_path):
    target = tmp_path / 'no_weights'
    shutil.copytree(tiny_model_dir, target)
    os.remove(target / 'model.safetensors')
    with pytest.raises(ModelLoadError) as info:
        load_caption_model(str(target), device='cpu')
    assert 'model.safetensors' in str(info.value)
    assert str(target) in str(info.value)


def test_corrupt_weights_are_a_clear_error(tiny_model_dir, tmp_path):
    target = tmp_path / 'corrupt'
    shutil.copytree(tiny_model_dir, target)
    with open(target / 'model.safetensors', 'r+b') as f:
        f.write(b'garbage!' * 8)
    with pytest.raises(ModelLoadError, match='could not be loaded'):
        load_caption_model(str(target), device='cpu')


def test_unreachable_hub_id_explains_offline_use():
    with pytest.raises(ModelLoadError) as info:
        load_caption_model('Salesforce/blip2-opt-2.7b-not-cached',
                           device='cpu')
    assert 'HF_HUB_OFFLINE' in str(info.value)
    assert 'local directory' in str(info.value)


def test_dtype_choices():
    # auto on a CPU follows the CPU's native bfloat16 (AVX512-BF16, AMX).
    assert dtype_choice('auto', 'cpu', native_bf16=False) == (
        torch.float32, 'dtype auto: float32, this CPU has no native '
        'bfloat16 (AVX512-BF16 or AMX)')
    assert dtype_choice('auto', 'cpu', native_bf16=True)[0] == torch.bfloat16
    assert resolve_dtype('auto', 'cpu') == torch.float32   # conftest: 0
    assert resolve_dtype('auto', 'cuda') == torch.float16
    assert resolve_dtype('bf16', 'cpu') == torch.bfloat16
    with pytest.raises(ModelLoadError, match="dtype 'int3'"):
        resolve_dtype('int3', 'cpu')
    # On CUDA, a checkpoint saved in bfloat16 (most chat models; float16
    # overflows in some) stays bfloat16 where the GPU computes it.
    assert dtype_choice('auto', 'cuda', checkpoint='bfloat16',
                        cuda_bf16=True) == (
        torch.bfloat16, "dtype auto: bfloat16 on CUDA, the checkpoint's own")
    for checkpoint, bf16 in (('bfloat16', False), ('float32', True), ('', 1)):
        assert dtype_choice('auto', 'cuda', checkpoint=checkpoint,
                            cuda_bf16=bf16)[0] == torch.float16
    assert dtype_choice('float32', 'cuda', checkpoint='bfloat16',
                        cuda_bf16=True)[0] == torch.float32


@pytest.mark.parametrize('key', ['dtype', 'torch_dtype'])
def test_the_checkpoint_dtype_is_read_from_its_config(key, tmp_path):
    import json
    from transformers import AutoConfig
    from tiny_chat_vlm import build_tiny_chat_vlm
    path = build_tiny_chat_vlm(str(tmp_path / 'chat'))
    assert checkpoint_dtype(AutoConfig.from_pretrained(path)) == 'float32'
    config = json.loads((tmp_path / 'chat' / 'config.json').read_text())
    config.pop('dtype', None)
    config.pop('torch_dtype', None)
    config[key] = 'bfloat16'        # older checkpoints say torch_dtype
    (tmp_path / 'chat' / 'config.json').write_text(json.dumps(config))
    assert checkpoint_dtype(AutoConfig.from_pretrained(path)) == 'bfloat16'


def test_cuda_device_without_cuda_is_refused():
    if torch.cuda.is_available():
        assert resolve_device('cuda') == 'cuda'
    else:
        with pytest.raises(ModelLoadError, match='CUDA is not available'):
            resolve_device('cuda')
    assert resolve_device('auto') in ('cpu', 'cuda')
    with pytest.raises(ModelLoadError, match="device 'tpu'"):
        resolve_device('tpu')


@pytest.mark.parametrize('version,key', [('4.49.0', 'torch_dtype'),
                                         ('4.55.4', 'torch_dtype'),
                                         ('4.56.0', 'dtype'),
                                         ('5.17.0', 'dtype')])
def test_dtype_keyword_follows_transformers_version(version, key):
    assert dtype_kwarg(torch.float16, version) == {key: torch.float16}
