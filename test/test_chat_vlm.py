"""
Chat vision-language models through generate(), with a Japanese prompt.

A tiny random LLaVA-architecture chat model (tokenizer trained here on
English and Japanese, a chat template) is saved and loaded through the
Auto classes, as a hub chat model would be.  Its captions of an image and
of a clip must equal a reference written here with the processor's chat
template and the model's generate(); models that cannot caption must fail
at start with one line that says why.
"""

import json
import logging
import os

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.chat_vlm import chat_inputs
from camera_caption.engine.local_backend import LocalBackend
from camera_caption.engine.model_loading import load_caption_model
import numpy as np
import pytest
from tiny_chat_vlm import build_tiny_chat_vlm, PROMPT, SYSTEM
import torch

pytestmark = pytest.mark.unit

MAX_NEW = 6


@pytest.fixture(scope='module')
def chat_dir(tmp_path_factory):
    return build_tiny_chat_vlm(str(tmp_path_factory.mktemp('chat_vlm')))


@pytest.fixture(scope='module')
def chat_backend(chat_dir):
    return LocalBackend.create(
        {'model': chat_dir, 'device': 'cpu', 'dtype': 'float32',
         'max_new_tokens': MAX_NEW, 'cpu_threads': 0, 'engine': 'auto',
         'prompt': PROMPT, 'system_prompt': SYSTEM}, 2,
        logging.getLogger('chat_backend'))


def frames(n, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            for _ in range(n)]


def reference(engine, images, prompt, system):
    """Chat template + generate() by hand: the new text of one camera."""
    content = [{'type': 'image'} for _ in images]
    content.append({'type': 'text', 'text': prompt})
    messages = [{'role': 'system',
                 'content': [{'type': 'text', 'text': system}]},
                {'role': 'user', 'content': content}]
    processor = engine.processor
    text = processor.apply_chat_template(messages, add_generation_prompt=True,
                                         tokenize=False)
    inputs = processor(text=[text], images=list(images), return_tensors='pt')
    with torch.no_grad():
        out = engine.model.generate(**inputs, max_new_tokens=MAX_NEW)
    new = out[:, inputs['input_ids'].shape[1]:]
    return processor.batch_decode(new, skip_special_tokens=True)[0].strip()


def test_chat_model_loads_through_the_auto_classes(chat_backend):
    model = chat_backend.model
    assert model.family == 'chat' and not model.video
    assert type(model.model).__name__ == 'LlavaForConditionalGeneration'
    assert chat_backend.stats()['engine'].startswith('generate (')
    assert 'llava' in chat_backend.problem()   # generate(), said once


def test_image_and_clip_captions_equal_the_chat_template_reference(
        chat_backend):
    engine = chat_backend.model
    still, clip = frames(1, seed=1)[0], frames(3, seed=2)
    captions = chat_backend.caption([still], PROMPT, MAX_NEW, SYSTEM) + \
        chat_backend.caption([clip], PROMPT, MAX_NEW, SYSTEM)
    expected = [reference(engine, [still], PROMPT, SYSTEM),
                reference(engine, clip, PROMPT, SYSTEM)]
    assert captions == expected
    assert all(expected), expected


def test_the_japanese_prompt_and_the_system_prompt_reach_the_model(
        chat_backend):
    engine = chat_backend.model
    clip = frames(2, seed=3)
    # The system prompt is an argument of each call, as the prompt is.
    assert chat_backend.caption([clip], PROMPT, MAX_NEW, '短く') == [
        reference(engine, clip, PROMPT, '短く')]
    inputs = chat_inputs(engine.processor, [clip], PROMPT, '短く',
                         engine.video)
    text = engine.processor.tokenizer.decode(inputs['input_ids'][0])
    assert '<|im_start|>system\n短く<|im_end|>' in text
    assert f'<image><image>{PROMPT}<|im_end|>' in text.replace(
        '<image>' * 5, '<image>')        # 5 tokens per 28 x 28 image
    assert inputs['pixel_values'].shape[0] == 2


def test_a_template_kept_only_by_the_tokenizer_is_used(chat_backend):
    engine = chat_backend.model
    clip = frames(2, seed=4)
    expected = chat_backend.caption([clip], PROMPT, MAX_NEW, SYSTEM)
    processor = engine.processor
    own = processor.chat_template               # as older checkpoints keep it
    processor.tokenizer.chat_template, processor.chat_template = own, None
    try:
        assert chat_backend.caption([clip], PROMPT, MAX_NEW, SYSTEM) == \
            expected
    finally:
        processor.chat_template = own


def test_a_model_without_chat_template_fails_at_start(tmp_path):
    path = build_tiny_chat_vlm(str(tmp_path / 'no_template'),
                               chat_template=False)
    with pytest.raises(ModelLoadError) as error:
        load_caption_model(path, device='cpu', dtype='float32')
    message = str(error.value)
    assert '\n' not in message
    assert 'no chat template' in message and 'llava' in message


def test_a_text_only_model_fails_at_start(tmp_path):
    from transformers import OPTConfig, OPTForCausalLM
    from camera_caption.tools.tiny_blip2 import build_tokenizer
    tokenizer = build_tokenizer()
    OPTForCausalLM(OPTConfig(
        vocab_size=len(tokenizer), hidden_size=16, ffn_dim=32,
        num_hidden_layers=1, num_attention_heads=2,
        word_embed_proj_dim=16)).save_pretrained(str(tmp_path))
    tokenizer.save_pretrained(str(tmp_path))
    with pytest.raises(ModelLoadError) as error:
        load_caption_model(str(tmp_path), device='cpu', dtype='float32')
    assert 'takes no image input' in str(error.value)
    assert "'opt'" in str(error.value)


@pytest.mark.parametrize('source', ['hub_id', 'directory'])
def test_a_heron_checkpoint_fails_at_start_with_what_it_needs(
        tmp_path, source):
    if source == 'hub_id':
        model = 'turing-motors/heron-chat-blip-ja-stablelm-base-7b-v1'
    else:
        model = str(tmp_path)
        with open(os.path.join(model, 'config.json'), 'w',
                  encoding='utf-8') as f:
            json.dump({'model_type': 'video_blip',
                       'architectures': ['VideoBlipForConditionalGeneration'
                                         ]}, f)
    with pytest.raises(ModelLoadError) as error:
        load_caption_model(model, device='cpu', dtype='float32',
                           trust_remote_code=True)
    message = str(error.value)
    assert '\n' not in message
    assert 'heron library' in message and 'trust_remote_code' in message
