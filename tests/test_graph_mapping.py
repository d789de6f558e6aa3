"""The per-row split of the whole graph: ghost ops, scope-name collisions, shared layers, I/O."""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model

from conftest import assert_exact, rows_by_label


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def _hard_sigmoid_model(keras, channels=6):
    """MobileNetV3's hard-sigmoid: ReLU(6.)(x + 3.) * (1/6), inside an SE-style gate."""
    layers = keras.layers
    inputs = keras.Input((4, 4, channels), name="x")
    squeezed = layers.GlobalAveragePooling2D(keepdims=True, name="squeeze")(inputs)
    gate = layers.ReLU(6.0, name="hs_relu")(squeezed + 3.0) * (1.0 / 6.0)
    outputs = layers.Multiply(name="excite")([inputs, gate])
    return keras.Model(inputs, outputs)


def test_hard_sigmoid_ghost_ops_are_fused_into_relu(keras):
    c = 6
    report = _profile(_hard_sigmoid_model(keras, c))
    rows = rows_by_label(report)
    relu = rows["hs_relu"]
    assert [name.split("_")[0] for name in relu.ghost_ops] == ["add", "multiply"]
    # (x + 3) and (* 1/6) on a (1, 1, 1, C) tensor: C + C float ops; Relu6 (not counted by TF,
    # one per element by our rule): C.
    assert relu.tf_flops == 2 * c
    assert relu.flops == 3 * c
    assert relu.uncounted_ops == {}
    assert all(r.kind == "layer" for r in report.layers)
    assert_exact(report)


def test_ghost_op_without_activation_neighbour_is_its_own_row(keras):
    layers = keras.layers
    inputs = keras.Input((5, 5, 4))
    a = layers.Conv2D(4, 1, name="left")(inputs)
    b = layers.Conv2D(4, 1, name="right")(inputs)
    outputs = layers.Dense(2, name="head")(a + b)  # residual-style ghost add of two tensors
    report = _profile(keras.Model(inputs, outputs))
    ops = [r for r in report.layers if r.kind == "op"]
    assert len(ops) == 1 and ops[0].type == "Add"
    assert ops[0].flops == 5 * 5 * 4  # one add per element
    assert_exact(report)


def test_ghost_op_on_a_shared_path_is_not_fused(keras):
    layers = keras.layers
    inputs = keras.Input((8,))
    shifted = inputs + 1.0  # also used by the output below, so not exclusive to the ReLU
    outputs = layers.Concatenate(name="cat")([layers.ReLU(name="r")(shifted), shifted])
    report = _profile(keras.Model(inputs, outputs))
    assert rows_by_label(report)["r"].ghost_ops == ()
    assert sum(r.kind == "op" for r in report.layers) == 1
    assert_exact(report)


def test_layer_names_that_collide_with_tf_scope_suffixes(keras):
    """TF uniquifies scopes: layer `conv` may become `conv_1`, `conv_1` becomes `conv_1_2`."""
    layers = keras.layers
    inputs = keras.Input((6, 6, 2))
    x = layers.Conv2D(3, 3, padding="same", name="conv")(inputs)
    x = layers.Conv2D(4, 3, padding="same", name="conv_1")(x)
    x = layers.Conv2D(5, 3, padding="same", name="conv_1_2")(x)
    x = layers.Conv2D(6, 1, name="Add_6")(x)
    x = x + x  # a ghost Add next to a layer literally named Add_6
    report = _profile(keras.Model(inputs, x))
    rows = rows_by_label(report)
    for name, (cin, cout, k) in {
        "conv": (2, 3, 3),
        "conv_1": (3, 4, 3),
        "conv_1_2": (4, 5, 3),
        "Add_6": (5, 6, 1),
    }.items():
        assert rows[name].flops == 2 * k * k * cin * cout * 36 + cout * 36, name
    assert_exact(report)


def test_shared_layer_gets_one_row_per_call_site(keras):
    layers = keras.layers
    shared = layers.Dense(3, name="shared")
    a_in, b_in = keras.Input((4,), name="a"), keras.Input((4,), name="b")
    outputs = layers.Concatenate(name="cat")([shared(a_in), shared(b_in)])
    report = _profile(keras.Model([a_in, b_in], outputs), batch_size=2)
    shared_rows = [r for r in report.layers if r.name == "shared"]
    assert [r.call_index for r in shared_rows] == [0, 1]
    assert all(r.flops == 2 * (2 * 4 * 3 + 3) for r in shared_rows)
    # Shared weights count once.
    assert [r.params for r in shared_rows] == [15, 0]
    assert sum(r.params for r in report.layers) == report.model.params
    assert_exact(report)


def test_two_inputs_two_outputs(keras):
    layers = keras.layers
    img = keras.Input((8, 8, 3), name="img")
    vec = keras.Input((5,), name="vec")
    f = layers.Flatten(name="flat")(layers.Conv2D(2, 3, name="c")(img))
    joined = layers.Concatenate(name="join")([f, layers.Dense(4, name="dv")(vec)])
    out1 = layers.Dense(1, name="out1")(joined)
    out2 = layers.Dense(2, name="out2")(vec)
    report = _profile(keras.Model([img, vec], [out1, out2]), batch_size=3)
    assert [t.shape for t in report.model.inputs] == [(3, 8, 8, 3), (3, 5)]
    assert rows_by_label(report)["out2"].flops == 3 * (2 * 5 * 2 + 2)
    assert_exact(report)


def test_sequential_model(keras):
    model = keras.Sequential(
        [keras.Input((10,)), keras.layers.Dense(6, name="d1"), keras.layers.Dense(2, name="d2")]
    )
    report = _profile(model)
    assert [r.name for r in report.layers] == ["d1", "d2"]
    assert rows_by_label(report)["d1"].flops == 2 * 10 * 6 + 6
    assert_exact(report)


def test_profiling_leaves_the_model_unchanged(tiny_cnn):
    before = {ly.name: (len(ly._inbound_nodes), len(ly._outbound_nodes)) for ly in tiny_cnn.layers}
    _profile(tiny_cnn)
    after = {ly.name: (len(ly._inbound_nodes), len(ly._outbound_nodes)) for ly in tiny_cnn.layers}
    assert before == after


def test_identical_rows_share_a_measurement(keras):
    layers = keras.layers
    inputs = keras.Input((8,))
    x = layers.Dense(8, name="a")(inputs)
    x = layers.Dense(8, name="b")(x)
    report = _profile(keras.Model(inputs, x))
    rows = rows_by_label(report)
    assert rows["b"].same_as == "a"
    assert rows["b"].flops == rows["b"].whole_graph_flops == 2 * 8 * 8 + 8


@pytest.mark.parametrize("bad", [0, -1, 1.5])
def test_bad_batch_size_is_a_usage_error(tiny_cnn, bad):
    from submodel_profiler import UsageError

    with pytest.raises(UsageError, match="batch size"):
        _profile(tiny_cnn, batch_size=bad)


def test_free_spatial_dims_require_input_shape(keras):
    from submodel_profiler import UsageError

    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3, name="c")(inputs))
    with pytest.raises(UsageError, match="--input-shape"):
        _profile(model)
    report = _profile(model, input_shapes=[(10, 12, 3)])
    assert rows_by_label(report)["c"].flops == 2 * 9 * 3 * 2 * 8 * 10 + 2 * 8 * 10


def test_a_row_without_keras_nodes_says_what_it_is(keras):
    from submodel_profiler.graph_walk import RowPlan

    row = RowPlan("(inline ops)", "inline ops", "inline", 0, None, nodes=())
    assert row.source == "inline"
    with pytest.raises(TypeError, match="inline row"):
        _ = row.input_tensors
    site = RowPlan("dense", "Dense", "layer", 0, keras.layers.Dense(2), nodes=(), call_template=())
    assert site.source == "call_site"
    with pytest.raises(TypeError, match="call_site row"):
        _ = site.output_tensors
