"""
BLIP-2 (OPT or T5) and other plain-prompt image-to-text models: ``generate()``.

No ROS import.  The processor turns frames and the prompt into inputs,
Hugging Face ``generate()`` decodes greedily, and the echoed prompt is cut
off.  A clip (``clip_frames`` > 1) goes through the BLIP-2 family's
Q-Former frame by frame and the language model sees the frames' query
tokens in order, VideoBLIP-style
(:mod:`~camera_caption.engine.video_blip`).  The static-cache decoder for
BLIP-2/OPT is the subclass
:class:`~camera_caption.engine.fast_blip2_captioner.FastBlip2Captioner`.
"""

from camera_caption.engine.caption_model import (CaptionModel, is_clip,
                                                 strip_prompt_text,
                                                 strip_prompt_tokens)
from camera_caption.engine.video_blip import generate_clips, is_blip2_family
from camera_caption.utilities.gpu_memory import releasing_memory_on_oom
import numpy as np


class Blip2Captioner(CaptionModel):
    """BLIP-2 and plain-prompt image-to-text models through generate()."""

    family = 'blip-2'

    def __init__(self, *args, video_checkpoint=False, **kwargs):
        super().__init__(*args, **kwargs)
        self.video_checkpoint = video_checkpoint   # saved by VideoBLIP
        self._prompt_ids = {}
        self._prepare = None           # FramePreprocessor for prepare()

    def _caption(self, frames, prompt, max_new, system_prompt):
        if is_clip(frames[0]):
            return self._caption_clips(frames, prompt, max_new)
        return self._caption_generate(frames, prompt, max_new)

    def prepare(self, frame):
        """
        Return ``frame`` (H x W x 3 uint8) as this model's pixels.

        A ``(3, H, W)`` tensor at model size on the model's device, in the
        vision encoder's dtype: what a clip ring stores.  Frames given to
        :meth:`caption` inside a clip may be either.
        """
        import torch
        if self._prepare is None:
            image_processor = getattr(self.processor, 'image_processor',
                                      None)
            from camera_caption.engine.preprocess import FramePreprocessor
            if FramePreprocessor.supports(image_processor):
                self._prepare = FramePreprocessor(
                    image_processor, self.device, self.pixel_dtype())
            else:
                self._prepare = False
        with torch.inference_mode():
            if self._prepare:
                return self._prepare([frame])[0]
            pixels = self.processor.image_processor(
                [frame], return_tensors='pt')['pixel_values'][0]
            return pixels.to(self.device, self.pixel_dtype())

    def _clip_pixels(self, clips):
        """Stack clips (lists of frames or prepared pixels): (B, N, 3, H, W)."""
        import torch
        rows = []
        for clip in clips:
            rows.append(torch.stack([
                item if isinstance(item, torch.Tensor) else
                self.prepare(item) for item in clip]).to(
                    self.device, self.pixel_dtype()))
        if len({row.shape for row in rows}) > 1:
            raise ValueError('clips of one batch must have the same number '
                             'of frames, got ' + ', '.join(
                                 str(row.shape[0]) for row in rows))
        return torch.stack(rows)

    def _caption_clips(self, clips, prompt, max_new):
        """Caption clips VideoBLIP-style through generate()."""
        if not is_blip2_family(self.model):
            raise ValueError(f"clip_frames > 1: '{self.model_id}' is not a "
                             'BLIP-2-family model (no Q-Former)')
        return self._decode_clips(self._clip_pixels(clips), prompt, max_new)

    def _decode_clips(self, pixels, prompt, max_new):
        import torch
        clips = pixels.shape[0]
        inputs = self.processor(
            images=[np.zeros((8, 8, 3), np.uint8)] * clips,
            text=[prompt] * clips, return_tensors='pt', padding=True)
        input_ids = inputs['input_ids'].to(self.device)
        with torch.inference_mode(), releasing_memory_on_oom(self.device):
            out = generate_clips(
                self.model, pixels, input_ids,
                inputs['attention_mask'].to(self.device),
                max_new_tokens=max_new, do_sample=False, num_beams=1)
        tokens = strip_prompt_tokens(out, input_ids)
        texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def _caption_generate(self, frames, prompt, max_new):
        out, inputs = self.generate_raw(frames, prompt, max_new)
        new_tokens = strip_prompt_tokens(out, inputs.get('input_ids'))
        texts = self.processor.batch_decode(new_tokens,
                                            skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def generate_raw(self, frames, prompt, max_new, **kwargs):
        """Processor + greedy generate(): (its output, the inputs)."""
        import torch
        inputs = self.processor(images=list(frames),
                                text=[prompt] * len(frames),
                                return_tensors='pt', padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs['pixel_values'] = inputs['pixel_values'].to(
            self.pixel_dtype())
        with torch.inference_mode(), releasing_memory_on_oom(self.device):
            out = self.model.generate(**inputs, max_new_tokens=max_new,
                                      do_sample=False, num_beams=1,
                                      **kwargs)
        return out, inputs

    def query_tokens(self):
        """Return how many query tokens an image takes in the sequence."""
        return int(self.model.config.num_query_tokens)

    def prompt_token_ids(self, prompt):
        """
        Return the text ids generate() gets from the processor.

        The processor's own output for one image, less the image tokens it
        puts first: BOS only if this tokenizer adds one (the empty prompt
        may have no ids at all).
        """
        if prompt not in self._prompt_ids:
            ids = self.processor(images=[np.zeros((8, 8, 3), np.uint8)],
                                 text=[prompt])['input_ids'][0]
            ids = [int(i) for i in ids]
            config = self.model.config
            image_token = getattr(config, 'image_token_id', None)
            if image_token is None:
                image_token = getattr(config, 'image_token_index', None)
            queries = self.query_tokens()
            if image_token is not None and ids[:queries] == [
                    image_token] * queries:
                ids = ids[queries:]
            self._prompt_ids[prompt] = ids
        return self._prompt_ids[prompt]
