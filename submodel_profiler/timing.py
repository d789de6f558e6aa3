"""Isolated execution time with Python/TF dispatch taken out of the measurement.

Calling a `tf.function` costs a few hundred microseconds of dispatch, more than most layers
take, so timing calls from Python measures mostly overhead. Here the clock runs inside the graph:
for each computation (every row's sub-model, the whole model, and an empty calibration body),
one compiled `tf.function` does

    t0 = tf.timestamp();  run the computation n times in a tf.while_loop;  t1 = tf.timestamp()

with control dependencies chaining every segment after the previous one, so segments never
overlap and dispatch happens once per repeat for all rows together. Per segment

    T(n) = C + n · (t + L)

where C is the cost of entering and leaving the loop (measured per segment with n = 0), L the
cost of one empty loop iteration (the calibration body) and t the computation's own time:
t = (T(n) - C) / n - L. Nothing can be optimized away: inputs are function arguments (no constant
folding), each iteration's outputs feed a loop-carried accumulator (no pruning). The whole model
is timed by this very same method, so row times and the whole-model time are comparable.

On a GPU the accumulator is copied to the host before t1 is taken, which waits for the device, so
the clock never stops before the work is done.

Repeats are adaptive: `n` is chosen per segment so one measurement lasts about `target_s`, and a
segment stops being measured (n = 0) once the 95% order-statistics confidence interval of its
median is within `tolerance` of the median (or 1 µs), after `min_repeats`. Measuring stops when
every segment is stable, after `max_repeats`, or when the time budget is spent.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np

ABSOLUTE_TOLERANCE_US = 1.0


@dataclass(frozen=True)
class TimeStats:
    """Summary of per-execution times in microseconds (overhead subtracted)."""

    median: float
    min: float
    max: float
    iqr: float
    repeats: int  # timed measurements
    iterations: int = 1  # executions inside each measurement

    @classmethod
    def from_samples(cls, samples_us, iterations: int = 1) -> "TimeStats":
        a = np.asarray(samples_us, dtype=float)
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(a.min()), float(a.max()), float(q3 - q1), len(a), iterations)


@dataclass(frozen=True)
class TimingSettings:
    """How isolated times are measured (seconds unless the name says otherwise)."""

    warmup: int = 2
    min_repeats: int = 7
    max_repeats: int = 50
    tolerance: float = 0.05  # allowed relative half-width of the median's 95% CI
    target_s: float = 0.001  # duration of one measurement of one segment
    budget_s: float = 0.05  # per segment, for the repeats after warm-up
    max_iterations: int = 10_000


@dataclass(frozen=True)
class Segment:
    """One computation to time: `fn(*inputs)` for inputs of static `specs`."""

    fn: Callable
    specs: tuple


def random_inputs(specs, seed: int = 0) -> list:
    """One random tensor per spec, created once, outside any timed region.

    Floats are standard normal; integers uniform in [0, 10); booleans False.
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
            array = rng.integers(0, 10, size=shape).astype(dtype.as_numpy_dtype)
        else:
            array = np.zeros(shape, dtype=dtype.as_numpy_dtype)
        values.append(tf.constant(array))
    return values


def _timed_segment(fn, xs, n, after):
    """Graph ops timing n runs of fn(*xs) after `after`; returns (seconds, end timestamp)."""
    import tensorflow as tf

    with tf.control_dependencies([after]):
        start = tf.timestamp()
    with tf.control_dependencies([start]):
        xs = [tf.identity(x) for x in xs]
        zero_i, zero_acc = tf.constant(0), tf.constant(0.0)

    def body(i, acc):
        picked = [tf.cast(tf.reshape(y, [-1])[0], tf.float32) for y in tf.nest.flatten(fn(*xs))]
        return i + 1, acc + tf.add_n(picked)

    _, acc = tf.while_loop(
        lambda i, acc: i < n, body, [zero_i, zero_acc], parallel_iterations=1
    )
    with tf.device("/CPU:0"):  # host copy: waits for the device on GPUs
        done = tf.identity(acc)
    with tf.control_dependencies([done]):
        end = tf.timestamp()
    return end - start, end


def build_timing_function(segments: Sequence[Segment]):
    """A tf.function `f(ns, *inputs) -> seconds per segment`, segments run one after another."""
    import tensorflow as tf

    specs = [tf.TensorSpec(s.shape, s.dtype) for seg in segments for s in seg.specs]
    signature = [tf.TensorSpec([len(segments)], tf.int32)] + specs

    @tf.function(input_signature=signature, autograph=False)
    def run_segments(ns, *xs):
        after = tf.constant(0.0, tf.float64)
        durations, position = [], 0
        for k, seg in enumerate(segments):
            count = len(seg.specs)
            seconds, after = _timed_segment(seg.fn, xs[position : position + count], ns[k], after)
            durations.append(seconds)
            position += count
        return tf.stack(durations)

    return run_segments


def _empty_body(x):
    import tensorflow as tf

    return tf.identity(x)


class SegmentTimer:
    """Times many computations side by side with `build_timing_function`.

    `time(segments)` returns one TimeStats per segment (µs per execution) and records the
    per-iteration loop overhead it subtracted in `loop_overhead_us`.
    """

    def __init__(self, settings: TimingSettings = TimingSettings()):
        self.settings = settings
        self.loop_overhead_us: float | None = None
        self.calibration_iterations = 2000

    def time(self, segments: Sequence[Segment], progress=None) -> list[TimeStats]:
        import tensorflow as tf

        s = self.settings
        calibration = Segment(_empty_body, (tf.TensorSpec((1,), tf.float32),))
        everything = [calibration, *segments]
        run = build_timing_function(everything)
        xs = [x for seg in everything for x in random_inputs(seg.specs, seed=len(seg.specs))]

        def measure(ns) -> np.ndarray:
            return run(tf.constant(ns, tf.int32), *xs).numpy() * 1e6

        k = len(everything)
        for _ in range(max(1, s.warmup)):
            measure(np.ones(k))
        fixed = np.median([measure(np.zeros(k)) for _ in range(3)], axis=0)
        once = np.median([measure(np.ones(k)) for _ in range(3)], axis=0) - fixed
        ns = np.clip(np.ceil(s.target_s * 1e6 / np.maximum(once, 1.0)), 1, s.max_iterations)
        ns[0] = self.calibration_iterations
        ns = ns.astype(np.int64)

        samples: list[list[float]] = [[] for _ in everything]
        active = np.ones(k, dtype=bool)
        deadline = time.perf_counter() + s.budget_s * k
        loop_us = 0.0
        while active.any():
            raw = measure(np.where(active, ns, 0))
            if active[0]:
                samples[0].append((raw[0] - fixed[0]) / ns[0])
                loop_us = max(0.0, float(np.median(samples[0])))
            for i in np.flatnonzero(active[1:]) + 1:
                samples[i].append((raw[i] - fixed[i]) / ns[i])
            for i in np.flatnonzero(active):
                done = len(samples[i]) >= s.max_repeats or (
                    len(samples[i]) >= s.min_repeats
                    and median_is_stable(np.asarray(samples[i]) - (loop_us if i else 0.0), s.tolerance)
                )
                if done:
                    active[i] = False
            if time.perf_counter() > deadline and min(len(x) for x in samples) >= s.min_repeats:
                break
            if progress is not None:
                progress(int((~active).sum()), k)
        self.loop_overhead_us = loop_us
        return [
            TimeStats.from_samples(np.maximum(np.asarray(x) - loop_us, 0.0), iterations=int(n))
            for x, n in zip(samples[1:], ns[1:])
        ]


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
