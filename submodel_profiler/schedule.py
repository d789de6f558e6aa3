"""The whole model's time predicted from its rows: list scheduling on the dependency DAG.

Pure functions, no TensorFlow. The profiler times every row in isolation, so on a branchy model
the sum of the rows' times overstates the whole model: TensorFlow's executor runs ops whose
inputs are ready concurrently on its inter-op threads. This module replays the rows on `threads`
identical workers (Graham's list scheduling) to predict the whole model's time.

What it models:

- Independent rows overlap on up to `threads` inter-op threads: a row can start once every row
  it depends on has finished, and whenever a worker is free it takes the ready row that comes
  first in execution order (index order, a topological order: deps[i] ⊆ range(i)).
- Each row takes its isolated median time, whatever runs beside it.
- Events at equal times: every row finishing at time t is finished before a free worker picks,
  so a worker freed at t can start a row that became ready at t (zero-time rows included).

What it does not model:

- Intra-op threads are shared by concurrent rows, so two rows running together may each be slower
  than alone (the prediction is then too low).
- Kernel fusion across rows: the whole graph can fuse ops of neighbouring rows, so the whole model
  can be faster than any schedule of its rows.
- Executor dispatch overhead (per op and per step).
- Rows without a time count 0; the caller passes 0 for them and should say so (how many).

Bounds (Graham): max(critical path, serial ÷ threads) ≤ scheduled ≤ (serial − critical path) ÷
threads + critical path. With 1 thread the schedule is serial; with at least as many threads as
rows it is the critical path. The greedy rule is not optimal: taking the first ready row in index
order can start a long chain late. Durations are in any one unit (the report's are
microseconds) and results are in that unit.

Input is validated once per call: ValueError, stating the rule and what was received, for
threads < 1 (or not an integer), a negative or non-finite duration, a dependency that is not an
earlier index, or `durations` and `deps` of different lengths.
"""

from __future__ import annotations

import heapq
import math
import numbers
from collections.abc import Collection, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Prediction:
    """The whole model's time predicted three ways, in the durations' unit (µs in a report)."""

    serial_us: float  # Σ durations: the rows one after another (1 thread)
    scheduled_us: float  # list_schedule on `threads` workers
    critical_path_us: float  # the longest dependency path (unlimited threads)
    threads: int


def list_schedule(
    durations: Sequence[float], deps: Sequence[Collection[int]], threads: int
) -> float:
    """Makespan of running the rows on `threads` identical workers: a row can start once every row
    it depends on has finished; whenever a worker is free it takes the ready row that comes first
    in execution order (index order, which is a topological order: deps[i] ⊆ range(i)); a worker
    freed at t can start a row that became ready at t. 0 for no rows.

    Raises:
        ValueError: threads < 1, a negative duration, a dependency that is not an earlier index,
            or mismatched lengths (see the module docstring).
    """
    _validate(durations, deps)
    _validate_threads(threads)
    return _makespan(durations, deps, threads)


def critical_path(durations: Sequence[float], deps: Sequence[Collection[int]]) -> float:
    """The makespan with unlimited threads: the longest path, a path's length being the sum of its
    rows' durations. 0 for no rows.

    Raises:
        ValueError: a negative duration, a dependency that is not an earlier index, or mismatched
            lengths.
    """
    _validate(durations, deps)
    return _longest_path(durations, deps)


def predict(
    durations: Sequence[float], deps: Sequence[Collection[int]], threads: int
) -> Prediction:
    """Serial sum, list schedule on `threads` workers and critical path of the rows.

    Raises:
        ValueError: as `list_schedule`.
    """
    _validate(durations, deps)
    _validate_threads(threads)
    return Prediction(
        serial_us=float(sum(durations)),  # added in index order, as a 1-thread schedule adds
        scheduled_us=_makespan(durations, deps, threads),
        critical_path_us=_longest_path(durations, deps),
        threads=int(threads),
    )


def _makespan(durations: Sequence[float], deps: Sequence[Collection[int]], threads: int) -> float:
    # O(n log n + edges): each row enters and leaves `ready` and `running` once.
    children: list[list[int]] = [[] for _ in durations]
    waiting = [0] * len(durations)  # unfinished dependencies of each row
    for i, row_deps in enumerate(deps):
        for j in set(row_deps):
            children[j].append(i)
        waiting[i] = len(set(row_deps))
    ready = [i for i, n in enumerate(waiting) if n == 0]  # a heap of row indices
    heapq.heapify(ready)
    running: list[tuple[float, int]] = []  # a heap of (finish time, row), one per busy worker
    now = 0.0
    while ready or running:
        while ready and len(running) < threads:
            row = heapq.heappop(ready)
            heapq.heappush(running, (now + durations[row], row))
        now = running[0][0]
        while running and running[0][0] == now:  # every row finishing at `now`, then pick
            _, row = heapq.heappop(running)
            for child in children[row]:
                waiting[child] -= 1
                if waiting[child] == 0:
                    heapq.heappush(ready, child)
    return now


def _longest_path(durations: Sequence[float], deps: Sequence[Collection[int]]) -> float:
    # finish[i] = durations[i] + the latest finish among its dependencies (0 without any).
    finish: list[float] = []
    for duration, row_deps in zip(durations, deps):
        finish.append(duration + max((finish[j] for j in row_deps), default=0.0))
    return max(finish, default=0.0)


def _validate(durations: Sequence[float], deps: Sequence[Collection[int]]) -> None:
    if len(durations) != len(deps):
        raise ValueError(
            "durations and deps need one entry per row, so equal lengths. "
            f"Received: len(durations)={len(durations)}, len(deps)={len(deps)}."
        )
    for i, duration in enumerate(durations):
        if not isinstance(duration, numbers.Real) or not (
            math.isfinite(duration) and duration >= 0
        ):
            raise ValueError(
                f"durations must be finite and ≥ 0. Received: durations[{i}]={duration!r}."
            )
    for i, row_deps in enumerate(deps):
        for j in row_deps:
            if not _is_int(j) or not 0 <= j < i:
                raise ValueError(
                    "a row can depend only on earlier rows (deps[i] ⊆ range(i), index order being "
                    f"a topological order). Received: deps[{i}] contains {j!r}."
                )


def _validate_threads(threads: int) -> None:
    if not _is_int(threads) or threads < 1:
        raise ValueError(
            "threads must be an integer ≥ 1. "
            f"Received: threads={threads!r} (of type {type(threads).__name__})."
        )


def _is_int(value: object) -> bool:
    # numpy's integers count; bools do not.
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)
