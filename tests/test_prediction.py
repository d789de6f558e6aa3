"""The whole model predicted from its rows: the row DAG read from the graph, and the prediction
in the report between the critical path and Σ rows."""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model

from conftest import FAST_TIMING


def _diamond(keras):
    # x → a → (b, c) → add → out: b and c are independent branches
    x = keras.Input((16,))
    a = keras.layers.Dense(16, name="a")(x)
    b = keras.layers.Dense(16, name="b")(a)
    c = keras.layers.Dense(16, name="c")(a)
    return keras.Model(x, keras.layers.Add(name="add")([b, c]))


def test_row_dependencies_follow_the_graph(keras):
    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.specs import resolve_input_specs
    from submodel_profiler.whole_graph import profile_whole_graph

    model = _diamond(keras)
    rows = plan_rows(model)
    whole = profile_whole_graph(model, rows, resolve_input_specs(model, 1, None), 1, ())
    names = [r.name for r in whole.rows]
    deps = {names[i]: {names[j] for j in d} for i, d in enumerate(whole.row_dependencies())}
    assert deps == {"a": set(), "b": {"a"}, "c": {"a"}, "add": {"b", "c"}}


def test_the_prediction_lies_between_the_critical_path_and_the_sum(keras):
    report = profile_model(
        _diamond(keras), timing_settings=FAST_TIMING, step_stats_runs=0, callback_samples=0
    )
    t = report.totals
    times = {r.name: r.time_us.median for r in report.layers}
    # the longest path: a, the longer branch, add
    assert t.critical_path_us == pytest.approx(
        times["a"] + max(times["b"], times["c"]) + times["add"]
    )
    assert t.critical_path_us <= t.predicted_whole_us <= t.time_us
    if t.predicted_threads >= 2:  # the two branches overlap
        assert t.predicted_whole_us == pytest.approx(t.critical_path_us)
    else:
        assert t.predicted_whole_us == pytest.approx(t.time_us)
