"""Hand freed heap memory back to the system.

TensorFlow allocates through the C library's malloc, from many threads. glibc gives each thread
its own arena and returns a freed block to the system only when it lies at the top of its heap,
so what a graph optimizer or a traced graph took for a while stays in the process's resident
memory, and adds to every later peak. `malloc_trim(0)` returns the free pages of every arena.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import functools


def release_freed_memory() -> None:
    """Return the heap's free pages to the system (glibc's `malloc_trim`); a no-op where the
    C library has none (macOS, musl). A few milliseconds."""
    trim = _malloc_trim()
    if trim is not None:
        trim(0)


@functools.cache
def _malloc_trim():
    name = ctypes.util.find_library("c")
    try:
        trim = ctypes.CDLL(name).malloc_trim
    except (OSError, AttributeError, TypeError):  # no such library, or no such function
        return None
    trim.argtypes, trim.restype = [ctypes.c_size_t], ctypes.c_int
    return trim
