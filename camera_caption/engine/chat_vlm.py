"""
Chat vision-language models through ``generate()``: what and how.

No ROS import.  A model that is not of the BLIP-2 family is captioned as a
chat model: any ``AutoModelForImageTextToText`` checkpoint whose processor
has a chat template (Qwen2-VL / Qwen2.5-VL, SmolVLM, LLaVA, LLaVA-OneVision,
Idefics2/3, ...).  The user message holds the image, or a clip's frames
(as a video where the model takes video, with its real frame rate where
the processor takes one, else as several images), then the ``prompt``;
``system_prompt``, when set, comes first as the system message.
Only the new text is returned.  Decoding is greedy, as in every family
(an unchanged scene gives the same caption, which the caption memory and
the events rely on); the rest of the model's generation config applies
(e.g. its repetition penalty), except ``max_new_tokens``.

:func:`cannot_caption` says, in one line, why a checkpoint cannot caption
(no vision input, no chat template and no plain-prompt path, a heron
checkpoint that transformers cannot load).
"""

import json
import os
import re

from camera_caption.engine.caption_model import (CaptionModel, clip_seconds,
                                                 is_clip)
from camera_caption.engine.task_prompt import TASK_PROMPT_TYPES
from camera_caption.utilities.gpu_memory import releasing_memory_on_oom

# Plain-prompt image-to-text models (processor(images, text), no template).
PLAIN_PROMPT_TYPES = ('blip-2', 'instructblip', 'instructblipvideo')
# The user text when ``prompt`` is empty (a chat model needs an ask).
DEFAULT_PROMPTS = {
    False: 'Describe what the image shows in one sentence.',
    True: 'Describe what happens in this video in one sentence.',
}
_HERON_ID = re.compile(r'turing-motors/heron-chat-(blip|git)', re.I)
HERON_TYPES = ('video_blip', 'git_llm', 'git_japanese_stablelm_alpha',
               'git_llama', 'git_opt', 'git_mpt')


def heron_reason(model_id, files=None):
    """
    Return why a heron BLIP/GIT checkpoint cannot load here ('' if not one).

    heron's ``turing-motors/heron-chat-blip-*`` checkpoints have model type
    ``video_blip`` and its ``heron-chat-git-*`` ones ``git_*``: classes of
    the heron library (github.com/turingmotors/heron), not of transformers,
    and their repositories ship no modelling code that
    ``trust_remote_code`` could run.  Checked on the id (before any
    download) and on a local directory's config.json.
    """
    model_type = ''
    if files and os.path.isfile(os.path.join(files, 'config.json')):
        try:
            with open(os.path.join(files, 'config.json'),
                      encoding='utf-8') as f:
                model_type = str(json.load(f).get('model_type', ''))
        except (OSError, ValueError):
            model_type = ''
    if not _HERON_ID.search(str(model_id)) and model_type not in HERON_TYPES:
        return ''
    return (f"model '{model_id}' is a heron checkpoint (model type "
            f"{model_type or 'video_blip or git_*'}): transformers has no such "
            'model type and the repository ships no code for '
            'trust_remote_code to run; it needs the heron library '
            '(github.com/turingmotors/heron) and its Japanese language model '
            '(Japanese StableLM Alpha or llm-jp, themselves remote code). '
            'For Japanese captions use a transformers chat model instead, '
            'e.g. Qwen/Qwen2-VL-2B-Instruct or '
            'turing-motors/Heron-Idefics2-8B-v0.1 (README, "Languages").')


def has_vision(config):
    """Whether a config describes a model that takes images."""
    return getattr(config, 'model_type', '') in PLAIN_PROMPT_TYPES or \
        getattr(config, 'vision_config', None) is not None


def chat_template(processor):
    """Return the processor's (or its tokenizer's) chat template, or None."""
    template = getattr(processor, 'chat_template', None)
    if not template:
        template = getattr(getattr(processor, 'tokenizer', None),
                           'chat_template', None)
    return template or None


def cannot_caption(model_id, config, processor):
    """Return why this model cannot caption ('' when it can)."""
    model_type = getattr(config, 'model_type', '?')
    if not has_vision(config):
        return (f"model '{model_id}' cannot caption: it takes no image "
                f'input (model type {model_type!r} has no vision encoder); '
                'give a vision-language model')
    if model_type not in PLAIN_PROMPT_TYPES + TASK_PROMPT_TYPES and \
            not chat_template(processor):
        return (f"model '{model_id}' cannot caption: its processor has no "
                f'chat template and model type {model_type!r} has no '
                'plain-prompt path (only the BLIP-2 family and Florence-2 '
                'have one)')
    return ''


def takes_video(config, processor):
    """Whether the model takes a clip as a video (else as images)."""
    token = getattr(config, 'video_token_id', None)
    if token is None:
        token = getattr(config, 'video_token_index', None)
    return token is not None and \
        getattr(processor, 'video_processor', None) is not None


def messages(frames, prompt, system_prompt, video):
    """
    Return the chat messages for one camera's frames (1 = a still).

    ``video``: the frames go as one video, else as one image each.
    """
    clip = len(frames) > 1
    if clip and video:
        content = [{'type': 'video'}]
    else:
        content = [{'type': 'image'} for _ in frames]
    content.append({'type': 'text',
                    'text': prompt or DEFAULT_PROMPTS[clip]})
    out = []
    if system_prompt:
        out.append({'role': 'system',
                    'content': [{'type': 'text', 'text': system_prompt}]})
    out.append({'role': 'user', 'content': content})
    return out


def chat_inputs(processor, batch, prompt, system_prompt, video):
    """
    Processor inputs for a batch of frame lists (one per camera).

    Returns the processor's output (tensors) for the rendered templates
    and the images or videos, padded on the left.  Images go as PIL images,
    which every processor takes (Idefics2's refuses arrays).
    """
    import numpy as np
    from PIL import Image
    texts, images, videos, spans = [], [], [], []
    # A template kept only with the tokenizer (older checkpoints) is one the
    # processor's apply_chat_template does not look for: hand it over.
    own = {} if getattr(processor, 'chat_template', None) else {
        'chat_template': chat_template(processor)}
    for frames in batch:
        use_video = video and len(frames) > 1
        texts.append(processor.apply_chat_template(
            messages(frames, prompt, system_prompt, use_video),
            add_generation_prompt=True, tokenize=False, **own))
        if use_video:
            videos.append(np.stack(frames))
            spans.append(clip_seconds(frames))
        else:           # one list per camera: SmolVLM splits no flat list
            images.append([Image.fromarray(np.asarray(f)) for f in frames])
    kwargs = {'text': texts, 'return_tensors': 'pt', 'padding': True}
    if images:
        kwargs['images'] = images
    if videos:
        kwargs['videos'] = videos
        # Every frame of the clip: a video processor that samples frames by
        # default (Qwen3-VL) would keep some of them, timed as if 24 fps.
        if getattr(getattr(processor, 'video_processor', None),
                   'do_sample_frames', None) is not None:
            kwargs['do_sample_frames'] = False
        kwargs.update(video_kwargs(processor, videos, spans))
    return processor(**kwargs)


def video_kwargs(processor, videos, spans):
    """
    Return the video processor's timing and pixel-cap arguments it takes.

    ``video_metadata`` for clips of known span: Qwen2.5-VL's time positions
    and Qwen3-VL's frame timestamps come from a video's frame rate; without
    it they assume 24 fps (a 2 s clip of 4 frames read as 0.1 s).  The
    frames are evenly spread over the span.  ``cap_pixels_per_frame``: the
    reference (qwen-vl-utils) bound that transformers warns it will adopt;
    a few-frame clip is far below it.  Only what the video processor takes
    (transformers 5).
    """
    kinds = getattr(getattr(getattr(processor, 'video_processor', None),
                            'valid_kwargs', None), '__annotations__', {})
    kwargs = {}
    if 'cap_pixels_per_frame' in kinds:
        kwargs['cap_pixels_per_frame'] = True
    if 'video_metadata' in kinds and None not in spans:
        kwargs['video_metadata'] = [
            {'total_num_frames': len(video), 'fps': (len(video) - 1) / span,
             'frames_indices': list(range(len(video)))}
            for video, span in zip(videos, spans)]
    return kwargs


class ChatVlmCaptioner(CaptionModel):
    """A chat vision-language model: its template, generate(), new text."""

    family = 'chat'

    def __init__(self, *args, video=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.video = video          # takes a clip as a video
        tokenizer = getattr(self.processor, 'tokenizer', None)
        if tokenizer is not None and not getattr(
                self.model.config, 'is_encoder_decoder', False):
            tokenizer.padding_side = 'left'     # batches of cameras

    def _caption(self, frames, prompt, max_new, system_prompt):
        import torch
        batch = [item if is_clip(item) else [item] for item in frames]
        inputs = chat_inputs(self.processor, batch, prompt, system_prompt,
                             self.video)
        inputs = {k: v.to(self.device) if hasattr(v, 'to') else v
                  for k, v in inputs.items()}
        for key in ('pixel_values', 'pixel_values_videos'):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(self.dtype)
        with torch.inference_mode(), releasing_memory_on_oom(self.device):
            # Greedy whatever the checkpoint's generation config says (Qwen
            # Instruct configs sample): the rest of that config applies.
            out = self.model.generate(**inputs, max_new_tokens=max_new,
                                      do_sample=False, num_beams=1)
        new = out[:, inputs['input_ids'].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(
            new, skip_special_tokens=True)]
