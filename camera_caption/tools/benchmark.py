"""
Benchmark the captioning engine against plain Hugging Face generate().

Builds BLIP-2 from a hub id or local directory (``--model``), or from a
known configuration with random weights (``--random-weights
blip2-opt-2.7b``: the true compute cost without downloading 15 GB), then
runs, in the same process on the same inputs and batch sizes, HF eager
``generate()`` and our fast path (static KV cache, fused QKV, CUDA-graph
decode step; on a CPU with the language model's CPU kernels, as the
captioner loads it), forcing ``--new-tokens`` tokens, interleaved over
``--repeats``.  Prints a table (medians and spreads of ms per caption,
captions/s, ms/token, the decode step against the bandwidth floor
measured in the same run, peak GPU memory, start-up, speed-up) and JSON,
with the share of tokens on which both agree.  Where the CPU kernels
change the model, ``generate()`` on it (what ``engine: generate`` runs) is
timed too; with ``--quantize int8`` the unquantized fast path is, and the
logit error and token agreement of int8 against it are reported.

    ros2 run camera_caption benchmark --random-weights blip2-opt-2.7b
    ros2 run camera_caption benchmark --model /models/blip2 --batch 1 8 32
    python -m camera_caption.tools.benchmark --random-weights tiny --device cpu

With ``--clip-frames 1 4 8`` it measures clip captions instead (fast path,
VideoBLIP-style: N frames per caption through the vision encoder in one
batched call, then the Q-Former and the unchanged decode): ms per caption
and for the encoding alone, per clip length and batch size.
"""

import argparse
import json
import sys
import time

from camera_caption.contract.constants import QUANTIZE_CHOICES
from camera_caption.tools.benchmark_models import (
    build_model, keep_fp32_like_from_pretrained, random_config,
    RANDOM_CONFIGS, save_random_model)
from camera_caption.tools.benchmark_report import (agreement,
                                                   print_clip_table,
                                                   print_table)
from camera_caption.tools.benchmark_timing import (interleaved, peak_mb,
                                                   read_bandwidth, spread,
                                                   sync)
import torch

__all__ = ['build_model', 'keep_fp32_like_from_pretrained', 'main',
           'random_config', 'run', 'run_clips', 'save_random_model']


def run(args):
    """Measure every batch size; return a list of result dicts."""
    from camera_caption.engine.cpu_linears import sped_up_copy
    from camera_caption.engine.model_loading import (resolve_device,
                                                     resolve_dtype)
    from camera_caption.engine.opt_weights import decoder_weight_bytes
    device = torch.device(resolve_device(args.device))
    dtype = resolve_dtype(args.dtype, device.type)
    quantize = getattr(args, 'quantize', 'none')
    model, source, build_s = build_model(args, device, dtype)
    for generation in (model.generation_config,
                       model.language_model.generation_config):
        generation.eos_token_id = None             # force --new-tokens
    # HF runs the model as loaded; ours the model with the CPU kernels
    # the captioner gives it (a copy of the language model where they
    # change anything), and with int8 also the unquantized one.
    plain_kernels, plain_line = sped_up_copy(model, 'none')
    ours_model, kernels = (plain_kernels, plain_line) if quantize == 'none' \
        else sped_up_copy(model, quantize)
    start = time.monotonic()
    fast = _fast_path(ours_model, args)
    startup_s = time.monotonic() - start
    reference = _fast_path(plain_kernels, args) if quantize != 'none' \
        else None
    config = model.config
    queries = config.num_query_tokens
    bos = config.text_config.bos_token_id
    image_token = config.image_token_id if hasattr(
        config, 'image_token_id') else config.image_token_index
    size = config.vision_config.image_size
    pixel_dtype = model.vision_model.embeddings.patch_embedding.weight.dtype
    weight_bytes = decoder_weight_bytes(ours_model)
    bandwidth = read_bandwidth(device)      # the floor, in this very run
    results = []
    for batch in args.batch:
        gen = torch.Generator(device='cpu').manual_seed(batch)
        pixels = torch.randn(batch, 3, size, size, generator=gen).to(
            device, pixel_dtype)
        input_ids = torch.tensor([[image_token] * queries + [bos]] * batch,
                                 device=device)

        def hf(on=model, pixels=pixels, input_ids=input_ids):
            with torch.inference_mode():
                out = on.generate(pixel_values=pixels, input_ids=input_ids,
                                  attention_mask=torch.ones_like(input_ids),
                                  do_sample=False, num_beams=1,
                                  max_new_tokens=args.new_tokens)
            return out[:, input_ids.shape[1]:].tolist()

        def ours(fast=fast, pixels=pixels, tokens=args.new_tokens):
            return fast.generate(pixels, [bos], tokens, ignore_eos=True)

        contenders = {'hf': hf, 'fast': ours,
                      'encode': lambda: _encode(fast, pixels),
                      'prefill': lambda: ours(tokens=1)}
        if ours_model is not model:   # what engine: generate runs here
            contenders['generate_kernels'] = \
                lambda: hf(on=ours_model)
        if reference is not None:
            contenders['fast_unquantized'] = lambda: ours(fast=reference)
            contenders['prefill_unquantized'] = \
                lambda: ours(fast=reference, tokens=1)
        times, outs = interleaved(contenders, device, args.repeats)
        row = _figures(times, batch, args.new_tokens,
                       1000 * weight_bytes / bandwidth)
        row.update({
            'source': source, 'device': str(device),
            'gpu': torch.cuda.get_device_name(device)
            if device.type == 'cuda' else 'cpu',
            'dtype': str(dtype).replace('torch.', ''), 'batch': batch,
            'quantize': quantize, 'cpu_kernels': kernels,
            'new_tokens': args.new_tokens, 'repeats': args.repeats,
            'interleaved': True, 'decoder_weight_bytes': weight_bytes,
            'bandwidth_gb_s': bandwidth / 1e9, 'engine': 'fast',
            'tokens_equal': outs['hf'] == outs['fast'],
            'token_agreement': agreement(outs['hf'], outs['fast']),
            'hf_peak_mb': peak_mb(device, hf),
            'fast_peak_mb': peak_mb(device, ours),
            'model_build_s': build_s, 'fast_startup_s': startup_s,
            'cuda_graph': fast.use_cuda_graph,
        })
        if reference is not None:
            row.update(quantization_error(reference, fast, pixels, bos,
                                          outs['fast_unquantized'],
                                          outs['fast']))
        results.append(row)
    return results


def _fast_path(model, args):
    from camera_caption.engine.fast_blip2 import FastBlip2Opt
    from camera_caption.engine.fast_path_policy import fast_path_reason
    reason = fast_path_reason(model)
    if reason:
        raise FastPathUnavailable(reason)
    try:
        fast = FastBlip2Opt(model, max_batch=max(args.batch),
                            max_len=model.config.num_query_tokens + 1
                            + args.new_tokens)
        fast.warm_up(sorted(set(args.batch)))
    except Exception as exc:  # noqa: B902 - reported, nothing measured
        raise FastPathUnavailable(
            f'{type(exc).__name__}: {" ".join(str(exc).split())[:300]}'
        ) from exc
    sync(fast.device)
    return fast


def _encode(fast, pixels):
    with torch.inference_mode():
        return fast.encode(pixels)


def _figures(times, batch, new_tokens, floor_ms):
    """Medians, spreads, ratios and the decode step of one batch size."""
    steps = max(1, new_tokens - 1)
    row = {}
    for name in ('hf', 'fast', 'generate_kernels', 'fast_unquantized'):
        if name not in times:
            continue
        median, low, high = spread(times[name])
        row[f'{name}_ms_per_caption'] = median / batch
        row[f'{name}_ms_per_caption_min_max'] = [low / batch, high / batch]
        row[f'{name}_captions_per_s'] = 1000 * batch / median
    for name, prefill in (('fast', 'prefill'),
                          ('fast_unquantized', 'prefill_unquantized')):
        if name in times:
            step = spread([(f - o) / steps for f, o in zip(
                times[name], times[prefill])])
            row[f'{name}_ms_per_token_step_median'] = step[0]
            row[f'{name}_ms_per_token_step_min_max'] = list(step[1:])
    row['fast_ms_per_token_step'] = row['fast_ms_per_token_step_median']
    row['fast_encode_prefill_ms'] = spread(times['prefill'])[0]
    row['fast_encode_ms'] = spread(times['encode'])[0]
    row['floor_ms_per_token_step'] = floor_ms
    row['fast_step_pct_of_floor'] = 100 * row['fast_ms_per_token_step'] \
        / floor_ms
    row['speedup'] = row['speedup_median'] = \
        row['hf_ms_per_caption'] / row['fast_ms_per_caption']
    if 'generate_kernels' in times:
        row['speedup_vs_generate_kernels_median'] = \
            row['generate_kernels_ms_per_caption'] \
            / row['fast_ms_per_caption']
    if 'fast_unquantized' in times:
        row['step_ratio_vs_unquantized'] = row['fast_ms_per_token_step'] \
            / row['fast_unquantized_ms_per_token_step_median']
    return row


def quantization_error(reference, quantized, pixels, bos, ref_tokens,
                       tokens):
    """
    Measure the quality cost of quantizing against the unquantized path.

    Both are fed the unquantized model's greedy tokens (teacher forcing):
    the largest and mean logit error relative to the largest |logit|, and
    the share of steps whose top token agrees; then the share of the
    free-running tokens that agree.
    """
    forced = torch.as_tensor(ref_tokens)
    ref = reference.score(pixels, [bos], forced).float()
    ours = quantized.score(pixels, [bos], forced).float()
    scale = max(1.0, float(ref.abs().max()))
    error = (ours - ref).abs()
    return {
        'int8_logit_error_max_rel': float(error.max()) / scale,
        'int8_logit_error_mean_rel': float(error.mean()) / scale,
        'int8_top1_agreement_teacher_forced': float(
            (ours.argmax(-1) == ref.argmax(-1)).float().mean()),
        'int8_token_agreement': agreement(ref_tokens, tokens),
    }


def run_clips(args):
    """Measure clip captions of every length and batch; result dicts."""
    from camera_caption.engine.model_loading import (resolve_device,
                                                     resolve_dtype)
    from camera_caption.engine.fast_blip2 import FastBlip2Opt
    from camera_caption.engine.fast_path_policy import fast_path_reason
    device = torch.device(resolve_device(args.device))
    dtype = resolve_dtype(args.dtype, device.type)
    model, source, build_s = build_model(args, device, dtype)
    reason = fast_path_reason(model)
    if reason:
        raise FastPathUnavailable(reason)
    config = model.config
    bos = config.text_config.bos_token_id
    size = config.vision_config.image_size
    fast = FastBlip2Opt(model, max_batch=max(args.batch),
                        max_len=config.num_query_tokens + 1 + args.new_tokens)
    fast.warm_up(sorted(set(args.batch)))
    pixel_dtype = model.vision_model.embeddings.patch_embedding.weight.dtype
    results = []
    for frames in args.clip_frames:
        for batch in args.batch:
            gen = torch.Generator(device='cpu').manual_seed(batch)
            shape = (batch, frames, 3, size, size) if frames > 1 else \
                (batch, 3, size, size)
            pixels = torch.randn(*shape, generator=gen).to(device,
                                                           pixel_dtype)

            def ours(pixels=pixels):
                return fast.generate(pixels, [bos], args.new_tokens,
                                     ignore_eos=True)

            def encode(pixels=pixels):
                with torch.inference_mode():
                    return fast.encode(pixels)

            times, _ = interleaved({'fast': ours, 'encode': encode}, device,
                                   args.repeats)
            fast_s = spread(times['fast'], 1.0)[0]
            encode_s = spread(times['encode'], 1.0)[0]
            results.append({
                'source': source, 'device': str(device),
                'dtype': str(dtype).replace('torch.', ''), 'batch': batch,
                'clip_frames': frames, 'new_tokens': args.new_tokens,
                'fast_ms_per_caption': 1000 * fast_s / batch,
                'fast_encode_ms': 1000 * encode_s,
                'fast_peak_mb': peak_mb(device, ours),
                'model_build_s': build_s,
            })
    return results


class FastPathUnavailable(RuntimeError):
    """The fast path cannot run on this model: nothing to compare."""


def main(argv=None):
    """Command line entry (``ros2 run camera_caption benchmark``)."""
    parser = argparse.ArgumentParser(
        description=__doc__.strip().splitlines()[0])
    source = parser.add_mutually_exclusive_group(required=True)
    source.add_argument('--model', help='hub id or local directory')
    source.add_argument('--random-weights', choices=RANDOM_CONFIGS,
                        help='a known configuration with random weights')
    parser.add_argument('--batch', type=int, nargs='+', default=[1, 8])
    parser.add_argument('--new-tokens', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--device', default='auto')
    parser.add_argument('--dtype', default='auto')
    parser.add_argument('--json', help='also write the results here')
    parser.add_argument('--quantize', choices=QUANTIZE_CHOICES,
                        default='none',
                        help='int8: the language model in int8 (CPU); also '
                        'measures the unquantized fast path and the logit '
                        'error against it')
    parser.add_argument('--clip-frames', type=int, nargs='+',
                        help='measure clip captions of these lengths '
                        '(frames per caption) instead')
    args = parser.parse_args(argv)
    try:
        results = run_clips(args) if args.clip_frames else run(args)
    except FastPathUnavailable as exc:
        print(f'engine: generate ({exc}): the fast path cannot run, '
              'nothing measured', file=sys.stderr)
        return 1
    (print_clip_table if args.clip_frames else print_table)(results)
    text = json.dumps(results, indent=2)
    print(text)
    if args.json:
        with open(args.json, 'w') as f:
            f.write(text)
    return 0


if __name__ == '__main__':
    sys.exit(main())
