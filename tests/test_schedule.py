"""List scheduling of rows on their dependency DAG, against makespans worked out by hand here.

Each hand trace lists when every row starts and ends; `a→b` is a row running from a to b.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random

import numpy as np
import pytest

from submodel_profiler.schedule import Prediction, critical_path, list_schedule, predict

# A chain 0 → 1 → 2 → 3 → 4: nothing can overlap.
CHAIN = ([3.0, 1.0, 4.0, 1.0, 5.0], [(), {0}, {1}, {2}, {3}])
CHAIN_SUM = 3 + 1 + 4 + 1 + 5  # 14

# A diamond: head 0 (1), branches 1 (4) and 2 (3) after it, tail 3 (2) joining them.
DIAMOND = ([1.0, 4.0, 3.0, 2.0], [(), {0}, {0}, {1, 2}])
DIAMOND_SUM = 1 + 4 + 3 + 2  # 10
DIAMOND_OVERLAPPED = 1 + max(4, 3) + 2  # 7: the branches run side by side

# A fan-out: head 0 (1), four rows of 5 after it, tail 5 (1) joining all four.
FAN = ([1.0, 5.0, 5.0, 5.0, 5.0, 1.0], [(), {0}, {0}, {0}, {0}, {1, 2, 3, 4}])


@pytest.mark.parametrize("threads", [1, 2, 3, 8])
def test_a_chain_is_its_sum_on_any_thread_count(threads):
    durations, deps = CHAIN
    assert list_schedule(durations, deps, threads) == CHAIN_SUM
    assert critical_path(durations, deps) == CHAIN_SUM


def test_a_diamond_overlaps_its_branches_on_two_threads():
    durations, deps = DIAMOND
    # 2 threads: 0: 0→1; 1: 1→5 beside 2: 1→4; 3: 5→7.
    assert list_schedule(durations, deps, 2) == DIAMOND_OVERLAPPED
    # A third thread finds nothing more to run beside them.
    assert list_schedule(durations, deps, 3) == DIAMOND_OVERLAPPED
    # 1 thread: 0: 0→1, 1: 1→5, 2: 5→8, 3: 8→10.
    assert list_schedule(durations, deps, 1) == DIAMOND_SUM
    # Longest path 0 → 1 → 3: 1 + 4 + 2.
    assert critical_path(durations, deps) == 7


@pytest.mark.parametrize(
    ("threads", "expected"),
    [
        (1, 1 + 4 * 5 + 1),  # 22: serial
        (2, 1 + 2 * 5 + 1),  # 12: rows 1, 2 at 1→6, rows 3, 4 at 6→11, tail 11→12
        (3, 1 + 2 * 5 + 1),  # 12: rows 1, 2, 3 at 1→6, row 4 at 6→11 (⌈4/3⌉ = 2 rounds)
        (4, 1 + 5 + 1),  # 7: one round
        (5, 1 + 5 + 1),
    ],
)
def test_a_fan_out_runs_in_rounds_of_threads(threads, expected):
    durations, deps = FAN
    assert list_schedule(durations, deps, threads) == expected


def test_four_equal_independent_rows_take_two_rounds_on_two_threads():
    # 0, 1: 0→5; 2, 3: 5→10.
    assert list_schedule([5.0] * 4, [()] * 4, 2) == 2 * 5
    assert critical_path([5.0] * 4, [()] * 4) == 5


def test_greedy_takes_the_first_ready_row_even_when_a_later_one_heads_a_long_chain():
    # Rows 0, 1, 2, 3 (1 each) are ready at 0; row 4 (3) follows row 3.
    durations, deps = [1.0, 1.0, 1.0, 1.0, 3.0], [(), (), (), (), {3}]
    # Greedy on 2 threads: 0, 1: 0→1; 2, 3: 1→2; 4: 2→5 alone.
    assert list_schedule(durations, deps, 2) == 5
    # The optimum is 4 (3: 0→1 with 0; 4: 1→4 beside 1: 1→2 and 2: 2→3), the critical path.
    assert critical_path(durations, deps) == 1 + 3
    # The same DAG with the chain first in index order: 0, 2: 0→1; 1: 1→4 beside 3: 1→2 and
    # 4: 2→3. The order matters; the rule takes it as given.
    assert list_schedule([1.0, 3.0, 1.0, 1.0, 1.0], [(), {0}, (), (), ()], 2) == 4


def test_a_worker_freed_at_t_can_start_a_row_that_became_ready_at_t():
    # Rows 0, 1 (2 each) run 0→2; row 2 (10) follows row 0; rows 3, 4 (1 each) are ready at 0.
    durations, deps = [2.0, 2.0, 10.0, 1.0, 1.0], [(), (), {0}, (), ()]
    # At 2 both workers are free and rows 2, 3, 4 are ready: 2: 2→12 beside 3: 2→3, 4: 3→4.
    # (Were row 2 too late for the workers freed at 2, they would take 3 and 4: 2 at 3→13.)
    assert list_schedule(durations, deps, 2) == 2 + 10


def test_every_row_finishing_at_t_is_finished_before_a_worker_picks():
    # Rows 0, 1 (1 each) run 0→1; rows 2, 3 (2 each) follow row 1; row 4 (2) is ready at 0;
    # row 5 (1) joins rows 2 and 3.
    durations = [1.0, 1.0, 2.0, 2.0, 2.0, 1.0]
    deps = [(), (), {1}, {1}, (), {2, 3}]
    # At 1 rows 2, 3, 4 are ready and the first two in index order go: 2, 3: 1→3; then
    # 4: 3→5 beside 5: 3→4.
    assert list_schedule(durations, deps, 2) == 5
    # (Were the worker freed by row 0 to pick before row 1 finished, it would take row 4: 1→3,
    # then 2: 1→3, 3: 3→5 and 5: 5→6, so 6.)


def test_zero_duration_rows_take_no_time_and_hold_up_nothing():
    # Rows 0 → 1 → 2 with 0 and 0 ahead of row 2 (5); row 3 (5) is independent.
    durations, deps = [0.0, 0.0, 5.0, 5.0], [(), {0}, {1}, ()]
    # 2 threads: 0: 0→0 beside 3: 0→5; 1: 0→0 on the worker freed at 0; 2: 0→5.
    assert list_schedule(durations, deps, 2) == 5
    assert list_schedule(durations, deps, 1) == 5 + 5
    # A diamond whose head and tail have no time: just the longer branch.
    assert list_schedule([0.0, 4.0, 3.0, 0.0], DIAMOND[1], 2) == 4
    assert critical_path([0.0, 4.0, 3.0, 0.0], DIAMOND[1]) == 4
    assert list_schedule([0.0] * 3, [(), {0}, ()], 1) == 0


def test_no_rows_take_no_time():
    assert list_schedule([], [], 1) == 0
    assert critical_path([], []) == 0
    assert predict([], [], 4) == Prediction(0.0, 0.0, 0.0, 4)


def test_predict_gathers_the_three_times():
    durations, deps = DIAMOND
    expected = Prediction(
        serial_us=DIAMOND_SUM, scheduled_us=DIAMOND_OVERLAPPED, critical_path_us=7, threads=2
    )
    assert predict(durations, deps, 2) == expected
    assert predict(durations, deps, np.int64(2)) == expected  # numpy's integers are integers
    assert type(predict(durations, deps, np.int64(2)).threads) is int


def test_a_prediction_round_trips_through_json():
    prediction = predict(*DIAMOND, 2)
    text = json.dumps(dataclasses.asdict(prediction))
    assert Prediction(**json.loads(text)) == prediction


@pytest.mark.parametrize("threads", [0, -1, 1.5, True, None])
def test_threads_must_be_a_positive_integer(threads):
    with pytest.raises(ValueError, match=r"threads must be an integer ≥ 1\. Received: threads="):
        list_schedule(*DIAMOND, threads)
    with pytest.raises(ValueError, match=r"threads must be an integer ≥ 1\. Received: threads="):
        predict(*DIAMOND, threads)


@pytest.mark.parametrize("bad", [-1.0, math.nan, math.inf, None])
def test_durations_must_be_finite_and_not_negative(bad):
    durations = [1.0, bad, 1.0]
    deps = [(), {0}, {1}]
    match = r"durations must be finite and ≥ 0\. Received: durations\[1\]="
    for call in (
        lambda: list_schedule(durations, deps, 2),
        lambda: critical_path(durations, deps),
        lambda: predict(durations, deps, 2),
    ):
        with pytest.raises(ValueError, match=match):
            call()


@pytest.mark.parametrize(
    ("deps", "received"),
    [
        ([(), {1}, ()], r"deps\[1\] contains 1"),  # itself
        ([(), {2}, ()], r"deps\[1\] contains 2"),  # a later row
        ([(), (), {-1}], r"deps\[2\] contains -1"),  # not an index
        ([(), (), {"0"}], r"deps\[2\] contains '0'"),  # not an integer
        ([{0}, (), ()], r"deps\[0\] contains 0"),  # the first row has no earlier rows
    ],
)
def test_a_row_depends_only_on_earlier_rows(deps, received):
    match = r"only on earlier rows .* Received: " + received
    with pytest.raises(ValueError, match=match):
        list_schedule([1.0, 1.0, 1.0], deps, 2)
    with pytest.raises(ValueError, match=match):
        critical_path([1.0, 1.0, 1.0], deps)


def test_durations_and_deps_have_one_entry_per_row():
    match = r"equal lengths\. Received: len\(durations\)=3, len\(deps\)=2\."
    with pytest.raises(ValueError, match=match):
        list_schedule([1.0, 1.0, 1.0], [(), {0}], 2)
    with pytest.raises(ValueError, match=match):
        critical_path([1.0, 1.0, 1.0], [(), {0}])


def _random_dag(rng: random.Random) -> tuple[list[float], list[set[int]]]:
    # Whole-number durations (some 0) keep every sum exact; each earlier row is a dependency
    # with probability 0.15.
    n = rng.randint(1, 40)
    durations = [float(rng.randint(0, 10)) for _ in range(n)]
    deps = [{j for j in range(i) if rng.random() < 0.15} for i in range(n)]
    return durations, deps


@pytest.mark.parametrize("seed", range(20))
def test_grahams_bounds_hold_on_random_dags(seed):
    rng = random.Random(seed)
    durations, deps = _random_dag(rng)
    serial, longest = sum(durations), critical_path(durations, deps)
    for threads in (1, 2, 3, 4, 7):
        makespan = list_schedule(durations, deps, threads)
        # No schedule beats the longest path or perfect sharing of the work; a greedy one idles
        # only while a row of the critical path runs: W/m + (1 − 1/m)·L, within W/m + L.
        assert max(longest, serial / threads) <= makespan + 1e-9
        assert makespan <= (serial - longest) / threads + longest + 1e-9
        assert makespan <= serial / threads + longest
    assert list_schedule(durations, deps, 1) == serial
    assert list_schedule(durations, deps, len(durations)) == longest  # a worker for every row
