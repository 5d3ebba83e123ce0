"""The ``watch`` parameter's syntax: comma-separated regular expressions."""

import re


def split_watch(value):
    """Return the patterns of a ``watch`` value (string or list), stripped."""
    if isinstance(value, str):
        items = value.split(',')
    elif isinstance(value, (list, tuple)) and all(
            isinstance(item, str) for item in value):
        items = list(value)
    else:
        raise ValueError('must be a string of comma-separated patterns or '
                         'a list of strings')
    return tuple(item.strip() for item in items if item.strip())


def compile_patterns(patterns):
    """Compile ``patterns`` (case-insensitive); raise ValueError naming one."""
    compiled = []
    for pattern in patterns:
        if any(ord(c) < 0x20 or 0x7f <= ord(c) < 0xa0 for c in pattern):
            raise ValueError(
                f'pattern {pattern!r} contains a control character (write '
                r'\x1b, \n ... as a regular expression escape)')
        try:
            compiled.append(re.compile(pattern, re.IGNORECASE))
        except re.error as exc:
            raise ValueError(
                f'pattern {pattern!r} is not a regular expression: '
                f'{exc}') from None
    return tuple(compiled)
