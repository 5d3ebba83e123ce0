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


def others_on(domain, wait=1.0):
    """
    Return the names of nodes already on ``domain`` (on this host).

    A short look at the graph, so that a run never joins a robot's or a
    user's live domain: lock files only keep our own runs apart.
    """
    import time

    import rclpy
    localhost_only()
    context = rclpy.Context()
    rclpy.init(context=context, domain_id=domain)
    try:
        node = rclpy.create_node('camera_caption_domain_probe',
                                 context=context)
        deadline = time.monotonic() + wait
        while True:
            names = [name for name, _ in node.get_node_names_and_namespaces()
                     if name != node.get_name()]
            if names or time.monotonic() > deadline:
                node.destroy_node()
                return names
            time.sleep(0.05)
    finally:
        context.try_shutdown()


def pick_domain_id(first=10, last=100, probe=True):
    """
    Lock and return a free domain id in [first, last).

    Free means: no run of ours holds its lock, and (with ``probe``) no
    other node answers on it.
    """
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
        if probe and others_on(domain):
            handle.close()             # someone's graph: leave it alone
            continue
        _held.append(handle)
        return domain
    raise RuntimeError(f'no free ROS domain id in [{first}, {last})')
