"""
BLIP-2/OPT with the static-cache greedy decoder, checked against generate().

No ROS import.  :meth:`FastBlip2Captioner.upgrade` turns a loaded
:class:`~camera_caption.engine.blip2_captioner.Blip2Captioner` into this
family when :func:`~camera_caption.engine.fast_path_policy.fast_path_reason`
allows it: the KV cache is sized for the query tokens, the prompt and
``max_new_tokens``; with ``warm_up`` the decode step is captured for batch
sizes 1..``max_batch`` (CUDA), one caption runs and :meth:`self_check`
must pass, so that no live frame waits and no wrong decoder goes live.
Anything that fails there (out of memory included) raises
:class:`FastPathUnavailable` with the reason, and the plain model stays in
use.  A batch or prompt that does not fit the cache goes through
``generate()``.
"""

import time

from camera_caption.engine.blip2_captioner import Blip2Captioner
from camera_caption.engine.caption_model import (check_frames, CHECK_PROMPT,
                                                 is_clip, strip_prompt_text,
                                                 strip_prompt_tokens)
from camera_caption.utilities.gpu_memory import releasing_memory_on_oom

# FramePreprocessor against the processor's pixel_values (normalised
# units): torch's antialiased bicubic differs from PIL's by a fraction of a
# grey level on average, a few at worst.
PIXEL_MEAN_TOLERANCE = 0.01
PIXEL_MAX_TOLERANCE = 0.15


class FastPathUnavailable(Exception):
    """The fast decoder cannot run on this model; the message says why."""


class FastBlip2Captioner(Blip2Captioner):
    """BLIP-2/OPT through the static-cache greedy decoder."""

    family = 'blip-2 (fast)'

    def __init__(self, plain, decoder, preprocess):
        super().__init__(plain.model, plain.processor, plain.device,
                         plain.dtype, plain.model_id, plain.max_new_tokens,
                         plain.load_seconds,
                         video_checkpoint=plain.video_checkpoint)
        self.decoder = decoder          # FastBlip2Opt
        self.dtype_reason = plain.dtype_reason
        self.cpu_kernels, self.quantize = plain.cpu_kernels, plain.quantize
        self.preprocess = preprocess    # FramePreprocessor, or None
        self.fallback_reason = ''
        self.warmup_seconds = 0.0

    @classmethod
    def upgrade(cls, plain, max_batch=1, prompt='', warm_up=True, log=None):
        """
        Return ``plain`` with the fast decoder, or raise FastPathUnavailable.

        ``log`` reports the KV cache growing on demand.  On failure
        ``plain.fallback_reason`` says why, and ``plain`` is as it was.
        """
        from camera_caption.engine.fast_blip2 import FastBlip2Opt
        from camera_caption.engine.fast_path_policy import fast_path_reason
        from camera_caption.engine.preprocess import FramePreprocessor
        import torch
        reason = fast_path_reason(plain.model)
        if reason:
            plain.fallback_reason = reason
            raise FastPathUnavailable(reason)
        start = time.monotonic()
        fast = None
        try:
            longest = max(len(plain.prompt_token_ids(text))
                          for text in (prompt or '', CHECK_PROMPT))
            decoder = FastBlip2Opt(
                plain.model, max_batch=max_batch, log=log,
                max_len=plain.query_tokens() + longest
                + plain.max_new_tokens)
            image_processor = getattr(plain.processor, 'image_processor',
                                      None)
            preprocess = None
            if FramePreprocessor.supports(image_processor):
                preprocess = FramePreprocessor(
                    image_processor, decoder.device, plain.pixel_dtype())
            fast = cls(plain, decoder, preprocess)
            problem = ''
            if warm_up:
                decoder.warm_up(range(1, max_batch + 1))
                fast.caption([_warmup_frame()] * max_batch, prompt)
                problem = fast.self_check(prompt=prompt or CHECK_PROMPT)
        except Exception as exc:  # noqa: B902 - keep generate() then
            text = ' '.join(str(exc).split())[:300]
            problem = f'warm-up failed: {type(exc).__name__}: {text}'
            if isinstance(exc, torch.cuda.OutOfMemoryError):
                problem = 'out of memory: ' + problem
        if problem:
            if fast is not None:
                fast.decoder = fast.preprocess = fast.model = None
            fast = decoder = preprocess = None
            import gc
            gc.collect()        # the graphs' closures hold the old cache
            plain.release_memory()
            plain.fallback_reason = problem
            raise FastPathUnavailable(problem)
        fast.warmup_seconds = time.monotonic() - start
        return fast

    @property
    def engine(self):
        """Say how it decodes, for ``/diagnostics``."""
        return 'fast'

    def _fits(self, batch, ids, max_new):
        return batch <= self.decoder.max_batch and (
            len(ids) + self.query_tokens() + max_new <= self.decoder.limit)

    def _caption(self, frames, prompt, max_new, system_prompt):
        ids = self.prompt_token_ids(prompt)
        if not self._fits(len(frames), ids, max_new):
            return super()._caption(frames, prompt, max_new, system_prompt)
        if is_clip(frames[0]):
            return self._decode(self._clip_pixels(frames), ids, prompt,
                                max_new)
        with releasing_memory_on_oom(self.device):
            if self.preprocess is not None:
                pixels = self.preprocess(frames)
            else:
                pixels = self.processor.image_processor(
                    list(frames), return_tensors='pt')['pixel_values']
                pixels = pixels.to(self.device, self.pixel_dtype())
        return self._decode(pixels, ids, prompt, max_new)

    def _decode(self, pixels, ids, prompt, max_new):
        with releasing_memory_on_oom(self.device):
            tokens = self.decoder.generate(pixels, ids, max_new)
        texts = self.processor.batch_decode(tokens, skip_special_tokens=True)
        return [strip_prompt_text(t, prompt) for t in texts]

    def self_check(self, batch_sizes=None, prompt=CHECK_PROMPT,
                   max_new_tokens=None):
        """
        Check the fast decoder against ``generate()``; '' or what is wrong.

        For every batch size (default: 1..max_batch, all captured), with
        the empty prompt and with ``prompt``, on synthetic frames: feeds
        generate()'s tokens to the fast decoder step by step and compares
        the logits within the dtype's tolerance, and compares the
        free-running tokens (same tokens, length and EOS, unless they part
        at a near-tie of generate()'s logits); see
        :func:`~camera_caption.engine.self_check.compare_with_generate`.
        Then checks ``FramePreprocessor`` against the processor's pixels.
        """
        import torch
        from camera_caption.engine.self_check import (compare_with_generate,
                                                      TOLERANCE)
        fast = self.decoder
        max_new = int(max_new_tokens or self.max_new_tokens)
        sizes = batch_sizes or range(1, fast.max_batch + 1)
        tolerance = TOLERANCE.get(fast.dtype, TOLERANCE[torch.float16])
        if self.quantize == 'int8':
            # Activations are quantized per call, from the values the
            # call sees: a rounding apart flips an int8 step.
            tolerance = max(tolerance, TOLERANCE[torch.bfloat16])
        for b in sizes:
            images = check_frames(b)
            for text in dict.fromkeys(['', prompt or '']):
                out, inputs = self.generate_raw(
                    images, text, max_new, output_logits=True,
                    return_dict_in_generate=True)
                reference = strip_prompt_tokens(out.sequences,
                                                inputs['input_ids']).cpu()
                logits = torch.stack(out.logits, dim=1).float().cpu()
                pixels = inputs['pixel_values']
                ids = self.prompt_token_ids(text)
                rows = fast.generate(pixels, ids, max_new)
                forced = fast.score(pixels, ids, reference).cpu()
                problem = compare_with_generate(reference, logits, rows,
                                                forced, fast.eos, tolerance)
                if problem:
                    return (f'self-check (batch {b}, prompt {text!r}): '
                            f'{problem}')
        return self._check_preprocess()

    def _check_preprocess(self):
        if self.preprocess is None:
            return ''
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

    def close(self):
        """Drop the decoder (its graphs and cache) and the model."""
        self.decoder = self.preprocess = None
        super().close()


def _warmup_frame():
    import numpy as np
    return np.zeros((224, 224, 3), np.uint8)
