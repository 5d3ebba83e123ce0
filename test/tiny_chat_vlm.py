"""
Build a tiny, randomly initialised chat vision-language model, offline.

A LLaVA-architecture model (CLIP vision tower, projector, Llama decoder)
at toy sizes, with a byte-level BPE tokenizer trained locally on English
and Japanese text, a ChatML-style chat template and a ``LlavaProcessor``,
saved with ``save_pretrained`` so that it loads through
``AutoProcessor``/``AutoModelForImageTextToText`` as a downloaded chat
model does.  The other families' real architectures are in
:mod:`tiny_families`.

    python test/tiny_chat_vlm.py /tmp/tiny-chat-vlm
"""

import argparse
import os

from camera_caption.tools.tiny_blip2 import _CORPUS

JAPANESE_CORPUS = [
    '人が箱を持ち上げている',
    '男性が机に座ってノートパソコンを使っている',
    '廊下の突き当たりにドアがある',
    'この映像の状況を日本語で一文で説明してください',
    'ロボットアームがテーブルから箱を取り上げている',
]

# The Japanese prompt and system prompt the chat tests send.
PROMPT = 'この映像の状況を日本語で一文で説明してください'
SYSTEM = 'あなたはロボットの目です。日本語で答えてください。'

CHAT_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n"
    "{% if m['content'] is string %}{{ m['content'] }}{% else %}"
    "{% for c in m['content'] %}{% if c['type'] == 'image' %}<image>"
    "{% elif c['type'] == 'text' %}{{ c['text'] }}{% endif %}{% endfor %}"
    '{% endif %}<|im_end|>\n{% endfor %}'
    '{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}')

IMAGE_SIZE = 28
PATCH_SIZE = 14


def build_tiny_chat_vlm(out_dir, seed=0, chat_template=True):
    """
    Save a tiny random chat VLM (model + processor) to ``out_dir``.

    ``chat_template=False`` saves it without one (a model that cannot
    caption here).  Returns ``out_dir``.
    """
    import torch
    from transformers import (CLIPImageProcessor, LlavaConfig,
                              LlavaForConditionalGeneration, LlavaProcessor)
    from camera_caption.tools.tiny_blip2 import build_tokenizer

    torch.manual_seed(seed)
    tokenizer = build_tokenizer(vocab_size=600, add_bos=False,
                                corpus=_CORPUS + JAPANESE_CORPUS)
    tokenizer.add_special_tokens(
        {'additional_special_tokens': ['<|im_start|>', '<|im_end|>']})
    tokenizer.eos_token = '<|im_end|>'
    eos = tokenizer.convert_tokens_to_ids('<|im_end|>')
    image_token = tokenizer.convert_tokens_to_ids('<image>')
    image_processor = CLIPImageProcessor(
        size={'shortest_edge': IMAGE_SIZE},
        crop_size={'height': IMAGE_SIZE, 'width': IMAGE_SIZE})
    processor = LlavaProcessor(
        image_processor=image_processor, tokenizer=tokenizer,
        patch_size=PATCH_SIZE, vision_feature_select_strategy='full',
        chat_template=CHAT_TEMPLATE if chat_template else None,
        image_token='<image>', num_additional_image_tokens=1)
    config = LlavaConfig(
        vision_config={'model_type': 'clip_vision_model', 'hidden_size': 32,
                       'intermediate_size': 64, 'num_hidden_layers': 2,
                       'num_attention_heads': 2, 'image_size': IMAGE_SIZE,
                       'patch_size': PATCH_SIZE, 'projection_dim': 32},
        text_config={'model_type': 'llama', 'vocab_size': len(tokenizer),
                     'hidden_size': 32, 'intermediate_size': 64,
                     'num_hidden_layers': 2, 'num_attention_heads': 2,
                     'num_key_value_heads': 1,
                     'max_position_embeddings': 256, 'eos_token_id': eos,
                     'pad_token_id': tokenizer.pad_token_id,
                     'bos_token_id': None},
        image_token_index=image_token,
        vision_feature_select_strategy='full', vision_feature_layer=-1)
    model = LlavaForConditionalGeneration(config).eval()
    with torch.no_grad():     # a wider spread: varied tokens, not one
        for name, param in model.named_parameters():
            if 'norm' not in name:
                param.mul_(4.0)
    os.makedirs(out_dir, exist_ok=True)
    model.save_pretrained(out_dir)
    processor.save_pretrained(out_dir)
    if not chat_template:
        for name in ('chat_template.jinja', 'chat_template.json'):
            path = os.path.join(out_dir, name)
            if os.path.exists(path):
                os.remove(path)
    return out_dir


def main(argv=None):
    """Command line entry: build the tiny chat model into a directory."""
    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0])
    parser.add_argument('out_dir')
    parser.add_argument('--seed', type=int, default=0)
    args = parser.parse_args(argv)
    print(build_tiny_chat_vlm(args.out_dir, args.seed))


if __name__ == '__main__':
    main()
