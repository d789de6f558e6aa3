"""STREAM copy and add on the host with numpy, on every core this process may run on.

`bandwidth.measure_bandwidth` runs this file in a child process (`python host_stream.py
N_BYTES REPEATS`, which prints the result as one JSON line), so
the arrays never count in the profile's own memory: TensorFlow's CPU allocator keeps what it
once held, and two STREAM arrays allocated through it stayed in every profile's peak (208 MB of
MobileNetV3Large's 1088 MB on the 2-vCPU Xeon VM). The child imports numpy and the standard
library only, never TensorFlow.

With `--wait` (`bandwidth.HostStream`, which a profile starts before it times anything) the
child allocates and touches both arrays first, prints "ready", and runs the kernels only once
it reads "go" on its stdin; at end of file (the profile ended without measuring, or died) it
exits without running them. Touching 2 × 128 MiB for the first time costs 0.2-0.9 s of page
faults on the EPYC VM, which then overlap the profile's counting instead of adding to it.

n float32 per array, each thread on its own contiguous slice; numpy releases the GIL inside
both kernels, so the threads run on the cores side by side:

    copy  b = a      read a, write b:         2 · n · 4 bytes per run
    add   b = b + a  read a and b, write b:   3 · n · 4 bytes per run

Add is STREAM's `a = b + c` with its result written over an input: the traffic of STREAM's
triad (which numpy cannot do in one pass without a temporary array) in one pass, in place, so
two arrays are alive, not three. Bytes are counted as STREAM counts them (bandwidth.py).
"""

from __future__ import annotations

import functools
import json
import os
import statistics
import sys
import time
from concurrent.futures import ThreadPoolExecutor

import numpy as np

FLOAT32_BYTES = 4


def usable_cores() -> int:
    """The cores this process may run on (its affinity), or os.cpu_count() where that is unknown.
    Here, not in the profiler, which uses it too: the child may import nothing of the package."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):  # macOS and Windows have no sched_getaffinity
        return os.cpu_count() or 1


def copy_into(b: np.ndarray, a: np.ndarray, part: slice) -> None:
    """STREAM copy on one thread's slice: b = a."""
    np.copyto(b[part], a[part])


def add_into(b: np.ndarray, a: np.ndarray, part: slice) -> None:
    """STREAM add on one thread's slice, in place: b = b + a."""
    np.add(b[part], a[part], out=b[part])


def allocate(n_bytes: int, touch: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """The two arrays (a of ones, b) of `n_bytes` each, rounded down to whole float32; with
    `touch`, every page of both written once (b a copy of a), so no kernel run faults."""
    n = n_bytes // FLOAT32_BYTES
    a = np.ones(n, np.float32)
    b = np.empty(n, np.float32)
    if touch:
        np.copyto(b, a)
    return a, b


def stream(n_bytes: int, repeats: int, threads: int | None = None, arrays=None) -> dict:
    """Median seconds of `repeats` timed runs of copy and of add on two arrays of `n_bytes`
    (rounded down to whole float32), or on `arrays` (`allocate`'s) where given, each kernel
    warmed by one untimed run (which also touches the pages of b for the first time); the
    arrays are freed before returning, unless the caller holds them.

    Returns {"n": float32 per array, "threads", "repeats", "copy_s", "add_s"}.
    """
    threads = threads or usable_cores()
    a, b = arrays or allocate(n_bytes)
    n = len(a)
    edges = np.linspace(0, n, threads + 1).astype(np.int64)
    slices = [slice(int(lo), int(hi)) for lo, hi in zip(edges[:-1], edges[1:])]

    with ThreadPoolExecutor(threads) as pool:

        def run(kernel) -> float:
            start = time.perf_counter()
            for _ in pool.map(kernel, slices):
                pass
            return time.perf_counter() - start

        medians = {}
        for name, kernel in (("copy", copy_into), ("add", add_into)):
            on_slice = functools.partial(kernel, b, a)
            run(on_slice)  # untimed
            medians[f"{name}_s"] = statistics.median([run(on_slice) for _ in range(repeats)])
    del a, b
    return {"n": n, "threads": threads, "repeats": repeats, **medians}


def main(argv: list[str]) -> int:
    """`N_BYTES REPEATS [--wait]`: print `stream`'s result as one JSON line; with --wait, first
    allocate and touch the arrays, print "ready", and run only once stdin says "go"."""
    if len(argv) not in (2, 3) or argv[2:] not in ([], ["--wait"]):
        print("usage: host_stream.py N_BYTES REPEATS [--wait]", file=sys.stderr)
        return 2
    wait = argv[2:] == ["--wait"]
    n_bytes, repeats = (int(value) for value in argv[:2])
    arrays = None
    if wait:
        arrays = allocate(n_bytes, touch=True)
        print("ready", flush=True)
        if sys.stdin.readline().strip() != "go":
            return 0  # end of file: the profile did not need the measurement
    print(json.dumps(stream(n_bytes, repeats, arrays=arrays)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
