"""Float ops inside function-call nodes (PartitionedCall, StatefulPartitionedCall).

Keras 3 on TensorFlow runs a grouped convolution (`Conv2D(groups=G)`) in an inner jit-compiled
function: the outer graph holds only a call node, and TF's profiler counts nothing inside it.
Expected counts are formulas (TF counts a multiply-add as 2 float ops).
"""

from __future__ import annotations

import pytest

from submodel_profiler import flops as flops_module
from submodel_profiler import profile_model
from submodel_profiler.flops import CALL_OP_TYPES, count_graph_flops

from conftest import assert_exact, rows_by_label


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def _call_nodes(graph) -> list:
    return [op.name for op in graph.get_operations() if op.type in CALL_OP_TYPES]


def _concrete_graph(fn, *specs):
    import tensorflow as tf

    return tf.function(fn).get_concrete_function(*specs).graph


def _grouped_conv_flops(layer, batch=1) -> int:
    """The convolution inside a grouped Conv2D's call: 2·Kh·Kw·(Cin/G)·Cout·Hout·Wout·B."""
    kh, kw = layer.kernel_size
    cin = layer.input.shape[-1]
    _, h_out, w_out, c_out = layer.output.shape
    return 2 * kh * kw * (cin // layer.groups) * c_out * h_out * w_out * batch


def test_grouped_conv_row_counts_its_function_body(keras):
    # input (B, 10, 10, 8); "same" padding keeps Hout = H, Wout = W; groups = Cin = Cout = 8.
    b, h, w, c, k, g = 1, 10, 10, 8, 3, 8
    inputs = keras.Input((h, w, c))
    x = keras.layers.Conv2D(c, k, groups=g, padding="same", name="gconv")(inputs)
    outputs = keras.layers.Dense(2, name="head")(x)
    report = _profile(keras.Model(inputs, outputs), batch_size=b)
    row = rows_by_label(report)["gconv"]
    conv = 2 * k * k * (c // g) * c * h * w * b
    bias = c * h * w * b
    assert row.flops == conv + bias
    assert row.whole_graph_flops == conv + bias
    assert row.uncounted_ops == {}
    assert_exact(report)


def test_grouped_conv_with_batch_and_fewer_groups(keras):
    # Cin = 6, G = 2: each output channel sees Cin/G = 3 input channels; "valid" 3x3 on 7x9.
    b, h, w, cin, cout, k, g = 3, 7, 9, 6, 4, 3, 2
    ho, wo = h - k + 1, w - k + 1
    inputs = keras.Input((h, w, cin))
    x = keras.layers.Conv2D(cout, k, groups=g, use_bias=False, name="gconv")(inputs)
    report = _profile(keras.Model(inputs, x), batch_size=b)
    assert rows_by_label(report)["gconv"].flops == 2 * k * k * (cin // g) * cout * ho * wo * b
    assert_exact(report)


def test_nested_function_calls_are_counted_recursively():
    import tensorflow as tf

    @tf.function
    def inner(a, w):
        return tf.matmul(a, w)  # (4, 5) @ (5, 3): 2·4·5·3

    @tf.function
    def middle(a, w):
        return tf.nn.relu(inner(a, w)) + 1.0  # Relu uncounted; + 1: 4·3

    def outer(a):
        return middle(a, tf.ones((5, 3))) * 2.0  # 4·3

    graph = _concrete_graph(outer, tf.TensorSpec((4, 5)))
    counted = count_graph_flops(graph)
    (call,) = _call_nodes(graph)
    assert counted.per_node[call].tf_flops == 2 * 4 * 5 * 3 + 4 * 3
    assert counted.total.tf_flops == 2 * 4 * 5 * 3 + 4 * 3 + 4 * 3
    assert counted.total.flops == counted.total.tf_flops + 4 * 3  # and the Relu: 4·3
    assert counted.total.macs == 4 * 5 * 3
    assert counted.total == counted.count_of(counted.per_node)
    # found by the outer call's name
    assert counted.uncounted_ops([call], counting="tf") == {"Relu": 1}
    assert counted.uncounted_ops(counting="tf") == {"Relu": 1}
    assert counted.uncounted_ops() == {}


def test_same_body_is_counted_with_each_calls_shapes():
    """One traced body (batch unknown inside it), two calls with different static batches."""
    import tensorflow as tf

    @tf.function(input_signature=[tf.TensorSpec((None, 5))])
    def project(a):
        return tf.matmul(a, tf.ones((5, 3)))

    def outer(a, b):
        return project(a), project(b)

    graph = _concrete_graph(outer, tf.TensorSpec((4, 5)), tf.TensorSpec((6, 5)))
    calls = _call_nodes(graph)
    assert len(calls) == 2
    counted = count_graph_flops(graph)
    assert sorted(counted.count_of([c]).flops for c in calls) == [2 * 4 * 5 * 3, 2 * 6 * 5 * 3]
    assert counted.total.tf_flops == counted.total.flops == 2 * (4 + 6) * 5 * 3
    assert counted.total.macs == (4 + 6) * 5 * 3


def test_body_with_unknown_shapes_reports_its_ops_and_prints_nothing(capfd):
    import tensorflow as tf

    @tf.function
    def inner(a):
        return tf.matmul(a, tf.ones((5, 3)))

    graph = _concrete_graph(lambda a: inner(a), tf.TensorSpec((None, 5)))
    capfd.readouterr()
    counted = count_graph_flops(graph)
    assert capfd.readouterr() == ("", "")
    assert not counted.total
    assert counted.uncounted_ops() == counted.uncounted_ops(counting="tf") == {"MatMul": 1}


def test_grouped_conv_counting_prints_nothing(keras, capfd):
    import tensorflow as tf

    inputs = keras.Input((6, 6, 4))
    model = keras.Model(inputs, keras.layers.Conv2D(4, 3, groups=4)(inputs))
    graph = _concrete_graph(lambda x: model(x, training=False), tf.TensorSpec((1, 6, 6, 4)))
    capfd.readouterr()
    count_graph_flops(graph)
    assert capfd.readouterr() == ("", "")


def test_body_missing_from_library_is_reported_as_uncounted_call(monkeypatch):
    import tensorflow as tf

    @tf.function
    def inner(a):
        return a * 3.0

    graph = _concrete_graph(lambda a: inner(a) + 1.0, tf.TensorSpec((2, 2)))
    (call,) = _call_nodes(graph)
    call_type = graph.get_operation_by_name(call).type
    monkeypatch.setattr(flops_module._FunctionLibrary, "closure", lambda self, name: None)
    counted = count_graph_flops(graph)
    assert counted.total.flops == counted.total.tf_flops == 2 * 2  # only the outer + 1
    assert counted.uncounted == counted.tf_uncounted == {call: {call_type: 1}}
    assert counted.uncounted_ops([call]) == {call_type: 1}


@pytest.mark.architecture
def test_convnext_tiny_counts_its_grouped_convs(keras):
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    from submodel_profiler.tf_logging import quiet_tf

    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(224, 224, 3))
    report = _profile(model, batch_size=1)
    assert_exact(report)
    assert not any("PartitionedCall" in t for r in report.layers for t in r.uncounted_ops)

    # TF's plain profile of model(x): nothing inside the call nodes.
    graph = _concrete_graph(lambda x: model(x, training=False), tf.TensorSpec((1, 224, 224, 3)))
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output()
    with quiet_tf():
        plain = model_analyzer.profile(graph, options=options.build()).total_float_ops
    grouped = [
        layer
        for layer in model.layers
        if isinstance(layer, keras.layers.Conv2D) and layer.groups > 1
    ]
    assert len(grouped) == 18  # one 7x7 depthwise conv per ConvNeXt block (3 + 3 + 9 + 3)
    inner = sum(_grouped_conv_flops(layer) for layer in grouped)
    assert report.totals.whole_graph_tf_flops - plain == inner
