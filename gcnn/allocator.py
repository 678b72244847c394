"""Keep freed memory in the process: no page faults on every fresh activation buffer.

A CPU training step or eval pass at batch 128 allocates activation buffers
of tens of MB and frees them again.  glibc's malloc serves such sizes with
fresh ``mmap`` pages (or trims them off the heap when freed), so each buffer
is faulted in again, page by page, on every pass: about 10% of a training
step of the shipped designs on a 2-core CPU, and a varying share that makes
benchmark timings depend on allocation order.  Raising the two thresholds
keeps freed memory for reuse: once the first few passes have grown the heap
to the working set, no more page faults (the process's memory then stays at
its peak).
"""

from __future__ import annotations

import ctypes
import sys

__all__ = ["retain_freed_memory"]

# mallopt parameters, from glibc's <malloc.h>
_M_TRIM_THRESHOLD = -1
_M_MMAP_THRESHOLD = -3


def retain_freed_memory() -> bool:
    """Ask glibc's malloc to keep freed memory for reuse; ``False`` where that is not possible (not Linux, not
    glibc, or refused).  Process-wide: meant for programs such as ``python -m gcnn.train``, not for libraries."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        mallopt = ctypes.CDLL("libc.so.6").mallopt
    except (OSError, AttributeError):  # another C library (e.g. musl)
        return False
    # Allocations up to 1 GiB come from the heap, and the heap is never trimmed.
    return bool(mallopt(_M_MMAP_THRESHOLD, 1 << 30)) and bool(mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))
