"""
Pick a ROS_DOMAIN_ID that no other run of ours on this host is using.

Tests, the soak and the benchmarks each take a domain by locking
``/tmp/camera_caption-domain-<N>.lock`` (released when the process ends),
so runs side by side never see each other's topics.
"""

import fcntl
import os
import tempfile

_held = []


def pick_domain_id(first=10, last=100):
    """Lock and return a free domain id in [first, last)."""
    span = last - first
    start = os.getpid() % span
    for i in range(span):
        domain = first + (start + i) % span
        path = os.path.join(tempfile.gettempdir(),
                            f'camera_caption-domain-{domain}.lock')
        handle = open(path, 'w')
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            handle.close()
            continue
        _held.append(handle)
        return domain
    raise RuntimeError(f'no free ROS domain id in [{first}, {last})')
