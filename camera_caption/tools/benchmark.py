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


def _sync(device):
    if device.type == 'cuda':
        torch.cuda.synchronize(device)


def _timed(fn, device, repeats):
    fn()                                    # warm-up
    _sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        result = fn()
    _sync(device)
    return (time.perf_counter() - start) / repeats, result


def _peak(device, fn):
    if device.type != 'cuda':
        fn()
        return None
    torch.cuda.reset_peak_memory_stats(device)
    fn()
    return torch.cuda.max_memory_allocated(device) / 2**20


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
    _sync(device)
    startup_s = time.monotonic() - start
    pixel_dtype = model.vision_model.embeddings.patch_embedding.weight.dtype
    weight_bytes = decoder_weight_bytes(model)
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

        hf_s, hf_tokens = _timed(hf, device, args.repeats)
        encode_s, _ = _timed(encode, device, args.repeats)
        fast_s, fast_tokens = _timed(ours, device, args.repeats)
        one_s, _ = _timed(lambda: ours(tokens=1), device, args.repeats)
        per_token = (fast_s - one_s) / max(1, args.new_tokens - 1)
        results.append({
            'source': source, 'device': str(device),
            'gpu': torch.cuda.get_device_name(device)
            if device.type == 'cuda' else 'cpu',
            'dtype': str(dtype).replace('torch.', ''), 'batch': batch,
            'new_tokens': args.new_tokens,
            'hf_ms_per_caption': 1000 * hf_s / batch,
            'hf_captions_per_s': batch / hf_s,
            'fast_ms_per_caption': 1000 * fast_s / batch,
            'fast_captions_per_s': batch / fast_s,
            'fast_ms_per_token_step': 1000 * per_token,
            'fast_encode_prefill_ms': 1000 * one_s,
            'fast_encode_ms': 1000 * encode_s,
            'decoder_weight_bytes': weight_bytes,
            'engine': 'fast',
            'speedup': hf_s / fast_s,
            'tokens_equal': hf_tokens == fast_tokens,
            'token_agreement': _agreement(hf_tokens, fast_tokens),
            'hf_peak_mb': _peak(device, hf),
            'fast_peak_mb': _peak(device, ours),
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

            fast_s, _ = _timed(ours, device, args.repeats)
            encode_s, _ = _timed(encode, device, args.repeats)
            results.append({
                'source': source, 'device': str(device),
                'dtype': str(dtype).replace('torch.', ''), 'batch': batch,
                'clip_frames': frames, 'new_tokens': args.new_tokens,
                'fast_ms_per_caption': 1000 * fast_s / batch,
                'fast_encode_ms': 1000 * encode_s,
                'fast_peak_mb': _peak(device, ours),
                'model_build_s': build_s,
            })
    return results


def print_clip_table(results, out=None):
    """Print the clip results as a table."""
    out = out or sys.stdout
    first = results[0]
    print(f'{first["source"]} on {first["device"]} ({first["dtype"]}), '
          f'{first["new_tokens"]} new tokens, clips on the fast path',
          file=out)
    print(f'{"frames":>6} {"batch":>5} {"ms/caption":>10} '
          f'{"encode ms":>9} {"peak MB":>8}', file=out)
    for r in results:
        peak = '-' if r['fast_peak_mb'] is None else \
            f'{r["fast_peak_mb"]:.0f}'
        print(f'{r["clip_frames"]:>6} {r["batch"]:>5} '
              f'{r["fast_ms_per_caption"]:10.1f} '
              f'{r["fast_encode_ms"]:9.1f} {peak:>8}', file=out)


class FastPathUnavailable(RuntimeError):
    """The fast path cannot run on this model: nothing to compare."""


def _agreement(a, b):
    """Share of positions where two token lists agree."""
    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return sum(x == y for x, y in pairs) / max(1, len(pairs))


def print_table(results, out=None):
    """Print the results as a table."""
    out = out or sys.stdout
    head = (f'{"batch":>5} {"HF ms/cap":>10} {"HF cap/s":>9} '
            f'{"ours ms/cap":>11} {"ours cap/s":>10} {"ms/token":>9} '
            f'{"speed-up":>8} {"HF peak MB":>10} {"our peak MB":>11} '
            f'{"same tokens":>11}')
    # Random weights give near-ties in the logits, where kernels that sum
    # in another order may pick another token; trained weights rarely do.
    first = results[0]
    print(f'{first["source"]} on {first["gpu"]} ({first["dtype"]}), '
          f'{first["new_tokens"]} new tokens; engine: {first["engine"]}; '
          'fast path start-up '
          f'{first["fast_startup_s"]:.1f} s (CUDA graphs: '
          f'{first["cuda_graph"]}), model built in '
          f'{first["model_build_s"]:.1f} s', file=out)
    print(head, file=out)
    for r in results:
        peak = ['-' if r[k] is None else f'{r[k]:.0f}'
                for k in ('hf_peak_mb', 'fast_peak_mb')]
        print(f'{r["batch"]:>5} {r["hf_ms_per_caption"]:10.1f} '
              f'{r["hf_captions_per_s"]:9.1f} '
              f'{r["fast_ms_per_caption"]:11.1f} '
              f'{r["fast_captions_per_s"]:10.1f} '
              f'{r["fast_ms_per_token_step"]:9.2f} {r["speedup"]:7.1f}x '
              f'{peak[0]:>10} {peak[1]:>11} '
              f'{100 * r["token_agreement"]:10.0f}%',
              file=out)


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
