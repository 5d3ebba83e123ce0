"""flake8 through ament_flake8, as ROS 2 packages run it."""

import os
import subprocess
import sys

import pytest

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


@pytest.mark.flake8
@pytest.mark.linter
def test_flake8():
    # In a fresh process: flake8 forks a pool of workers, and forking this
    # one, which runs torch and rclpy threads, can crash or hang a child.
    result = subprocess.run(
        [sys.executable, '-c', 'import sys; from ament_flake8.main import '
         'main_with_errors; rc, _ = main_with_errors(argv=[]); sys.exit(rc)'],
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
        text=True, timeout=600)
    assert result.returncode == 0, result.stdout
