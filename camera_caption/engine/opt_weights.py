"""
Surgery on OPT's weights for the fast path, and what one step reads.

No ROS import.  :func:`opt_parts` finds the decoder and the output head of
a BLIP-2/OPT model; :func:`fuse_linears` puts the q, k and v projections of
a layer into one weight (the HF modules keep working on views of it);
:func:`decoder_weight_bytes` is what one decode step reads from memory,
the floor the GPU check compares with.
"""

import torch


def opt_parts(model):
    lm = model.language_model
    decoder = lm.model.decoder if hasattr(lm, 'model') else lm.decoder
    head = model.get_output_embeddings()
    if head is None:
        head = lm.get_output_embeddings()
    return decoder, head


def fuse_linears(linears):
    """Fuse Linear layers into one weight/bias; the modules keep views."""
    weight = torch.cat([lin.weight.data for lin in linears], dim=0)
    bias = None
    if linears[0].bias is not None:
        bias = torch.cat([lin.bias.data for lin in linears], dim=0)
    start = 0
    for lin in linears:
        rows = lin.weight.shape[0]
        lin.weight.data = weight[start:start + rows]
        if bias is not None:
            lin.bias.data = bias[start:start + rows]
        start += rows
    return weight, bias


def decoder_weight_bytes(model):
    """
    Bytes of OPT weights one decode step reads (layers, norms, head).

    A layer swapped for a CPU kernel (:mod:`~camera_caption.engine.
    cpu_linears`) counts its own ``weight_bytes`` (int8: one per weight).
    """
    decoder, head = opt_parts(model)
    seen, total = set(), 0
    modules = [m for name, m in decoder.named_modules()
               if not name.startswith(('embed_tokens', 'embed_positions'))]
    for module in modules + list(head.modules()):
        if hasattr(module, 'weight_bytes'):
            if id(module) not in seen:
                seen.add(id(module))
                total += module.weight_bytes
            continue
        for p in module.parameters(recurse=False):
            if p.data_ptr() not in seen:
                seen.add(p.data_ptr())
                total += p.numel() * p.element_size()
    return total
