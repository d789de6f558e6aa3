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


def test_row_dependencies_see_through_an_expanded_layers_inline_ops(keras):
    # A residual block expanded (--depth 2): its add is one of its own ops, in the block's
    # inline row, which comes after both sublayers in row order but runs between them. The
    # second dense reads the add, so it depends on the first dense through it.
    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.specs import resolve_input_specs
    from submodel_profiler.whole_graph import profile_whole_graph

    class Residual(keras.layers.Layer):
        def __init__(self, **kwargs):
            super().__init__(**kwargs)
            self.first = keras.layers.Dense(16, name="first")
            self.second = keras.layers.Dense(16, name="second")

        def call(self, x):
            return self.second(x + self.first(x))

    x = keras.Input((16,))
    model = keras.Model(x, Residual(name="block")(keras.layers.Dense(16, name="stem")(x)))
    nested: list = []
    rows = plan_rows(model, depth=2, parents=nested)
    specs = resolve_input_specs(model, 1, None)
    whole = profile_whole_graph(model, rows, specs, 2, tuple(nested))
    labels = [r.label for r in whole.rows]
    deps = {labels[i]: {labels[j] for j in d} for i, d in enumerate(whole.row_dependencies())}
    assert labels.index("block/(inline ops)") > labels.index("block/second")
    assert deps["block/first"] == {"stem"}
    assert deps["block/second"] == {"stem", "block/first"}  # x + first(x), x from the stem
