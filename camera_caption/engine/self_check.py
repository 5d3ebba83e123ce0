"""
Compare the fast path with ``generate()``, token by token and logit by logit.

No ROS import.  :func:`compare_with_generate` takes ``generate()``'s tokens
and scores, and the fast path's logits when those same tokens are fed to
it (teacher forcing), and says what differs beyond :data:`TOLERANCE`.
"""

from camera_caption.engine.fast_blip2 import cut_at_eos
import torch


# Logit tolerance of the self-check, relative to the largest |logit| (at
# least 1): kernels that sum in another order differ by about the dtype's
# rounding, accumulated over the layers.
TOLERANCE = {torch.float32: 1e-3, torch.float16: 3e-2,
             torch.bfloat16: 8e-2}


def compare_with_generate(reference, reference_logits, rows, forced_logits,
                          eos, tolerance):
    """
    Judge the fast path against ``generate()`` on the same inputs.

    ``reference`` (B, T) are generate()'s new tokens and
    ``reference_logits`` (B, T, V) its logits; ``rows`` are the fast path's
    free-running tokens (cut at EOS) and ``forced_logits`` its logits with
    generate()'s tokens fed step by step.  Returns '' when, for every
    sequence, the teacher-forced logits agree within ``tolerance`` x the
    largest |logit| up to generate()'s EOS, and the free-running tokens are
    the same, of the same length and with the same EOS, unless they part
    at a near-tie of generate()'s logits (then later tokens may differ).
    Otherwise, what is wrong.
    """
    reference_logits = reference_logits.float()
    forced_logits = forced_logits.float()
    scale = max(1.0, float(reference_logits.abs().max()))
    tol = tolerance * scale
    for r, ref_row in enumerate(reference):
        ref = cut_at_eos(ref_row.tolist() if hasattr(ref_row, 'tolist')
                         else ref_row, eos)
        n = len(ref)
        if forced_logits.shape[1] < n:
            return (f'sequence {r}: {forced_logits.shape[1]} teacher-forced '
                    f'steps for {n} tokens')
        diff = (forced_logits[r, :n] - reference_logits[r, :n]).abs()
        worst = diff.amax(dim=-1)
        step = int(worst.argmax())
        if float(worst[step]) > tol:
            return (f'sequence {r}: logits differ by {float(worst[step]):.3g}'
                    f' at step {step} (tolerance {tol:.3g})')
        ours = list(rows[r])
        if ours == ref:
            continue
        i = next((k for k, (a, c) in enumerate(zip(ours, ref)) if a != c),
                 min(len(ours), n))
        if i >= len(ours):
            return (f'sequence {r}: stopped after {len(ours)} of {n} tokens '
                    f'(generate(): {ref}, fast: {ours})')
        if i >= n:
            return (f'sequence {r}: {len(ours)} tokens where generate() '
                    f'ended after {n} (generate(): {ref}, fast: {ours})')
        margin = float(reference_logits[r, i, ref[i]]
                       - reference_logits[r, i, ours[i]])
        if margin > 2 * tol:
            return (f'sequence {r}: token {i} is {ours[i]}, generate() has '
                    f'{ref[i]} by a margin of {margin:.3g} (near-tie limit '
                    f'{2 * tol:.3g})')
    return ''
