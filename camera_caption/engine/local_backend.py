"""
The local backend: a Hugging Face model on this machine's GPU or CPU.

No ROS import.  It loads the model with ``from_pretrained`` as the family
it is (:func:`~camera_caption.engine.model_loading.load_caption_model`)
and, with ``engine`` ``auto`` or ``fast``, upgrades BLIP-2/OPT to the
static-cache decoder after its self-check
(:class:`~camera_caption.engine.fast_blip2_captioner.FastBlip2Captioner`).
``auto`` falls back to ``generate()`` with one warning and reports why in
:meth:`LocalBackend.problem`; ``fast`` refuses to start instead, so that a
benchmark can never measure the slow path by mistake.
"""

from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.backend import CaptionBackend
from camera_caption.engine.fast_blip2_captioner import (FastBlip2Captioner,
                                                        FastPathUnavailable)
from camera_caption.engine.model_loading import load_caption_model


class LocalBackend(CaptionBackend):
    """Caption with a model loaded in this process."""

    def __init__(self, model, fallback=''):
        self.model = model           # a CaptionModel
        self.fallback = fallback     # why auto fell back ('' if it did not)

    @classmethod
    def create(cls, params, max_batch, log):
        """Load ``params['model']`` and choose the decoder."""
        quantize = params.get('quantize', 'none')
        log.info(f"loading model '{params['model']}' (device "
                 f"{params['device']}, dtype {params['dtype']}"
                 + (f', quantize {quantize})' if quantize != 'none' else ')'))
        model = load_caption_model(
            params['model'], params['device'], params['dtype'],
            params['max_new_tokens'], params['cpu_threads'],
            trust_remote_code=params.get('trust_remote_code', False),
            quantize=quantize)
        log.info(f'weights loaded in {model.load_seconds:.1f} s ('
                 f'{model.dtype_reason})')
        if model.cpu_kernels:
            log.info(f'CPU kernels: {model.cpu_kernels}')
        if model.family == 'chat':
            log.info('chat model: captions through its chat template ('
                     + ('clips as video' if model.video else
                        'clips as images') + ')')
        if getattr(model, 'video_checkpoint', False) and \
                params.get('clip_frames', 1) <= 1:
            log.info(f"'{params['model']}' is a VideoBLIP checkpoint, "
                     'trained on clips: set clip_frames (e.g. 8) and '
                     'clip_seconds to caption what happens, not a still')
        choice = params['engine']
        if choice == 'generate':
            model.fallback_reason = 'engine: generate'
            return cls(model)
        try:
            fast = FastBlip2Captioner.upgrade(
                model, max_batch=max_batch, prompt=params['prompt'],
                log=log.info)
        except FastPathUnavailable as exc:
            if choice == 'fast':
                model.close()
                raise ModelLoadError(
                    f'engine fast: the fast path cannot run on '
                    f"'{model.model_id}': {exc}") from None
            log.warning(f'fast path unavailable, captioning with the slower '
                        f'generate(): {exc}')
            return cls(model, fallback=str(exc))
        log.info(f'fast path ready (warm-up {fast.warmup_seconds:.1f} s, '
                 f'self-check passed, batch <= {max_batch})')
        return cls(fast)

    def caption(self, frames, prompt, max_new_tokens, system_prompt=''):
        """Caption a batch (frames or clips) with the loaded model."""
        return self.model.caption(frames, prompt, max_new_tokens,
                                  system_prompt)

    def prepare(self, frame):
        """Resize and normalise a frame to the model's pixels (clip rings)."""
        return self.model.prepare(frame)

    def path(self, clip):
        """Family, model type, still/images/video and engine of a caption."""
        model = self.model
        if model is None or model.model is None:       # closed
            return super().path(clip)
        clip = clip and model.takes_clips
        video = clip and getattr(model, 'video', False)
        return {'model': getattr(model, 'model_id', ''),
                'family': model.family.split(' ')[0],
                'model_type': getattr(model.model.config, 'model_type', ''),
                'input': 'video' if video else 'images' if clip else 'still',
                'engine': model.engine.split(' ', 1)[0]}

    def describe(self):
        """Say which model runs where."""
        return self.model.describe()

    def stats(self):
        """Model, device, dtype, decoder and GPU memory."""
        model = self.model
        return {
            'backend': 'local', 'engine': model.engine,
            'model': model.model_id, 'device': model.device,
            'dtype': str(model.dtype).replace('torch.', ''),
            'quantize': model.quantize, 'cpu_kernels': model.cpu_kernels,
            'gpu_memory_mb': model.gpu_memory_mb(),
        }

    def problem(self):
        """Say so when ``engine: auto`` had to fall back to generate()."""
        return f'fast path unavailable: {self.fallback}' if self.fallback \
            else ''

    def close(self):
        """Drop the model and give its GPU memory back."""
        model, self.model = self.model, None
        if model is not None:
            model.close()
