"""
Tiny checkpoints of the real architectures the README names, built offline.

Each builder takes the family's real config class shrunk to a few layers,
random weights, a byte-level BPE tokenizer trained here on English and
Japanese text with the family's special tokens, and the family's real
processor classes with a chat template in the family's format, and saves
them with ``save_pretrained``: the captioner loads them through
``from_pretrained`` as it loads a downloaded checkpoint.  Their captions
are gibberish; what they prove is that a still, a clip (as a video where
the model takes video) and a Japanese prompt go through the real
processor and model code.

    python test/tiny_families.py qwen2_vl /tmp/tiny-qwen2-vl
"""

import argparse
import os

from camera_caption.tools.tiny_blip2 import (_CORPUS, build_tiny_blip2,
                                             build_tokenizer)
from tiny_chat_vlm import build_tiny_chat_vlm, JAPANESE_CORPUS

# Qwen2-VL's own template (Qwen2.5-VL's is the same).
QWEN_TEMPLATE = (
    '{% set image_count = namespace(value=0) %}'
    '{% set video_count = namespace(value=0) %}'
    '{% for message in messages %}'
    "{% if loop.first and message['role'] != 'system' %}"
    '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n'
    '{% endif %}'
    "<|im_start|>{{ message['role'] }}\n"
    "{% if message['content'] is string %}"
    "{{ message['content'] }}<|im_end|>\n"
    "{% else %}{% for content in message['content'] %}"
    "{% if content['type'] == 'image' or 'image' in content "
    "or 'image_url' in content %}"
    '{% set image_count.value = image_count.value + 1 %}'
    '{% if add_vision_id %}Picture {{ image_count.value }}: {% endif %}'
    '<|vision_start|><|image_pad|><|vision_end|>'
    "{% elif content['type'] == 'video' or 'video' in content %}"
    '{% set video_count.value = video_count.value + 1 %}'
    '{% if add_vision_id %}Video {{ video_count.value }}: {% endif %}'
    '<|vision_start|><|video_pad|><|vision_end|>'
    "{% elif 'text' in content %}{{ content['text'] }}{% endif %}"
    '{% endfor %}<|im_end|>\n{% endif %}{% endfor %}'
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}')
QWEN_TOKENS = ['<|endoftext|>', '<|im_start|>', '<|im_end|>',
               '<|vision_start|>', '<|vision_end|>', '<|image_pad|>',
               '<|video_pad|>']
# Small images: at most 56 x 56 pixels, 4 merged tokens per image.
QWEN_PIXELS = {'shortest_edge': 28 * 28, 'longest_edge': 56 * 56}


def family_tokenizer(special_tokens, eos, pad):
    """Return the locally trained tokenizer with a family's tokens."""
    tokenizer = build_tokenizer(vocab_size=600, add_bos=False,
                                corpus=_CORPUS + JAPANESE_CORPUS)
    tokenizer.add_special_tokens(
        {'additional_special_tokens': list(special_tokens)})
    tokenizer.eos_token = eos
    tokenizer.pad_token = pad
    return tokenizer


def small_text(tokenizer, eos, model_type=None, **changes):
    """Return a 2-layer language model config dict for ``tokenizer``."""
    text = {'vocab_size': len(tokenizer), 'hidden_size': 32,
            'intermediate_size': 64, 'num_hidden_layers': 2,
            'num_attention_heads': 4, 'num_key_value_heads': 2,
            'max_position_embeddings': 1024,
            'eos_token_id': tokenizer.convert_tokens_to_ids(eos),
            'pad_token_id': tokenizer.pad_token_id, 'bos_token_id': None}
    if model_type:
        text['model_type'] = model_type
    text.update(changes)
    return text


def _spread(model, scale=4.0):
    """Widen random weights so that greedy tokens vary (norms kept)."""
    import torch
    with torch.no_grad():
        for name, param in model.named_parameters():
            if 'norm' not in name:
                param.mul_(scale)
    return model


def _save(model, processor, out_dir):
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    return out_dir


def build_qwen_vl(out_dir, version='2', seed=0):
    """Qwen2-VL (``version`` '2') or Qwen2.5-VL ('2.5'), with video."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokenizer = family_tokenizer(QWEN_TOKENS, '<|im_end|>', '<|endoftext|>')
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_TOKENS}
    text = small_text(tokenizer, '<|im_end|>', rope_parameters={
        'rope_type': 'default', 'rope_theta': 1e4, 'mrope_section': [2, 1, 1]})
    if version == '2':
        vision = {'depth': 2, 'embed_dim': 32, 'hidden_size': 32,
                  'num_heads': 4, 'mlp_ratio': 2, 'patch_size': 14,
                  'spatial_merge_size': 2, 'temporal_patch_size': 2}
        config_class = tf.Qwen2VLConfig
        model_class = tf.Qwen2VLForConditionalGeneration
        processor_class = tf.Qwen2VLProcessor
    else:
        vision = {'depth': 2, 'hidden_size': 32, 'intermediate_size': 64,
                  'num_heads': 4, 'out_hidden_size': 32, 'patch_size': 14,
                  'spatial_merge_size': 2, 'temporal_patch_size': 2,
                  'window_size': 56, 'fullatt_block_indexes': [1]}
        config_class = tf.Qwen2_5_VLConfig
        model_class = tf.Qwen2_5_VLForConditionalGeneration
        processor_class = tf.Qwen2_5_VLProcessor
    config = config_class(
        text_config=text, vision_config=vision,
        image_token_id=ids['<|image_pad|>'],
        video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'],
        vision_end_token_id=ids['<|vision_end|>'])
    processor = processor_class(
        image_processor=tf.Qwen2VLImageProcessor(size=QWEN_PIXELS),
        video_processor=tf.Qwen2VLVideoProcessor(size=QWEN_PIXELS),
        tokenizer=tokenizer, chat_template=QWEN_TEMPLATE)
    model = _spread(model_class(config).eval())
    return _save(model, processor, out_dir)


def build_qwen3_vl(out_dir, seed=0):
    """Qwen3-VL: 16-pixel patches, DeepStack, interleaved M-RoPE, video."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokenizer = family_tokenizer(QWEN_TOKENS, '<|im_end|>', '<|endoftext|>')
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in QWEN_TOKENS}
    pixels = {'shortest_edge': 32 * 32, 'longest_edge': 64 * 64}
    config = tf.Qwen3VLConfig(
        text_config=small_text(tokenizer, '<|im_end|>', head_dim=8,
                               rope_parameters={
                                   'rope_type': 'default', 'rope_theta': 1e4,
                                   'mrope_section': [2, 1, 1],
                                   'mrope_interleaved': True}),
        vision_config={'depth': 2, 'hidden_size': 32,
                       'intermediate_size': 64, 'num_heads': 4,
                       'out_hidden_size': 32, 'patch_size': 16,
                       'spatial_merge_size': 2, 'temporal_patch_size': 2,
                       'num_position_embeddings': 16,
                       'deepstack_visual_indexes': [1]},
        image_token_id=ids['<|image_pad|>'],
        video_token_id=ids['<|video_pad|>'],
        vision_start_token_id=ids['<|vision_start|>'],
        vision_end_token_id=ids['<|vision_end|>'])
    processor = tf.Qwen3VLProcessor(
        image_processor=tf.Qwen2VLImageProcessor(size=pixels, patch_size=16),
        video_processor=tf.Qwen3VLVideoProcessor(size=pixels, patch_size=16),
        tokenizer=tokenizer, chat_template=QWEN_TEMPLATE)
    model = _spread(tf.Qwen3VLForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


def build_blip2_t5(out_dir, seed=0):
    """BLIP-2 with a Flan-T5 (encoder-decoder) language model."""
    import torch
    import transformers as tf

    from camera_caption.tools.tiny_blip2 import build_config, TINY_IMAGE_SIZE
    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocab_size=600, add_bos=False,
                                corpus=_CORPUS + JAPANESE_CORPUS)
    image_token = tokenizer.convert_tokens_to_ids('<image>')
    opt = build_config(len(tokenizer), image_token, tokenizer.pad_token_id,
                       tokenizer.eos_token_id)
    config = tf.Blip2Config(
        vision_config=opt.vision_config.to_dict(),
        qformer_config=opt.qformer_config.to_dict(),
        text_config={'model_type': 't5', 'vocab_size': len(tokenizer),
                     'd_model': 32, 'd_ff': 64, 'd_kv': 16, 'num_layers': 2,
                     'num_decoder_layers': 2, 'num_heads': 2,
                     'pad_token_id': tokenizer.pad_token_id,
                     'eos_token_id': tokenizer.eos_token_id,
                     'decoder_start_token_id': tokenizer.pad_token_id},
        num_query_tokens=opt.num_query_tokens,
        image_token_index=image_token)
    processor = tf.Blip2Processor(
        image_processor=tf.BlipImageProcessor(
            size={'height': TINY_IMAGE_SIZE, 'width': TINY_IMAGE_SIZE}),
        tokenizer=tokenizer, num_query_tokens=config.num_query_tokens)
    model = _spread(tf.Blip2ForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


# LLaVA-OneVision's own template: images, then videos, then the text.
ONEVISION_TEMPLATE = (
    "{% for message in messages %}{{ '<|im_start|>' + message['role'] + ' ' }}"
    "{% if message['content'] is string %}{{ message['content'] }}{% else %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', "
    "'image') %}{{ '<image>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', "
    "'video') %}{{ '<video>' }}{% endfor %}"
    "{% for content in message['content'] | selectattr('type', 'equalto', "
    "'text') %}{{ '\n' + content['text'] }}{% endfor %}{% endif %}"
    "{{ '<|im_end|>' }}{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}")


def build_llava_onevision(out_dir, seed=0):
    """LLaVA-OneVision: SigLIP, any-resolution tiles, Qwen2, video."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokens = ['<|endoftext|>', '<|im_start|>', '<|im_end|>', '<image>',
              '<video>']
    tokenizer = family_tokenizer(tokens, '<|im_end|>', '<|endoftext|>')
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
    side, patch = 16, 8
    config = tf.LlavaOnevisionConfig(
        vision_config={'model_type': 'siglip_vision_model',
                       'image_size': side, 'patch_size': patch,
                       'hidden_size': 32, 'intermediate_size': 64,
                       'num_hidden_layers': 2, 'num_attention_heads': 4},
        text_config=small_text(tokenizer, '<|im_end|>', 'qwen2'),
        image_token_index=ids['<image>'], video_token_index=ids['<video>'],
        vision_feature_select_strategy='full', vision_feature_layer=-1,
        image_grid_pinpoints=[[side, side]])
    size = {'height': side, 'width': side}
    processor = tf.LlavaOnevisionProcessor(
        image_processor=tf.LlavaOnevisionImageProcessor(
            size=size, crop_size=size, image_grid_pinpoints=[[side, side]]),
        video_processor=tf.LlavaOnevisionVideoProcessor(size=size),
        tokenizer=tokenizer, num_image_tokens=(side // patch) ** 2,
        vision_feature_select_strategy='full',
        chat_template=ONEVISION_TEMPLATE)
    model = _spread(tf.LlavaOnevisionForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


# Idefics2's own template (also Heron-Idefics2's).
IDEFICS2_TEMPLATE = (
    "{% for message in messages %}{{ message['role'].capitalize() }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}"
    "{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}"
    '{% endif %}{% endfor %}<end_of_utterance>\n{% endfor %}'
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


def build_idefics2(out_dir, seed=0):
    """Idefics2 (Heron-Idefics2): SigLIP, perceiver resampler, Mistral."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokens = ['<fake_token_around_image>', '<image>', '<end_of_utterance>']
    tokenizer = family_tokenizer(tokens, '<end_of_utterance>', '<pad>')
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
    latents = 4
    config = tf.Idefics2Config(
        vision_config={'hidden_size': 32, 'intermediate_size': 64,
                       'num_hidden_layers': 2, 'num_attention_heads': 4,
                       'image_size': 28, 'patch_size': 14},
        perceiver_config={'hidden_size': 32, 'resampler_n_latents': latents,
                          'resampler_depth': 1, 'resampler_n_heads': 2,
                          'resampler_head_dim': 8, 'num_key_value_heads': 1},
        text_config=small_text(tokenizer, '<end_of_utterance>', 'mistral'),
        image_token_id=ids['<image>'])
    processor = tf.Idefics2Processor(
        image_processor=tf.Idefics2ImageProcessor(
            do_image_splitting=False,
            size={'shortest_edge': 28, 'longest_edge': 28}),
        tokenizer=tokenizer, image_seq_len=latents,
        chat_template=IDEFICS2_TEMPLATE)
    model = _spread(tf.Idefics2ForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


# SmolVLM2's own template.
SMOLVLM_TEMPLATE = (
    '<|im_start|>{% for message in messages %}'
    "{{ message['role'] | capitalize }}"
    "{% if message['content'][0]['type'] == 'image' %}{{ ':' }}"
    "{% else %}{{ ': ' }}{% endif %}"
    "{% for line in message['content'] %}{% if line['type'] == 'text' %}"
    "{{ line['text'] }}{% elif line['type'] == 'image' %}{{ '<image>' }}"
    "{% elif line['type'] == 'video' %}{{ '<video>' }}{% endif %}"
    '{% endfor %}<end_of_utterance>\n{% endfor %}'
    "{% if add_generation_prompt %}{{ 'Assistant:' }}{% endif %}")


def build_smolvlm(out_dir, seed=0):
    """SmolVLM/SmolVLM2: SigLIP, pixel shuffle, a SmolLM2 (Llama)."""
    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokens = ['<|im_start|>', '<fake_token_around_image>', '<image>',
              '<end_of_utterance>', '<global-img>', '<video>']
    tokenizer = family_tokenizer(tokens, '<end_of_utterance>', '<pad>')
    ids = {t: tokenizer.convert_tokens_to_ids(t) for t in tokens}
    side, patch, scale = 32, 8, 2
    config = tf.SmolVLMConfig(
        vision_config={'hidden_size': 32, 'intermediate_size': 64,
                       'num_hidden_layers': 2, 'num_attention_heads': 4,
                       'image_size': side, 'patch_size': patch},
        text_config=small_text(tokenizer, '<end_of_utterance>', 'llama'),
        image_token_id=ids['<image>'], scale_factor=scale)
    size = {'longest_edge': side}
    processor = tf.SmolVLMProcessor(
        image_processor=tf.SmolVLMImageProcessor(
            do_image_splitting=False, size=size, max_image_size=size),
        video_processor=tf.SmolVLMVideoProcessor(size=size,
                                                 max_image_size=size),
        tokenizer=tokenizer,
        image_seq_len=(side // patch) ** 2 // scale ** 2,
        chat_template=SMOLVLM_TEMPLATE)
    model = _spread(tf.SmolVLMForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


def build_florence2(out_dir, seed=0):
    """Florence-2: DaViT vision, BART, task prompts (no chat template)."""
    import tempfile

    import torch
    import transformers as tf
    torch.manual_seed(seed)
    tokenizer = family_tokenizer(['<image>'], '</s>', '<pad>')
    with tempfile.TemporaryDirectory() as folder:  # image_token: a named one
        tokenizer.save_pretrained(folder)
        tokenizer = tf.AutoTokenizer.from_pretrained(
            folder, extra_special_tokens={'image_token': '<image>'})
    eos, side = tokenizer.eos_token_id, 32
    config = tf.Florence2Config(
        text_config={'model_type': 'bart', 'vocab_size': len(tokenizer),
                     'max_position_embeddings': 256, 'd_model': 16,
                     'encoder_layers': 1, 'encoder_ffn_dim': 32,
                     'encoder_attention_heads': 2, 'decoder_layers': 1,
                     'decoder_ffn_dim': 32, 'decoder_attention_heads': 2,
                     'eos_token_id': eos, 'bos_token_id': eos,
                     'pad_token_id': tokenizer.pad_token_id,
                     'decoder_start_token_id': eos,
                     'forced_eos_token_id': eos},
        vision_config={'patch_size': [7], 'depths': [1],
                       'patch_stride': [4], 'patch_padding': [3],
                       'patch_prenorm': [False], 'embed_dim': [16],
                       'num_heads': [1], 'num_groups': [1],
                       'window_size': 12, 'projection_dim': 16},
        image_token_id=tokenizer.image_token_id)
    size = {'height': side, 'width': side}
    processor = tf.Florence2Processor(
        image_processor=tf.CLIPImageProcessor(
            size=size, crop_size=size, do_center_crop=False,
            image_seq_length=(side // 4) ** 2 + 1),   # DaViT: 8 x 8, + 1
        tokenizer=tokenizer,
        post_processor_config={         # every parse task, as the real one
            kind: {} for kind in (
                'ocr', 'phrase_grounding', 'pure_text',
                'description_with_bboxes', 'description_with_polygons',
                'polygons', 'bboxes', 'description_with_bboxes_or_polygons')})
    model = _spread(tf.Florence2ForConditionalGeneration(config).eval())
    return _save(model, processor, out_dir)


def save_as_videoblip(path):
    """Rewrite a saved BLIP-2 as VideoBLIP's checkpoints name themselves."""
    import glob
    import json
    with open(os.path.join(path, 'config.json'), encoding='utf-8') as f:
        config = json.load(f)
    config['architectures'] = ['VideoBlipForConditionalGeneration']
    with open(os.path.join(path, 'config.json'), 'w', encoding='utf-8') as f:
        json.dump(config, f)
    for name in glob.glob(os.path.join(path, '*.json')):
        with open(name, encoding='utf-8') as f:
            data = json.load(f)
        if isinstance(data, dict) and 'processor_class' in data:
            data['processor_class'] = 'VideoBlipProcessor'
            with open(name, 'w', encoding='utf-8') as f:
                json.dump(data, f)
    return path


FAMILIES = {
    'blip2_opt': lambda out_dir: build_tiny_blip2(out_dir, weight_scale=4.0),
    'video_blip': lambda out_dir: save_as_videoblip(
        build_tiny_blip2(out_dir, seed=1, weight_scale=4.0)),
    'llava': build_tiny_chat_vlm,
    'qwen2_vl': lambda out_dir: build_qwen_vl(out_dir, '2'),
    'qwen2_5_vl': lambda out_dir: build_qwen_vl(out_dir, '2.5'),
    'qwen3_vl': build_qwen3_vl,
    'blip2_t5': build_blip2_t5,
    'llava_onevision': build_llava_onevision,
    'idefics2': build_idefics2,
    'smolvlm': build_smolvlm,
    'florence2': build_florence2,
}


def main(argv=None):
    """Command line entry: build one family's tiny checkpoint."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('family', choices=sorted(FAMILIES))
    parser.add_argument('out_dir')
    args = parser.parse_args(argv)
    print(FAMILIES[args.family](args.out_dir))


if __name__ == '__main__':
    main()
