"""The timing cross-checks: TF's per-node step stats of the whole model (as optimized and
unfused) and the callback method, run on the same inputs, and their rank correlation with the
isolated times.

A cross-check that cannot run (e.g. the callback refusing a model it cannot run eagerly) never
sinks the profile: its column stays empty and the reason is recorded in
`cross_check.method_errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from submodel_profiler.report import row_label

METHODS = ("unfused", "in_graph", "callback")


@dataclass(frozen=True)
class OtherMethods:
    """Results of the other timing methods (None or empty where skipped or failed)."""

    in_graph: object = None  # step_stats.InGraphTimes, as optimized
    unfused: object = None  # step_stats.InGraphTimes, unfused
    callback: dict = field(default_factory=dict)  # row key -> TimeStats
    errors: dict = field(default_factory=dict)  # method -> message


def other_methods(model, whole, specs, step_stats_runs: int, callback_samples: int,
                  int_high: int = 10) -> OtherMethods:  # fmt: skip
    """Run the step-stats (both modes) and callback methods on one set of random inputs."""
    from submodel_profiler.timing import random_inputs

    inputs = random_inputs(specs, int_high=int_high)
    errors: dict = {}
    in_graph = unfused = None
    callback: dict = {}
    if step_stats_runs > 0:
        try:
            in_graph, unfused = _step_stats(whole, inputs, step_stats_runs)
        except Exception as e:  # A cross-check failing must not sink the profile.
            errors["step_stats"] = f"{type(e).__name__}: {e}"
    if callback_samples > 0:
        try:
            from submodel_profiler.callback import callback_times

            callback = callback_times(model, inputs, samples=callback_samples)
        except Exception as e:
            errors["callback"] = f"{type(e).__name__}: {e}"
    return OtherMethods(in_graph, unfused, callback, errors)


def _step_stats(whole, inputs, runs: int):
    from submodel_profiler.step_stats import in_graph_times, standalone_graph

    standalone = standalone_graph(whole.instrumented_function)
    owner = whole.node_owner()
    optimized = in_graph_times(standalone, owner, inputs, optimized=True, runs=runs)
    unfused = in_graph_times(standalone, owner, inputs, optimized=False, runs=runs)
    return optimized, unfused


def step_stats_leftovers(others: OtherMethods) -> dict:
    """Per step-stats mode, the time no row could take: unattributed nodes (I/O, unmatched
    grappler nodes) and rows grappler removed with no surviving node downstream."""
    leftovers = {}
    for mode, times in (("in_graph", others.in_graph), ("unfused", others.unfused)):
        if times is not None:
            leftovers[mode] = {
                "unattributed_us": times.unattributed_us,
                "unattributed_nodes": times.unattributed_nodes,
                "eliminated_rows": [_label(k) for k in times.eliminated],
            }
    return leftovers


def _label(key) -> str:
    return row_label(*key)


def rank_correlations(layers) -> dict:
    """Spearman correlation of rows' isolated median times with each other method.

    Only rows with both values take part; None where fewer than 3 rows do or the values are
    constant.
    """
    columns = {
        "unfused": lambda r: r.unfused_time_us,
        "in_graph": lambda r: r.in_graph_time_us,
        "callback": lambda r: r.callback_median_us,
    }
    result = {}
    for method in METHODS:
        pairs = [(r.time_us.median, columns[method](r)) for r in layers
                 if r.time_us is not None and columns[method](r) is not None]  # fmt: skip
        result[method] = _spearman(pairs)
    return result


def _spearman(pairs) -> float | None:
    import numpy as np
    from scipy.stats import spearmanr

    if len(pairs) < 3:
        return None
    a, b = np.asarray(pairs, dtype=float).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return float(spearmanr(a, b).statistic)
