"""TF's per-node step statistics attributed to rows: coverage, fusion, name mapping, sums.

Nothing here asserts a measured duration; times are checked to be non-negative, positive where
a row's node ran, and to be the medians of the raw node statistics TF recorded, attributed by
this file's own rule. The fusion facts are those of TF 2.21's grappler on CPU.
"""

from __future__ import annotations

import itertools
import statistics
from collections import defaultdict

import numpy as np
import pytest

from submodel_profiler import step_stats
from submodel_profiler.graph_walk import plan_rows
from submodel_profiler.report import row_label
from submodel_profiler.specs import resolve_input_specs
from submodel_profiler.timing import random_inputs
from submodel_profiler.whole_graph import profile_whole_graph

# Row times are medians of per-run sums of nanosecond fields: equal up to float rounding.
SUM_TOLERANCE_US = 1e-6


def _prepare(model):
    """(row keys in order, node_owner, standalone graph, inputs) of a model at batch 1."""
    rows = plan_rows(model)
    specs = resolve_input_specs(model, 1)
    whole = profile_whole_graph(model, rows, specs)
    standalone = step_stats.standalone_graph(whole.instrumented_function)
    return [r.key for r in rows], whole.node_owner(), standalone, random_inputs(specs)


@pytest.fixture(scope="module")
def tiny(tiny_cnn):
    return _prepare(tiny_cnn)


@pytest.fixture(scope="module")
def conv_relu(keras):
    """Conv2D(bias) → ReLU layer and Dense(bias) → Activation("relu"): fusable across rows."""
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, name="conv")(inputs)
    x = layers.ReLU(name="relu")(x)
    x = layers.Flatten(name="flat")(x)
    x = layers.Dense(5, name="dense")(x)
    outputs = layers.Activation("relu", name="act")(x)
    return _prepare(keras.Model(inputs, outputs))


def _check_consistent(result, keys):
    """Row keys are rows; fused rows are not timed and point at timed rows; times >= 0."""
    assert set(result.times_us) <= set(keys)
    assert set(result.fused_into) <= set(keys)
    assert not set(result.fused_into) & set(result.times_us)
    assert set(result.fused_into.values()) <= set(result.times_us)
    assert all(t >= 0 for t in result.times_us.values())
    assert result.unattributed_us >= 0
    # _SOURCE, the input's _Arg, the output Identity and its _Retval belong to no row.
    assert result.unattributed_nodes >= 4


def test_unoptimized_mode_covers_every_row_with_time(tiny):
    keys, owner, standalone, inputs = tiny
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=False, runs=3)
    _check_consistent(result, keys)
    assert list(result.times_us) == keys  # every row, in row order
    assert all(t > 0 for t in result.times_us.values())
    assert result.fused_into == {} and result.eliminated == ()
    assert result.timeline is not None and result.timeline.mode == "unfused"
    # the timeline is only built when asked for (--trace); the times are there either way
    lean = step_stats.in_graph_times(standalone, owner, inputs, False, 1, timeline=False)
    assert lean.timeline is None and list(lean.times_us) == keys


def test_optimized_mode_keeps_batchnorm_rows_apart_with_variable_weights(tiny):
    # Keras 3 BatchNormalization is Mul/Add on variables: nothing for the remapper to fuse
    # across rows; Conv2D + BiasAdd and MatMul + BiasAdd fuse inside their own rows.
    keys, owner, standalone, inputs = tiny
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=True, runs=3)
    _check_consistent(result, keys)
    assert list(result.times_us) == keys
    assert result.fused_into == {}


def test_remapper_fusion_across_rows_is_reported(conv_relu):
    # Conv2D + BiasAdd + Relu becomes one _FusedConv2D named after the Relu; MatMul + BiasAdd +
    # Relu one _FusedMatMul named after the activation.
    keys, owner, standalone, inputs = conv_relu
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=True, runs=3)
    _check_consistent(result, keys)
    assert result.fused_into == {("conv", 0): ("relu", 0), ("dense", 0): ("act", 0)}
    assert list(result.times_us) == [("relu", 0), ("flat", 0), ("act", 0)]
    assert result.times_us[("relu", 0)] > 0


def test_same_model_unoptimized_keeps_every_row(conv_relu):
    keys, owner, standalone, inputs = conv_relu
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=False, runs=2)
    _check_consistent(result, keys)
    assert list(result.times_us) == keys and result.fused_into == {}


def _layer_of(node_name: str) -> str | None:
    """conv_relu's layer of an executed node by its name scope, under the model's own scope
    ("functional_1/conv_1/BiasAdd" -> "conv"); None for nodes outside every layer scope
    (_SOURCE, the input's _arg_*, NoOp, Identity, _retval_*); a fed weight's argument
    ("_arg_functional_1/conv_1/convolution/ReadVariableOp/resource_0_1") is its layer's."""
    scopes = node_name.split("/")[:-1]
    layers = [s.rsplit("_", 1)[0] for s in scopes]
    found = [layer for layer in layers if layer in {"conv", "relu", "flat", "dense", "act"}]
    return found[0] if found else None


@pytest.mark.parametrize(
    "optimized, host",
    [
        (False, {}),
        # The remapper runs Conv2D + BiasAdd + Relu as one node named after relu, MatMul +
        # BiasAdd + Relu as one named after act: conv's and dense's weight reads go with them.
        (True, {"conv": "relu", "dense": "act"}),
    ],
)
def test_row_times_are_medians_of_recorded_kernel_times(conv_relu, monkeypatch, optimized, host):
    # The raw NodeExecStats TF recorded, attributed by name scope here, not by the module's
    # node_owner / original_name mapping: each row's time is the median over runs of its nodes'
    # kernel times, and every node outside a layer scope is unattributed.
    keys, owner, standalone, inputs = conv_relu
    recorded = []

    def recording_run_traced(*args, **kwargs):
        executed, stats = run_traced(*args, **kwargs)
        recorded.extend(stats)
        return executed, stats

    run_traced = step_stats.run_traced
    monkeypatch.setattr(step_stats, "run_traced", recording_run_traced)
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=optimized, runs=3)
    assert len(recorded) == 3
    per_run, outside = [], set()
    for step in recorded:
        sums = defaultdict(float)
        for node in (n for d in step.dev_stats for n in d.node_stats):
            layer = _layer_of(node.node_name)
            layer = host.get(layer, layer)
            sums[layer] += (node.op_end_rel_nanos - node.op_start_rel_nanos) / 1e3
            if layer is None:
                outside.add(node.node_name)
        per_run.append(sums)
    expected = {
        (layer, 0): statistics.median(run.get(layer, 0.0) for run in per_run)
        for layer in ("conv", "relu", "flat", "dense", "act")
        if layer not in host
    }
    assert result.times_us == pytest.approx(expected, abs=SUM_TOLERANCE_US)
    assert list(result.times_us) == [k for k in keys if k in expected]
    unattributed = statistics.median(run[None] for run in per_run)
    assert result.unattributed_us == pytest.approx(unattributed, abs=SUM_TOLERANCE_US)
    assert result.unattributed_nodes == len(outside)


def test_frozen_weights_fold_batchnorm_into_the_convolution(keras):
    # With constant weights grappler multiplies the BN scale into the filter; the Conv2D runs
    # under the name of BN's multiply, so the conv row is fused into the BN row.
    layers = keras.layers
    inputs = keras.Input((8, 8, 3))
    x = layers.Conv2D(4, 3, use_bias=False, name="conv")(inputs)
    x = layers.BatchNormalization(name="bn")(x)
    outputs = layers.ReLU(name="relu")(x)
    model = keras.Model(inputs, outputs)
    rows = plan_rows(model)
    specs = resolve_input_specs(model, 1)
    whole = profile_whole_graph(model, rows, specs)
    owner, inputs = whole.node_owner(), random_inputs(specs)
    concrete = whole.instrumented_function
    frozen = step_stats.in_graph_times(concrete, owner, inputs, True, 2, freeze_weights=True)
    assert frozen.fused_into == {("conv", 0): ("bn", 0)}
    _check_consistent(frozen, [r.key for r in rows])
    unfused = step_stats.in_graph_times(concrete, owner, inputs, False, 2, freeze_weights=True)
    assert list(unfused.times_us) == [r.key for r in rows]


def test_shared_layer_call_sites_and_ghost_ops_keep_their_nodes(keras):
    layers = keras.layers
    a, b = keras.Input((6,), name="a"), keras.Input((6,), name="b")
    shared = layers.Dense(3, name="shared")
    gate = layers.ReLU(6.0, name="hs")(shared(a) + 3.0) * (1.0 / 6.0)  # ghost ops fused into hs
    outputs = layers.Multiply(name="mul")([gate, shared(b)])
    keys, owner, standalone, inputs = _prepare(keras.Model([a, b], outputs))
    assert ("shared", 1) in keys and len(standalone.feeds) == 2
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=False, runs=2)
    assert list(result.times_us) == keys
    assert all(t > 0 for t in result.times_us.values())


def test_wrong_inputs_and_runs_are_rejected(tiny):
    keys, owner, standalone, inputs = tiny
    with pytest.raises(ValueError, match="Received: 2 input"):
        step_stats.in_graph_times(standalone, owner, inputs * 2, optimized=False)
    with pytest.raises(ValueError, match="runs=0"):
        step_stats.in_graph_times(standalone, owner, inputs, optimized=False, runs=0)


def test_session_config_turns_node_merging_off_only_when_unoptimized():
    assert not step_stats.session_config(True).graph_options.rewrite_options.disable_meta_optimizer
    config = step_stats.session_config(False)
    assert config.graph_options.rewrite_options.disable_meta_optimizer
    assert not config.graph_options.optimizer_options.do_constant_folding
    assert not config.graph_options.optimizer_options.do_common_subexpression_elimination


TRACED = {
    "conv_1/convolution",
    "conv_10/convolution",
    "act_1/truediv",
    "block_add_1/Add",
    "conv_1/convolution/ReadVariableOp/resource",  # a weight's placeholder, fed
}


@pytest.mark.parametrize(
    "executed, traced",
    [
        ("conv_1/convolution", "conv_1/convolution"),
        ("conv_1/convolution/merged_input", "conv_1/convolution"),
        ("conv_10/convolution-0-TransposeNHWCToNCHW-LayoutOptimizer", "conv_10/convolution"),
        ("ConstantFolding/act_1/truediv_recip", "act_1/truediv"),
        ("block_add_1/ArithmeticOptimizer/AddOpsRewrite_Leaf_1_Add", "block_add_1/Add"),
        ("block_add_1/ArithmeticOptimizer/AddOpsRewrite_Add", "block_add_1/Add"),
        ("conv_1/convolutionX", None),  # no boundary after the traced name
        ("_arg_keras_tensor_0_0", None),  # the model's input
        (
            "_arg_conv_1/convolution/ReadVariableOp/resource_0_3",
            "conv_1/convolution/ReadVariableOp/resource",
        ),
        ("_arg_dense_1/MatMul/ReadVariableOp/resource_0_3", None),  # not a traced name
        ("_SOURCE", None),
    ],
)
def test_original_name_maps_grappler_names_back(executed, traced):
    assert step_stats.original_name(executed, TRACED) == traced


def _step_stats(nodes):
    """A StepStats with one CPU device; nodes are (name, start, op_start, op_end, end) in ns."""
    from tensorflow.core.framework import step_stats_pb2

    stats = step_stats_pb2.StepStats()
    device = stats.dev_stats.add(device="/device:CPU:0")
    for name, start, op_start, op_end, end in nodes:
        device.node_stats.add(
            node_name=name,
            all_start_nanos=start,
            op_start_rel_nanos=op_start,
            op_end_rel_nanos=op_end,
            all_end_rel_nanos=end,
        )
    return stats


def test_node_times_are_kernel_intervals_summed_per_name():
    stats = _step_stats(
        [
            ("a", 1_000, 500, 3_500, 4_000),  # kernel 3 µs
            ("b:Conv2D", 5_000, 0, 2_000, 2_500),  # suffix cut at the colon
            ("a", 9_000, 1_000, 2_000, 3_000),  # second execution of a: +1 µs
        ]
    )
    assert step_stats.node_times_us(stats) == pytest.approx({"a": 4.0, "b": 2.0})


def test_data_path_excludes_weight_arithmetic():
    from tensorflow.core.framework import graph_pb2

    graph_def = graph_pb2.GraphDef()
    for name, inputs in [
        ("x", []),
        ("w", []),
        ("w_read", ["w"]),
        ("scale", ["w_read"]),  # weight-only arithmetic (BN's rsqrt · gamma)
        ("y", ["x", "scale"]),
        ("z", ["y:0", "^w_read"]),  # control edges do not carry data
    ]:
        graph_def.node.add(name=name, op="Op", input=inputs)
    assert step_stats.data_path(graph_def, ["x:0"]) == {"x", "y", "z"}


def _recording(monkeypatch, strip_memory: bool = False) -> list:
    """Record the StepStats of every traced run (optionally without their memory records)."""
    recorded = []
    run_traced = step_stats.run_traced

    def recording_run_traced(*args, **kwargs):
        executed, stats = run_traced(*args, **kwargs)
        for node in (n for s in stats for d in s.dev_stats for n in d.node_stats):
            if strip_memory:
                node.ClearField("memory")
        recorded.extend(stats)
        return executed, stats

    monkeypatch.setattr(step_stats, "run_traced", recording_run_traced)
    return recorded


def _records(step) -> list:
    """(alloc_micros, alloc_bytes) of every allocation record of a run, by time."""
    nodes = sorted(
        (n for d in step.dev_stats for n in d.node_stats), key=lambda n: n.all_start_nanos
    )
    found = [
        (r.alloc_micros, r.alloc_bytes)
        for n in nodes
        for m in n.memory
        for r in m.allocation_records
    ]
    return sorted(found, key=lambda r: r[0])


@pytest.mark.parametrize("optimized", [False, True])
def test_timeline_and_memory_are_those_of_the_median_run(conv_relu, monkeypatch, optimized):
    # The run kept is the one whose nodes' kernel times add up to the median; its timeline
    # holds every node TF recorded, at all_start from the earliest node, for all_end_rel; the
    # bytes in use are the running sum of its allocation records.
    keys, owner, standalone, inputs = conv_relu
    recorded = _recording(monkeypatch)
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=optimized, runs=3)
    totals = [
        sum(n.op_end_rel_nanos - n.op_start_rel_nanos for d in s.dev_stats for n in d.node_stats)
        for s in recorded
    ]
    kept = recorded[totals.index(statistics.median(totals))]
    nodes = sorted(
        (n for d in kept.dev_stats for n in d.node_stats), key=lambda n: n.all_start_nanos
    )
    origin = nodes[0].all_start_nanos
    timeline = result.timeline
    assert timeline.mode == ("in_graph" if optimized else "unfused")
    assert [(s.node, s.start_us, s.dur_us) for s in timeline.slices] == [
        (n.node_name.split(":")[0], (n.all_start_nanos - origin) / 1e3, n.all_end_rel_nanos / 1e3)
        for n in nodes
    ]
    in_use = list(itertools.accumulate(b for _, b in _records(kept)))
    assert [b for _, b in timeline.memory] == in_use
    assert result.peak_bytes == max(in_use) > 0
    # Rows own the nodes their times come from: timed rows, labelled as the report labels them.
    labels = {s.row for s in timeline.slices}
    assert labels - {None} == {row_label(*k) for k in result.times_us}
    assert list(result.row_peak_bytes) == list(result.times_us)
    assert all(0 <= b <= result.peak_bytes for b in result.row_peak_bytes.values())


def test_row_peak_is_the_most_in_use_while_its_nodes_ran():
    # Two rows' nodes, ns since the epoch; records in µs: a allocates 100 B and 50 B (freed by
    # its end), then b allocates 10 B while a's 100 B are still in use, then a's are freed.
    stats = _step_stats([("a", 1_000_000, 0, 0, 4_000), ("b", 6_000_000, 0, 0, 2_000)])
    a, b = stats.dev_stats[0].node_stats
    a.memory.add(allocator_name="cpu").allocation_records.add(alloc_micros=1_000, alloc_bytes=100)
    for micros, size in ((1_002, 50), (1_003, -50), (6_004, -100)):
        a.memory[0].allocation_records.add(alloc_micros=micros, alloc_bytes=size)
    b.memory.add(allocator_name="cpu").allocation_records.add(alloc_micros=6_001, alloc_bytes=10)
    memory = step_stats.bytes_in_use(stats)
    assert memory.micros == (1_000, 1_002, 1_003, 6_001, 6_004)
    assert memory.in_use == (100, 150, 100, 110, 10)
    found = step_stats._Attribution({"a": "a", "b": "b"}, {}, ())
    owner = {"a": ("a", 0), "b": ("b", 0)}
    assert step_stats.row_peaks(stats, memory, found, owner) == {("a", 0): 150, ("b", 0): 110}


def test_without_allocation_records_memory_is_none_not_zero(tiny, monkeypatch):
    keys, owner, standalone, inputs = tiny
    _recording(monkeypatch, strip_memory=True)
    result = step_stats.in_graph_times(standalone, owner, inputs, optimized=False, runs=1)
    assert result.peak_bytes is None and result.row_peak_bytes == {}
    assert result.timeline.memory == () and result.timeline.slices


def test_median_run_is_the_lower_middle_total():
    runs = [({("a", 0): 3.0}, 1.0, set()), ({("a", 0): 1.0}, 0.0, set()), ({}, 9.0, set())]
    assert step_stats.median_run(runs) == 0  # totals 4, 1, 9
    assert step_stats.median_run(runs[:2]) == 1  # totals 4, 1: the lower middle


def test_the_standalone_graph_computes_what_the_model_computes(tiny_cnn):
    # Its weights are fed views of the model's (not copies, not variables assigned in the
    # session): the session's output is the model's, and stays so after the model's weights
    # change.
    import tensorflow as tf

    _, _, standalone, inputs = _prepare(tiny_cnn)
    assert standalone.init_op is None  # inference reads its weights only: every one is fed
    assert len(standalone.weight_feeds) == len(tiny_cnn.weights)
    reads = [np.asarray(w.value.read_value()) for w in tiny_cnn.weights]  # views, not copies
    buffers = {r.__array_interface__["data"][0] for r in reads}
    fed = {v.__array_interface__["data"][0] for v in standalone.weight_feeds.values()}
    assert fed == buffers
    graph = standalone.graph
    assert not [op for op in graph.get_operations() if op.type in ("VarHandleOp", "ReadVariableOp")]
    expected = tiny_cnn(inputs[0]).numpy()
    for weight in tiny_cnn.weights:  # assigned after the graph was made: not what it holds
        weight.assign(weight + 1.0)
    feed = dict(zip(standalone.feeds, [np.asarray(x) for x in inputs]))
    with tf.compat.v1.Session(graph=graph) as session:
        (got,) = session.run(list(standalone.fetches), {**feed, **standalone.weight_feeds})
    for weight in tiny_cnn.weights:
        weight.assign(weight - 1.0)
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)


def test_running_the_graph_never_writes_into_the_fed_weights(keras):
    # The fed arrays are the model's own weight memory: an op that could reuse its input's
    # buffer for its output (Relu, Add) must not do so with a fed weight, in either mode.
    import tensorflow as tf

    class ReluOfWeights(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=shape[1:], initializer="zeros")

        def call(self, x):
            return x + keras.ops.relu(self.w) + (self.w + 1.0)  # unary and binary, on a weight

    x = inputs = keras.Input((8,))
    x = ReluOfWeights(name="relu_w")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)  # moving_variance + epsilon
    model = keras.Model(inputs, x)
    variance = model.get_layer("bn").moving_variance
    for weight in model.weights:  # negative (Relu in place would zero them), but the variance
        sign = 1.0 if weight is variance else -1.0
        weight.assign(sign * np.arange(1, 9, dtype="float32"))
    before = [w.numpy().copy() for w in model.weights]
    _, owner, standalone, inputs = _prepare(model)
    assert len(standalone.weight_feeds) == len(model.weights)
    for optimized in (True, False):
        step_stats.run_traced(standalone, inputs, optimized, runs=2)
    for weight, value in zip(model.weights, before):
        np.testing.assert_array_equal(weight.numpy(), value)
    assert sum((fed < 0).all() for fed in standalone.weight_feeds.values()) == 4
    expected = model(inputs[0]).numpy()
    feed = dict(zip(standalone.feeds, [np.asarray(x) for x in inputs]))
    with tf.compat.v1.Session(graph=standalone.graph) as session:
        (got,) = session.run(list(standalone.fetches), {**feed, **standalone.weight_feeds})
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-5)


def test_a_training_step_keeps_the_variables_it_writes_as_variables(tiny_cnn):
    # BatchNormalization's moving statistics are assigned by the training step: they stay
    # variables (assigned once per session from the model's values), every other weight is fed.
    import tensorflow as tf

    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.specs import resolve_input_specs
    from submodel_profiler.training import profile_whole_step

    specs = resolve_input_specs(tiny_cnn, 2)
    whole = profile_whole_step(tiny_cnn, plan_rows(tiny_cnn), specs)
    standalone = step_stats.standalone_graph(whole.instrumented_function)
    bn = tiny_cnn.get_layer("bn")
    moving = {bn.moving_mean.path, bn.moving_variance.path}
    handles = [op for op in standalone.graph.get_operations() if op.type == "VarHandleOp"]
    assert len(handles) == len(moving) == len(standalone.init_feeds)
    assert len(standalone.weight_feeds) == len(tiny_cnn.weights) - len(moving)
    assert standalone.init_op is not None
    inputs = random_inputs(specs)
    feed = {
        **dict(zip(standalone.feeds, [np.asarray(x) for x in inputs])),
        **standalone.weight_feeds,
    }
    with tf.compat.v1.Session(graph=standalone.graph) as session:
        session.run(standalone.init_op, standalone.init_feeds)
        got = session.run(list(standalone.fetches), feed)
    assert all(np.isfinite(g).all() for g in got)
    assert len(got) == 1 + len(tiny_cnn.trainable_weights)  # the loss and every gradient
