"""
The captioning engine: BLIP-2 loaded once, ``caption(frames, prompt)``.

No ROS import.  The model is loaded with ``from_pretrained`` from a Hugging
Face hub id or a local directory (``save_pretrained`` layout); frames are
``H x W x 3`` uint8 RGB arrays; the result is one string per frame, with
the prompt (if any) not repeated.  An entry may also be a clip (a list of
frames, or of :meth:`CaptionEngine.prepare` results): the BLIP-2 family
captions it VideoBLIP-style (:mod:`~camera_caption.engine.video_blip`).
"""

import gc
import os
import time

from camera_caption.contract.constants import (DEFAULT_MODEL,
                                               DEVICE_CHOICES, DTYPES)
from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.chat_vlm import (cannot_caption, chat_inputs,
                                            chat_template, heron_reason,
                                            takes_video)
from camera_caption.engine.model_source import ModelSourceError, resolve_model
from camera_caption.engine.video_blip import (generate_clips,
                                              is_blip2_family,
                                              is_video_checkpoint)
import numpy as np

# The self-check's non-empty prompt (when the node's prompt is empty).
CHECK_PROMPT = 'a picture of'
# FramePreprocessor against the processor's pixel_values (normalised
# units): torch's antialiased bicubic differs from PIL's by a fraction of a
# grey level on average, a few at worst.
PIXEL_MEAN_TOLERANCE = 0.01
PIXEL_MAX_TOLERANCE = 0.15


def resolve_device(device):
    """Map ``auto``/``cpu``/``cuda``/``cuda:N`` to a torch device string."""
    import torch
    device = (device or 'auto').strip().lower()
    if device == 'auto':
        return 'cuda' if torch.cuda.is_available() else 'cpu'
    if device == 'cpu':
        return 'cpu'
    if device == 'cuda' or device.startswith('cuda:'):
        if not torch.cuda.is_available():
            raise ModelLoadError(
                f"device '{device}' was asked for but CUDA is not available "
                f'(torch {torch.__version__}, built for CUDA '
                f'{torch.version.cuda}). Use device:=auto or device:=cpu, '
                'or install a CUDA build of torch and check nvidia-smi.')
        index = device.partition(':')[2]
        if index and (not index.isdigit()
                      or int(index) >= torch.cuda.device_count()):
            raise ModelLoadError(
                f"device '{device}': there are "
                f'{torch.cuda.device_count()} CUDA device(s)')
        return device
    raise ModelLoadError(
        f"device '{device}' is not one of {', '.join(DEVICE_CHOICES)}")


def resolve_dtype(dtype, device):
    """Map ``auto`` or a dtype name to a torch dtype for ``device``."""
    import torch
    name = (dtype or 'auto').strip().lower()
    if name == 'auto':
        name = 'float16' if device.startswith('cuda') else 'float32'
    if name not in DTYPES:
        raise ModelLoadError(
            "dtype '%s' is not one of auto, " % dtype
            + ', '.join(sorted(set(DTYPES.values()))))
    return getattr(torch, DTYPES[name])


def dtype_kwarg(torch_dtype, version=None):
    """
    ``from_pretrained`` keyword for the dtype on this transformers.

    transformers 4.56 renamed ``torch_dtype`` to ``dtype``; older releases
    (4.49 and later are supported) only know ``torch_dtype``.
    """
    if version is None:
        import transformers
        version = transformers.__version__
    major, minor = (int(x) for x in version.split('.')[:2])
    key = 'dtype' if (major, minor) >= (4, 56) else 'torch_dtype'
    return {key: torch_dtype}


def _load_hint(model):
    if os.path.isdir(model):
        return (f"'{model}' is a directory: it must hold config.json, the "
                'weights (model.safetensors or pytorch_model.bin) and the '
                'processor/tokenizer files, as save_pretrained() writes them.')
    return (f"If '{model}' is a hub id, download it once on a machine with "
            f'network (hf download {model}, or huggingface-cli download '
            f'{model}) and then run with HF_HUB_OFFLINE=1, or set model to a '
            'local directory that holds the saved model.')


class CaptionEngine:
    """BLIP-2 (or another image-to-text model) behind ``caption()``."""

    def __init__(self, model, processor, device, dtype, model_id='',
                 max_new_tokens=20, load_seconds=0.0):
        self.model = model
        self.processor = processor
        self.device = device
        self.dtype = dtype
        self.model_id = model_id
        self.max_new_tokens = max_new_tokens
        self.load_seconds = load_seconds
        self.fast = None               # FastBlip2Opt when enabled
        self.preprocess = None         # FramePreprocessor when usable
        self.fallback_reason = 'fast path not enabled'
        self.warmup_seconds = 0.0
        self._prompt_ids = {}
        self._prepare = None           # FramePreprocessor for prepare()
        self.video_checkpoint = False  # saved by VideoBLIP
        self.chat = False              # a chat VLM (chat template)
        self.chat_video = False        # ... that takes clips as video
        self.system_prompt = ''        # chat: the system message

    def enable_fast_path(self, max_batch=1, prompt='', warm_up=True,
                         log=None):
        """
        Switch to the static-cache greedy path if the model allows it.

        Returns '' when enabled, else the reason (``generate()`` is kept).
        The KV cache is sized for the query tokens, ``prompt`` and
        ``max_new_tokens`` (it grows on demand, through ``log``).  With
        ``warm_up`` the decode step is captured for batch sizes
        1..``max_batch`` now (CUDA), a warm-up caption runs and
        :meth:`self_check` must pass, so that no live frame waits and no
        wrong path goes live.  Any failure here (out of memory included)
        keeps ``generate()``.
        """
        from camera_caption.engine.fast_blip2 import FastBlip2Opt
        from camera_caption.engine.fast_path_policy import fast_path_reason
        from camera_caption.engine.preprocess import FramePreprocessor
        import torch
        reason = fast_path_reason(self.model)
        if reason:
            self.fallback_reason = reason
            return reason
        start = time.monotonic()
        try:
            longest = max(len(self._prompt_token_ids(text))
                          for text in (prompt or '', CHECK_PROMPT))
            self.fast = FastBlip2Opt(
                self.model, max_batch=max_batch, log=log,
                max_len=self.fast_queries() + longest + self.max_new_tokens)
            image_processor = getattr(self.processor, 'image_processor',
                                      None)
            if FramePreprocessor.supports(image_processor):
                self.preprocess = FramePreprocessor(
                    image_processor, self.fast.device, self.pixel_dtype())
            problem = ''
            if warm_up:
                self.fast.warm_up(range(1, max_batch + 1))
                self.caption([_warmup_frame()] * max_batch, prompt)
                problem = self.self_check(prompt=prompt or CHECK_PROMPT)
        except Exception as exc:  # noqa: B902 - keep generate() then
            text = ' '.join(str(exc).split())[:300]
            problem = f'warm-up failed: {type(exc).__name__}: {text}'
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                problem = 'out of memory: ' + problem
        if problem:
            self.fast = self.preprocess = None
            gc.collect()        # the graphs' closures hold the old cache
            self.release_memory()
            self.fallback_reason = problem
            return problem
        self.warmup_seconds = time.monotonic() - start
        self.fallback_reason = ''
        return ''

    def pixel_dtype(self):
        """Return the dtype the vision encoder takes its pixels in."""
        try:
            return self.model.vision_model.embeddings.patch_embedding \
                .weight.dtype
        except AttributeError:
            return self.dtype

    def self_check(self, batch_sizes=None, prompt=CHECK_PROMPT,
                   max_new_tokens=None):
        """
        Check the fast path against ``generate()``; '' or what is wrong.

        For every batch size (default: 1..max_batch, all captured), with
        the empty prompt and with ``prompt``, on synthetic frames: feeds
        generate()'s tokens to the fast path step by step and compares the
        logits within the dtype's tolerance, and compares the free-running
        tokens (same tokens, length and EOS, unless they part at a near-tie
        of generate()'s logits); see
        :func:`~camera_caption.engine.self_check.compare_with_generate`.  Then
        checks ``FramePreprocessor`` against the processor's pixels.
        """
        import torch
        from camera_caption.engine.self_check import (compare_with_generate,
                                                      TOLERANCE)
        fast = self.fast
        max_new = int(max_new_tokens or self.max_new_tokens)
        sizes = batch_sizes or range(1, fast.max_batch + 1)
        tolerance = TOLERANCE.get(fast.dtype, TOLERANCE[torch.float16])
        for b in sizes:
            images = check_frames(b)
            for text in dict.fromkeys(['', prompt or '']):
                out, inputs = self._generate_raw(
                    images, text, max_new, output_logits=True,
                    return_dict_in_generate=True)
                reference = strip_prompt_tokens(out.sequences,
                                                inputs['input_ids']).cpu()
                logits = torch.stack(out.logits, dim=1).float().cpu()
                pixels = inputs['pixel_values']
                ids = self._prompt_token_ids(text)
                rows = fast.generate(pixels, ids, max_new)
                forced = fast.score(pixels, ids, reference).cpu()
                problem = compare_with_generate(reference, logits, rows,
                                                forced, fast.eos, tolerance)
                if problem:
                    return (f'self-check (batch {b}, prompt {text!r}): '
                            f'{problem}')
        if self.preprocess is not None:
            images = check_frames(2)
            ours = self.preprocess(images).float().cpu()
            theirs = self.processor.image_processor(
                images, return_tensors='pt')['pixel_values'].float()
            if ours.shape != theirs.shape:
                return (f'self-check: FramePreprocessor gives '
                        f'{tuple(ours.shape)}, the processor '
                        f'{tuple(theirs.shape)}')
            mean = float((ours - theirs).abs().mean())
            worst = float((ours - theirs).abs().max())
            if mean > PIXEL_MEAN_TOLERANCE or worst > PIXEL_MAX_TOLERANCE:
                return (f'self-check: FramePreprocessor differs from the '
                        f'processor by {mean:.3g} on average, {worst:.3g} '
                        f'at most (tolerance {PIXEL_MEAN_TOLERANCE}, '
                        f'{PIXEL_MAX_TOLERANCE})')
        return ''

    @classmethod
    def load(cls, model_id, device='auto', dtype='auto', max_new_tokens=20,
             cpu_threads=0, trust_remote_code=False):
        """
        Load processor and model with ``from_pretrained``.

        ``cpu_threads`` (CPU device only) sets torch's thread count; 0
        leaves one core free for the ROS executor and the camera, which
        torch's busy-waiting threads would otherwise starve.  Raises
        :class:`ModelLoadError` with advice on any failure.
        """
        start = time.monotonic()
        if not model_id or not str(model_id).strip():
            raise ModelLoadError('model is empty: give a hub id such as '
                                 f'{DEFAULT_MODEL} or a local directory')
        model_id = os.path.expanduser(str(model_id).strip())
        if model_id.startswith(('/', './', '../')) and not os.path.isdir(
                model_id):
            raise ModelLoadError(
                f"model directory '{model_id}' does not exist. Give a hub id "
                f'such as {DEFAULT_MODEL} or a directory written by '
                'save_pretrained().')
        heron = heron_reason(model_id)   # before downloading 16 GB
        if heron:
            raise ModelLoadError(heron)
        try:   # before torch is imported: an unreachable hub fails at once
            files = resolve_model(model_id)   # a directory, or a hub id
        except ModelSourceError as exc:
            raise ModelLoadError(str(exc)) from None
        heron = heron_reason(model_id, files)
        if heron:
            raise ModelLoadError(heron)
        import torch
        from transformers import AutoConfig

        device = resolve_device(device)
        torch_dtype = resolve_dtype(dtype, device)
        if device == 'cpu':
            torch.set_num_threads(cpu_threads or max(1,
                                                     (os.cpu_count() or 2) - 1))
        remote = {'trust_remote_code': True} if trust_remote_code else {}
        try:
            config = AutoConfig.from_pretrained(files, **remote)
            model_cls = _model_class(config)
            processor = _load_processor(files, config, remote)
            reason = cannot_caption(model_id, config, processor)
            if reason:
                raise ModelLoadError(reason)
            model = model_cls.from_pretrained(
                files, **dtype_kwarg(torch_dtype), **remote)
        except ModelLoadError:
            raise
        except Exception as exc:  # noqa: B902 - any loader failure
            reason = str(exc).strip().splitlines()
            reason = reason[0] if reason else type(exc).__name__
            raise ModelLoadError(
                f"model '{model_id}' could not be loaded "
                f'({type(exc).__name__}: {reason}). {_load_hint(model_id)}'
            ) from exc
        try:
            model = model.to(device).eval()
        except (RuntimeError, torch.cuda.OutOfMemoryError) as exc:
            raise ModelLoadError(
                f"model '{model_id}' does not fit on {device} as "
                f'{torch_dtype}: {exc}. Try dtype float16, a smaller model '
                'or device cpu.') from exc
        if device.startswith('cuda'):
            torch.cuda.synchronize(device)
        engine = cls(model, processor, device, torch_dtype, model_id,
                     max_new_tokens, time.monotonic() - start)
        engine.video_checkpoint = is_video_checkpoint(config)
        if not is_blip2_family(model) and chat_template(processor):
            engine.chat = True
            engine.chat_video = takes_video(config, processor)
            tokenizer = getattr(processor, 'tokenizer', None)
            if tokenizer is not None and \
                    not getattr(model.config, 'is_encoder_decoder', False):
                tokenizer.padding_side = 'left'    # batches of cameras
        return engine

    def prepare(self, frame):
        """
        Return ``frame`` (H x W x 3 uint8) as this model's pixels.

        A ``(3, H, W)`` tensor at model size on the model's device, in the
        vision encoder's dtype: what a clip ring stores.  Frames given to
        :meth:`caption` inside a clip may be either.
        """
        import torch
        if self.chat:
            return frame        # the chat processor resizes its own way
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

    def _caption_chat(self, frames, prompt, max_new):
        """Caption with a chat VLM: template, generate(), new text only."""
        import torch
        batch = [list(item) if is_clip(item) else [item] for item in frames]
        inputs = chat_inputs(self.processor, batch, prompt,
                             self.system_prompt, self.chat_video)
        inputs = {k: v.to(self.device) if hasattr(v, 'to') else v
                  for k, v in inputs.items()}
        for key in ('pixel_values', 'pixel_values_videos'):
            if key in inputs and inputs[key].is_floating_point():
                inputs[key] = inputs[key].to(self.dtype)
        try:
            with torch.inference_mode():
                # The model's generation config, but for max_new_tokens.
                out = self.model.generate(**inputs, max_new_tokens=max_new)
        except torch.cuda.OutOfMemoryError:
            inputs = None
            self.release_memory()
            raise
        new = out[:, inputs['input_ids'].shape[1]:]
        return [text.strip() for text in self.processor.batch_decode(
            new, skip_special_tokens=True)]

    def _caption_clips(self, clips, prompt, max_new):
        """Caption clips VideoBLIP-style: fast path, else generate()."""
        import torch
        if not is_blip2_family(self.model):
            raise ValueError(f"clip_frames > 1: '{self.model_id}' is not a "
                             'BLIP-2-family model (no Q-Former)')
        pixels = self._clip_pixels(clips)
        ids = self._prompt_token_ids(prompt)
        if self.fast is not None and len(clips) <= self.fast.max_batch and \
                len(ids) + self.fast_queries() + max_new <= self.fast.limit:
            tokens = self.fast.generate(pixels, ids, max_new)
        else:
            inputs = self.processor(
                images=[np.zeros((8, 8, 3), np.uint8)] * len(clips),
                text=[prompt] * len(clips), return_tensors='pt',
                padding=True)
            input_ids = inputs['input_ids'].to(self.device)
            with torch.inference_mode():
                out = generate_clips(
                    self.model, pixels, input_ids,
                    inputs['attention_mask'].to(self.device),
                    max_new_tokens=max_new, do_sample=False, num_beams=1)
            tokens = strip_prompt_tokens(out, input_ids)
        texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def caption(self, frames, prompt='', max_new_tokens=None):
        """
        Return one caption per RGB frame (prompt text not repeated).

        Each entry of ``frames`` is a frame, or a clip: a list of frames or
        of :meth:`prepare` results (every clip of a batch as long).
        """
        if not frames:
            return []
        prompt = prompt or ''
        max_new = int(max_new_tokens or self.max_new_tokens)
        if self.chat:
            return self._caption_chat(frames, prompt, max_new)
        if is_clip(frames[0]):
            return self._caption_clips(frames, prompt, max_new)
        if self.fast is not None and len(frames) <= self.fast.max_batch:
            ids = self._prompt_token_ids(prompt)
            if len(ids) + self.fast_queries() + max_new <= self.fast.limit:
                return self._caption_fast(frames, ids, prompt, max_new)
        return self._caption_generate(frames, prompt, max_new)

    def fast_queries(self):
        """Return how many query tokens an image takes in the sequence."""
        return int(self.model.config.num_query_tokens)

    def _prompt_token_ids(self, prompt):
        """
        Return the text ids generate() gets from the processor.

        The processor's own output for one image, less the image tokens it
        puts first: BOS only if this tokenizer adds one (the empty prompt
        may have no ids at all).
        """
        if prompt not in self._prompt_ids:
            import numpy as np
            ids = self.processor(images=[np.zeros((8, 8, 3), np.uint8)],
                                 text=[prompt])['input_ids'][0]
            ids = [int(i) for i in ids]
            config = self.model.config
            image_token = getattr(config, 'image_token_id', None)
            if image_token is None:
                image_token = getattr(config, 'image_token_index', None)
            queries = self.fast_queries()
            if image_token is not None and ids[:queries] == [
                    image_token] * queries:
                ids = ids[queries:]
            self._prompt_ids[prompt] = ids
        return self._prompt_ids[prompt]

    def _caption_fast(self, frames, ids, prompt, max_new):
        import torch
        try:
            if self.preprocess is not None:
                pixels = self.preprocess(frames)
            else:
                pixels = self.processor.image_processor(
                    list(frames), return_tensors='pt')['pixel_values']
                pixels = pixels.to(self.device, self.pixel_dtype())
            tokens = self.fast.generate(pixels, ids, max_new)
        except torch.cuda.OutOfMemoryError:
            self.release_memory()
            raise
        texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def _caption_generate(self, frames, prompt, max_new):
        new_tokens, _ = self._generate_tokens(frames, prompt, max_new)
        texts = self.processor.batch_decode(new_tokens,
                                            skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def _generate_tokens(self, frames, prompt, max_new):
        """Processor + generate(): (new token ids, pixel_values used)."""
        out, inputs = self._generate_raw(frames, prompt, max_new)
        return (strip_prompt_tokens(out, inputs.get('input_ids')),
                inputs['pixel_values'])

    def _generate_raw(self, frames, prompt, max_new, **kwargs):
        """Processor + greedy generate(): (its output, the inputs)."""
        import torch
        inputs = self.processor(images=list(frames),
                                text=[prompt] * len(frames),
                                return_tensors='pt', padding=True)
        inputs = {k: v.to(self.device) for k, v in inputs.items()}
        inputs['pixel_values'] = inputs['pixel_values'].to(
            self.pixel_dtype())
        try:
            with torch.inference_mode():
                out = self.model.generate(**inputs, max_new_tokens=max_new,
                                          do_sample=False, num_beams=1,
                                          **kwargs)
        except torch.cuda.OutOfMemoryError:
            inputs = None   # drop the batch's tensors before emptying cache
            self.release_memory()
            raise
        return out, inputs

    def release_memory(self):
        """Return cached GPU memory after a failed inference."""
        import torch
        if self.device.startswith('cuda'):
            torch.cuda.empty_cache()

    def close(self):
        """Drop the model and its fast path; give GPU memory back."""
        import gc
        self.fast = self.preprocess = None
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


def _warmup_frame():
    import numpy as np
    return np.zeros((224, 224, 3), np.uint8)


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


def is_clip(item):
    """Whether a caption() entry is a clip (a list of frames), not a frame."""
    return isinstance(item, (list, tuple))


def _load_processor(files, config, remote):
    """
    AutoProcessor; for a BLIP-2 config, Blip2Processor when that fails.

    VideoBLIP checkpoints may name their own processor class (not in
    transformers); its files are a BLIP-2 processor's.
    """
    from transformers import AutoProcessor
    blip2 = getattr(config, 'model_type', '') == 'blip-2'
    try:
        processor = AutoProcessor.from_pretrained(files, **remote)
    except (ValueError, OSError, KeyError, AttributeError):
        if not blip2:
            raise
        processor = None
    if blip2 and getattr(processor, 'image_processor', None) is None:
        # An unknown processor class gives a bare tokenizer (or fails).
        from transformers import Blip2Processor
        processor = Blip2Processor.from_pretrained(files)
    return processor


def _model_class(config):
    if getattr(config, 'model_type', '') == 'blip-2':
        from transformers import Blip2ForConditionalGeneration
        return Blip2ForConditionalGeneration
    try:    # transformers >= 4.46
        from transformers import AutoModelForImageTextToText
        return AutoModelForImageTextToText
    except ImportError:
        from transformers import AutoModelForVision2Seq
        return AutoModelForVision2Seq


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
