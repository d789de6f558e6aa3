"""The cross-checks, and the verdict a report carries (`cross_check`).

Counts: every row's sub-model counts (float ops in both conventions, MACs, op bytes) against
what the whole graph attributes to the row, and the rows' sums against the whole graph
(`cross_check`): `flops_exact` for the float ops and MACs, `bytes_exact` for the op bytes.

Times: TF's per-node step stats of the whole model (as optimized and unfused) and the callback
method, run on the same inputs, and their rank correlation with the isolated times.

A cross-check that cannot run (e.g. the callback refusing a model it cannot run eagerly) never
sinks the profile: its column stays empty and the reason is recorded in
`cross_check.method_errors`.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from submodel_profiler.counting import Count
from submodel_profiler.errors import describe
from submodel_profiler.methods import CROSS_CHECK_METHODS, ISOLATED
from submodel_profiler.report import CrossCheck, row_label


@dataclass(frozen=True)
class OtherMethods:
    """Results of the other timing methods (None or empty where skipped or failed)."""

    in_graph: object = None  # step_stats.InGraphTimes, as optimized
    unfused: object = None  # step_stats.InGraphTimes, unfused
    callback: dict = field(default_factory=dict)  # row key -> TimeStats
    errors: dict = field(default_factory=dict)  # method -> message


def cross_check(
    layers, reference: Count | None, others: OtherMethods, counting: str, parents=()
) -> CrossCheck:
    """The report's verdict: float ops (exact? complete?) and the timing cross-checks.

    `reference` is the whole graph's count (`model(x)` traced the ordinary way; None when it
    could not be traced, and then the float ops are not exact); `counting`
    says which of its figures the rows' `flops` are. An expanded layer (`parents`) whose own
    sub-model counts differ from the sums of its rows is listed as `label/` (in `failed_rows`
    when it could not be profiled).
    """
    # A row that was counted takes part even when its timing failed (its `error` says so).
    mismatched = tuple(r.label for r in layers if r.counts_differ or r.bytes_differ)
    mismatched += tuple(f"{p.label}/" for p in parents if p.counts_differ or p.bytes_differ)
    flops_differ = any(r.counts_differ for r in (*layers, *parents))
    bytes_differ = any(r.bytes_differ for r in (*layers, *parents))
    failed = tuple(r.label for r in layers if r.flops is None)
    failed += tuple(f"{p.label}/" for p in parents if p.flops is None)  # not built
    sums_equal = reference is not None and (
        sum(r.flops or 0 for r in layers) == reference.of(counting)
        and sum(r.tf_flops or 0 for r in layers) == reference.tf_flops
        and sum(r.macs or 0 for r in layers) == reference.macs
    )
    uncounted: dict = {}
    for row in layers:
        for op_type, n in row.uncounted_ops.items():
            uncounted[op_type] = uncounted.get(op_type, 0) + n
    bytes_equal = reference is not None and sum(r.op_bytes or 0 for r in layers) == (
        reference.op_bytes
    )
    return CrossCheck(
        flops_exact=not flops_differ and not failed and sums_equal,
        bytes_exact=not bytes_differ and not failed and bytes_equal,
        mismatched_rows=mismatched,
        failed_rows=failed,
        lower_bound_rows=tuple(r.label for r in layers if r.uncounted_ops),
        uncounted_ops=dict(sorted(uncounted.items())),
        rank_correlation=rank_correlations(layers),
        method_errors=dict(others.errors),
        step_stats=step_stats_leftovers(others),
    )


def other_methods(
    model,
    whole,
    specs,
    step_stats_runs: int,
    callback_samples: int,
    int_high: int = 10,
    timeline: bool = False,
    phases=None,
) -> OtherMethods:
    """Run the step-stats (both modes) and callback methods on one set of random inputs;
    `timeline`: keep the step-stats runs' timelines (`in_graph_times`); `phases(name)`, when
    given, is a context manager timing each method (`profiler.Phases`: "step_stats",
    "callback")."""
    import contextlib

    from submodel_profiler.timing import random_inputs

    phases = phases or (lambda name: contextlib.nullcontext())

    inputs = random_inputs(specs, int_high=int_high)
    errors: dict = {}
    in_graph = unfused = None
    callback: dict = {}
    if step_stats_runs > 0 and not whole.complete:
        errors["step_stats"] = (
            "skipped: a row failed in the whole model's trace, so the traced graph is not "
            "the model's"
        )
    elif step_stats_runs > 0 and gpu_visible():
        errors["step_stats"] = GPU_STEP_STATS
    elif step_stats_runs > 0:
        try:
            with phases("step_stats"):
                in_graph, unfused = _step_stats(whole, inputs, step_stats_runs, timeline)
        except Exception as e:  # A cross-check failing must not sink the profile.
            errors["step_stats"] = describe(e)
    if callback_samples > 0:
        try:
            from submodel_profiler.callback import callback_times

            expanded = [parent.label for parent in whole.parents]
            with phases("callback"):
                callback = callback_times(
                    model, inputs, samples=callback_samples, expanded=expanded
                )
        except Exception as e:
            errors["callback"] = describe(e)
    return OtherMethods(in_graph, unfused, callback, errors)


# Step stats from a software trace time kernel launches on a GPU, not kernels: the method (and
# the fusion flags it feeds) is CPU-only.
GPU_STEP_STATS = (
    "skipped: a GPU is visible, and TF's software-traced step stats record kernel "
    "launches there, not kernel durations; the step-stats methods and the fusion "
    "flags are CPU-only (run with CUDA_VISIBLE_DEVICES= for them)"
)


def gpu_visible() -> bool:
    import tensorflow as tf

    return bool(tf.config.list_physical_devices("GPU"))


def _step_stats(whole, inputs, runs: int, timeline: bool):
    from submodel_profiler.step_stats import in_graph_times, standalone_graph

    standalone = standalone_graph(whole.instrumented_function)
    owner, phase = whole.node_owner(), whole.node_phase()  # phase: a training step's
    optimized = in_graph_times(
        standalone, owner, inputs, True, runs, node_phase=phase, timeline=timeline
    )
    unfused = in_graph_times(
        standalone, owner, inputs, False, runs, node_phase=phase, timeline=timeline
    )
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
                "eliminated_rows": [row_label(*k) for k in times.eliminated],
            }
    return leftovers


def rank_correlations(layers) -> dict:
    """Spearman correlation of rows' isolated median times with each other method.

    Only rows with both values take part; None where fewer than 3 rows do or the values are
    constant.
    """
    result = {}
    for method in CROSS_CHECK_METHODS:
        pairs = [(ISOLATED.row_us(r), method.row_us(r)) for r in layers]
        result[method.key] = _spearman(
            [(a, b) for a, b in pairs if a is not None and b is not None]
        )
    return result


def _spearman(pairs) -> float | None:
    import numpy as np

    if len(pairs) < 3:
        return None
    a, b = np.asarray(pairs, dtype=float).T
    if np.ptp(a) == 0 or np.ptp(b) == 0:
        return None
    return spearman(a, b)


def spearman(a, b) -> float:
    """Spearman's rank correlation: Pearson's of the average ranks (ties share the mean of
    their ranks), as `scipy.stats.spearmanr` computes it; numpy alone, because importing
    scipy.stats costs half a second per profile."""
    import numpy as np

    return float(np.corrcoef(_average_ranks(a), _average_ranks(b))[0, 1])


def _average_ranks(values):
    import numpy as np

    values = np.asarray(values, dtype=float)
    ranks = np.empty(len(values))
    ranks[np.argsort(values, kind="stable")] = np.arange(1, len(values) + 1)
    _, tie_group, sizes = np.unique(values, return_inverse=True, return_counts=True)
    return (np.bincount(tie_group, weights=ranks) / sizes)[tie_group]
