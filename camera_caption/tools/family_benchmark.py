"""
Small models for CPU robots beside BLIP-2: ms per caption at real shapes.

Each model is built at its published checkpoint's shapes with random
weights (the real compute cost, no download), saved with a processor (its
real processor classes and sizes; a tokenizer trained locally, while the
model keeps the real vocabulary size) and loaded by the captioner's own
``backend: local``, as the node loads it.  Every caption is forced to
``--new-tokens`` tokens (``min_new_tokens`` in the saved generation
config; BLIP-2: a words-only head), and the models caption a new 640x480
frame in turns, interleaved over ``--repeats`` rounds.  Prints medians
(min-max) of ms per caption, and the first caption after start.

    python -m camera_caption.tools.family_benchmark --repeats 5
"""

import argparse
import json
import logging
import os
import statistics
import sys
import tempfile
import time

FLORENCE2_BASE = {
    'vision': {'depths': [1, 1, 9, 1], 'embed_dim': [128, 256, 512, 1024],
               'num_heads': [4, 8, 16, 32], 'num_groups': [4, 8, 16, 32],
               'projection_dim': 768},
    'text': {'model_type': 'bart', 'vocab_size': 51289, 'd_model': 768,
             'encoder_layers': 6, 'decoder_layers': 6,
             'encoder_attention_heads': 12, 'decoder_attention_heads': 12,
             'encoder_ffn_dim': 3072, 'decoder_ffn_dim': 3072,
             'max_position_embeddings': 1024},
    'image': 768, 'image_tokens': 577,
}
SMOLVLM2_256M = {
    'vision': {'hidden_size': 768, 'intermediate_size': 3072,
               'num_hidden_layers': 12, 'num_attention_heads': 12,
               'image_size': 512, 'patch_size': 16},
    'text': {'model_type': 'llama', 'vocab_size': 49280, 'hidden_size': 576,
             'intermediate_size': 1536, 'num_hidden_layers': 30,
             'num_attention_heads': 9, 'num_key_value_heads': 3,
             'max_position_embeddings': 8192},
    'scale_factor': 4,
}
MODELS = ('florence2-base', 'smolvlm2-256m', 'smolvlm2-256m-one-tile',
          'blip2-opt-2.7b')


def _forced(model, tokens):
    """Make every caption exactly ``tokens`` long (saved with the model)."""
    model.generation_config.min_new_tokens = tokens
    model.generation_config.max_new_tokens = tokens
    return model


def save_florence2_base(out_dir, tokens):
    """Florence-2-base's shapes, random weights, with its processor."""
    import transformers as tf

    from camera_caption.tools.tiny_blip2 import build_tokenizer
    shapes = FLORENCE2_BASE
    tokenizer = build_tokenizer(vocab_size=400, add_bos=False)
    with tempfile.TemporaryDirectory() as folder:
        tokenizer.save_pretrained(folder)
        tokenizer = tf.AutoTokenizer.from_pretrained(
            folder, extra_special_tokens={'image_token': '<image>'})
    eos = tokenizer.eos_token_id
    config = tf.Florence2Config(
        vision_config=shapes['vision'],
        text_config=dict(shapes['text'], eos_token_id=eos, bos_token_id=eos,
                         pad_token_id=tokenizer.pad_token_id,
                         decoder_start_token_id=eos),
        image_token_id=tokenizer.image_token_id)
    side = {'height': shapes['image'], 'width': shapes['image']}
    processor = tf.Florence2Processor(
        image_processor=tf.CLIPImageProcessor(
            size=side, crop_size=side, do_center_crop=False,
            image_seq_length=shapes['image_tokens']),
        tokenizer=tokenizer, post_processor_config={'pure_text': {}})
    model = _forced(tf.Florence2ForConditionalGeneration(config), tokens)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def save_smolvlm2_256m(out_dir, tokens, split=True):
    """
    SmolVLM2-256M's shapes, random weights, with its processor.

    ``split``: its default processing (a frame enlarged towards 2048
    pixels on its longest side and cut into 512-pixel tiles, plus the
    whole frame, 64 tokens each); else one 512-pixel image (64 tokens).
    """
    import transformers as tf

    from camera_caption.tools.tiny_blip2 import build_tokenizer
    shapes = SMOLVLM2_256M
    tokenizer = build_tokenizer(vocab_size=400, add_bos=False)
    special = ['<|im_start|>', '<fake_token_around_image>', '<image>',
               '<end_of_utterance>', '<global-img>']
    tokenizer.add_special_tokens({'additional_special_tokens': special})
    config = tf.SmolVLMConfig(
        vision_config=shapes['vision'],
        text_config=dict(shapes['text'],
                         pad_token_id=tokenizer.pad_token_id),
        image_token_id=tokenizer.convert_tokens_to_ids('<image>'),
        scale_factor=shapes['scale_factor'])
    side = shapes['vision']['image_size']
    per_image = (side // shapes['vision']['patch_size']) ** 2 // \
        shapes['scale_factor'] ** 2
    template = ("<|im_start|>{% for m in messages %}{{ m['role'] | "
                "capitalize }}: {% for c in m['content'] %}"
                "{% if c['type'] == 'image' %}<image>{% else %}"
                "{{ c['text'] }}{% endif %}{% endfor %}<end_of_utterance>\n"
                '{% endfor %}{% if add_generation_prompt %}Assistant:'
                '{% endif %}')
    processor = tf.SmolVLMProcessor(
        image_processor=tf.SmolVLMImageProcessor(
            size={'longest_edge': 4 * side}, do_image_splitting=split,
            max_image_size={'longest_edge': side}),
        video_processor=tf.SmolVLMVideoProcessor(
            size={'longest_edge': 4 * side},
            max_image_size={'longest_edge': side}),
        tokenizer=tokenizer, image_seq_len=per_image, chat_template=template)
    model = _forced(tf.SmolVLMForConditionalGeneration(config), tokens)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def save_model(name, out_dir, tokens):
    """Save one of :data:`MODELS` at its real shapes; return the folder."""
    import torch
    if name == 'florence2-base':
        return save_florence2_base(out_dir, tokens)
    if name.startswith('smolvlm2-256m'):
        return save_smolvlm2_256m(out_dir, tokens,
                                  split=not name.endswith('one-tile'))
    from camera_caption.tools.benchmark_models import save_random_model
    return save_random_model(name, out_dir, torch.bfloat16, words_only=True)


def checkpoint_parameters(model_dir):
    """Count the tensors' elements in a folder's safetensors files."""
    import math

    from safetensors import safe_open
    total = 0
    for name in os.listdir(model_dir):
        if name.endswith('.safetensors'):
            with safe_open(os.path.join(model_dir, name), 'pt') as f:
                total += sum(math.prod(f.get_slice(k).get_shape())
                             for k in f.keys())
    return total


def run(args, log):
    """Measure every model in turns; return the result dict."""
    import numpy as np

    from camera_caption.engine.local_backend import LocalBackend
    folder = args.work_dir or tempfile.mkdtemp(prefix='family_benchmark_')
    backends, first = {}, {}
    for name in args.models:
        model_dir = os.path.join(folder, name)
        if not os.path.exists(os.path.join(model_dir, 'config.json')):
            save_model(name, model_dir, args.new_tokens)
        start = time.monotonic()
        backends[name] = LocalBackend.create(
            {'model': model_dir, 'device': 'cpu', 'dtype': args.dtype,
             'max_new_tokens': args.new_tokens, 'cpu_threads': args.threads,
             'engine': 'auto', 'prompt': '', 'quantize': 'none'}, 1, log)
        rng = np.random.default_rng(0)
        backends[name].caption([rng.integers(0, 256, (480, 640, 3),
                                             np.uint8)], '', args.new_tokens)
        first[name] = time.monotonic() - start
    rng = np.random.default_rng(1)
    times = {name: [] for name in backends}
    names = list(backends)
    try:
        for round_ in range(args.repeats):
            for name in names if round_ % 2 == 0 else names[::-1]:
                frame = rng.integers(0, 256, (480, 640, 3), np.uint8)
                start = time.perf_counter()
                backends[name].caption([frame], '', args.new_tokens)
                times[name].append(1000 * (time.perf_counter() - start))
        rows = {name: {
            'ms_per_caption_median': round(statistics.median(ms)),
            'ms_per_caption_min': round(min(ms)),
            'ms_per_caption_max': round(max(ms)),
            'first_caption_s': round(first[name], 1),
            'engine': backends[name].stats()['engine'].split(' ')[0],
            'parameters_m': round(checkpoint_parameters(
                os.path.join(folder, name)) / 1e6),
        } for name, ms in times.items()}
    finally:
        for backend in backends.values():
            backend.close()
    return {'dtype': args.dtype, 'new_tokens': args.new_tokens,
            'threads': args.threads, 'repeats': args.repeats,
            'cores': os.cpu_count(), 'rows': rows}


def main(argv=None):
    """Parse arguments, measure, print a table and JSON."""
    parser = argparse.ArgumentParser(description=__doc__.split('\n\n')[0])
    parser.add_argument('--models', nargs='+', default=list(MODELS),
                        choices=MODELS)
    parser.add_argument('--dtype', default='auto',
                        choices=['auto', 'float32', 'bfloat16'],
                        help="as the captioner's dtype (default auto)")
    parser.add_argument('--new-tokens', type=int, default=20)
    parser.add_argument('--repeats', type=int, default=5)
    parser.add_argument('--threads', type=int, default=os.cpu_count())
    parser.add_argument('--work-dir', default='',
                        help='where the models are saved (reused)')
    parser.add_argument('--json', default='')
    args = parser.parse_args(argv)
    os.environ.setdefault('HF_HUB_OFFLINE', '1')
    logging.basicConfig(level=logging.INFO, format='%(message)s')
    result = run(args, logging.getLogger('family_benchmark'))
    print(f"random weights at real shapes, {result['dtype']}, "
          f"{result['new_tokens']} new tokens, a 640x480 frame, "
          f"{result['threads']} threads on {result['cores']} cores, "
          f"{result['repeats']} interleaved rounds; medians (min-max)")
    print('| model | parameters | ms per caption | first caption after '
          'start | engine |')
    print('|---|---|---|---|---|')
    for name, row in result['rows'].items():
        print(f"| {name} | {row['parameters_m']} M | "
              f"{row['ms_per_caption_median']:,} "
              f"({row['ms_per_caption_min']:,}-{row['ms_per_caption_max']:,})"
              f" | {row['first_caption_s']} s | {row['engine']} |")
    print(json.dumps(result, indent=1))
    if args.json:
        with open(args.json, 'w') as f:
            json.dump(result, f, indent=1)
    return 0


if __name__ == '__main__':
    sys.exit(main())
