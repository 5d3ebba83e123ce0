"""CPU kernels for the language model: oneDNN-packed bfloat16, int8, dtype auto."""

import collections
import logging

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.cpu_linears import (cpu_has_native_bf16,
                                               Int8Linear, PackedLinear,
                                               packing_available,
                                               sped_up_copy)
from camera_caption.engine.fast_blip2_captioner import FastBlip2Captioner
from camera_caption.engine.local_backend import LocalBackend
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.engine.opt_weights import decoder_weight_bytes, opt_parts
from camera_caption.tools.demo_model import _check_frames
import pytest
import torch
import torch.nn.functional as F
from torch.utils._python_dispatch import TorchDispatchMode

pytestmark = pytest.mark.unit
needs_packing = pytest.mark.skipif(
    not packing_available(),
    reason='this torch/CPU cannot prepack bfloat16 weights with oneDNN')


@pytest.mark.parametrize('flags,native', [
    ('fpu sse avx2 avx512f avx512_bf16 avx512_vnni', True),
    ('fpu avx2 amx_tile amx_bf16', True),
    ('fpu sse avx2 fma', False),
    ('fpu avx512f avx512bw', False),
])
def test_native_bf16_is_read_from_the_cpu_flags(tmp_path, monkeypatch,
                                                flags, native):
    monkeypatch.delenv('CAMERA_CAPTION_NATIVE_BF16')
    info = tmp_path / 'cpuinfo'
    info.write_text(f'processor\t: 0\nflags\t\t: {flags}\n\n')
    assert cpu_has_native_bf16(str(info)) is native
    assert cpu_has_native_bf16(str(tmp_path / 'missing')) is False
    monkeypatch.setenv('CAMERA_CAPTION_NATIVE_BF16', '1')
    assert cpu_has_native_bf16(str(info)) is True


@needs_packing
@pytest.mark.parametrize('shape', [(1, 1, 96), (1, 33, 96), (4, 1, 96),
                                   (3, 96)])
def test_packed_linear_is_bit_identical_to_f_linear(shape):
    torch.manual_seed(0)
    linear = torch.nn.Linear(96, 200).to(torch.bfloat16)
    x = torch.randn(*shape).to(torch.bfloat16)
    with torch.inference_mode():
        assert torch.equal(PackedLinear(linear)(x),
                           F.linear(x, linear.weight, linear.bias))


def _kinds(model):
    decoder, head = opt_parts(model)
    return {type(m).__name__ for layer in decoder.layers
            for m in (layer.self_attn.q_proj, layer.self_attn.out_proj,
                      layer.fc1, layer.fc2)} | {type(head).__name__}


@needs_packing
def test_bf16_model_captions_the_same_with_packed_weights(tiny_model_dir):
    frames = _check_frames()[0][:6]
    packed = load_caption_model(tiny_model_dir, device='cpu',
                                dtype='bfloat16', max_new_tokens=8)
    assert _kinds(packed.model) == {'PackedLinear'}
    assert 'bfloat16 weights prepacked by oneDNN' in packed.cpu_kernels
    plain = load_caption_model(tiny_model_dir, device='cpu',
                               dtype='float32', max_new_tokens=8)
    plain.model.to(torch.bfloat16)            # the same weights, unpacked
    assert _kinds(plain.model) == {'Linear'}
    said = packed.caption(frames)
    assert said == plain.caption(frames)
    fast = FastBlip2Captioner.upgrade(packed, max_batch=2)
    assert fast.caption(frames[:2]) == said[:2]


@needs_packing
def test_inexact_packing_keeps_the_plain_layers(tiny_model_dir,
                                                monkeypatch):
    # oneDNN's answer is checked at load; where a CPU's kernel differed
    # from F.linear, the model loads with its plain layers and says why.
    import camera_caption.engine.cpu_linears as cpu_linears
    monkeypatch.setattr(cpu_linears, 'packing_exact', lambda sample: False)
    model = load_caption_model(tiny_model_dir, device='cpu',
                               dtype='bfloat16', max_new_tokens=8)
    assert _kinds(model.model) == {'Linear'}
    assert 'differ from F.linear on this CPU: the plain layers are kept' \
        in model.cpu_kernels
    assert len(model.caption(_check_frames()[0][:2])) == 2


def test_sped_up_copy_leaves_the_original_as_it_was(tiny_model_dir):
    plain = load_caption_model(tiny_model_dir, device='cpu',
                               dtype='float32', max_new_tokens=8)
    model = plain.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    copy, line = sped_up_copy(model, 'int8')
    assert 'int8 weights per output channel' in line
    assert _kinds(model) == {'Linear'} and _kinds(copy) == {'Int8Linear'}
    assert all(torch.equal(before[k], v)
               for k, v in model.state_dict().items())
    # int8 weights: a quarter of float32's bytes for the linear layers.
    assert decoder_weight_bytes(copy) < 0.5 * decoder_weight_bytes(model)
    assert sped_up_copy(model, 'none') == (model, '')    # float32: MKL


def test_int8_demo_model_still_tells_the_truth(demo_model_dir):
    frames, truth = _check_frames()
    frames, truth = frames[::6], truth[::6]     # every scene, fewer sizes
    model = load_caption_model(demo_model_dir, device='cpu',
                               dtype='float32', max_new_tokens=12,
                               quantize='int8')
    assert _kinds(model.model) == {'Int8Linear'}
    assert isinstance(opt_parts(model.model)[1], Int8Linear)
    assert model.caption(frames) == truth
    backend = LocalBackend.create(
        {'model': demo_model_dir, 'device': 'cpu', 'dtype': 'float32',
         'quantize': 'int8', 'max_new_tokens': 12, 'cpu_threads': 0,
         'engine': 'auto', 'prompt': ''}, 4, logging.getLogger('int8'))
    stats = backend.stats()
    assert stats['engine'] == 'fast' and stats['quantize'] == 'int8'
    assert 'int8' in stats['cpu_kernels']
    said = []
    for start in range(0, len(frames), 4):
        said += backend.caption(frames[start:start + 4], '', 12)
    assert said == truth


def test_quantize_is_checked_before_loading(tiny_model_dir):
    with pytest.raises(ModelLoadError, match="quantize 'int4' is not one of "
                       'none, int8'):
        load_caption_model(tiny_model_dir, device='cpu', quantize='int4')


class _OpCounter(TorchDispatchMode):
    """Count the operators dispatched (ATen, oneDNN, quantized)."""

    def __init__(self):
        super().__init__()
        self.ops = collections.Counter()

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        self.ops[func.name()] += 1
        return func(*args, **(kwargs or {}))


WEIGHT_OPS = ('linear', 'addmm', 'mm', 'matmul', 'bmm', '_linear_pointwise',
              'linear_dynamic')


def _per_token(run):
    counts = []
    for tokens in (2, 6):
        with torch.inference_mode(), _OpCounter() as counter:
            run(tokens)
        counts.append(counter.ops)
    return {op: (counts[1][op] - counts[0][op]) / 4
            for op in counts[0] | counts[1]}


@pytest.mark.parametrize('dtype,quantize', [
    ('float32', 'none'), pytest.param('bfloat16', 'none',
                                      marks=needs_packing),
    ('float32', 'int8')])
def test_engine_auto_rule_fast_path_does_less_per_token(tiny_model_dir,
                                                        dtype, quantize):
    # The rule behind engine auto on a CPU: both engines run the same
    # linear modules (the CPU kernels are swapped into the model), and
    # the fast path's decode step dispatches no more weight reads and
    # fewer operators per token than generate()'s, so it is never the
    # slower one (timed at real shapes by `benchmark`, docs/speed.md).
    from camera_caption.engine.fast_blip2 import FastBlip2Opt
    loaded = load_caption_model(tiny_model_dir, device='cpu', dtype=dtype,
                                quantize=quantize)
    model = loaded.model
    for generation in (model.generation_config,
                       model.language_model.generation_config):
        generation.eos_token_id = None
    config = model.config
    bos = config.text_config.bos_token_id
    image = config.image_token_id if hasattr(config, 'image_token_id') \
        else config.image_token_index
    size = config.vision_config.image_size
    pixels = torch.randn(1, 3, size, size).to(loaded.pixel_dtype())
    ids = torch.tensor([[image] * config.num_query_tokens + [bos]])
    fast = FastBlip2Opt(model, max_batch=1, max_len=ids.shape[1] + 6)

    def hf(tokens):
        model.generate(pixel_values=pixels, input_ids=ids,
                       attention_mask=torch.ones_like(ids),
                       do_sample=False, num_beams=1, max_new_tokens=tokens)

    def ours(tokens):
        fast.generate(pixels, [bos], tokens, ignore_eos=True)

    theirs, mine = _per_token(hf), _per_token(ours)
    reads = {op: (mine.get(op, 0), theirs.get(op, 0)) for op in theirs
             if op.split('::')[-1].split('.')[0] in WEIGHT_OPS}
    assert reads and all(m <= t for m, t in reads.values()), reads
    assert sum(mine.values()) < sum(theirs.values()), (mine, theirs)
