"""
Open the caption memory a node or the recall tool is given.

No ROS import.  ``memory_url`` (``postgresql://…``) chooses PostgreSQL;
otherwise the SQLite file ``memory_path``, by default
``$ROS_HOME/camera_caption/memory.db`` (``ROS_HOME`` defaults to
``~/.ros``, where ROS keeps its logs).
"""

import os

from camera_caption.memory.records import MemoryStoreError
from camera_caption.memory.url_secrets import redact

URL_SCHEMES = ('postgresql://', 'postgres://')


def default_memory_path():
    """Return where the memory lives when ``memory_path`` is empty."""
    home = os.environ.get('ROS_HOME') or os.path.join(
        os.path.expanduser('~'), '.ros')
    return os.path.join(home, 'camera_caption', 'memory.db')


def open_store(path='', url='', read_only=False):
    """Return the :class:`CaptionStore` of ``url`` or ``path``."""
    if url:
        if not url.startswith(URL_SCHEMES):
            raise MemoryStoreError(
                f"memory_url '{redact(url)[:80]}' is not a postgresql:// "
                'URL')
        from camera_caption.memory.postgres_store import PostgresStore
        return PostgresStore(url, read_only=read_only)
    from camera_caption.memory.sqlite_store import SQLiteStore
    return SQLiteStore(path or default_memory_path(), read_only=read_only)


def describe(store):
    """Say in a few words where ``store`` keeps the captions."""
    return f'{store.kind} {store.path}'
