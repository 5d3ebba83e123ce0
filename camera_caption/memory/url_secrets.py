"""
A database URL made fit to print: without its password.

No ROS import.  :func:`redact` is what errors and ``/diagnostics`` show;
:func:`secrets_of` is what must never appear in a message.
"""

import re
from urllib.parse import unquote


def redact(url):
    """Return ``url`` without its password (userinfo or ``password=``)."""
    text = str(url)
    parts = re.match(r'^([A-Za-z][\w+.-]*://)([^/?#]*)([^?#]*)(\?[^#]*)?(.*)$',
                     text, re.S)
    if not parts:                    # a libpq 'key=value' string
        return re.sub(r"(password\s*=\s*)('(\\.|[^'])*'|\S+)", r'\1***', text)
    scheme, netloc, path, query, rest = parts.groups('')
    if '@' in netloc:
        user, host = netloc.rsplit('@', 1)
        netloc = user.split(':', 1)[0] + '@' + host
    kept = [pair for pair in query[1:].split('&')
            if pair and pair.split('=', 1)[0].lower() != 'password']
    return scheme + netloc + path + ('?' + '&'.join(kept) if kept else '') + rest


def secrets_of(url):
    """Return the password in ``url``, as written and decoded."""
    text = str(url)
    found = re.findall(r'://[^/?#@:]*:([^/?#@]*)@', text) + re.findall(
        r"password\s*=\s*'?([^&'\s]+)", text)
    return sorted({form for word in found for form in (word, unquote(word))}
                  - {''}, key=len, reverse=True)
