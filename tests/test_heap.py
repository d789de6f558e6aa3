import ctypes
import platform

import pytest

from submodel_profiler.heap import _malloc_trim, release_freed_memory

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"


def _rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    raise AssertionError("no VmRSS")


@pytest.mark.skipif(not GLIBC, reason="malloc_trim is glibc's")
def test_freed_blocks_below_the_top_of_the_heap_go_back_to_the_system():
    # 100 MB of small blocks (below glibc's mmap threshold), all freed but the last, which
    # pins the top of the heap: free() alone keeps them resident, malloc_trim returns them.
    libc = ctypes.CDLL(None)
    libc.malloc.restype, libc.malloc.argtypes = ctypes.c_void_p, [ctypes.c_size_t]
    libc.free.argtypes = [ctypes.c_void_p]
    libc.memset.argtypes = [ctypes.c_void_p, ctypes.c_int, ctypes.c_size_t]
    assert _malloc_trim() is not None
    blocks = [libc.malloc(4000) for _ in range(25_000)]
    for b in blocks:
        libc.memset(b, 1, 4000)  # touched: resident
    for b in blocks[:-1]:
        libc.free(b)
    held = _rss_mb()
    release_freed_memory()
    released = _rss_mb()
    libc.free(blocks[-1])
    assert held - released > 50, (held, released)


def test_release_is_harmless_twice():
    release_freed_memory()
    release_freed_memory()
