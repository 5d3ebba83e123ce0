"""
Benchmark the captioning engine against plain Hugging Face generate().

Builds BLIP-2 from a hub id or local directory (``--model``), or from a
known configuration with random weights (``--random-weights
blip2-opt-2.7b``: the true compute cost without downloading 15 GB), then
runs, in the same process on the same inputs and batch sizes, HF eager
``generate()`` and our fast path (static KV cache, fused QKV, CUDA-graph
decode step), forcing ``--new-tokens`` tokens.  Prints a table (ms per
caption, captions/s, ms/token, peak GPU memory, start-up, speed-up) and
JSON, with the share of tokens on which both agree.

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

from camera_caption.tools.benchmark_report import (agreement,
                                                   print_clip_table,
                                                   print_table)
from camera_caption.tools.benchmark_timing import (interleaved, peak_mb,
                                                   read_bandwidth, spread,
                                                   sync)
import torch

# Known shapes (random weights): vision ViT-g/14, Q-Former, OPT decoder.
_VIT_G = {'hidden_size': 1408, 'intermediate_size': 6144,
          'num_hidden_layers': 39, 'num_attention_heads': 16,
          'image_size': 224, 'patch_size': 14}
_QFORMER = {'hidden_size': 768, 'num_hidden_layers': 12,
            'num_attention_heads': 12, 'intermediate_size': 3072,
            'encoder_hidden_size': 1408, 'cross_attention_frequency': 2,
            'vocab_size': 30522}
_OPT = {
    'blip2-opt-2.7b': {'hidden_size': 2560, 'ffn_dim': 10240,
                       'num_hidden_layers': 32, 'num_attention_heads': 32,
                       'word_embed_proj_dim': 2560},
    'blip2-opt-6.7b': {'hidden_size': 4096, 'ffn_dim': 16384,
                       'num_hidden_layers': 32, 'num_attention_heads': 32,
                       'word_embed_proj_dim': 4096},
}
RANDOM_CONFIGS = tuple(sorted(_OPT)) + ('tiny',)
IMAGE_TOKEN = 50265


def random_config(name):
    """Return a Blip2Config of a known model's shape (or the tiny one)."""
    from transformers import Blip2Config
    if name == 'tiny':
        from camera_caption.tools.tiny_blip2 import build_config
        return build_config(400, 3, 0, 1, initializer_range=0.08)
    text = dict(_OPT[name], model_type='opt', vocab_size=50272,
                max_position_embeddings=2048, do_layer_norm_before=True,
                pad_token_id=1, bos_token_id=2, eos_token_id=50118)
    return Blip2Config(vision_config=_VIT_G, qformer_config=_QFORMER,
                       text_config=text, num_query_tokens=32,
                       image_token_index=IMAGE_TOKEN)


def build_model(args, device, dtype):
    """Return (model, source description, seconds to build)."""
    from transformers import Blip2ForConditionalGeneration

    from camera_caption.engine.model_loading import dtype_kwarg
    start = time.monotonic()
    if args.random_weights:
        torch.manual_seed(0)
        with torch.device(device):
            model = Blip2ForConditionalGeneration(
                random_config(args.random_weights))
        model = keep_fp32_like_from_pretrained(model.to(dtype).eval(), dtype)
        source = f'{args.random_weights} (random weights)'
    else:
        model = Blip2ForConditionalGeneration.from_pretrained(
            args.model, **dtype_kwarg(dtype)).to(device).eval()
        source = args.model
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return model, source, time.monotonic() - start


def save_random_model(name, out_dir, dtype=torch.float16, device='cpu'):
    """
    Save a known configuration with random weights, with a processor.

    The tokenizer is the tiny model's (trained locally; its ids are a
    subset of OPT's vocabulary, so captions are gibberish but the compute
    is the real model's), so ``from_pretrained`` and the captioner load it
    with no download.  Returns ``out_dir``.
    """
    from transformers import (Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor)

    from camera_caption.tools.tiny_blip2 import build_tokenizer
    tokenizer = build_tokenizer()
    config = random_config(name)
    image_token = tokenizer.convert_tokens_to_ids('<image>')
    for key in ('image_token_index', 'image_token_id'):
        if hasattr(config, key):
            setattr(config, key, image_token)
    torch.manual_seed(0)
    with torch.device(device):
        model = Blip2ForConditionalGeneration(config)
    model = keep_fp32_like_from_pretrained(model.to(dtype).eval(), dtype)
    size = config.vision_config.image_size
    processor = Blip2Processor(
        image_processor=BlipImageProcessor(
            size={'height': size, 'width': size}),
        tokenizer=tokenizer, num_query_tokens=config.num_query_tokens)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    del model
    return out_dir


def keep_fp32_like_from_pretrained(model, dtype, version=None):
    """
    Put back in float32 what from_pretrained keeps there at this dtype.

    Since transformers 4.51 a float16 BLIP-2 keeps ``query_tokens`` and the
    Q-Former in float32 (``_keep_in_fp32_modules``); random weights cast
    with ``.to(dtype)`` must look the same, or they hide dtype bugs.
    """
    if version is None:
        import transformers
        version = transformers.__version__
    if dtype != torch.float16 or tuple(
            int(x) for x in version.split('.')[:2]) < (4, 51):
        return model
    for name in getattr(type(model), '_keep_in_fp32_modules', None) or []:
        part = getattr(model, name, None)
        if isinstance(part, torch.nn.Parameter):
            part.data = part.data.float()
        elif isinstance(part, torch.nn.Module):
            part.float()
    return model


def run(args):
    """Measure every batch size; return a list of result dicts."""
    from camera_caption.engine.model_loading import (resolve_device,
                                                     resolve_dtype)
    from camera_caption.engine.fast_blip2 import FastBlip2Opt
    from camera_caption.engine.fast_path_policy import fast_path_reason
    from camera_caption.engine.opt_weights import decoder_weight_bytes
    device = torch.device(resolve_device(args.device))
    dtype = resolve_dtype(args.dtype, device.type)
    model, source, build_s = build_model(args, device, dtype)
    for generation in (model.generation_config,
                       model.language_model.generation_config):
        generation.eos_token_id = None             # force --new-tokens
    config = model.config
    queries = config.num_query_tokens
    bos = config.text_config.bos_token_id
    image_token = config.image_token_id if hasattr(
        config, 'image_token_id') else config.image_token_index
    size = config.vision_config.image_size
    start = time.monotonic()
    reason = fast_path_reason(model)
    if reason:
        raise FastPathUnavailable(reason)
    try:
        fast = FastBlip2Opt(model, max_batch=max(args.batch),
                            max_len=queries + 1 + args.new_tokens)
        fast.warm_up(sorted(set(args.batch)))
    except Exception as exc:  # noqa: B902 - reported, nothing measured
        raise FastPathUnavailable(
            f'{type(exc).__name__}: {" ".join(str(exc).split())[:300]}'
        ) from exc
    sync(device)
    startup_s = time.monotonic() - start
    pixel_dtype = model.vision_model.embeddings.patch_embedding.weight.dtype
    weight_bytes = decoder_weight_bytes(model)
    bandwidth = read_bandwidth(device)      # the floor, in this very run
    results = []
    for batch in args.batch:
        gen = torch.Generator(device='cpu').manual_seed(batch)
        pixels = torch.randn(batch, 3, size, size, generator=gen).to(
            device, pixel_dtype)
        input_ids = torch.tensor([[image_token] * queries + [bos]] * batch,
                                 device=device)
        mask = torch.ones_like(input_ids)

        def hf(pixels=pixels, input_ids=input_ids, mask=mask):
            with torch.inference_mode():
                out = model.generate(pixel_values=pixels,
                                     input_ids=input_ids,
                                     attention_mask=mask, do_sample=False,
                                     num_beams=1,
                                     max_new_tokens=args.new_tokens)
            return out[:, input_ids.shape[1]:].tolist()

        def ours(pixels=pixels, tokens=args.new_tokens):
            return fast.generate(pixels, [bos], tokens, ignore_eos=True)

        def encode(pixels=pixels):
            with torch.inference_mode():
                return fast.encode(pixels)

        times, outs = interleaved(
            {'hf': hf, 'fast': ours, 'encode': encode,
             'prefill': lambda: ours(tokens=1)}, device, args.repeats)
        hf_ms, fast_ms = spread(times['hf']), spread(times['fast'])
        one_ms = spread(times['prefill'])
        steps = max(1, args.new_tokens - 1)
        per_step = [(f - o) / steps for f, o in zip(times['fast'],
                                                    times['prefill'])]
        step_ms = spread(per_step)
        floor_ms = 1000 * weight_bytes / bandwidth
        results.append({
            'source': source, 'device': str(device),
            'gpu': torch.cuda.get_device_name(device)
            if device.type == 'cuda' else 'cpu',
            'dtype': str(dtype).replace('torch.', ''), 'batch': batch,
            'new_tokens': args.new_tokens, 'repeats': args.repeats,
            'interleaved': True,
            'hf_ms_per_caption': hf_ms[0] / batch,
            'hf_ms_per_caption_min_max': [hf_ms[1] / batch,
                                          hf_ms[2] / batch],
            'hf_captions_per_s': 1000 * batch / hf_ms[0],
            'fast_ms_per_caption': fast_ms[0] / batch,
            'fast_ms_per_caption_min_max': [fast_ms[1] / batch,
                                            fast_ms[2] / batch],
            'fast_captions_per_s': 1000 * batch / fast_ms[0],
            'fast_ms_per_token_step': step_ms[0],
            'fast_ms_per_token_step_median': step_ms[0],
            'fast_ms_per_token_step_min_max': list(step_ms[1:]),
            'fast_encode_prefill_ms': one_ms[0],
            'fast_encode_ms': spread(times['encode'])[0],
            'decoder_weight_bytes': weight_bytes,
            'bandwidth_gb_s': bandwidth / 1e9,
            'floor_ms_per_token_step': floor_ms,
            'fast_step_pct_of_floor': 100 * step_ms[0] / floor_ms,
            'engine': 'fast',
            'speedup': hf_ms[0] / fast_ms[0],
            'speedup_median': hf_ms[0] / fast_ms[0],
            'tokens_equal': outs['hf'] == outs['fast'],
            'token_agreement': agreement(outs['hf'], outs['fast']),
            'hf_peak_mb': peak_mb(device, hf),
            'fast_peak_mb': peak_mb(device, ours),
            'model_build_s': build_s, 'fast_startup_s': startup_s,
            'cuda_graph': fast.use_cuda_graph,
        })
    return results


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
