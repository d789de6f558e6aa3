"""Bytes per row: formulas written here for the layers' inputs, outputs, weights and op bytes,
the whole-graph cross-check of op bytes, the static peak of small models, and bound labels.

Byte figures at the traced dtypes, batch included: float32 = 4 bytes, float16 = 2.
"""

from __future__ import annotations

import dataclasses

import pytest

from submodel_profiler import profile_model
from submodel_profiler.bandwidth import Bandwidth
from submodel_profiler.counting import NO_TRAFFIC_OPS
from submodel_profiler.derived import add_derived_fields
from submodel_profiler.report import TimeStats
from submodel_profiler.throughput import Peak

from conftest import rows_by_label

F32, F16 = 4, 2


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def _assert_bytes_exact(report):
    for row in report.layers:
        assert row.op_bytes == row.whole_graph_op_bytes, row.label
    t = report.totals
    assert sum(r.op_bytes for r in report.layers) == t.whole_graph_op_bytes
    assert t.unattributed_op_bytes == 0
    assert report.cross_check.bytes_exact


def test_conv2d_bytes(keras):
    b, h, w, cin, cout, k = 2, 10, 10, 3, 8, 3
    x = keras.Input((h, w, cin))
    model = keras.Model(x, keras.layers.Conv2D(cout, k, padding="same", name="conv")(x))
    row = rows_by_label(_profile(model, batch_size=b))["conv"]
    inp, out = b * h * w * cin * F32, b * h * w * cout * F32
    kernel, bias = k * k * cin * cout * F32, cout * F32
    assert (row.input_bytes, row.output_bytes) == (inp, out)
    assert row.param_bytes == kernel + bias
    assert row.bytes_accessed == inp + out + kernel + bias
    # Conv2D reads x and the kernel, writes y; the bias add reads y and the bias, writes y.
    assert row.op_bytes == (inp + kernel + out) + (out + bias + out)
    assert row.arithmetic_intensity == pytest.approx(row.flops / row.bytes_accessed)


def test_depthwise_conv_bytes(keras):
    b, h, w, c, k = 1, 12, 12, 6, 3
    x = keras.Input((h, w, c))
    layer = keras.layers.DepthwiseConv2D(k, padding="same", name="dw")
    row = rows_by_label(_profile(keras.Model(x, layer(x)), batch_size=b))["dw"]
    act, kernel, bias = b * h * w * c * F32, k * k * c * F32, c * F32
    assert row.param_bytes == kernel + bias
    assert row.bytes_accessed == 2 * act + kernel + bias
    assert row.op_bytes == (act + kernel + act) + (act + bias + act)


def test_dense_bytes_float32_and_mixed_float16(keras):
    b, k, n = 4, 16, 8
    for policy, act_size in (("float32", F32), ("mixed_float16", F16)):
        x = keras.Input((k,))
        layer = keras.layers.Dense(n, name="dense", dtype=policy)
        row = rows_by_label(_profile(keras.Model(x, layer(x)), batch_size=b))["dense"]
        inp, out = b * k * act_size, b * n * act_size
        assert row.input_bytes == b * k * F32  # the model's input stays float32
        assert row.output_bytes == out
        assert row.param_bytes == (k * n + n) * F32  # variables stay float32
        matmul = row.input_bytes + k * n * act_size + out
        if policy == "float32":
            assert row.op_bytes == matmul + (out + n * F32 + out)
        else:
            # The layer casts its input and both weights to float16, then computes in it.
            casts = (b * k + k * n + n) * (F32 + F16)
            matmul = inp + k * n * F16 + out
            assert row.op_bytes == casts + matmul + (out + n * F16 + out)


def test_batch_norm_bytes(keras):
    b, h, w, c = 2, 8, 8, 16
    x = keras.Input((h, w, c))
    row = rows_by_label(_profile(keras.Model(x, keras.layers.BatchNormalization(name="bn")(x))))
    row = row["bn"]
    act = h * w * c * F32  # batch 1
    assert row.param_bytes == 4 * c * F32  # gamma, beta, moving mean and variance
    assert row.bytes_accessed == 2 * act + 4 * c * F32
    # Inference: y = x·s + t with s, t per channel; two passes over the tensor, each reading it
    # and a per-channel vector and writing it. Computing s and t from the four vectors costs a
    # few per-channel ops (Keras decides how many): bounded by 16 vector reads/writes + scalars.
    tensor_passes = 2 * (2 * act + c * F32)
    assert tensor_passes <= row.op_bytes <= tensor_passes + 16 * c * F32 + 64
    assert b  # the batch is 1 here: BN per channel does not depend on it


def test_ghost_op_bytes(keras):
    b, n = 3, 20
    x = keras.Input((n,))
    model = keras.Model(x, keras.layers.Dense(n, name="d")(x) + 3.0)
    rows = _profile(model, batch_size=b).layers
    ghost = next(r for r in rows if r.kind == "op")
    act = b * n * F32
    assert (ghost.input_bytes, ghost.output_bytes, ghost.param_bytes) == (act, act, 0)
    assert ghost.op_bytes == act + F32 + act  # x + 3.0 reads x and a float32 scalar


def test_shared_layer_weights_counted_once_but_read_by_every_call(keras):
    k = 12
    a, b = keras.Input((k,)), keras.Input((k,))
    shared = keras.layers.Dense(k, name="shared")
    model = keras.Model([a, b], keras.layers.Add(name="sum")([shared(a), shared(b)]))
    report = _profile(model)
    rows = rows_by_label(report)
    weights = (k * k + k) * F32
    assert rows["shared"].param_bytes == weights and rows["shared[1]"].param_bytes == 0
    assert (
        rows["shared"].bytes_accessed == rows["shared[1]"].bytes_accessed == 2 * k * F32 + (weights)
    )
    assert report.totals.param_bytes == weights
    _assert_bytes_exact(report)


def test_static_peak_of_a_chain(keras):
    # Dense 64 → 64 → 64, batch 1, float32: a tensor is 256 bytes. While a Dense runs, its input
    # (the model input or the previous output) and its MatMul output are live, and during the
    # bias add the MatMul output and the sum: 2 tensors, 512 bytes. Weights are counted apart.
    x = keras.Input((64,))
    y = x
    for i in range(3):
        y = keras.layers.Dense(64, name=f"d{i}")(y)
    report = _profile(keras.Model(x, y))
    t = 64 * F32
    assert report.totals.peak_activation_bytes == 2 * t
    assert report.totals.estimated_total_bytes == report.totals.param_bytes + 2 * t
    assert all(r.peak_activation_bytes == 2 * t for r in report.layers)


def test_static_peak_of_a_residual_block(keras):
    # y = d1(x); z = d2(y); out = x + z (linear Dense). x stays live until the add, so from
    # d1's bias add on, every op holds x, its input and its output: 3 tensors (d1's bias add:
    # x, the MatMul output, y; the add: x, z, out). The first op at the peak is in d1.
    x = keras.Input((32,))
    y = keras.layers.Dense(32, name="d1")(x)
    z = keras.layers.Dense(32, name="d2")(y)
    report = _profile(keras.Model(x, keras.layers.Add(name="res")([x, z])))
    assert report.totals.peak_activation_bytes == 3 * 32 * F32
    assert report.totals.peak_row == "d1"


def _roofline(report, flop_per_s: float, bytes_per_s: float):
    peak = Peak(flop_per_s, "test")
    return add_derived_fields(report, peak, Bandwidth({"copy": bytes_per_s}, "t"))


def test_bound_labels_follow_from_intensity(keras):
    # Dense 1024 → 1024 on a batch of 512: 2·512·1024·1024 float ops over
    # 4·(512·1024 + 512·1024 + 1024·1024 + 1024) bytes ≈ 128 flop/B: compute-bound at any ridge
    # below that. BatchNormalization: ~2 float ops per element over 8 bytes per element: memory-
    # bound at any ridge above 1 (a CPU's is ~10, a GPU's ~100).
    x = keras.Input((1024,))
    y = keras.layers.Dense(1024, name="dense")(x)
    model = keras.Model(x, keras.layers.BatchNormalization(name="bn")(y))
    report = _profile(model, batch_size=512)
    rows = rows_by_label(report)
    expected = 2 * 512 * 1024 * 1024 + 512 * 1024  # MatMul + bias add
    moved = F32 * (2 * 512 * 1024 + 1024 * 1024 + 1024)
    assert rows["dense"].arithmetic_intensity == pytest.approx(expected / moved)
    for ridge in (2.0, 10.0, 100.0):
        labelled = rows_by_label(_roofline(report, ridge * 1e10, 1e10))
        assert labelled["dense"].bound == "compute", ridge
        assert labelled["bn"].bound == "memory", ridge


def test_roofline_fraction_and_rate(keras):
    x = keras.Input((8,))
    report = _profile(keras.Model(x, keras.layers.Dense(8, name="d")(x)))
    row = dataclasses.replace(report.layers[0], time_us=TimeStats(10.0, 9.0, 11.0, 1.0, 5))
    report = dataclasses.replace(report, layers=(row,))
    out = _roofline(report, 1e11, 1e10).layers[0]
    achieved = row.flops / 10e-6  # 10 µs
    roof = min(1e11, row.arithmetic_intensity * 1e10)
    assert out.roofline_fraction == pytest.approx(achieved / roof)
    assert out.bytes_per_s == pytest.approx(row.bytes_accessed / 10e-6)


def _independent_op_bytes(graph) -> int:
    """Op bytes of a flat graph (no function calls or loops) walked here: every op outside
    NO_TRAFFIC_OPS reads its inputs and writes its outputs; handles count 0."""
    total = 0
    for op in graph.get_operations():
        if op.type in NO_TRAFFIC_OPS:
            continue
        for t in (*op.inputs, *op.outputs):
            if t.dtype.name not in ("resource", "variant"):
                total += t.shape.num_elements() * t.dtype.size
    return total


@pytest.mark.architecture
def test_op_bytes_row_by_row_on_mobilenet_v3_small(keras):
    import tensorflow as tf

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3))
    report = _profile(model)
    _assert_bytes_exact(report)
    fn = tf.function(lambda x: model(x, training=False))
    graph = fn.get_concrete_function(tf.TensorSpec((1, 96, 96, 3))).graph
    assert report.totals.whole_graph_op_bytes == _independent_op_bytes(graph)
    weights = sum(w.numpy().nbytes for w in model.weights)
    assert report.totals.param_bytes == weights


@pytest.mark.architecture
def test_op_bytes_row_by_row_on_a_keras_hub_transformer():
    import keras_hub

    backbone = keras_hub.models.BertBackbone(
        vocabulary_size=50,
        num_layers=2,
        num_heads=2,
        hidden_dim=16,
        intermediate_dim=32,
        max_sequence_length=8,
    )
    for depth in (1, "all"):
        report = _profile(backbone, input_shapes=[(8,), (8,), (8,)], depth=depth)
        _assert_bytes_exact(report)
        for parent in report.parents:
            assert parent.op_bytes == parent.rows_op_bytes, parent.label


def test_op_bytes_agree_in_every_mode(keras):
    # A nested model (expanded or not), a composite layer at --depth 2, a subclassed model: the
    # sub-models' op bytes equal the whole graph's row by row, and sum to it.
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, keras.layers.Dense(6, name="inner_dense")(inner_in), name="inner")
    x = keras.Input((4, 6))
    y = keras.layers.MultiHeadAttention(2, 3, name="mha")(x, x)
    y = keras.layers.Flatten(name="flat")(y)
    y = keras.layers.Dense(6, name="proj")(y)
    model = keras.Model(x, inner(y))
    for options in ({}, {"expand_nested": True}, {"depth": 2}, {"depth": "all"}):
        report = _profile(model, **options)
        _assert_bytes_exact(report)
        for parent in report.parents:
            assert parent.op_bytes == parent.rows_op_bytes, (options, parent.label)

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(5)
            self.b = keras.layers.Dense(5)

        def call(self, x):
            return self.b(keras.ops.relu(self.a(x)) * 2.0)

    report = _profile(Sub(), input_shapes=[(5,)])
    _assert_bytes_exact(report)


def test_loop_bytes_are_the_body_times_the_trip_count(keras):
    # SimpleRNN(8) over T steps of 4 features: the loop body moves the same bytes every step, so
    # op bytes grow by the same amount per 5 extra steps, and a step moves at least its two
    # matmuls' operands and results: x_t·W (4 + 4·8 + 8 floats) and h·U (8 + 8·8 + 8 floats).
    def op_bytes(steps):
        x = keras.Input((steps, 4))
        report = _profile(keras.Model(x, keras.layers.SimpleRNN(8, name="rnn")(x)))
        _assert_bytes_exact(report)
        row = rows_by_label(report)["rnn"]
        assert any("iterations (static trip count)" in n for n in row.count_notes)
        return row.op_bytes

    b5, b10, b15 = op_bytes(5), op_bytes(10), op_bytes(15)
    per_step = (b10 - b5) / 5
    assert b15 - b10 == b10 - b5
    assert per_step >= ((4 + 32 + 8) + (8 + 64 + 8)) * F32
