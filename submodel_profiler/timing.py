"""Isolated execution time with Python/TF dispatch taken out of the measurement.

Calling a `tf.function` costs a few hundred microseconds of dispatch, more than most layers
take, so timing calls from Python measures mostly overhead. Here the clock runs inside the graph.
The computations to time (every distinct row's sub-model, the whole model) become segments of
compiled `tf.function`s (`SegmentTimer` chunks them, 32 per function by default, each function
with an empty calibration body), whose `tf.while_loop` body runs the segments one after
another, each bracketed by `tf.timestamp()`:

    t0 = timestamp; seg 1 (warm-up run, then timed run); t1 = timestamp; seg 2 ...; tK

Control dependencies chain every segment after the previous timestamp, so segments never
overlap, and each loop iteration yields one sample per segment: t_k - t_(k-1), minus the
per-segment overhead L measured on the function's empty calibration body. Dispatch happens once
per call for all of a function's segments together, so it is not in any sample.

Each segment runs once untimed right before its timed run, so its inputs and weights are as warm
in cache as they are inside the whole model, where a layer's input has just been written (a
segment alone in its function is warmed by its own previous timed run instead: `_Chunk`). Nothing
can be optimized away: inputs are function arguments (no constant folding), outputs feed a
checksum the function returns (no pruning), and the two runs of a segment have different
control inputs (no deduplication). A segment is a Python callable traced inline (a sub-model's
`call`, not its concrete function), so every op it creates, weight reads included, is under its
run's control dependencies: a computation on weights alone (a position embedding) runs inside
its timed window, not before it or once for both runs. The whole model is timed by this very
same method, so row times and the whole-model time are comparable.

A training step is split where its forward ends (`Segment.split`): one more timestamp, taken
in the same run, before its backward may start.

On a GPU, each segment's result is copied to the host before its closing timestamp, which waits
for the device, so the clock never stops before the work is done.

Repeats are adaptive: each function is called for a few iterations at a time until every one
of its segments' medians is stable (the 95% order-statistics confidence interval of the median
within `tolerance` of it, or within 1 µs), then no more; sampling ends for all once
`max_repeats` samples are taken or the time budget is spent. Every segment gets at least
`min_repeats` samples.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import numpy as np

from submodel_profiler.heap import release_freed_memory
from submodel_profiler.report import TimeStats

ABSOLUTE_TOLERANCE_US = 1.0
# Threads optimizing and warming up traced chunks while the next ones are traced: two keep two
# cores busy once tracing is done (a training step's whole-step chunk takes seconds alone).
COMPILE_WORKERS = 2


@dataclass(frozen=True)
class TimingSettings:
    """How isolated times are measured (seconds unless the name says otherwise)."""

    warmup: int = 2  # untimed loop iterations before sampling
    min_repeats: int = 10  # samples per segment, at least
    max_repeats: int = 50  # samples per segment, at most
    tolerance: float = 0.05  # allowed relative half-width of the median's 95% CI
    budget_s: float = 0.02  # seconds per segment for sampling, after warm-up


@dataclass(frozen=True)
class Segment:
    """One computation to time: `fn(*inputs)` for inputs of static `specs`.

    A `split` segment is called `fn(*inputs, split=gate)` and calls `gate(done, held)` once,
    where its first part ends (a training step's forward): the gate takes a timestamp once the
    tensors `done` are computed and returns the tensors `held` (those the second part starts
    from: the upstream gradients) held back until then. The time up to that timestamp is
    measured too, in the same run (`SegmentTimer.first_parts`)."""

    fn: Callable
    specs: tuple
    split: bool = False


def random_inputs(specs, seed: int = 0, int_high: int = 10) -> list:
    """One random tensor per spec, created once, outside any timed region.

    Floats are standard normal; integers uniform in [0, int_high) (keep it within every
    Embedding's input_dim, see `integer_input_bound`); booleans False.
    """
    import tensorflow as tf

    rng = np.random.default_rng(seed)
    values = []
    for spec in specs:
        shape = tuple(spec.shape)
        dtype = tf.as_dtype(spec.dtype)
        if dtype.is_floating:
            array = rng.standard_normal(shape).astype(dtype.as_numpy_dtype)
        elif dtype.is_integer:
            array = rng.integers(0, int_high, size=shape).astype(dtype.as_numpy_dtype)
        else:
            array = np.zeros(shape, dtype=dtype.as_numpy_dtype)
        values.append(tf.constant(array))
    return values


class InputPool:
    """Random inputs shared by the segments timed in one run: one tensor per (spec, its
    occurrence among a segment's inputs), so segments reading inputs of one shape read the
    same tensors, while a segment's own inputs of one shape stay distinct (seeds 0, 1, ...).

    Every compiled function keeps its inputs until sampling ends, after all have compiled: one
    tensor per segment input held NASNetMobile's 121 distinct rows' inputs all at once (55 MB,
    25 MB of them in its first chunk of 32 rows). The values never matter to a time: each
    segment's untimed run right before its timed one leaves its inputs in cache either way."""

    def __init__(self, int_high: int = 10):
        self.int_high = int_high
        self._tensors: dict = {}

    def inputs(self, specs) -> list:
        import tensorflow as tf

        seen: dict = {}
        values = []
        for spec in specs:
            kind = (tuple(spec.shape), tf.as_dtype(spec.dtype).name)
            occurrence = seen[kind] = seen.get(kind, -1) + 1
            key = (*kind, occurrence)
            if key not in self._tensors:
                (self._tensors[key],) = random_inputs([spec], occurrence, self.int_high)
            values.append(self._tensors[key])
        return values


def integer_input_bound(model, default: int = 10) -> int:
    """Upper bound (exclusive) for random integer inputs: within every Embedding's vocabulary."""
    import keras

    dims = [
        layer.input_dim for layer in _all_layers(model) if isinstance(layer, keras.layers.Embedding)
    ]
    return max(1, min([default, *dims]))


def _all_layers(model):
    for layer in getattr(model, "layers", ()):
        yield layer
        yield from _all_layers(layer)


def _warm_then_time(seg: Segment, xs, after, warm: bool = True):
    """Graph ops: after `after`, run the segment once untimed (unless not `warm`), then once
    timed.

    Returns (seconds of the timed run, seconds of its first part or None if it is not split,
    its end timestamp, a checksum scalar).
    """
    import tensorflow as tf

    ready = [after]
    if warm:
        with tf.control_dependencies([after]):
            xs = [tf.identity(x) for x in xs]
            ready.append(_finish(_call(seg, xs, [])))
    with tf.control_dependencies(ready):
        xs = [tf.identity(x) for x in xs]
        start = tf.timestamp()
    marks: list = []
    with tf.control_dependencies([start]):
        xs = [tf.identity(x) for x in xs]
        done = _finish(_call(seg, xs, marks))
    with tf.control_dependencies([done]):
        end = tf.timestamp()
    if seg.split and len(marks) != 1:
        raise ValueError(f"a split segment calls its gate once, not {len(marks)} times")
    first = marks[0] - start if seg.split else None
    return end - start, first, end, done + (ready[1] if warm else 0.0)


def _call(seg: Segment, xs, marks: list):
    """`seg.fn(*xs)`; a split segment's gate appends its timestamp to `marks`."""
    import tensorflow as tf

    if not seg.split:
        return seg.fn(*xs)

    def gate(done, held):
        with tf.control_dependencies(list(done)):
            marks.append(tf.timestamp())
        with tf.control_dependencies(marks[-1:]):
            return [tf.identity(t) for t in held]

    return seg.fn(*xs, split=gate)


def _finish(outputs):
    """A host-side scalar depending on every output: forces completion, also on GPUs."""
    import tensorflow as tf

    picked = [tf.cast(tf.reshape(y, [-1])[0], tf.float32) for y in tf.nest.flatten(outputs)]
    with tf.device("/CPU:0"):
        return tf.identity(tf.add_n(picked))


def build_timing_function(segments: Sequence[Segment], warm: bool = True):
    """A tf.function `f(n, *inputs) -> ([n, columns] seconds, checksum)`.

    Row i of the result holds loop iteration i's timed-run duration of every segment, in order,
    then the duration of the first part of every split segment, in order. Without `warm`, the
    segments have no untimed run before their timed one (`_Chunk` says when that is right).
    """
    import tensorflow as tf

    specs = [tf.TensorSpec(s.shape, s.dtype) for seg in segments for s in seg.specs]
    signature = [tf.TensorSpec([], tf.int32)] + specs

    def body(xs, i, checksum, samples):
        after = tf.timestamp()
        durations, firsts, position = [], [], 0
        for seg in segments:
            count = len(seg.specs)
            seconds, first, after, check = _warm_then_time(
                seg, xs[position : position + count], after, warm
            )
            durations.append(seconds)
            firsts += [first] if seg.split else []
            checksum += check
            position += count
        return i + 1, checksum, samples.write(i, tf.stack(durations + firsts))

    @tf.function(input_signature=signature, autograph=False)
    def run_segments(n, *xs):
        samples = tf.TensorArray(tf.float64, size=n)
        _, checksum, samples = tf.while_loop(
            lambda i, c, s: i < n,
            lambda i, c, s: body(xs, i, c, s),
            [tf.constant(0), tf.constant(0.0), samples],
            parallel_iterations=1,
        )
        return samples.stack(), checksum

    return run_segments


def _empty_body(x):
    import tensorflow as tf

    return tf.identity(x)


class SegmentTimer:
    """Times many computations side by side with `build_timing_function`.

    Segments are compiled in chunks of at most `chunk_size` (graph optimization cost grows faster
    than linearly with the function's size), each chunk with its own calibration segment.
    `time(groups)` takes groups of segments (a group never shares a compiled function with
    another; put a large graph in a group of its own), returns one TimeStats per segment (µs
    per execution), group by group, and records the median per-segment overhead it subtracted
    in `overhead_us`.

    A segment that fails to compile or run (an assert on the random inputs, say) never sinks
    the others: a chunk failing its first (warm-up) run is split in halves and retried, down to
    the failing segments, whose stats are None and whose errors are in `errors`
    ({(group index, segment index): "Type: message"}). Warm-up runs at least once for this.
    """

    def __init__(
        self,
        settings: TimingSettings = TimingSettings(),
        clock=time.perf_counter,
        chunk_size: int = 32,
        int_high: int = 10,
    ):
        self.settings = settings
        # the segments' inputs, shared between them; integers drawn from [0, int_high)
        self._pool = InputPool(int_high)
        self.clock = clock
        self.chunk_size = chunk_size
        self.overhead_us: float | None = None
        self.interrupted = False  # Ctrl-C stopped sampling; stats hold the samples so far
        self.errors: dict = {}  # (group index, segment index) -> why that segment failed
        # (group index, segment index) -> TimeStats of a split segment's first part
        self.first_parts: dict = {}
        self._ahead: dict = {}  # tuple of a group's segments -> [(indices, chunk, future)]
        self._ahead_worker = None  # the thread compiling them

    def time(self, groups: Sequence[Sequence[Segment]], progress=None) -> list[list[TimeStats]]:
        s = self.settings
        total = sum(len(g) for g in groups)
        chunks = self._compiled_chunks(groups)  # (group index, _Chunk) compiled and run once
        flat = [chunk for _, chunk in chunks]
        step = max(1, min(s.min_repeats, s.max_repeats))
        deadline = self.clock() + s.budget_s * total
        taken = 0
        sampling = list(flat)  # chunks whose medians are not all stable yet
        while sampling and taken < s.max_repeats and not self.interrupted:
            n = min(step, s.max_repeats - taken)
            try:
                for chunk in sampling:
                    chunk.sample(n)
            except KeyboardInterrupt:
                self.interrupted = True
                break
            taken += n
            if progress is not None:
                progress(taken, s.max_repeats)
            if taken >= s.min_repeats:
                if self.clock() > deadline:
                    break
                sampling = [c for c in sampling if not c.stable(s.tolerance)]
        sampled = [c.overhead_us() for c in flat if len(c.samples)]
        self.overhead_us = float(np.median(sampled)) if sampled else None
        results = [[None] * len(group) for group in groups]
        for g, chunk in chunks:
            for index, stats in zip(chunk.indices, chunk.stats()):
                results[g][index] = stats
            for index, stats in chunk.first_stats().items():
                self.first_parts[(g, index)] = stats
        return results

    def compile_ahead(self, group: Sequence[Segment]) -> None:
        """Trace `group` now and optimize and warm it up in a background thread while the caller
        does other work, which must time nothing (the compile takes a core); a later `time`
        call given an equal group uses these chunks instead of compiling its own. Meant for a
        large graph whose optimizing is the longest single part of timing (the whole model)."""
        from concurrent.futures import ThreadPoolExecutor

        if not group:
            return
        if self._ahead_worker is None:
            self._ahead_worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="ahead")
        self._ahead[tuple(group)] = [
            (indices, *self._start(group, indices, self._ahead_worker))
            for indices in self._plans(group)
        ]

    def _plans(self, group) -> list:
        """The segment indices of each chunk `group` is compiled in."""
        return [
            list(range(i, min(i + self.chunk_size, len(group))))
            for i in range(0, len(group), self.chunk_size)
        ]

    def _start(self, group, indices, worker) -> tuple:
        """(chunk, future of its compile) of `group[indices]`, traced here and compiled by
        `worker`; (None, None) if it fails to trace."""
        try:
            chunk = _Chunk([group[k] for k in indices], self._pool, indices)
            chunk.trace()
        except KeyboardInterrupt:
            raise
        except Exception:  # bisected later, to find the failing segments
            return None, None
        return chunk, worker.submit(_compile, chunk, max(1, self.settings.warmup))

    def _compiled_chunks(self, groups) -> list:
        """(group index, _Chunk) of every chunk that compiles and runs its warm-up.

        Compiling is the longest part of timing, in two halves that can overlap: each chunk is
        traced here (Python) while the ones before it are optimized by TF and warmed up in
        COMPILE_WORKERS worker threads (C++, which releases the GIL), so on two or more cores
        they proceed side by side. Each worker hands the memory it freed back to the system
        once a chunk is compiled (`heap.release_freed_memory`). Nothing is timed meanwhile:
        sampling starts after all have compiled. A group compiled ahead (`compile_ahead`) is
        waited for with the others. A chunk that fails to trace or to run is bisected
        afterwards (`_working_chunks`). After Ctrl-C, the chunks compiled so far are kept and
        `interrupted` is set.
        """
        from concurrent.futures import ThreadPoolExecutor, wait

        started: list = []  # (group index, group, indices, chunk or None, future or None)
        plans = []
        for g, group in enumerate(groups):
            ahead = self._ahead.pop(tuple(group), None)
            if ahead is None:
                plans += [(g, indices) for indices in self._plans(group)]
            else:
                started += [(g, group, indices, *more) for indices, *more in ahead]
        # Small groups first: they are the large graphs (the whole model, an expanded parent),
        # quick to trace and slow to optimize, which then overlaps the rows' tracing.
        plans.sort(key=lambda plan: len(groups[plan[0]]))
        worker = ThreadPoolExecutor(max_workers=COMPILE_WORKERS, thread_name_prefix="compile")
        try:
            for g, indices in plans:
                started.append((g, groups[g], indices, *self._start(groups[g], indices, worker)))
            worker.shutdown(wait=True)
            wait([future for *_, future in started if future is not None])
        except KeyboardInterrupt:  # keep what compiled; leave the rest to finish unwatched
            self.interrupted = True
            worker.shutdown(wait=False, cancel_futures=True)
        chunks: list = []
        try:
            for g, group, indices, chunk, future in started:
                done = future is not None and future.done() and not future.cancelled()
                if done and future.exception() is None:
                    chunks.append((g, chunk))
                elif not self.interrupted:
                    chunks += [(g, c) for c in self._working_chunks(g, group, indices)]
        except KeyboardInterrupt:
            self.interrupted = True
        if self._ahead_worker is not None and not self._ahead:
            self._ahead_worker.shutdown(wait=False)
            self._ahead_worker = None
        return chunks

    def _working_chunks(self, g: int, group, indices: list) -> list:
        """Chunks of `group[indices]` that compile and run once (warm-up), bisecting failures."""
        from submodel_profiler.errors import describe

        try:
            chunk = _Chunk([group[k] for k in indices], self._pool, indices)
            chunk.sample(max(1, self.settings.warmup), keep=False)
            return [chunk]
        except KeyboardInterrupt:
            raise
        except Exception as e:  # one failing segment must not sink the others
            if len(indices) == 1:
                self.errors[(g, indices[0])] = describe(e)
                return []
            half = len(indices) // 2
            return self._working_chunks(g, group, indices[:half]) + self._working_chunks(
                g, group, indices[half:]
            )


def _compile(chunk, warmup: int) -> None:
    """Optimize and warm up `chunk` (its first call), then give back what that freed: TF's
    graph optimizer takes memory for as long as it runs (NASNetMobile's whole model: about
    50 MB), freed in this worker thread's own heap, which glibc keeps otherwise."""
    try:
        chunk.sample(warmup, keep=False)
    finally:
        release_freed_memory()


class _Chunk:
    """One compiled timing function: a calibration segment plus up to chunk_size segments.

    A chunk of one segment (the whole model, a large graph in a group of its own) has no untimed
    run before each timed one: the timed run of the loop iteration before already left the
    caches as that run would (the same inputs and weights, the calibration segment between
    touching nothing), and the graph to optimize and run is then half the size. The first
    iteration of each call follows other chunks' runs instead, so it runs one iteration more
    and leaves the first out.
    """

    def __init__(self, segments: Sequence[Segment], pool: InputPool, indices: Sequence[int] = ()):
        import tensorflow as tf

        self.indices = tuple(indices) or tuple(range(len(segments)))  # positions in the group
        calibration = Segment(_empty_body, (tf.TensorSpec((1,), tf.float32),))
        everything = [calibration, *segments]
        self.warm = len(segments) > 1  # an untimed run before each timed one
        self.run = build_timing_function(everything, warm=self.warm)
        self.xs = [x for seg in everything for x in pool.inputs(seg.specs)]
        self.split = [k for k, seg in enumerate(segments) if seg.split]  # their first parts follow
        self.samples = np.zeros((0, len(everything) + len(self.split)))

    def trace(self) -> None:
        """Trace the timing function now (its first call then only optimizes and runs it)."""
        self.run.get_concrete_function()

    def sample(self, n: int, keep: bool = True) -> None:
        import tensorflow as tf

        if n < 1:
            return
        first = 0 if self.warm or not keep else 1  # left out: the call's first iteration follows
        seconds, _ = self.run(tf.constant(n + first), *self.xs)  # other chunks' runs, not its own
        if keep:
            self.samples = np.vstack([self.samples, seconds.numpy()[first:] * 1e6])

    def overhead_us(self) -> float:
        return float(np.median(self.samples[:, 0]))

    def stable(self, tolerance: float) -> bool:
        return _all_stable(self.samples, tolerance)

    def stats(self) -> list:
        """TimeStats per segment, or None per segment if no sample was taken (Ctrl-C)."""
        if not len(self.samples):
            return [None] * len(self.indices)
        net = self._net()
        return [TimeStats.from_samples(net[:, k]) for k in range(len(self.indices))]

    def first_stats(self) -> dict:
        """{position in the group: TimeStats of the first part} of the split segments."""
        if not len(self.samples):
            return {}
        net = self._net()[:, len(self.indices) :]
        return {
            self.indices[k]: TimeStats.from_samples(net[:, j]) for j, k in enumerate(self.split)
        }

    def _net(self) -> np.ndarray:
        """The samples (µs) of every column but the calibration's, less its median, at least 0."""
        return np.maximum(self.samples[:, 1:] - self.overhead_us(), 0.0)


def _all_stable(samples: np.ndarray, tolerance: float) -> bool:
    overhead = float(np.median(samples[:, 0]))
    return all(
        median_is_stable(samples[:, k] - overhead, tolerance) for k in range(samples.shape[1])
    )


def median_is_stable(samples, tolerance: float) -> bool:
    """True if the 95% CI of the median lies within ±tolerance·median (or ±1 µs).

    The CI is the distribution-free one from order statistics: ranks n/2 ± 1.96·√n/2.
    """
    a = np.sort(np.asarray(samples, dtype=float))
    n = len(a)
    half = 1.96 * math.sqrt(n) / 2
    lo = a[max(0, int(math.floor(n / 2 - half)))]
    hi = a[min(n - 1, int(math.ceil(n / 2 + half)) - 1)]
    median = float(np.median(a))
    allowed = max(tolerance * abs(median), ABSOLUTE_TOLERANCE_US)
    return (median - lo) <= allowed and (hi - median) <= allowed
