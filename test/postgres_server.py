"""
A throw-away PostgreSQL server for the memory tests (unix socket only).

:func:`postgres_server` runs ``initdb`` and ``pg_ctl start`` in a new temp
folder and yields the server's admin URL; :func:`new_database` makes one
database on it per test.  The role ``robot``, once a test creates it,
logs in with its password; every other role is trusted.  PostgreSQL
refuses to run as root: as root the server runs as ``nobody``.  Without
server binaries or psycopg the tests skip, or fail where ``CI`` or
``CAMERA_CAPTION_REQUIRE_POSTGRES`` is set.
"""

import contextlib
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile

import pytest

_names = itertools.count()


def skip_or_fail(why):
    """Skip the test, or fail it where CI must run it."""
    if os.environ.get('CI') or os.environ.get('CAMERA_CAPTION_REQUIRE_POSTGRES'):
        pytest.fail(why + ' (CI or CAMERA_CAPTION_REQUIRE_POSTGRES is set)',
                    pytrace=False)
    pytest.skip(why)


def server_binaries():
    """Return the folder of initdb and pg_ctl, or None."""
    on_path = shutil.which('initdb'), shutil.which('pg_ctl')
    if all(on_path):
        return os.path.dirname(os.path.realpath(on_path[1]))
    found = sorted(glob.glob('/usr/lib/postgresql/*/bin/pg_ctl'),
                   key=lambda path: int(path.split('/')[4])
                   if path.split('/')[4].isdigit() else 0)
    return os.path.dirname(found[-1]) if found else None


def driver_or_skip():
    """Return the PostgreSQL driver module, or skip (fail in CI)."""
    from camera_caption.memory.postgres_store import driver
    from camera_caption.memory.records import MemoryStoreError
    try:
        return driver()
    except MemoryStoreError as exc:
        skip_or_fail(str(exc))


def _free_port():
    with socket.socket() as probe:
        probe.bind(('127.0.0.1', 0))
        return probe.getsockname()[1]


def _as_server_user():
    """Return subprocess keywords and (uid, gid) that the server runs as."""
    if os.geteuid() != 0:
        return {}, None
    import pwd
    user = pwd.getpwnam('nobody')
    return ({'user': user.pw_uid, 'group': user.pw_gid, 'extra_groups': []},
            (user.pw_uid, user.pw_gid))


@contextlib.contextmanager
def postgres_server():
    """Start a PostgreSQL server; yield its admin URL; stop and delete it."""
    driver_or_skip()
    binaries = server_binaries()
    if binaries is None:
        skip_or_fail('no PostgreSQL server here (initdb, pg_ctl): apt install '
                     'postgresql')
    as_user, owner = _as_server_user()
    # Short path (a unix socket's path has ~100 bytes) in /tmp, which the
    # server's user can reach (pytest's own temp folder is root's alone).
    base = tempfile.mkdtemp(prefix='cc-pg-')
    data, log = os.path.join(base, 'data'), os.path.join(base, 'log')
    if owner:
        os.chown(base, *owner)
    port = _free_port()
    pg_ctl = os.path.join(binaries, 'pg_ctl')

    def run(*args):
        result = subprocess.run(
            args, cwd=base, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, timeout=120, **as_user)
        if result.returncode:
            tail = ''
            if os.path.exists(log):
                with open(log, errors='replace') as file:
                    tail = file.read()[-2000:]
            raise RuntimeError(f'{" ".join(args)} failed: '
                               f'{result.stdout[-2000:]}{tail}')

    started = False
    try:
        run(os.path.join(binaries, 'initdb'), '-D', data, '-U', 'postgres',
            '--auth=trust', '-E', 'UTF8', '--no-locale', '--no-sync')
        # The role 'robot' must give its password (the wrong-password
        # test); every other role is trusted.
        hba = os.path.join(data, 'pg_hba.conf')
        with open(hba) as file:
            rules = file.read()
        with open(hba, 'w') as file:
            file.write('local all robot scram-sha-256\n' + rules)
        run(pg_ctl, '-D', data, '-l', log, '-w', '-t', '60', '-o',
            f"-k {base} -c listen_addresses='' -p {port} -c fsync=off",
            'start')
        started = True
        yield f'postgresql://postgres@/postgres?host={base}&port={port}'
    finally:
        if started:
            run(pg_ctl, '-D', data, '-w', 'stop', '-m', 'immediate')
        shutil.rmtree(base, ignore_errors=True)


def database_url(admin_url, name):
    """Return ``admin_url`` with database ``name`` in place of postgres."""
    return admin_url.replace('@/postgres?', f'@/{name}?', 1)


def new_database(admin_url, prefix='memory'):
    """Create an empty database on the server; return its URL."""
    from camera_caption.memory.postgres_store import connect
    name = f'{prefix}_{os.getpid()}_{next(_names)}'
    db = connect(admin_url)
    try:
        db.cursor().execute(f'CREATE DATABASE {name}')
    finally:
        db.close()
    return database_url(admin_url, name)
