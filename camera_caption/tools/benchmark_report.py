"""
The benchmark's tables: the figures of :mod:`camera_caption.tools.benchmark`.

One row per batch size (or clip length), then a line with the spread of
the interleaved runs and the decode step against the bandwidth floor.
"""

import sys


def print_clip_table(results, out=None):
    """Print the clip results as a table."""
    out = out or sys.stdout
    first = results[0]
    print(f'{first["source"]} on {first["device"]} ({first["dtype"]}), '
          f'{first["new_tokens"]} new tokens, clips on the fast path',
          file=out)
    print(f'{"frames":>6} {"batch":>5} {"ms/caption":>10} '
          f'{"encode ms":>9} {"peak MB":>8}', file=out)
    for r in results:
        peak = '-' if r['fast_peak_mb'] is None else \
            f'{r["fast_peak_mb"]:.0f}'
        print(f'{r["clip_frames"]:>6} {r["batch"]:>5} '
              f'{r["fast_ms_per_caption"]:10.1f} '
              f'{r["fast_encode_ms"]:9.1f} {peak:>8}', file=out)


def agreement(a, b):
    """Share of positions where two token lists agree."""
    pairs = [(x, y) for ra, rb in zip(a, b) for x, y in zip(ra, rb)]
    return sum(x == y for x, y in pairs) / max(1, len(pairs))


def print_table(results, out=None):
    """Print the results as a table."""
    out = out or sys.stdout
    head = (f'{"batch":>5} {"HF ms/cap":>10} {"HF cap/s":>9} '
            f'{"ours ms/cap":>11} {"ours cap/s":>10} {"ms/token":>9} '
            f'{"speed-up":>8} {"HF peak MB":>10} {"our peak MB":>11} '
            f'{"same tokens":>11}')
    # Random weights give near-ties in the logits, where kernels that sum
    # in another order may pick another token; trained weights rarely do.
    first = results[0]
    print(f'{first["source"]} on {first["gpu"]} ({first["dtype"]}), '
          f'{first["new_tokens"]} new tokens; engine: {first["engine"]}; '
          'fast path start-up '
          f'{first["fast_startup_s"]:.1f} s (CUDA graphs: '
          f'{first["cuda_graph"]}), model built in '
          f'{first["model_build_s"]:.1f} s', file=out)
    print(head, file=out)
    for r in results:
        peak = ['-' if r[k] is None else f'{r[k]:.0f}'
                for k in ('hf_peak_mb', 'fast_peak_mb')]
        print(f'{r["batch"]:>5} {r["hf_ms_per_caption"]:10.1f} '
              f'{r["hf_captions_per_s"]:9.1f} '
              f'{r["fast_ms_per_caption"]:11.1f} '
              f'{r["fast_captions_per_s"]:10.1f} '
              f'{r["fast_ms_per_token_step"]:9.2f} {r["speedup"]:7.1f}x '
              f'{peak[0]:>10} {peak[1]:>11} '
              f'{100 * r["token_agreement"]:10.0f}%',
              file=out)
        hf, ours = r['hf_ms_per_caption_min_max'], \
            r['fast_ms_per_caption_min_max']
        print(f'      medians of {r["repeats"]} interleaved runs; HF '
              f'{hf[0]:.1f}-{hf[1]:.1f}, ours {ours[0]:.1f}-{ours[1]:.1f} '
              f'ms/caption; decode step {r["fast_ms_per_token_step"]:.2f} '
              f'ms = {r["fast_step_pct_of_floor"]:.0f}% of the floor '
              f'({r["floor_ms_per_token_step"]:.2f} ms: '
              f'{r["decoder_weight_bytes"] / 1e9:.2f} GB at '
              f'{r["bandwidth_gb_s"]:.1f} GB/s read)', file=out)
        if 'generate_kernels_ms_per_caption' in r:
            low, high = r['generate_kernels_ms_per_caption_min_max']
            print(f'      generate() with the same CPU kernels '
                  f'({r["cpu_kernels"]}): '
                  f'{r["generate_kernels_ms_per_caption"]:.1f} ms/caption '
                  f'({low:.1f}-{high:.1f}); ours '
                  f'{r["speedup_vs_generate_kernels_median"]:.2f}x',
                  file=out)
        if 'fast_unquantized_ms_per_caption' in r:
            print(f'      unquantized fast path '
                  f'{r["fast_unquantized_ms_per_caption"]:.1f} ms/caption, '
                  f'step {r["fast_unquantized_ms_per_token_step_median"]:.2f}'
                  f' ms; int8 step = {r["step_ratio_vs_unquantized"]:.2f}x; '
                  f'int8 logit error max {r["int8_logit_error_max_rel"]:.3g},'
                  f' mean {r["int8_logit_error_mean_rel"]:.3g} (of the '
                  f'largest |logit|), top-1 agreement '
                  f'{100 * r["int8_top1_agreement_teacher_forced"]:.0f}% '
                  f'(teacher-forced), tokens '
                  f'{100 * r["int8_token_agreement"]:.0f}%', file=out)
