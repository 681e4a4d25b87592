"""Process-wide settings a long live session needs.

Why `limit_malloc_arenas`: every start runs new worker, pacer and source threads, and glibc gives threads their
own malloc arenas (up to 8 per core), each keeping the memory freed into it. A live call with restarts and
portrait switches then grew ~4-8 MB per restart until every arena existed (the issue-23 soak: +79 MB over ten
minutes with 20 restarts, official-size lite mode; with two arenas the same run stays flat). Frames and
atlases are large, short-lived allocations, so two arenas cost no measurable speed here. glibc only; a no-op
elsewhere and when MALLOC_ARENA_MAX is set by the user.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import os
import sys

M_ARENA_MAX = -8  # glibc's mallopt parameter number
ARENAS = 2

_done = False


def limit_malloc_arenas(arenas: int = ARENAS) -> bool:
    """Cap glibc's malloc arenas for threads created from now on; True when applied."""
    global _done
    if _done or not sys.platform.startswith("linux") or "MALLOC_ARENA_MAX" in os.environ:
        return _done
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        _done = bool(libc.mallopt(M_ARENA_MAX, arenas))
    except (OSError, AttributeError):  # not glibc (musl, ...): nothing to tune
        _done = False
    return _done
