"""
The one out-of-memory handler: give the GPU cache back, then re-raise.

No ROS import; torch is imported on use.  A failed inference leaves its
tensors in torch's caching allocator; :func:`releasing_memory_on_oom`
drops them so that the next frame can run, and lets the error go on to
the caller (which logs it and skips that batch).
"""

from contextlib import contextmanager


def release_cuda_cache(device):
    """Return torch's cached GPU memory on a CUDA ``device`` (else no-op)."""
    if str(device).startswith('cuda'):
        import torch
        torch.cuda.empty_cache()


@contextmanager
def releasing_memory_on_oom(device):
    """Run the block; on CUDA out of memory, free the cache and re-raise."""
    import torch
    try:
        yield
    except torch.cuda.OutOfMemoryError:
        release_cuda_cache(device)
        raise
