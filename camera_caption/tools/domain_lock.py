"""
Keep our own DDS traffic private: on this host, on a domain of its own.

Tests, the soak and the benchmarks each take a domain by locking
``/tmp/camera_caption-domain-<N>.lock`` (released when the process ends),
so runs side by side never see each other's topics, and keep discovery on
localhost with the switch the distro reads (:func:`localhost_only`).
"""

import fcntl
import os
import tempfile

_held = []

# Distros whose rcl reads ROS_LOCALHOST_ONLY; Iron and later read
# ROS_AUTOMATIC_DISCOVERY_RANGE (and warn that ROS_LOCALHOST_ONLY is
# deprecated when it is set).
_LOCALHOST_ONLY_DISTROS = ('foxy', 'galactic', 'humble')


def localhost_only(environ=None):
    """
    Set the variables that keep DDS discovery on this host; return them.

    Values already in ``environ`` (default ``os.environ``) are kept.
    """
    environ = os.environ if environ is None else environ
    wanted = {'ROS_AUTOMATIC_DISCOVERY_RANGE': 'LOCALHOST'}
    if environ.get('ROS_DISTRO', '').lower() in _LOCALHOST_ONLY_DISTROS:
        wanted['ROS_LOCALHOST_ONLY'] = '1'
    for name, value in wanted.items():
        environ.setdefault(name, value)
    return {name: environ[name] for name in wanted}


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
