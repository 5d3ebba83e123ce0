"""
The models the benchmark measures: a checkpoint, or known shapes at random.

``--random-weights blip2-opt-2.7b`` builds BLIP-2 at the real model's
shapes with random weights (the true compute cost, no 15 GB download):
built on the meta device and filled in place, in the dtype asked for, so
that a 3.9 B-parameter model is ready in well under a minute on a CPU.
:func:`save_random_model` writes one with a processor, for
``from_pretrained`` and the captioner.
"""

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


def random_model(name, device, dtype, config=None):
    """
    BLIP-2 of a known configuration with random weights, in ``dtype``.

    Built on the meta device, then each tensor is allocated on ``device``
    in ``dtype`` and drawn from N(0, initializer_range) (norms: 1 and 0),
    seeded: no float32 copy of the whole model, and no slow per-module
    initialisers.  Parts that ``from_pretrained`` keeps in float32 stay so.
    ``config``: that of ``name``, changed (default: ``name``'s own).
    """
    from transformers import Blip2ForConditionalGeneration
    config = config or random_config(name)
    with torch.device('meta'):
        model = Blip2ForConditionalGeneration(config)
    model = model.to_empty(device=device).to(dtype)
    model = keep_fp32_like_from_pretrained(model, dtype).eval()
    std = getattr(config, 'initializer_range', 0.02)
    generator = torch.Generator(device=device).manual_seed(0)
    with torch.no_grad():
        for name, p in model.named_parameters():
            if 'norm' in name.lower():
                p.fill_(1.0 if name.endswith('weight') else 0.0)
            else:
                p.normal_(0.0, std, generator=generator)
        for b in model.buffers():      # none in BLIP-2/OPT today
            if b.is_floating_point():
                b.zero_()
    return model


def build_model(args, device, dtype):
    """Return (model, source description, seconds to build)."""
    from transformers import Blip2ForConditionalGeneration

    from camera_caption.engine.model_loading import dtype_kwarg
    start = time.monotonic()
    if args.random_weights:
        torch.manual_seed(0)
        if args.random_weights == 'tiny':      # the tiny model's own init
            with torch.device(device):
                model = Blip2ForConditionalGeneration(
                    random_config(args.random_weights))
            model = keep_fp32_like_from_pretrained(model.to(dtype).eval(),
                                                   dtype)
        else:
            model = random_model(args.random_weights, device, dtype)
        source = f'{args.random_weights} (random weights)'
    else:
        model = Blip2ForConditionalGeneration.from_pretrained(
            args.model, **dtype_kwarg(dtype)).to(device).eval()
        source = args.model
    if device.type == 'cuda':
        torch.cuda.synchronize(device)
    return model, source, time.monotonic() - start


def save_random_model(name, out_dir, dtype=torch.float16, device='cpu',
                      words_only=False):
    """
    Save a known configuration with random weights, with a processor.

    The tokenizer is the tiny model's (trained locally; its ids are a
    subset of OPT's vocabulary, so captions are gibberish but the compute
    is the real model's), so ``from_pretrained`` and the captioner load it
    with no download.  ``words_only``: greedy decoding picks only words,
    never EOS (:func:`~camera_caption.tools.tiny_blip2.words_only_head`),
    so that every engine and server decodes ``max_new_tokens`` readable
    tokens.  Returns ``out_dir``.
    """
    from transformers import (Blip2ForConditionalGeneration, Blip2Processor,
                              BlipImageProcessor)

    from camera_caption.tools.tiny_blip2 import (build_tokenizer,
                                                 words_only_head)
    tokenizer = build_tokenizer()
    config = random_config(name)
    image_token = tokenizer.convert_tokens_to_ids('<image>')
    for key in ('image_token_index', 'image_token_id'):
        if hasattr(config, key):
            setattr(config, key, image_token)
    torch.manual_seed(0)
    if name == 'tiny':
        with torch.device(device):
            model = Blip2ForConditionalGeneration(config)
        model = keep_fp32_like_from_pretrained(model.to(dtype).eval(), dtype)
    else:                       # full size: built on meta, filled in place
        model = random_model(name, device, dtype, config)
    if words_only:
        words_only_head(model, tokenizer)
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
