"""
What every model family shares: ``caption(frames, prompt, ...)`` and its care.

No ROS import.  A :class:`CaptionModel` holds a model and its processor
loaded with ``from_pretrained`` (see
:mod:`~camera_caption.engine.model_loading`).  Frames are ``H x W x 3``
uint8 RGB arrays; an entry of a batch may also be a clip (a list of frames,
or of :meth:`CaptionModel.prepare` results; a :class:`Clip` also carries
its span, which the models that are told a video's timing get).  Each family is one subclass:

* :class:`~camera_caption.engine.blip2_captioner.Blip2Captioner`: BLIP-2
  (OPT or T5) and other plain-prompt image-to-text models, ``generate()``;
  clips VideoBLIP-style;
* :class:`~camera_caption.engine.fast_blip2_captioner.FastBlip2Captioner`:
  BLIP-2/OPT with the static-cache greedy decoder;
* :class:`~camera_caption.engine.chat_vlm.ChatVlmCaptioner`: chat
  vision-language models through their chat template;
* :class:`~camera_caption.engine.task_prompt.TaskPromptCaptioner`:
  Florence-2, a task token and one image.
"""

from camera_caption.utilities.gpu_memory import release_cuda_cache

# The self-check's non-empty prompt (when the node's prompt is empty).
CHECK_PROMPT = 'a picture of'


class CaptionModel:
    """A loaded model behind ``caption()``; subclasses add a family's way."""

    family = 'image-to-text'
    takes_clips = True          # False: a clip is captioned on its newest

    def __init__(self, model, processor, device, dtype, model_id='',
                 max_new_tokens=20, load_seconds=0.0):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.load_seconds = load_seconds
        # Why the fast decoder does not run ('' where it does).
        self.fallback_reason = 'fast path not enabled'
        self.dtype_reason = ''      # how dtype auto chose ('' if not asked)
        self.cpu_kernels = ''       # cpu_linears' line ('' if none)
        self.quantize = 'none'

    def caption(self, frames, prompt='', max_new_tokens=None,
                system_prompt=''):
        """
        Return one caption per entry (a frame or a clip), prompt not repeated.

        ``system_prompt`` is the chat models' system message; families
        without one ignore it.
        """
        if not frames:
            return []
        frames = [Clip([_contiguous(f) for f in item], clip_seconds(item))
                  if is_clip(item) else _contiguous(item) for item in frames]
        return self._caption(frames, prompt or '',
                             int(max_new_tokens or self.max_new_tokens),
                             system_prompt or '')

    def _caption(self, frames, prompt, max_new, system_prompt):
        raise NotImplementedError

    def prepare(self, frame):
        """Return what a clip ring keeps for ``frame`` (default: itself)."""
        return frame

    @property
    def engine(self):
        """Say how it decodes, for ``/diagnostics``."""
        return f'generate ({self.fallback_reason})'

    def pixel_dtype(self):
        """Return the dtype the vision encoder takes its pixels in."""
        try:
            return self.model.vision_model.embeddings.patch_embedding \
                .weight.dtype
        except AttributeError:
            return self.dtype

    def release_memory(self):
        """Return cached GPU memory after a failed inference."""
        release_cuda_cache(self.device)

    def close(self):
        """Drop the model; give GPU memory back."""
        import gc
        self.model = None
        gc.collect()               # CUDA graphs and cache tensors go now
        self.release_memory()

    def gpu_memory_mb(self):
        """GPU memory allocated by torch on our device (MiB), or None."""
        if not self.device.startswith('cuda'):
            return None
        import torch
        return torch.cuda.memory_allocated(self.device) / 2**20

    def describe(self):
        """Return a one-line description for logs."""
        return (f'{self.model_id} on {self.device} ({str(self.dtype)[6:]}), '
                f'loaded in {self.load_seconds:.1f} s')


def _contiguous(frame):
    """
    Return an array frame in one contiguous block (others as they are).

    A ``bgr8`` image arrives as a reversed view; torchvision's image
    processors (transformers 5) refuse negative strides.
    """
    import numpy as np
    if isinstance(frame, np.ndarray) and not frame.flags.c_contiguous:
        return np.ascontiguousarray(frame)
    return frame


def is_clip(item):
    """Whether a caption() entry is a clip (a list of frames), not a frame."""
    return isinstance(item, (list, tuple))


class Clip(list):
    """A clip's frames, oldest first, and the seconds from first to last."""

    def __init__(self, frames=(), seconds=None):
        super().__init__(frames)
        self.seconds = seconds      # None: not known


def clip_seconds(item):
    """Return a clip's span in seconds, or None where it is not known."""
    seconds = getattr(item, 'seconds', None)
    return float(seconds) if seconds and seconds > 0 else None


def check_frames(n, height=240, width=320):
    """``n`` different synthetic RGB frames (gradients and noise)."""
    import numpy as np
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    frames = []
    for i in range(n):
        rng = np.random.default_rng(i)
        base = np.stack([x / width * 255, y / height * 255,
                         (x + y) / (width + height) * 255], axis=-1)
        base = np.roll(base, i, axis=-1) * (1 - 0.1 * (i % 4))
        noise = rng.normal(0, 24, base.shape)
        frames.append(np.clip(base + noise, 0, 255).astype(np.uint8))
    return frames


def strip_prompt_tokens(output_ids, input_ids):
    """
    Drop the echoed input (image tokens + prompt) from ``generate()``.

    Newer transformers return input + new tokens for decoder-only language
    models, older ones only the new tokens; both are handled.
    """
    if input_ids is None:
        return output_ids
    n = input_ids.shape[1]
    if output_ids.shape[1] >= n and bool(
            (output_ids[:, :n] == input_ids.to(output_ids.device)).all()):
        return output_ids[:, n:]
    return output_ids


def strip_prompt_text(text, prompt):
    """Remove a leading copy of ``prompt`` from ``text`` and trim it."""
    text = text.strip()
    prompt = (prompt or '').strip()
    if prompt and text.startswith(prompt):
        text = text[len(prompt):]
    return text.strip()
