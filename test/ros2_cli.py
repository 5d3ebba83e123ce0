"""
The real ``ros2`` command line for tests, as a user would type it.

Found, in this order: ``CAMERA_CAPTION_ROS2_SETUP`` (a script to source:
``/opt/ros/<distro>/setup.bash`` or the ``activate.sh`` that
``shared/tools/build_ros2cli.sh`` writes, which ``scripts/test.sh`` builds
where those sources exist), a ``ros2`` already on ``PATH``, then
``/opt/ros/*/setup.bash``.  Where there is none, the tests that need it
skip and say why; with ``CI`` or ``CAMERA_CAPTION_REQUIRE_ROS2`` set they
fail instead.  Commands run in ``bash`` (so a README line is parsed as a
shell parses it) with the installed camera_caption on the ament and
Python paths, on the test run's own ROS domain.
"""

import glob
import os
import shutil
import signal
import subprocess
import threading
import time

import pytest


def ros2_setup():
    """Return (script to source or '', '') or (None, why there is none)."""
    given = os.environ.get('CAMERA_CAPTION_ROS2_SETUP', '')
    if given:
        if os.path.isfile(given):
            return given, ''
        return None, f'CAMERA_CAPTION_ROS2_SETUP={given} does not exist'
    if shutil.which('ros2'):
        return '', ''
    installs = sorted(glob.glob('/opt/ros/*/setup.bash'))
    if installs:
        return installs[-1], ''
    return None, ('no ros2 command line: no ROS 2 install (/opt/ros), no '
                  'ros2 on PATH and no CAMERA_CAPTION_ROS2_SETUP (scripts/'
                  'test.sh builds one where ../shared/tools/build_ros2cli.sh '
                  'exists)')


def require_ros2():
    """Skip (or, in CI, fail) the calling test when there is no ros2 CLI."""
    setup, why = ros2_setup()
    if setup is None:
        if os.environ.get('CI') or os.environ.get(
                'CAMERA_CAPTION_REQUIRE_ROS2'):
            pytest.fail(f'the real ros2 CLI is required here: {why}')
        pytest.skip(why)
    return setup


def package_prefix():
    """Return the install prefix of camera_caption (colcon's install)."""
    import camera_caption
    here = os.path.dirname(os.path.abspath(camera_caption.__file__))
    # <prefix>/lib/pythonX.Y/site-packages/camera_caption
    prefix = os.path.dirname(os.path.dirname(os.path.dirname(
        os.path.dirname(here))))
    if os.path.isdir(os.path.join(prefix, 'share', 'camera_caption',
                                  'launch')):
        return prefix
    from ament_index_python.packages import get_package_prefix
    return get_package_prefix('camera_caption')


def _script(command):
    setup = require_ros2()
    prefix = package_prefix()
    site = glob.glob(os.path.join(prefix, 'lib', 'python3*',
                                  'site-packages'))
    lines = ['set -e']
    if setup:
        lines.append(f'source {setup!r} >/dev/null')
    lines += [f'export AMENT_PREFIX_PATH={prefix!r}'
              '${AMENT_PREFIX_PATH:+:$AMENT_PREFIX_PATH}',
              f'export PYTHONPATH={":".join(site)!r}'
              '${PYTHONPATH:+:$PYTHONPATH}',
              'set +e', command]
    return '\n'.join(lines)


def env():
    """Return the environment of a ros2 command: ours, on our domain."""
    environ = dict(os.environ, PYTHONUNBUFFERED='1')
    environ.pop('PYTHONDONTWRITEBYTECODE', None)
    return environ


def run(command, timeout=60):
    """Run a shell command line with ros2; return (exit status, output)."""
    proc = subprocess.run(['bash', '-c', _script(command)], env=env(),
                          stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)
    return proc.returncode, proc.stdout


class Running:
    """A long-running ros2 command (launch, echo) in its own session."""

    def __init__(self, command, **env_changes):
        environ = env()
        environ.update(env_changes)
        self.proc = subprocess.Popen(
            ['bash', '-c', _script('exec ' + command)], env=environ,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
            stdin=subprocess.DEVNULL, start_new_session=True)
        self.lines = []
        self._changed = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self):
        for line in self.proc.stdout:
            with self._changed:
                self.lines.append(line.rstrip('\n'))
                self._changed.notify_all()
        with self._changed:
            self._changed.notify_all()

    @property
    def output(self):
        """Everything printed so far, one string."""
        with self._changed:
            return '\n'.join(self.lines)

    def wait_for(self, predicate, timeout, start=0):
        """Wait for a line (index >= ``start``) that satisfies ``predicate``."""
        deadline = time.monotonic() + timeout
        with self._changed:
            while True:
                for line in self.lines[start:]:
                    if predicate(line):
                        return line
                left = deadline - time.monotonic()
                if left <= 0 or (self.proc.poll() is not None
                                 and not self._reader.is_alive()):
                    return None
                self._changed.wait(min(left, 0.5))

    def ctrl_c(self, timeout=15):
        """
        Send SIGINT to the whole session, as a terminal's Ctrl-C does.

        Returns (exit status, seconds to exit, {pid: seconds to end}) for
        the processes that launch reported as started.
        """
        pids = [int(line.rsplit('[', 1)[1].rstrip(']'))
                for line in self.lines if 'process started with pid [' in
                line]
        ended = {}
        sent = time.monotonic()
        os.killpg(self.proc.pid, signal.SIGINT)
        while time.monotonic() - sent < timeout:
            for pid in pids:
                if pid not in ended and not _alive(pid):
                    ended[pid] = time.monotonic() - sent
            if self.proc.poll() is not None and len(ended) == len(pids):
                break
            time.sleep(0.01)
        try:
            status = self.proc.wait(max(0.1, timeout - (time.monotonic()
                                                        - sent)))
        except subprocess.TimeoutExpired:
            self.kill()
            status = None
        took = time.monotonic() - sent
        self._reader.join(5)
        return status, took, ended

    def kill(self):
        """End the whole session now (cleanup after a failed test)."""
        if self.proc.poll() is None:
            try:
                os.killpg(self.proc.pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
            self.proc.wait(10)


def _alive(pid):
    """Whether ``pid`` runs (a zombie, exited but not reaped, does not)."""
    try:
        with open(f'/proc/{pid}/stat') as f:
            return f.read().rsplit(')', 1)[1].split()[0] != 'Z'
    except (OSError, IndexError):     # gone between open and read too
        return False


def stop_daemon():
    """Stop the ros2 daemon of our domain, which ros2 commands started."""
    if ros2_setup()[0] is not None:
        run('ros2 daemon stop', timeout=30)
