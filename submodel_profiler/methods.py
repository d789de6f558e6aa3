"""The timing methods, once: what each is called, where its values live in a report.

Every consumer (the table and its footer, compare, plots, rank correlations, the totals) reads
this tuple; adding a method is one entry here plus the code that measures it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass


@dataclass(frozen=True)
class TimingMethod:
    """One way of timing a row.

    `key`: short name (JSON keys of `cross_check.rank_correlation`, table columns).
    `field`: the LayerRow field (a TimeStats or µs) and the Totals field (Σ rows, µs).
    `label`: human name. `column`: table header. `row_us`: a row's time in µs, or None.
    """

    key: str
    field: str
    label: str
    column: str
    row_us: Callable


ISOLATED = TimingMethod(
    "isolated", "time_us", "isolated", "median µs ± IQR", lambda r: r.time_median_us
)
UNFUSED = TimingMethod(
    "unfused", "unfused_time_us", "step stats (unfused)", "unfused µs", lambda r: r.unfused_time_us
)
IN_GRAPH = TimingMethod(
    "in_graph",
    "in_graph_time_us",
    "step stats (as optimized)",
    "in-graph µs",
    lambda r: r.in_graph_time_us,
)
CALLBACK = TimingMethod(
    "callback",
    "callback_time_us",
    "callback (eager)",
    "callback µs",
    lambda r: r.callback_median_us,
)

TIMING_METHODS = (ISOLATED, UNFUSED, IN_GRAPH, CALLBACK)
# The cross-checks: every method but the isolated one, which they are compared with.
CROSS_CHECK_METHODS = TIMING_METHODS[1:]


def total_us(method: TimingMethod, layers) -> float | None:
    """Σ rows' times of `method` in µs, or None when no row has one."""
    return sum_present(method.row_us(r) for r in layers)


def sum_present(values) -> float | None:
    """Σ of the values that are not None (rows' µs); None when all are."""
    present = [v for v in values if v is not None]
    return float(sum(present)) if present else None
