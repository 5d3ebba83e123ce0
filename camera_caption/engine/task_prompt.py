"""
Task-prompt vision models (Florence-2): a task token, one image, parsed text.

No ROS import.  Florence-2 has no chat template: its prompt is a task
token (``<CAPTION>``, ``<DETAILED_CAPTION>``, ``<MORE_DETAILED_CAPTION>``,
``<OCR>``, ...) that its processor turns into a question, or a free text.
It takes one image per prompt, so a clip is captioned on its newest frame.
The answer goes through the processor's ``post_process_generation`` for
the task; a task whose answer is not text (``<OD>``: boxes) is published
as its JSON.  ``system_prompt`` does not apply (no chat).
"""

import json
import re

from camera_caption.engine.caption_model import CaptionModel, is_clip
from camera_caption.utilities.gpu_memory import releasing_memory_on_oom

TASK_PROMPT_TYPES = ('florence2',)
DEFAULT_TASK = '<MORE_DETAILED_CAPTION>'


def is_task_prompt_model(config):
    """Whether ``config`` is a task-prompt model (Florence-2)."""
    return getattr(config, 'model_type', '') in TASK_PROMPT_TYPES


class TaskPromptCaptioner(CaptionModel):
    """Florence-2: the task (``prompt``, default a detailed caption)."""

    family = 'florence-2'
    takes_clips = False         # one image per prompt: a clip's newest frame

    def _caption(self, frames, prompt, max_new, system_prompt):
        import numpy as np
        import torch
        from PIL import Image
        images = [Image.fromarray(np.asarray(item[-1] if is_clip(item)
                                             else item)) for item in frames]
        task = prompt.strip() or DEFAULT_TASK
        inputs = self.processor(text=[task] * len(images), images=images,
                                return_tensors='pt', padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs['pixel_values'] = inputs['pixel_values'].to(self.dtype)
        with torch.inference_mode(), releasing_memory_on_oom(self.device):
            out = self.model.generate(**inputs, max_new_tokens=max_new,
                                      do_sample=False, num_beams=1)
        raw = self.processor.batch_decode(out, skip_special_tokens=False)
        plain = self.processor.batch_decode(out, skip_special_tokens=True)
        kinds = getattr(self.processor, 'tasks_answer_post_processing_type',
                        {})
        # A task token, maybe followed by its text input
        # ('<CAPTION_TO_PHRASE_GROUNDING>a person'): parsed as that task.
        head = re.match(r'(<[A-Z_]+>)', task)
        key = head.group(1) if head else task
        if key not in kinds:            # a free text prompt: the text
            return [text.strip() for text in plain]
        return [self.answer(text, key, image.size)
                for text, image in zip(raw, images)]

    def answer(self, text, task, size):
        """Parse the task's answer: text, or JSON where it is not text."""
        pad = self.processor.tokenizer.pad_token
        if pad:                 # a shorter answer of a batch is padded
            text = text.replace(pad, '')
        answer = self.processor.post_process_generation(
            text, task=task, image_size=size).get(task, '')
        if not isinstance(answer, str):
            return json.dumps(answer, ensure_ascii=False)
        return answer.strip()
