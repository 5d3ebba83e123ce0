"""
``ros2 run camera_caption recall``: search the caption memory from a shell.

No ROS needed: it reads the database itself (SQLite at ``--memory_path``,
by default where the caption_memory node writes, or PostgreSQL at
``--memory_url``), also while the node writes.  Examples::

    recall "red square" --since 10m
    recall "green triangle" --last
    recall --between 14:00 14:10 --camera /front
    recall --between 1h 0s --export last-hour.srt
    recall 赤い箱 --json

Each match is one line: local time, camera and caption (``×N until T``
when N identical captions came in a row).  Exit status 0 when something
matched, 1 when nothing did, 2 on a bad option or an unreadable memory.
"""

import argparse
import json
import sys

from camera_caption.memory.export import export_matches
from camera_caption.memory.open_store import default_memory_path, open_store
from camera_caption.memory.recall_query import (DEFAULT_LIMIT, MAX_LIMIT,
                                                query_from_fields)
from camera_caption.memory.records import (iso_time, MemoryInputError,
                                           MemoryStoreError)
from camera_caption.utilities.safe_text import safe_text


def parser():
    """Return the argument parser of ``recall``."""
    p = argparse.ArgumentParser(
        prog='recall', description='Search the captions the caption_memory '
        'node stored: by words, time and camera.')
    p.add_argument('text', nargs='*', help='words that must all occur in '
                   'the caption (any case); the whole text ranks first')
    p.add_argument('--since', metavar='T', help="from time T: '10m' (ago), "
                   "'2h', '14:05' (the last 14:05), an ISO date-time or "
                   'epoch seconds')
    p.add_argument('--until', metavar='T', help='up to time T (as --since)')
    p.add_argument('--between', nargs=2, metavar=('T1', 'T2'),
                   help='every caption from T1 to T2, in time order')
    p.add_argument('--last', action='store_true',
                   help='only when it was last seen')
    p.add_argument('--camera', default='', help='a camera topic or its '
                   'namespace, e.g. /front')
    p.add_argument('--robot', default='', help='only captions stored by '
                   'this robot (a shared PostgreSQL memory)')
    p.add_argument('--limit', type=int, default=0, help=f'most matches '
                   f'(default {DEFAULT_LIMIT}; with --between or --export: '
                   'all)')
    p.add_argument('--json', action='store_true',
                   help='print the matches as JSON')
    p.add_argument('--export', metavar='FILE', help='write the matches, '
                   'oldest first, to FILE (.jsonl, .srt or .vtt)')
    p.add_argument('--memory_path', default='', help='SQLite file '
                   f'(default {default_memory_path()})')
    p.add_argument('--memory_url', default='', help='postgresql://… '
                   '(instead of memory_path)')
    return p


def query_of(options):
    """Return the RecallQuery the options ask for."""
    fields = {'text': ' '.join(options.text), 'camera': options.camera,
              'robot': options.robot, 'last': options.last}
    if options.between:
        fields.update(since=options.between[0], until=options.between[1],
                      timeline=True)
    if options.since:
        fields['since'] = options.since
    if options.until:
        fields['until'] = options.until
    everything = bool(options.between or options.export)
    fields['limit'] = options.limit or (MAX_LIMIT if everything
                                        else DEFAULT_LIMIT)
    return query_from_fields(fields)


def line_of(match, last=False):
    """Return the printed line of one match."""
    stamp = match.last_stamp if last else match.stamp
    when = iso_time(stamp).replace('T', ' ')[:23]
    text = safe_text(match.caption, 2000)
    more = ''
    if match.repeats > 1 and not last:
        more = (f'  (×{match.repeats} until '
                f'{iso_time(match.last_stamp)[11:23]})')
    return f'{when}  {safe_text(match.camera, 200)}  {text}{more}'


def main(argv=None):
    """Entry point of ``ros2 run camera_caption recall``."""
    options = parser().parse_intermixed_args(argv)
    try:
        query = query_of(options)
        store = open_store(options.memory_path, options.memory_url,
                           read_only=True)
    except (MemoryInputError, MemoryStoreError) as exc:
        print(f'recall: {exc}', file=sys.stderr)
        return 2
    try:
        matches = store.recall(query)
    except (MemoryInputError, MemoryStoreError) as exc:
        print(f'recall: {exc}', file=sys.stderr)
        return 2
    finally:
        store.close()
    if len(matches) == query.limit and (options.between or options.export):
        print(f'recall: stopped at {len(matches)} captions (--limit); '
              'narrow the window (--between, --since, --camera) for the rest',
              file=sys.stderr)
    if options.export:
        try:
            count = export_matches(matches, options.export)
        except (OSError, ValueError) as exc:
            print(f'recall: {exc}', file=sys.stderr)
            return 2
        print(f'wrote {count} captions to {options.export}')
    elif options.json:
        print(json.dumps([m.as_dict() for m in matches], ensure_ascii=False,
                         indent=1))
    else:
        for match in matches:
            print(('last seen ' if options.last else '')
                  + line_of(match, options.last))
    if not matches:
        print('recall: no caption matches', file=sys.stderr)
        return 1
    return 0


if __name__ == '__main__':
    sys.exit(main())
