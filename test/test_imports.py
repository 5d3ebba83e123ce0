"""Modules import what their docstrings say, and nothing heavier."""

import os
import pkgutil
import subprocess
import sys

import camera_caption.contract
import pytest

pytestmark = pytest.mark.unit

HERE = os.path.dirname(os.path.abspath(__file__))
LIGHT = ['camera_caption.contract.launch_arguments',
         'camera_caption.nodes.camera_node',
         'camera_caption.nodes.caption_logger_node',
         'camera_caption.engine.openai_backend']


def blocked_import(blocked, modules):
    # The package this test imported, wherever it lies (source or install).
    package_root = os.path.dirname(os.path.dirname(
        os.path.abspath(camera_caption.contract.__file__)))
    env = dict(os.environ)
    env['PYTHONPATH'] = os.pathsep.join(
        [os.path.dirname(package_root)] + [env.get('PYTHONPATH', '')])
    proc = subprocess.run(
        [sys.executable, os.path.join(HERE, 'import_blocker.py'),
         ','.join(blocked)] + modules, env=env, stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT, text=True, timeout=120)
    return proc.returncode, proc.stdout


def test_the_blocker_catches_a_heavy_import():
    status, output = blocked_import(['torch'], [
        'camera_caption.engine.fast_blip2'])
    assert status == 1 and 'FAIL' in output and 'torch' in output, output


def test_light_modules_import_neither_torch_nor_transformers():
    status, output = blocked_import(['torch', 'transformers'], LIGHT)
    assert status == 0, output
    assert output.count('OK ') == len(LIGHT), output


def test_the_contract_imports_nothing_of_the_package_nor_heavy_libraries():
    names = [f'camera_caption.contract.{m.name}' for m in
             pkgutil.iter_modules(camera_caption.contract.__path__)]
    assert len(names) >= 5, names
    status, output = blocked_import(
        ['torch', 'transformers', 'cv2', 'numpy', 'rclpy', 'PIL'], names)
    assert status == 0, output
    for name in names:
        path = os.path.join(os.path.dirname(camera_caption.contract.__file__),
                            name.rsplit('.', 1)[1] + '.py')
        with open(path, encoding='utf-8') as f:
            for line in f:
                if line.startswith(('from camera_caption', 'import camera_')):
                    assert line.startswith('from camera_caption.contract'), (
                        name, line)
