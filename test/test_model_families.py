"""
Each model family on a tiny checkpoint of its real architecture.

For every family that :mod:`tiny_families` builds: the checkpoint is saved
with ``save_pretrained`` and loaded by the captioner node itself, two
cameras caption 4-frame clips with a Japanese prompt and a Japanese system
prompt, and ``caption_info`` says which path ran.  On the loaded backend, a
still (and a chat model's or Florence-2's clip) must equal the caption
written here by hand with the processor, its chat template and
``generate()`` (a clip as a video where the model takes video).
"""

import importlib.util
import json
import time

from camera_caption.engine.chat_vlm import messages
from camera_caption.nodes.captioner_node import CaptionerNode
import numpy as np
import PIL.Image
import pytest
import rclpy
from rclpy.qos import QoSProfile, ReliabilityPolicy
from ros_helpers import (CaptionListener, image_msg, params, spinning,
                         wait_until)
from sensor_msgs.msg import Image
from tiny_chat_vlm import PROMPT, SYSTEM
import tiny_families
import torch

pytestmark = pytest.mark.slow

MAX_NEW = 5
HAS_TORCHVISION = importlib.util.find_spec('torchvision') is not None
# builder: (model class, model type, caption family, a clip goes as, engine)
EXPECTED = {
    'blip2_opt': ('Blip2ForConditionalGeneration', 'blip-2', 'blip-2',
                  'images', 'fast'),
    'video_blip': ('Blip2ForConditionalGeneration', 'blip-2', 'blip-2',
                   'images', 'fast'),
    'blip2_t5': ('Blip2ForConditionalGeneration', 'blip-2', 'blip-2',
                 'images', 'generate'),
    'llava': ('LlavaForConditionalGeneration', 'llava', 'chat', 'images',
              'generate'),
    'qwen2_vl': ('Qwen2VLForConditionalGeneration', 'qwen2_vl', 'chat',
                 'video', 'generate'),
    'qwen2_5_vl': ('Qwen2_5_VLForConditionalGeneration', 'qwen2_5_vl',
                   'chat', 'video', 'generate'),
    'qwen3_vl': ('Qwen3VLForConditionalGeneration', 'qwen3_vl', 'chat',
                 'video', 'generate'),
    'llava_onevision': ('LlavaOnevisionForConditionalGeneration',
                        'llava_onevision', 'chat', 'video', 'generate'),
    'idefics2': ('Idefics2ForConditionalGeneration', 'idefics2', 'chat',
                 'images', 'generate'),
    'smolvlm': ('SmolVLMForConditionalGeneration', 'smolvlm', 'chat',
                'images', 'generate'),
    'florence2': ('Florence2ForConditionalGeneration', 'florence2',
                  'florence-2', 'still', 'generate'),   # a clip's newest
}
NEEDS_TORCHVISION = {'qwen2_vl', 'qwen2_5_vl', 'qwen3_vl', 'llava_onevision',
                     'smolvlm'}


@pytest.fixture(scope='module', params=sorted(EXPECTED))
def family_dir(request, tmp_path_factory):
    family = request.param
    if family in NEEDS_TORCHVISION and not HAS_TORCHVISION:
        pytest.skip(f'{family} needs torchvision: in transformers 5 its '
                    'processors do (scripts/setup_venv.sh installs it)')
    return family, tiny_families.FAMILIES[family](
        str(tmp_path_factory.mktemp(family)))


def frames(count, seed):
    rng = np.random.default_rng(seed)
    return [rng.integers(0, 256, (48, 64, 3), dtype=np.uint8)
            for _ in range(count)]


def reference(engine, clip, video):
    """Run the processor and generate() by hand; return the new text."""
    processor = engine.processor
    if engine.family == 'florence-2':       # a free-text prompt, one image
        inputs = processor(text=[PROMPT], images=[PIL.Image.fromarray(
            clip[-1])], return_tensors='pt')
        with torch.inference_mode():
            out = engine.model.generate(**inputs, max_new_tokens=MAX_NEW,
                                        do_sample=False, num_beams=1)
        return processor.batch_decode(out, skip_special_tokens=True)[0] \
            .strip()
    if engine.family != 'chat':                 # BLIP-2: a plain prompt
        inputs = processor(images=list(clip), text=[PROMPT],
                           return_tensors='pt')
        with torch.inference_mode():
            out = engine.model.generate(**inputs, max_new_tokens=MAX_NEW)
        if not engine.model.config.text_config.is_encoder_decoder:
            out = out[:, inputs['input_ids'].shape[1]:]
        return processor.batch_decode(out, skip_special_tokens=True)[0] \
            .strip()
    text = processor.apply_chat_template(
        messages(clip, PROMPT, SYSTEM, video and len(clip) > 1),
        add_generation_prompt=True, tokenize=False)
    if video and len(clip) > 1:                 # every frame of the clip
        inputs = processor(text=[text], videos=[np.stack(clip)],
                           return_tensors='pt', do_sample_frames=False)
    else:
        inputs = processor(text=[text], images=[PIL.Image.fromarray(f)
                                                for f in clip],
                           return_tensors='pt')
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=MAX_NEW)
    new = out[:, inputs['input_ids'].shape[1]:]
    return processor.batch_decode(new, skip_special_tokens=True)[0].strip()


def test_two_cameras_caption_japanese_clips_through_the_node(ros_context,
                                                             family_dir):
    family, model_dir = family_dir
    model_class, model_type, kind, clip_as, decoder = EXPECTED[family]
    video = clip_as == 'video'
    captioner = CaptionerNode(context=ros_context, parameter_overrides=params(
        model=model_dir, device='cpu', dtype='float32', rate_hz=5.0,
        max_new_tokens=MAX_NEW, reliability='reliable',
        image_topics='/cam1/image_raw,/cam2/image_raw', clip_frames=4,
        clip_seconds=0.6, prompt=PROMPT, system_prompt=SYSTEM)).autostart()
    engine = captioner.backend.model
    assert type(engine.model).__name__ == model_class
    assert getattr(engine, 'video', False) == video
    # The still (and a chat model's clip) equal the hand-written reference.
    still, clip = frames(1, seed=1), frames(4, seed=2)
    backend = captioner.backend
    assert backend.caption([still[0]], PROMPT, MAX_NEW, SYSTEM) == [
        reference(engine, still, video)]
    said = backend.caption([clip], PROMPT, MAX_NEW, SYSTEM)
    if kind in ('chat', 'florence-2'):
        assert said == [reference(engine, clip, video)]
    driver = rclpy.create_node('driver', context=ros_context)
    qos = QoSProfile(depth=1, reliability=ReliabilityPolicy.RELIABLE)
    pubs = [driver.create_publisher(Image, f'/cam{i}/image_raw', qos)
            for i in (1, 2)]
    infos = [CaptionListener(driver, f'/cam{i}/caption_info')
             for i in (1, 2)]
    with spinning(ros_context, captioner, driver):
        assert wait_until(lambda: all(p.get_subscription_count() == 1
                                      for p in pubs), 10)
        deadline = time.monotonic() + 60
        i = 0
        while not all(len(lst.items) >= 2 for lst in infos) and \
                time.monotonic() < deadline:     # two cameras at 20 fps
            for n, pub in enumerate(pubs):
                msg = image_msg((i * 10 + n * 100) % 256, noise=20, seed=i)
                msg.header.stamp = driver.get_clock().now().to_msg()
                pub.publish(msg)
            i += 1
            time.sleep(0.05)
    for listener in infos:
        assert len(listener.items) >= 2, family
        info = json.loads(listener.items[-1][1])
        assert info['clip_frames'] >= 2, info
        assert (info['family'], info['model_type'], info['input'],
                info['engine']) == (kind, model_type, clip_as,
                                    decoder), info


def test_florence2_task_answers_of_a_batch_carry_no_padding(tmp_path):
    from camera_caption.engine.model_loading import load_caption_model
    engine = load_caption_model(tiny_families.build_florence2(
        str(tmp_path / 'florence2')), device='cpu', dtype='float32',
        max_new_tokens=MAX_NEW)
    stills = frames(3, seed=9)
    assert engine.caption(stills, '<CAPTION>') == [
        engine.caption([f], '<CAPTION>')[0] for f in stills]
    # A shorter answer of a batch ends in padding, which the processor's
    # own parsing of a text task keeps: it must not reach the caption.
    raw = '</s>front hallway</s><pad><pad><pad>'
    assert engine.answer(raw, '<CAPTION>', (64, 48)) == 'front hallway'
    assert engine.processor.post_process_generation(
        raw, task='<CAPTION>', image_size=(64, 48))['<CAPTION>'] != \
        'front hallway'           # what it was before the fix


def test_a_clip_reaches_a_frame_sampling_video_processor_whole(tmp_path):
    if not HAS_TORCHVISION:
        pytest.skip('Qwen3-VL needs torchvision: in transformers 5 its '
                    'processors do (scripts/setup_venv.sh installs it)')
    from camera_caption.engine.chat_vlm import chat_inputs
    from camera_caption.engine.model_loading import load_caption_model
    engine = load_caption_model(tiny_families.build_qwen3_vl(
        str(tmp_path / 'qwen3_vl')), device='cpu', dtype='float32',
        max_new_tokens=MAX_NEW)
    video_processor = engine.processor.video_processor
    assert engine.video and video_processor.do_sample_frames  # it samples
    inputs = chat_inputs(engine.processor, [frames(8, seed=5)], PROMPT,
                         SYSTEM, True)
    steps = int(inputs['video_grid_thw'][0][0])   # frames / temporal patch
    assert steps * video_processor.temporal_patch_size == 8


def test_a_florence2_task_with_text_input_is_parsed_as_that_task(tmp_path):
    from camera_caption.engine.model_loading import load_caption_model
    engine = load_caption_model(tiny_families.build_florence2(
        str(tmp_path / 'florence2')), device='cpu', dtype='float32',
        max_new_tokens=MAX_NEW)
    (answer,) = engine.caption(frames(1, seed=6),
                               '<CAPTION_TO_PHRASE_GROUNDING>a red box')
    assert set(json.loads(answer)) == {'bboxes', 'labels'}, answer


def test_a_chat_checkpoint_that_samples_still_captions_greedily(tmp_path):
    # Qwen Instruct checkpoints ship a generation config that samples: an
    # unchanged scene must still give one caption (memory and events match
    # captions), the greedy one, as backend openai's temperature 0 does.
    from camera_caption.engine.model_loading import load_caption_model
    from tiny_chat_vlm import build_tiny_chat_vlm
    path = build_tiny_chat_vlm(str(tmp_path / 'chat'))
    config = json.loads((tmp_path / 'chat' / 'generation_config.json')
                        .read_text())
    config.update(do_sample=True, temperature=1.0, top_k=0, top_p=1.0)
    (tmp_path / 'chat' / 'generation_config.json').write_text(
        json.dumps(config))
    engine = load_caption_model(path, device='cpu', dtype='float32',
                                max_new_tokens=MAX_NEW)
    assert engine.model.generation_config.do_sample      # it would sample
    still = frames(1, seed=7)
    captions = []
    for seed in range(4):
        torch.manual_seed(seed)
        captions += engine.caption(still, PROMPT, system_prompt=SYSTEM)
    text = engine.processor.apply_chat_template(
        messages(still, PROMPT, SYSTEM, False), add_generation_prompt=True,
        tokenize=False)
    inputs = engine.processor(text=[text], images=[PIL.Image.fromarray(
        still[0])], return_tensors='pt')
    with torch.inference_mode():
        out = engine.model.generate(**inputs, max_new_tokens=MAX_NEW,
                                    do_sample=False, num_beams=1)
    greedy = engine.processor.batch_decode(
        out[:, inputs['input_ids'].shape[1]:], skip_special_tokens=True)
    assert captions == [greedy[0].strip()] * 4, captions


@pytest.mark.parametrize('family', ['qwen2_5_vl', 'qwen3_vl'])
def test_a_clip_goes_to_qwen_vl_with_its_real_frame_rate(family, tmp_path):
    # A 2 s clip of 4 frames is 1.5 fps; told nothing, these models take
    # a video as 24 fps (the clip read as 0.125 s).
    if not HAS_TORCHVISION:
        pytest.skip(f'{family} needs torchvision: in transformers 5 its '
                    'processors do (scripts/setup_venv.sh installs it)')
    from camera_caption.engine.caption_model import Clip
    from camera_caption.engine.chat_vlm import chat_inputs
    from camera_caption.engine.model_loading import load_caption_model
    engine = load_caption_model(tiny_families.FAMILIES[family](
        str(tmp_path / family)), device='cpu', dtype='float32',
        max_new_tokens=MAX_NEW)
    clip = Clip(frames(4, seed=8), seconds=2.0)
    inputs = chat_inputs(engine.processor, [clip], PROMPT, SYSTEM, True)
    step = engine.processor.video_processor.temporal_patch_size
    if family == 'qwen2_5_vl':      # seconds per temporal patch of frames
        assert inputs['second_per_grid_ts'] == pytest.approx([step / 1.5])
    else:                           # each patch's time, in the prompt
        text = engine.processor.batch_decode(inputs['input_ids'])[0]
        assert '<0.3 seconds>' in text and '<1.7 seconds>' in text, text
    text = engine.processor.apply_chat_template(
        messages(clip, PROMPT, SYSTEM, True), add_generation_prompt=True,
        tokenize=False)
    timed = engine.processor(
        text=[text], videos=[np.stack(clip)], return_tensors='pt',
        do_sample_frames=False, video_metadata=[{
            'total_num_frames': 4, 'fps': 1.5, 'frames_indices': [0, 1, 2,
                                                                  3]}])
    with torch.inference_mode():
        out = engine.model.generate(**timed, max_new_tokens=MAX_NEW,
                                    do_sample=False, num_beams=1)
    expected = engine.processor.batch_decode(
        out[:, timed['input_ids'].shape[1]:], skip_special_tokens=True)
    assert engine.caption([clip], PROMPT, system_prompt=SYSTEM) == [
        expected[0].strip()]
