"""
The local backend: a Hugging Face model on this machine's GPU or CPU.

No ROS import.  It loads the model with ``from_pretrained``
(:class:`~camera_caption.engine.caption_engine.CaptionEngine`) and, with
``engine`` ``auto`` or ``fast``, switches BLIP-2/OPT to the static-cache
fast path after its self-check.  ``auto`` falls back to ``generate()``
with one warning and reports why in :meth:`LocalBackend.problem`;
``fast`` refuses to start instead, so that a benchmark can never measure
the slow path by mistake.
"""

from camera_caption.engine.backend import CaptionBackend
from camera_caption.engine.caption_engine import CaptionEngine, ModelLoadError


class LocalBackend(CaptionBackend):
    """Caption with a model loaded in this process."""

    def __init__(self, engine, engine_choice='auto', fallback=''):
        self.engine = engine
        self.engine_choice = engine_choice
        self.fallback = fallback     # why auto fell back ('' if it did not)

    @classmethod
    def create(cls, params, max_batch, log):
        """Load ``params['model']`` and choose the decoding engine."""
        log.info(f"loading model '{params['model']}' (device "
                 f"{params['device']}, dtype {params['dtype']})")
        engine = CaptionEngine.load(
            params['model'], params['device'], params['dtype'],
            params['max_new_tokens'], params['cpu_threads'],
            trust_remote_code=params.get('trust_remote_code', False))
        log.info(f'weights loaded in {engine.load_seconds:.1f} s')
        engine.system_prompt = params.get('system_prompt', '')
        if engine.chat:
            log.info('chat model: captions through its chat template ('
                     + ('clips as video' if engine.chat_video else
                        'clips as images') + ')')
        if engine.video_checkpoint and params.get('clip_frames', 1) <= 1:
            log.info(f"'{params['model']}' is a VideoBLIP checkpoint, "
                     'trained on clips: set clip_frames (e.g. 8) and '
                     'clip_seconds to caption what happens, not a still')
        backend = cls(engine, params['engine'])
        try:
            backend.fallback = backend._choose_engine(
                max_batch, params['prompt'], log)
        except ModelLoadError:
            backend.close()
            raise
        return backend

    def _choose_engine(self, max_batch, prompt, log):
        """Engine auto/fast: the fast path, or one warning (or refuse)."""
        engine, choice = self.engine, self.engine_choice
        if choice == 'generate':
            engine.fallback_reason = 'engine: generate'
            return ''
        reason = engine.enable_fast_path(max_batch=max_batch, prompt=prompt,
                                         log=log.info)
        if not reason:
            log.info(f'fast path ready (warm-up {engine.warmup_seconds:.1f}'
                     f' s, self-check passed, batch <= {max_batch})')
        elif choice == 'fast':
            raise ModelLoadError(f'engine fast: the fast path cannot run on '
                                 f"'{engine.model_id}': {reason}")
        else:
            log.warning(f'fast path unavailable, captioning with the slower '
                        f'generate(): {reason}')
        return reason

    def caption(self, frames, prompt, max_new_tokens):
        """Caption a batch (frames or clips) with the loaded model."""
        return self.engine.caption(frames, prompt, max_new_tokens)

    def prepare(self, frame):
        """Resize and normalise a frame to the model's pixels (clip rings)."""
        return self.engine.prepare(frame)

    def update_settings(self, settings):
        """Take the live system_prompt (chat models)."""
        self.engine.system_prompt = settings.system_prompt

    def describe(self):
        """Say which model runs where."""
        return self.engine.describe()

    def stats(self):
        """Model, device, dtype, engine and GPU memory."""
        engine = self.engine
        return {
            'backend': 'local',
            'engine': 'fast' if engine.fast is not None else
            f'generate ({engine.fallback_reason})',
            'model': engine.model_id, 'device': engine.device,
            'dtype': str(engine.dtype).replace('torch.', ''),
            'gpu_memory_mb': engine.gpu_memory_mb(),
        }

    def problem(self):
        """Say so when ``engine: auto`` had to fall back to generate()."""
        return f'fast path unavailable: {self.fallback}' if self.fallback \
            else ''

    def close(self):
        """Drop the model and give its GPU memory back."""
        engine, self.engine = self.engine, None
        if engine is not None:
            engine.close()
