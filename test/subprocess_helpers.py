"""Run Python in a child process, on each of torch's CPU kernel paths."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def cpu_flags():
    """Return the CPU's feature flags (Linux), or an empty set."""
    try:
        with open('/proc/cpuinfo') as f:
            for line in f:
                if line.startswith('flags'):
                    return set(line.split(':', 1)[1].split())
    except OSError:
        pass
    return set()


def cpu_paths():
    """
    (ATEN_CPU_CAPABILITY, threads) pairs to run the demo model on.

    torch trusts ATEN_CPU_CAPABILITY: AVX-512 kernels on a CPU without
    AVX-512 die of an illegal instruction, so that path is a skip (with
    the reason) where the CPU lacks it.
    """
    flags = cpu_flags()
    paths = []
    for capability, flag in (('default', ''), ('avx2', 'avx2'),
                             ('avx512', 'avx512f')):
        for threads in (1, 2):
            marks = []
            if flag and flag not in flags:
                marks = [pytest.mark.skip(reason=f'this CPU has no {flag}')]
            paths.append(pytest.param(capability, threads, marks=marks))
    return paths


def run_python(args, env_changes, timeout=900):
    """Run ``python ARGS`` from the source tree; return (status, output)."""
    env = dict(os.environ, PYTHONUNBUFFERED='1')
    env['PYTHONPATH'] = ROOT + os.pathsep + env.get('PYTHONPATH', '')
    env.update(env_changes)
    proc = subprocess.run([sys.executable] + args, cwd=ROOT, env=env,
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    return proc.returncode, proc.stdout
