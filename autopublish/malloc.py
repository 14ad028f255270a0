"""Fewer glibc malloc arenas, so a poll cycle's threads do not each keep their own freed memory.

glibc gives threads up to 8 arenas per core; memory freed in one stays there for reuse by that
arena only. The fetch pool's threads parse, build and free megabytes per feed, so every arena
grows to its own high-water mark: with 16 fetch threads, about 5 MB more peak RSS over a
1,000-feed cycle than with two arenas (bench/scale.py). The usual fix is MALLOC_ARENA_MAX=2 in
the environment; this applies the same limit from inside, for however autopublish is started.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools
import os

ARENAS = 2
_M_ARENA_MAX = -8  # glibc's malloc.h


@functools.cache
def cap_arenas(arenas: int = ARENAS) -> bool:
    """Limit glibc's malloc arenas (once, before threads start); False where it does not apply.

    An administrator's own MALLOC_ARENA_MAX wins; other C libraries (musl, macOS) are left alone.
    """
    if os.environ.get("MALLOC_ARENA_MAX") or not _glibc():
        return False
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6")
        return bool(libc.mallopt(_M_ARENA_MAX, arenas))
    except (OSError, AttributeError):
        return False


def _glibc() -> bool:
    try:
        return (os.confstr("CS_GNU_LIBC_VERSION") or "").startswith("glibc")
    except (ValueError, OSError, AttributeError):  # not a glibc system
        return False
