"""
Load a captioning model with ``from_pretrained``, as the family it is.

No ROS import; torch and transformers are imported on use, after the
model's files were found (an unreachable hub fails at once).  The model is
a Hugging Face hub id or a local directory (``save_pretrained`` layout).
:func:`load_caption_model` returns a
:class:`~camera_caption.engine.chat_vlm.ChatVlmCaptioner` for a chat
vision-language model, else a
:class:`~camera_caption.engine.blip2_captioner.Blip2Captioner`; any failure
is a :class:`~camera_caption.contract.errors.ModelLoadError` with one line
of advice.
"""

import os
import time

from camera_caption.contract.constants import (DEFAULT_MODEL,
                                               DEVICE_CHOICES, DTYPES,
                                               QUANTIZE_CHOICES)
from camera_caption.contract.errors import ModelLoadError
from camera_caption.engine.blip2_captioner import Blip2Captioner
from camera_caption.engine.chat_vlm import (cannot_caption, chat_template,
                                            ChatVlmCaptioner, heron_reason,
                                            takes_video)
from camera_caption.engine.model_source import ModelSourceError, resolve_model
from camera_caption.engine.task_prompt import (is_task_prompt_model,
                                               TaskPromptCaptioner)
from camera_caption.engine.video_blip import (is_blip2_family,
                                              is_video_checkpoint)


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
    return dtype_choice(dtype, device)[0]


def dtype_choice(dtype, device, native_bf16=None, checkpoint=None,
                 cuda_bf16=None):
    """
    Return ``(torch dtype, why)`` for the ``dtype`` parameter on ``device``.

    ``auto`` on CUDA is bfloat16 where the checkpoint was saved in bfloat16
    (``checkpoint``: its config's dtype; most chat models: float16 can
    overflow in them, transformers#33294) and the GPU computes it, else
    float16; on a CPU bfloat16 where the CPU computes it natively
    (AVX512-BF16 or AMX: half the bytes per decode step), else float32.
    ``native_bf16`` and ``cuda_bf16`` override the hardware's own answers
    (tests).
    """
    import torch
    from camera_caption.engine.cpu_linears import cpu_has_native_bf16
    name = (dtype or 'auto').strip().lower()
    why = f'dtype {name}'
    if name == 'auto' and device.startswith('cuda'):
        if checkpoint == 'bfloat16' and cuda_bf16 is None:
            cuda_bf16 = torch.cuda.is_available() and \
                torch.cuda.is_bf16_supported()
        if checkpoint == 'bfloat16' and cuda_bf16:
            name, why = 'bfloat16', ('dtype auto: bfloat16 on CUDA, the '
                                     "checkpoint's own")
        else:
            name, why = 'float16', 'dtype auto: float16 on CUDA'
    elif name == 'auto':
        if native_bf16 is None:
            native_bf16 = cpu_has_native_bf16()
        name = 'bfloat16' if native_bf16 else 'float32'
        why = ('dtype auto: bfloat16, this CPU computes it natively '
               '(AVX512-BF16 or AMX)' if native_bf16 else
               'dtype auto: float32, this CPU has no native bfloat16 '
               '(AVX512-BF16 or AMX)')
    if name not in DTYPES:
        raise ModelLoadError(
            "dtype '%s' is not one of auto, " % dtype
            + ', '.join(sorted(set(DTYPES.values()))))
    return getattr(torch, DTYPES[name]), why


def checkpoint_dtype(config):
    """Return the dtype a checkpoint's config names ('bfloat16', ...; '')."""
    value = getattr(config, 'dtype', None) or \
        getattr(config, 'torch_dtype', None)
    return str(value or '').replace('torch.', '')


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


def load_caption_model(model_id, device='auto', dtype='auto',
                       max_new_tokens=20, cpu_threads=0,
                       trust_remote_code=False, quantize='none'):
    """
    Load processor and model with ``from_pretrained``: the family's class.

    ``cpu_threads`` (CPU device only) sets torch's thread count; 0
    leaves one core free for the ROS executor and the camera, which
    torch's busy-waiting threads would otherwise starve.  On a CPU the
    language model's linear layers get faster kernels
    (:mod:`~camera_caption.engine.cpu_linears`; ``quantize`` ``int8``:
    int8 weights).  Raises :class:`ModelLoadError` with advice on any
    failure.
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
    torch_dtype, dtype_why = dtype_choice(dtype, device)
    quantize = (quantize or 'none').strip().lower()
    if quantize not in QUANTIZE_CHOICES:
        raise ModelLoadError(f"quantize '{quantize}' is not one of "
                             + ', '.join(QUANTIZE_CHOICES))
    if quantize != 'none' and device != 'cpu':
        raise ModelLoadError(f'quantize {quantize} runs on a CPU; device is '
                             f'{device} (use quantize none there)')
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
        torch_dtype, dtype_why = dtype_choice(
            dtype, device, checkpoint=checkpoint_dtype(config))
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
    kernels = ''
    if device == 'cpu':
        from camera_caption.engine.cpu_linears import speed_up_language_model
        kernels = speed_up_language_model(model, quantize)
    args = (model, processor, device, torch_dtype, model_id,
            max_new_tokens, time.monotonic() - start)
    if is_task_prompt_model(config):
        loaded = TaskPromptCaptioner(*args)
    elif not is_blip2_family(model) and chat_template(processor):
        loaded = ChatVlmCaptioner(*args, video=takes_video(config, processor))
    else:
        loaded = Blip2Captioner(*args,
                                video_checkpoint=is_video_checkpoint(config))
    loaded.dtype_reason, loaded.cpu_kernels = dtype_why, kernels
    loaded.quantize = quantize
    return loaded


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
