"""
Give back the resident pages of weights that are no longer used.

No ROS import, no torch import.  ``from_pretrained`` maps a safetensors
file into memory and its tensors point into that mapping; the pages a
tensor touched stay resident (and count in RSS) as long as the file stays
mapped, which is as long as any of its tensors lives.  When the CPU
kernels replace the language model's weights with prepacked or int8
copies, the originals' pages are dead weight: :func:`page_out` asks the
kernel to reclaim them (``madvise(MADV_PAGEOUT)``, Linux 5.4+).  It is only
a hint and loses nothing: a page read again is read from the file.  Only
file-backed mappings are advised (:func:`file_backed`): weights in ordinary
memory (a checkpoint loaded in another dtype) are freed by Python anyway,
and paging them out would only write them to swap first.
"""

import ctypes
import os

MADV_PAGEOUT = 21


def _madvise():
    try:
        libc = ctypes.CDLL('libc.so.6', use_errno=True)
    except OSError:
        return None
    madvise = libc.madvise
    madvise.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
    madvise.restype = ctypes.c_int
    return madvise


def page_out(ranges):
    """
    Ask the kernel to reclaim the whole pages inside ``ranges``.

    ``ranges``: (address, bytes) pairs.  Pages that a range only partly
    covers are left alone (a neighbour may use them).  Returns the bytes
    advised; 0 where the system has no ``madvise`` or refuses it.
    """
    madvise = _madvise()
    if madvise is None:
        return 0
    page = os.sysconf('SC_PAGE_SIZE')
    advised = 0
    for address, size in ranges:
        start = -(-address // page) * page
        end = (address + size) // page * page
        if end > start and madvise(start, end - start, MADV_PAGEOUT) == 0:
            advised += end - start
    return advised


def file_backed(ranges, maps='/proc/self/maps'):
    """Return the parts of ``ranges`` that lie in file-backed mappings."""
    try:
        with open(maps, encoding='utf-8') as f:
            lines = f.read().splitlines()
    except OSError:
        return []
    mapped = []
    for line in lines:
        fields = line.split(None, 5)
        if len(fields) == 6 and fields[4] != '0' and \
                fields[5].startswith('/'):
            start, end = (int(x, 16) for x in fields[0].split('-'))
            mapped.append((start, end))
    out = []
    for address, size in ranges:
        for start, end in mapped:
            lo, hi = max(address, start), min(address + size, end)
            if hi > lo:
                out.append((lo, hi - lo))
    return out


def tensor_ranges(tensors):
    """(address, bytes) of each tensor's data (CPU tensors)."""
    return [(t.data_ptr(), t.numel() * t.element_size()) for t in tensors
            if t.device.type == 'cpu' and t.numel()]
