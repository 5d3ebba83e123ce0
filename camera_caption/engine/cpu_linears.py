"""
Linear layers that read their weights at memory speed on a CPU.

No ROS import.  Decoding one token at batch 1 is a matrix-vector product
per weight, so a step costs the bytes of the weights over the memory
bandwidth.  torch's float32 ``F.linear`` (MKL) reads at that speed; its
bfloat16 ``F.linear`` does not (oneDNN takes the weight in its plain layout
every call: about 55 % of the bandwidth on an AVX512-BF16 Xeon).
:func:`speed_up_language_model` swaps, in place, the ``nn.Linear`` layers of
a model's language model and its output head for:

* :class:`PackedLinear` (bfloat16 weights): the weight prepacked once into
  oneDNN's blocked layout (``torch.ops.mkldnn``, as ``torch.compile``'s
  CPU freezing does), bit-identical to ``F.linear``;
* :class:`Int8Linear` (``quantize: int8``): torch's dynamic quantization
  (fbgemm), int8 weights per output channel, activations quantized per
  call; about a quarter of float32's bytes, at a small quality cost that
  ``benchmark --quantize int8`` reports.

Both ``generate()`` and the fast path call the swapped modules, so the
memory is held once.  :func:`cpu_has_native_bf16` is what ``dtype: auto``
asks on a CPU.
"""

import os

from camera_caption.contract.constants import QUANTIZE_CHOICES
from camera_caption.utilities.file_pages import (file_backed, page_out,
                                                 tensor_ranges)
import torch


def cpu_has_native_bf16(cpuinfo='/proc/cpuinfo'):
    """
    Whether this CPU computes in bfloat16 natively (AVX512-BF16, AMX).

    ``CAMERA_CAPTION_NATIVE_BF16=0`` or ``1`` overrides the CPU's flags
    (the test suite sets 0, so that ``dtype: auto`` gives the same float32
    captions on every machine; its bfloat16 tests ask for it by name).
    """
    forced = os.environ.get('CAMERA_CAPTION_NATIVE_BF16', '').strip()
    if forced in ('0', '1'):
        return forced == '1'
    try:
        with open(cpuinfo) as f:
            for line in f:
                if line.startswith('flags'):
                    flags = set(line.split(':', 1)[1].split())
                    return bool(flags & {'avx512_bf16', 'amx_bf16'})
    except OSError:
        pass
    return False


def packing_available():
    """Whether torch can prepack bfloat16 linear weights with oneDNN."""
    mkldnn = getattr(torch.ops, 'mkldnn', None)
    try:
        return bool(torch.backends.mkldnn.is_available()
                    and mkldnn._is_mkldnn_bf16_supported()
                    and hasattr(mkldnn, '_reorder_linear_weight')
                    and hasattr(mkldnn, '_linear_pointwise'))
    except (AttributeError, RuntimeError):
        return False


class PackedLinear(torch.nn.Module):
    """A bfloat16 ``nn.Linear`` whose weight oneDNN prepacked once."""

    def __init__(self, linear):
        super().__init__()
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        weight = linear.weight.detach()
        self.register_buffer(
            'packed_weight',
            torch.ops.mkldnn._reorder_linear_weight(weight, 1),
            persistent=False)
        bias = linear.bias
        self.register_buffer('bias', None if bias is None else bias.detach(),
                             persistent=False)
        self.weight_bytes = weight.numel() * weight.element_size()

    def forward(self, x):
        """``F.linear(x, weight, bias)``, from the packed weight."""
        return torch.ops.mkldnn._linear_pointwise(
            x, self.packed_weight, self.bias, 'none', [], '')


class Int8Linear(torch.nn.Module):
    """An ``nn.Linear`` with int8 weights (torch dynamic quantization)."""

    def __init__(self, linear):
        super().__init__()
        import warnings
        self.in_features = linear.in_features
        self.out_features = linear.out_features
        plain = torch.nn.Linear(self.in_features, self.out_features,
                                bias=linear.bias is not None)
        with torch.no_grad():
            plain.weight.copy_(linear.weight.float())
            if linear.bias is not None:
                plain.bias.copy_(linear.bias.float())
        with warnings.catch_warnings():
            # torch marks its eager quantization as headed for torchao,
            # whose int8 CPU kernels are 10-20x slower without compile.
            warnings.simplefilter('ignore')
            from torch.ao.nn.quantized.dynamic import Linear as DynamicLinear
            from torch.ao.quantization import per_channel_dynamic_qconfig
            plain.qconfig = per_channel_dynamic_qconfig
            self.inner = DynamicLinear.from_float(plain)
        self.weight_bytes = self.in_features * self.out_features

    def forward(self, x):
        """Float32 in, int8 matmul, back in ``x``'s dtype."""
        return self.inner(x.float()).to(x.dtype)


def packing_exact(sample):
    """Return whether a PackedLinear equals F.linear here (``sample``'s K)."""
    probe = torch.nn.Linear(sample.in_features, 8, bias=True).to(
        sample.weight.dtype)
    x = torch.randn(3, sample.in_features).to(sample.weight.dtype)
    try:
        with torch.inference_mode():
            ours = PackedLinear(probe)(x)
            theirs = torch.nn.functional.linear(x, probe.weight, probe.bias)
    except RuntimeError:            # an operator this build lacks
        return False
    return torch.equal(ours, theirs)


def _language_model(model):
    """Return the language model of a vision-language model, or None."""
    for owner in (model, getattr(model, 'model', None)):
        part = getattr(owner, 'language_model', None)
        if isinstance(part, torch.nn.Module):
            return part
    return None


def _language_linears(model):
    """(parent, name, linear) of the language model's and head's Linears."""
    language = _language_model(model)
    if language is None:
        return []
    head = model.get_output_embeddings() if hasattr(
        model, 'get_output_embeddings') else None
    found, seen = [], set()
    for root in (language, model):
        for parent in root.modules():
            for name, child in parent.named_children():
                if type(child) is not torch.nn.Linear or id(child) in seen:
                    continue
                if root is model and child is not head:
                    continue
                seen.add(id(child))
                found.append((parent, name, child))
    return found


def _kernel(model, quantize):
    """
    Return ``(kernel, linears, note)``.

    ``kernel``: (swapped module class, what it does), or None;
    ``note``: why no kernel applies where that is news ('' otherwise).
    """
    if quantize not in QUANTIZE_CHOICES:
        raise ValueError(f"quantize '{quantize}' is not one of "
                         + ', '.join(QUANTIZE_CHOICES))
    linears = _language_linears(model)
    if not linears:
        return None, linears, ''
    weight = linears[0][2].weight
    if weight.device.type != 'cpu':
        if quantize == 'int8':
            raise RuntimeError(f'quantize int8 runs on a CPU, the model is '
                               f'on {weight.device}')
        return None, linears, ''
    if quantize == 'int8':
        return (Int8Linear, 'int8 weights per output channel (torch '
                'dynamic quantization)'), linears, ''
    if weight.dtype == torch.bfloat16 and packing_available():
        if not packing_exact(linears[0][2]):
            return None, linears, (
                'oneDNN-prepacked bfloat16 linears differ from F.linear on '
                'this CPU: the plain layers are kept')
        return (PackedLinear, 'bfloat16 weights prepacked by oneDNN'), \
            linears, ''
    return None, linears, ''


def _summary(what, linears, swapped):
    before = sum(lin.weight.numel() * lin.weight.element_size()
                 for _, _, lin in linears)
    after = sum(module.weight_bytes for module in swapped)
    return (f'{len(linears)} linear layers of the language model: {what} '
            f'({before / 2**20:.0f} -> {after / 2**20:.0f} MiB)')


def speed_up_language_model(model, quantize='none'):
    """
    Swap the language model's Linear layers for faster CPU kernels.

    ``quantize`` is ``none`` (bfloat16 weights are prepacked; float32 and
    float16 ones stay as they are) or ``int8``.  Returns one line saying
    what was done ('' when nothing was, or why not where that is news).
    Raises ValueError for another ``quantize``, RuntimeError when int8 is
    asked of a non-CPU model.
    """
    kernel, linears, note = _kernel(model, quantize)
    if kernel is None:
        return note
    swapped = []
    for parent, name, linear in linears:
        swapped.append(kernel[0](linear))
        setattr(parent, name, swapped[-1])
    # The originals' pages (mapped from the checkpoint) are dead weight now,
    # but for a weight still in use (a head tied to the input embedding).
    alive = {p.data_ptr() for p in model.parameters()}
    page_out(file_backed(tensor_ranges(
        linear.weight for _, _, linear in linears
        if linear.weight.data_ptr() not in alive)))
    return _summary(kernel[1], linears, swapped)


def sped_up_copy(model, quantize='none'):
    """
    Return ``(copy, line)``: ``model`` with faster kernels, left as it was.

    The copy has the kernels of :func:`speed_up_language_model`.  Only the
    language model is copied, and its Linear weights are not (each is
    swapped straight from the original), so a benchmark can time both.
    Returns ``(model, '')`` when no kernel applies.
    """
    import copy
    kernel, linears, note = _kernel(model, quantize)
    if kernel is None:
        return model, note
    memo = {}
    for _, _, linear in linears:
        memo[id(linear)] = kernel[0](linear)
    swapped = list(memo.values())
    clone = copy.copy(model)
    clone._modules = dict(model._modules)
    holder = model if 'language_model' in model._modules else model.model
    language = copy.deepcopy(holder._modules['language_model'], memo)
    if holder is model:
        clone._modules['language_model'] = language
    else:
        inner = copy.copy(holder)
        inner._modules = dict(holder._modules)
        inner._modules['language_model'] = language
        clone._modules['model'] = inner
    for name, module in model._modules.items():
        if id(module) in memo:              # the output head
            clone._modules[name] = memo[id(module)]
    return clone, _summary(kernel[1], linears, swapped)
