"""
Clips and system prompts through backend openai, against a real server.

A real ``transformers serve`` on 127.0.0.1 serves the tiny chat VLM (a
LLaVA-architecture model with its own chat template, which takes several
images).  A clip goes as its N frames in one user message, the system
prompt as the system message: the server's caption must equal the one the
same model gives here through the chat template and ``generate()`` on the
same JPEG frames, in the same order, with the same system prompt.
"""

import base64
import io
import json

from camera_caption.engine.chat_vlm import chat_inputs
from camera_caption.engine.model_loading import load_caption_model
from camera_caption.engine.openai_backend import OpenAIBackend
from camera_caption.engine.openai_protocol import chat_request, encode_frame
from camera_caption.tools.tiny_server import TinyServer
import numpy as np
import pytest
from serving_helpers import (backend_params, ListLog, models_answer,
                             RawServer)
from tiny_chat_vlm import build_tiny_chat_vlm, PROMPT, SYSTEM
import torch

pytestmark = pytest.mark.slow     # a real transformers serve process

MAX_NEW = 6


@pytest.fixture(scope='module')
def chat_dir(tmp_path_factory):
    return build_tiny_chat_vlm(str(tmp_path_factory.mktemp('served_chat')))


@pytest.fixture(scope='module')
def chat_server(chat_dir, tmp_path_factory):
    log = tmp_path_factory.mktemp('serve_chat_log') / 'serve.log'
    server = TinyServer(chat_dir, log_path=str(log),
                        blip2_template=False).start()
    yield server
    server.kill()


def clip_frames(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (40, 56, 3), dtype=np.uint8)
            for _ in range(count)]


def as_sent(frame):
    """Return the frame as the server decodes it: JPEG, through PIL."""
    from PIL import Image
    url = encode_frame(frame, 512, 90)
    data = base64.b64decode(url.split(',', 1)[1])
    return np.asarray(Image.open(io.BytesIO(data)).convert('RGB'))


def reference(model, frames, prompt, system):
    """Caption the JPEG frames through the chat path by hand: new text."""
    inputs = chat_inputs(model.processor, [[as_sent(f) for f in frames]],
                         prompt, system, video=False)
    with torch.inference_mode():
        out = model.model.generate(**inputs, max_new_tokens=MAX_NEW,
                                   do_sample=False)
    new = out[:, inputs['input_ids'].shape[1]:]
    return model.processor.batch_decode(new,
                                        skip_special_tokens=True)[0].strip()


def test_a_clip_goes_as_n_images_with_the_system_prompt(chat_server,
                                                        chat_dir):
    log = ListLog()
    backend = OpenAIBackend.create(backend_params(chat_server.endpoint,
                                                  clip_frames=3), 2, log)
    assert log.matching('info', 'clips go as 3 images in one message')
    clips = [clip_frames(3, seed=2), clip_frames(2, seed=3)]   # 2 cameras
    still = clip_frames(1, seed=4)[0]
    try:
        said = backend.caption(clips, PROMPT, MAX_NEW, SYSTEM)
        said_still = backend.caption([still], PROMPT, MAX_NEW, '')
    finally:
        backend.close()
    local = load_caption_model(chat_dir, device='cpu', dtype='float32',
                               max_new_tokens=MAX_NEW)
    expected = [reference(local, clip, PROMPT, SYSTEM) for clip in clips]
    assert said == expected and all(expected), (said, expected)
    assert said_still == [reference(local, [still], PROMPT, '')]
    # Without the system prompt, or with one frame, the text differs: the
    # comparison above sees both.
    assert reference(local, clips[0], PROMPT, '') != expected[0] or \
        reference(local, clips[0][-1:], PROMPT, SYSTEM) != expected[0]


def test_the_request_holds_every_frame_in_order_and_the_system_message():
    answer = (200, 'application/json', json.dumps(
        {'choices': [{'message': {'content': 'ok'}}]}))
    clip = clip_frames(4, seed=5)
    with RawServer({'/v1/models': models_answer('m'),
                    '/v1/chat/completions': answer}) as raw:
        backend = OpenAIBackend.create(backend_params(
            f'http://127.0.0.1:{raw.port}/v1'), 1, ListLog())
        try:
            assert backend.caption([clip], 'what?', 5, 'be brief') == ['ok']
        finally:
            backend.close()
        body = json.loads(raw.requests[-1][3])
    assert body == chat_request(
        'm', [encode_frame(f, 512, 90) for f in clip], 'what?', 5,
        'be brief')
    assert body['messages'][0] == {'role': 'system', 'content': 'be brief'}
    parts = body['messages'][1]['content']
    assert [p['type'] for p in parts] == ['image_url'] * 4 + ['text']
