"""The whole model traced once: `model(x)`'s own trace split per row (`whole_graph.trace_once`),
and the models it leaves to the node-by-node trace and the reference (two traces)."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from conftest import seed_tf_flops


def _whole(model, depth=1, expand_nested=False):
    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.specs import resolve_input_specs
    from submodel_profiler.whole_graph import profile_whole_graph

    nested: list = []
    rows = plan_rows(model, expand_nested=expand_nested, depth=depth, parents=nested)
    specs = resolve_input_specs(model, 1, None)
    return profile_whole_graph(model, rows, specs, depth, tuple(nested)), rows, specs


def _branchy(keras):
    a, b = keras.Input((8,), name="a"), keras.Input((8,), name="b")
    shared = keras.layers.Dense(4, name="shared")
    x = keras.layers.ReLU(name="relu")(shared(a) + 3.0)  # a ghost op fused into the ReLU
    y = shared(b)  # its second call site
    out = keras.layers.Concatenate(name="cat")([x, y])
    return keras.Model([a, b], keras.layers.Dense(2, name="head")(out))


def test_a_functional_model_is_split_from_its_one_ordinary_trace(keras):
    from submodel_profiler.flops import count_graph_flops
    from submodel_profiler.whole_graph import trace_rows

    model = _branchy(keras)
    whole, rows, specs = _whole(model)
    assert whole.traced_once and whole.reference is whole.instrumented
    assert whole.reference.total.tf_flops == seed_tf_flops(model, specs)
    # multiply-adds of each Dense call, from the shapes
    assert whole.row_count(("shared", 0)).macs == whole.row_count(("shared", 1)).macs == 8 * 4
    assert whole.row_count(("head", 0)).macs == 8 * 2
    # the node-by-node trace (an independent way to split) splits it alike, row by row
    concrete, tree, errors = trace_rows(model, rows, specs)
    split = count_graph_flops(concrete.graph)
    assert not errors and [r.key for r in tree.rows] == [r.key for r in whole.rows]
    for row in whole.rows:
        assert whole.row_count(row.key) == split.count_of(tree.traces[row.key].op_names)
        assert whole.trace(row.key).input_specs == tree.traces[row.key].input_specs
        assert whole.trace(row.key).outputs_used == tree.traces[row.key].outputs_used
    deps = whole.row_dependencies()
    split_apart = dataclasses.replace(whole, row_traces=tree.traces, instrumented_function=concrete)
    assert deps == split_apart.row_dependencies()
    assert deps[0] == set() and deps[1] == {0} and deps[3] == {1, 2} and deps[4] == {3}


def test_a_sequential_model_is_traced_once(keras):
    model = keras.Sequential(
        [keras.Input((6,)), keras.layers.Dense(5, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    whole, _, specs = _whole(model)
    assert whole.traced_once
    assert [whole.row_count((n, 0)).macs for n in ("d1", "d2")] == [6 * 5, 5 * 2]
    assert whole.reference.total.tf_flops == seed_tf_flops(model, specs)


def test_a_sequential_and_a_nested_model_as_one_row_are_traced_once(keras):
    inner = keras.Sequential([keras.Input((6,)), keras.layers.Dense(5, name="d1")], name="inner")
    x = keras.Input((6,))
    model = keras.Model(x, keras.layers.Dense(3, name="d2")(inner(x)))
    whole, _, specs = _whole(model)
    assert whole.traced_once
    assert whole.row_count(("inner", 0)).macs == 6 * 5
    assert whole.reference.total.tf_flops == seed_tf_flops(model, specs)
    expanded, _, _ = _whole(model, expand_nested=True)  # the inner model's own nodes: two traces
    assert not expanded.traced_once
    assert expanded.reference.total == whole.reference.total


def test_composite_rows_to_expand_take_the_node_by_node_trace(keras):
    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.inner = keras.layers.Dense(4, name="inner")

        def call(self, x):
            return self.inner(x) * 2.0

    x = keras.Input((4,))
    model = keras.Model(x, Block(name="block")(x))
    assert _whole(model, depth=1)[0].traced_once
    deep, _, _ = _whole(model, depth=2)
    assert not deep.traced_once
    assert [r.name for r in deep.rows] == ["block/inner", "block/(inline ops)"]


def test_a_row_failing_to_trace_takes_the_node_by_node_trace(keras):
    class Breaks(keras.layers.Layer):
        broken = False

        def call(self, x):
            if self.broken:
                raise ValueError("broken on purpose")
            return x * 2.0

    x = keras.Input((4,))
    breaks = Breaks(name="breaks")
    model = keras.Model(x, keras.layers.Dense(3, name="after")(breaks(x)))
    breaks.broken = True
    whole, _, _ = _whole(model)
    assert not whole.traced_once
    assert "_run_through_graph" not in vars(model)  # unpatched after the failed trace
    assert "broken on purpose" in whole.row_errors[("breaks", 0)]
    assert whole.row_count(("after", 0)).macs == 4 * 3  # traced on the stand-in zeros


def test_a_model_with_its_own_loop_takes_the_node_by_node_trace(keras):
    from keras.src.ops.function import Function

    class OwnLoop(keras.Model):
        def _run_through_graph(self, inputs, operation_fn=lambda op: op, call_fn=None):
            return Function._run_through_graph(self, inputs, operation_fn, call_fn)

    x = keras.Input((4,))
    model = OwnLoop(x, keras.layers.Dense(3, name="d")(x))
    whole, _, specs = _whole(model)
    assert not whole.traced_once
    assert whole.reference.total.tf_flops == seed_tf_flops(model, specs)
    assert "_run_through_graph" not in vars(model)  # nothing left on the model


def test_a_model_running_its_loop_twice_takes_the_node_by_node_trace(keras):
    class Twice(keras.Model):
        def call(self, x, training=None):
            return super().call(super().call(x, training=training), training=training)

    x = keras.Input((4,))
    model = Twice(x, keras.layers.Dense(4, name="d")(x))
    whole, _, specs = _whole(model)
    assert not whole.traced_once
    assert whole.reference.total.macs == 2 * 4 * 4  # the reference holds both calls
    assert whole.row_count(("d", 0)).macs == 4 * 4


def test_ops_around_the_loop_belong_to_no_row(keras):
    from submodel_profiler import profile_model

    class Around(keras.Model):
        def call(self, x, training=None):
            return super().call(x * 2.0 + 1.0, training=training) * 3.0

    x = keras.Input((8,))
    model = Around(x, keras.layers.Dense(4, name="d")(x))
    report = profile_model(model, timing=False)
    # 8 multiplies and 8 adds before the loop, 4 multiplies after it: counted, nobody's
    assert report.totals.unattributed_flops == 8 + 8 + 4
    assert report.totals.whole_graph_tf_flops == seed_tf_flops(model, [(1, 8)])
    assert not report.cross_check.flops_exact


def test_a_recorded_training_flag_gives_way_to_the_models(keras):
    # Keras' functional call passes the model's training=False to every layer that takes it,
    # over a training=True the layer was called with (MC dropout): the rows follow the model.
    from submodel_profiler import profile_model

    from conftest import assert_exact

    x = keras.Input((4, 4))
    y = keras.layers.BatchNormalization(name="bn")(x, training=True)
    y = keras.layers.Dropout(0.5, name="drop")(y, training=True)
    model = keras.Model(x, keras.layers.Dense(3, name="d")(y))
    report = profile_model(model, timing=False)
    assert_exact(report)
    assert report.totals.whole_graph_tf_flops == seed_tf_flops(model, [(1, 4, 4)])


def test_a_node_whose_inputs_were_not_returned_is_skipped_as_keras_skips_it(keras):
    from submodel_profiler.graph_walk import keras_loop

    class Two(keras.layers.Layer):  # declares two outputs, returns one
        def call(self, x):
            return x * 2.0

        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape), keras.KerasTensor(x.shape)

    x = keras.Input((4,))
    a, b = Two(name="two")(x)
    model = keras.Model(x, [keras.layers.Dense(2)(a), keras.layers.Dense(2)(b)])
    xs = np.ones((1, 4), "float32")
    for run in (model._run_through_graph, keras_loop(model), keras_loop(model, release=True)):
        with pytest.raises(ValueError, match="Output with path `1` is not connected"):
            run(xs)


@pytest.mark.parametrize("depth", [1, 2])
def test_the_model_is_left_as_it_was(keras, depth):
    class Block(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.inner = keras.layers.Dense(4, name="inner")

        def call(self, x):
            return self.inner(x)

    x = keras.Input((4,))
    model = keras.Model(x, Block(name="block")(keras.layers.Dense(4, name="d")(x)))
    whole, _, _ = _whole(model, depth=depth)
    assert whole.traced_once == (depth == 1)
    assert "_run_through_graph" not in vars(model)
