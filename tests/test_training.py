"""The training step, layer by layer (--pass train): forward and backward float ops and MACs
against formulas written here, the rows against TF's profiler on a training step written here
(the seed's method on the step), and the refusals."""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model
from submodel_profiler.errors import UsageError
from submodel_profiler.training import AGGREGATION_ROW, LOSS_ROW

from conftest import FAST_TIMING, depends_on, rows_by_label


def train(model, batch_size=4, **kw):
    return profile_model(model, batch_size=batch_size, timing=False, pass_="train", **kw)


def assert_step_exact(report):
    """Every row's step and forward counts equal the whole step's, and the rows sum to it."""
    t = report.totals
    for row in report.layers:
        assert row.error is None, row.error
        assert row.flops_match, row.label  # step and forward, in both conventions and MACs
        assert row.op_bytes == row.whole_graph_op_bytes, row.label
    assert t.unattributed_flops == t.unattributed_tf_flops == t.unattributed_macs == 0
    assert t.unattributed_op_bytes == 0
    assert sum(r.flops for r in report.layers) == t.whole_graph_flops
    assert t.forward_flops + t.backward_flops == t.flops
    assert report.cross_check.flops_exact and report.cross_check.bytes_exact


def seed_step_tf_flops(model, specs) -> int:
    """TF's profiler (the seed's method) on a training step written here: the forward with
    training=True under a tape, a loss, the gradients of every trainable weight. TF's
    per-graph memo of reduction-gradient shapes is off, as in the tool's traces (training.py:
    with it on, a repeated reduction shape makes its dead shape ops once, 4 TF float ops)."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    from submodel_profiler.tf_logging import quiet_tf

    @tf.function
    def step(x):
        tf.compat.v1.get_default_graph()._reduced_shape_cache = _NoMemo()
        with tf.GradientTape() as tape:
            y = model(x, training=True)
            loss = tf.reduce_sum(y * tf.ones_like(y))
        return tape.gradient(loss, model.trainable_weights)

    graph = step.get_concrete_function(*specs).graph
    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    )
    with quiet_tf():
        return model_analyzer.profile(graph, options=options).total_float_ops


class _NoMemo(dict):
    def __setitem__(self, key, value):
        pass


B, K, N, M = 4, 16, 32, 8


@pytest.fixture(scope="module")
def mlp(keras):
    x = keras.Input((K,))
    h = keras.layers.Dense(N, name="first")(x)
    h = keras.layers.Dense(M, name="hidden")(h)
    return keras.Model(x, h)


def test_dense_forward_and_backward_follow_the_formulas(mlp):
    report = train(mlp, batch_size=B)
    assert_step_exact(report)
    rows = rows_by_label(report)
    first, hidden = rows["first"], rows["hidden"]
    # forward: a matmul (2·B·K·N) and the bias (B·N)
    assert first.forward_flops == 2 * B * K * N + B * N
    assert hidden.forward_flops == 2 * B * N * M + B * M
    # backward of a hidden layer: the weight gradient and the input gradient, 2·B·K·N each,
    # and the bias gradient, a sum over the batch ((B - 1)·N adds)
    assert hidden.backward_flops == 2 * (2 * B * N * M) + (B - 1) * M
    assert hidden.backward_macs == 2 * B * N * M
    # the first layer's input is the model's: no input gradient
    assert first.backward_flops == 2 * B * K * N + (B - 1) * N
    assert first.backward_macs == B * K * N
    assert report.settings.pass_name == "train"
    assert {LOSS_ROW, AGGREGATION_ROW} <= set(rows)


def test_conv_backward_is_twice_the_forward_except_the_first(keras):
    h_, w_, c_in, c1, c2 = 8, 8, 3, 4, 6
    x = keras.Input((h_, w_, c_in))
    y = keras.layers.Conv2D(c1, 3, padding="same", use_bias=False, name="c1")(x)
    y = keras.layers.Conv2D(c2, 3, padding="same", use_bias=False, name="c2")(y)
    y = keras.layers.GlobalAveragePooling2D(name="gap")(y)
    y = keras.layers.Dense(2, use_bias=False, name="d")(y)
    model = keras.Model(x, y)
    report = train(model, batch_size=2)
    assert_step_exact(report)
    rows = rows_by_label(report)
    c1_macs = 2 * h_ * w_ * c1 * 9 * c_in  # B·H·W·Cout·kh·kw·Cin
    c2_macs = 2 * h_ * w_ * c2 * 9 * c1
    assert rows["c1"].forward_macs == c1_macs and rows["c1"].backward_macs == c1_macs
    assert rows["c2"].forward_macs == c2_macs and rows["c2"].backward_macs == 2 * c2_macs
    t = report.totals
    # without a first-layer input gradient: backward = 2 × forward − the first contraction's
    assert t.backward_macs == 2 * t.forward_macs - c1_macs


def test_depthwise_and_elementwise_gradients_are_counted(keras):
    x = keras.Input((8, 8, 4))
    y = keras.layers.Conv2D(4, 1, name="pw")(x)
    y = keras.layers.DepthwiseConv2D(3, padding="same", use_bias=False, name="dw")(y)
    y = keras.layers.Activation("tanh", name="tanh")(y)
    y = keras.layers.ReLU(name="relu")(y)
    model = keras.Model(x, y)
    report = train(model, batch_size=1)
    assert_step_exact(report)
    rows = rows_by_label(report)
    dw = 8 * 8 * 4 * 9  # output elements · kh · kw
    assert rows["dw"].forward_macs == dw and rows["dw"].backward_macs == 2 * dw
    assert rows["dw"].backward_flops == 2 * 2 * dw  # input and filter gradients, 2 per MAC
    # TanhGrad and ReluGrad: one float op per element, as Tanh and Relu
    assert rows["tanh"].backward_flops == rows["tanh"].forward_flops == 8 * 8 * 4
    assert rows["relu"].backward_flops == 8 * 8 * 4
    assert not report.cross_check.uncounted_ops


def test_multi_head_attention_backward_needs_both_operand_gradients(keras):
    batch, t_, d, heads, dk = 2, 6, 8, 2, 4
    x = keras.Input((t_, d))
    y = keras.layers.MultiHeadAttention(heads, dk, name="mha")(x, x)
    model = keras.Model(x, y)
    report = train(model, batch_size=batch)
    assert_step_exact(report)
    row = rows_by_label(report)["mha"]
    projection = batch * t_ * d * heads * dk  # each of query, key, value and output
    scores = batch * heads * t_ * t_ * dk  # q·kᵀ, and again for the weighted sum of values
    assert row.forward_macs == 4 * projection + 2 * scores
    # query/key/value: weight gradients only (their input is the model's); the two einsums
    # need both operands' gradients; the output projection its weights' and its input's
    assert row.backward_macs == 3 * projection + 2 * 2 * scores + 2 * projection


def test_rows_sum_to_tf_profiler_on_the_whole_step(keras):
    x = keras.Input((8, 8, 3))
    y = keras.layers.Conv2D(4, 3, name="conv")(x)
    y = keras.layers.BatchNormalization(name="bn")(y)
    y = keras.layers.ReLU(name="relu")(y)
    z = keras.layers.Conv2D(4, 1, name="skip")(y)
    y = keras.layers.Add(name="add")([y, z])
    y = keras.layers.Dropout(0.3, name="drop")(y)
    y = keras.layers.Flatten(name="flat")(y)
    y = keras.layers.Dense(3, name="dense")(y)
    model = keras.Model(x, y)
    report = train(model, batch_size=2)
    assert_step_exact(report)
    import tensorflow as tf

    seed = seed_step_tf_flops(model, [tf.TensorSpec((2, 8, 8, 3))])
    loss = rows_by_label(report)[LOSS_ROW]
    # our loss (Σ y·G) and the test's (Σ y·1) have the same ops on the same shapes
    assert report.totals.whole_graph_tf_flops == seed
    assert loss.tf_flops > 0
    # the BatchNormalization row ran in training mode: batch statistics, more than x·γ + β
    bn = rows_by_label(report)["bn"]
    assert bn.forward_flops > 2 * 2 * 6 * 6 * 4
    # the residual sum's gradient: a tensor read by two rows, summed in the aggregation row
    assert rows_by_label(report)[AGGREGATION_ROW].backward_flops == 2 * 6 * 6 * 4


def test_saved_activations_are_what_the_backward_reads(mlp):
    report = train(mlp, batch_size=B)
    rows = rows_by_label(report)
    # the weight gradient of `first` reads its input (B·K floats); of `hidden`, its input
    # (first's output, B·N floats); a bias gradient reads no activation
    assert rows["first"].saved_activation_bytes == 4 * B * K
    assert rows["hidden"].saved_activation_bytes == 4 * B * N
    # the step as one fused kernel: the forward's inputs, outputs and weights, then the
    # upstream gradient, the input gradient (none for `first`) and the weights' gradients
    w_first, w_hidden = K * N + N, N * M + M
    assert rows["first"].bytes_accessed == 4 * (B * K + B * N + w_first + B * N + w_first)
    assert rows["hidden"].bytes_accessed == 4 * (
        B * N + B * M + w_hidden + B * M + B * N + w_hidden
    )
    assert report.totals.saved_activation_bytes >= 4 * (B * K + B * N)


def test_depth_expand_nested_and_subclassed_are_exact(keras):
    inner_in = keras.Input((6,))
    inner = keras.Model(inner_in, keras.layers.Dense(5, name="inner_dense")(inner_in), name="inner")
    x = keras.Input((4, 6))
    y = keras.layers.MultiHeadAttention(2, 3, name="mha")(x, x)
    y = keras.layers.Flatten()(y)
    y = keras.layers.Dense(6, name="d")(y)
    y = inner(y)
    model = keras.Model(x, y)
    for options in ({"depth": "all"}, {"expand_nested": True}):
        report = train(model, batch_size=2, **options)
        assert_step_exact(report)
        assert report.parents or options.get("expand_nested")

    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.a = keras.layers.Dense(5)
            self.b = keras.layers.Dense(3)

        def call(self, x):
            return self.b(keras.ops.relu(self.a(x)) * 2.0)

    sub = Sub()
    sub(keras.ops.zeros((2, 4)))
    report = train(sub, batch_size=2, input_shapes=[(4,)])
    assert_step_exact(report)


def test_refusals_are_clear(keras):
    x = keras.Input((4,))
    frozen = keras.Model(x, keras.layers.Dense(2, trainable=False)(x))
    with pytest.raises(UsageError, match="no trainable weights"):
        train(frozen)
    y = keras.ops.argmax(keras.layers.Dense(3)(x), axis=-1)
    integers = keras.Model(x, y)
    with pytest.raises(UsageError, match="no float output"):
        train(integers)
    with pytest.raises(UsageError, match="pass_ must be one of"):
        profile_model(frozen, pass_="backward", timing=False)

    import tensorflow as tf

    class NoGradient(keras.layers.Layer):  # TF registers no gradient for MatrixLogarithm
        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1],))

        def call(self, x):
            m = tf.linalg.diag(tf.cast(x * self.w + 2.0, tf.complex64))
            return tf.math.real(tf.raw_ops.MatrixLogarithm(input=m))[..., 0]

    y = NoGradient(name="logm")(x)
    with pytest.raises(UsageError, match="no gradient for MatrixLogarithm, which logm runs"):
        train(keras.Model(x, y))


def test_timed_train_pass_reports_forward_and_step_times(mlp):
    from submodel_profiler.renderers import render_csv, render_table
    from submodel_profiler.timing import TimingSettings

    report = profile_model(
        mlp,
        batch_size=B,
        pass_="train",
        timing_settings=TimingSettings(min_repeats=3, max_repeats=5, budget_s=0.01),
        step_stats_runs=1,
        callback_samples=1,
        measure_peak=False,
    )
    row = rows_by_label(report)["hidden"]
    assert row.time_us is not None and row.forward_time_us is not None
    assert row.backward_time_ratio is not None
    # the forward parts come from the same runs as the steps
    assert row.forward_time_us.repeats == row.time_us.repeats
    whole, forward = report.totals.whole_model_time_us, report.totals.whole_forward_time_us
    assert whole is not None and forward is not None and forward.repeats == whole.repeats
    assert "callback" in report.cross_check.method_errors  # not a training-step method
    text = render_table(report)
    assert "bwd float ops" in text and "Training step: forward" in text
    assert "Forward time (training mode): Σ rows" in text
    assert "saved_activation_bytes" in render_csv(report).splitlines()[0]


@pytest.mark.architecture
def test_mobilenet_v3_small_training_step_is_exact(keras):
    import tensorflow as tf

    model = keras.applications.MobileNetV3Small(weights=None, input_shape=(96, 96, 3))
    report = train(model, batch_size=1)
    assert_step_exact(report)
    assert report.totals.whole_graph_tf_flops == seed_step_tf_flops(
        model, [tf.TensorSpec((1, 96, 96, 3))]
    )
    t = report.totals
    # every contraction but the first convolution also needs its input gradient
    first = rows_by_label(report)["conv"].forward_macs
    assert t.backward_macs == 2 * t.forward_macs - first


def test_lstm_backward_runs_the_forward_trip_count(keras):
    batch, steps, features, units = 2, 7, 3, 5
    x = keras.Input((steps, features))
    model = keras.Model(x, keras.layers.LSTM(units, name="lstm")(x))
    report = train(model, batch_size=batch)
    assert_step_exact(report)
    row = rows_by_label(report)["lstm"]
    gates = 4 * units
    # per step, forward: x·W and h·U; backward: the gradients of W (xᵀ·dz), of U (hᵀ·dz) and
    # of h (dz·Uᵀ); none of x, the model's input
    assert row.forward_macs == steps * batch * gates * (features + units)
    assert row.backward_macs == steps * batch * gates * (features + 2 * units)
    assert not row.uncounted_ops
    assert any("× 7 iterations" in note for note in row.count_notes)


def test_custom_gradients_stay_in_their_row(keras):
    # TF's silu (Keras' swish) has a tf.custom_gradient: its backward must land in its row,
    # not in the row that produced its upstream gradient
    x = keras.Input((6,))
    y = keras.layers.Dense(5, name="a")(x)
    y = keras.layers.Activation("swish", name="swish")(y)
    y = keras.layers.Dense(3, name="b")(y)
    report = train(keras.Model(x, y), batch_size=2)
    assert_step_exact(report)
    rows = rows_by_label(report)
    assert rows["swish"].backward_flops > 0
    assert rows["b"].backward_flops == 2 * (2 * 2 * 5 * 3) + (2 - 1) * 3


def test_optimizer_update_per_row(mlp):
    from submodel_profiler.renderers import render_table

    report = train(mlp, batch_size=B, optimizer="sgd")
    rows, t = rows_by_label(report), report.totals
    # plain SGD: w -= lr·g, a multiply and a subtraction per weight
    assert rows["first"].optimizer_flops == 2 * (K * N + N)
    assert rows["hidden"].optimizer_flops == 2 * (N * M + M)
    assert t.optimizer == "SGD"
    assert t.optimizer_flops == 2 * (K * N + N + N * M + M) + t.unattributed_optimizer_flops
    assert 0 < t.unattributed_optimizer_flops < 10  # the iteration counter, not per weight
    assert "update float ops" in render_table(report)
    adam = train(mlp, batch_size=B, optimizer="adam").totals
    per_row = sum(r.optimizer_flops or 0 for r in train(mlp, B, optimizer="adam").layers)
    assert adam.optimizer_flops == per_row + adam.unattributed_optimizer_flops
    with pytest.raises(UsageError, match="--pass train"):
        profile_model(mlp, timing=False, optimizer="sgd")
    with pytest.raises(UsageError, match="Unknown optimizer"):
        train(mlp, optimizer="nonsense")


def test_optimizer_update_is_timed_per_row_on_copies_of_the_weights(keras):
    import numpy as np

    from submodel_profiler.renderers import render_csv, render_table

    x = keras.Input((K,))
    h = keras.layers.Dense(N, name="first")(x)
    h = keras.layers.ReLU(name="relu")(h)  # no weights: no update
    model = keras.Model(x, keras.layers.Dense(M, name="hidden")(h))
    model.compile(optimizer="adam")  # its optimizer is the one profiled, and stays unused
    model.optimizer.build(model.trainable_weights)
    before = [np.array(w.numpy()) for w in model.weights]
    report = profile_model(
        model,
        batch_size=B,
        pass_="train",
        timing_settings=FAST_TIMING,
        step_stats_runs=0,
        callback_samples=0,
        measure_peak=False,
    )
    for row in report.layers:
        if row.params:
            assert row.optimizer_time_us.median > 0, row.label
        else:
            assert row.optimizer_time_us is None, row.label
    assert all(np.array_equal(a, w.numpy()) for a, w in zip(before, model.weights))
    assert int(model.optimizer.iterations.numpy()) == 0
    t = report.totals
    timed = [r.optimizer_time_us.median for r in report.layers if r.optimizer_time_us]
    assert len(timed) == 2 and t.optimizer_time_us == pytest.approx(sum(timed))
    assert t.whole_optimizer_time_us.median > 0  # the cross-check: one update of all weights
    assert "optimizer" not in report.cross_check.method_errors
    assert "update µs" in render_table(report) and "Optimizer update time: Σ rows" in (
        render_table(report)
    )
    assert "optimizer_time_us_median" in render_csv(report).splitlines()[0]


def test_an_update_that_cannot_be_made_costs_its_time_only(keras):
    from submodel_profiler.profiler import _update_segments

    class Unconfigurable(keras.optimizers.SGD):
        def get_config(self):
            raise RuntimeError("no config")

    weights = [keras.Variable([1.0, 2.0])]
    updates = _update_segments(Unconfigurable(), {("d", 0): weights, ("relu", 0): []})
    assert updates.rows == {} and updates.whole is None
    assert set(updates.errors) == {("d", 0), "whole"}
    assert "no config" in updates.errors[("d", 0)]


def test_rows_whose_weights_have_the_same_shapes_share_one_update_timing(keras):
    from submodel_profiler.profiler import _update_segments

    def weights(*shapes):
        return [keras.Variable(keras.ops.zeros(shape)) for shape in shapes]

    owned = {"a": weights((3, 2), (2,)), "b": weights((3, 2), (2,)), "c": weights((2,), (3, 2))}
    updates = _update_segments(keras.optimizers.SGD(), owned)
    assert set(updates.rows) == {"a", "c"} and updates.same == {"b": "a"}
    assert len(updates.whole.specs) == 6  # the whole update: every weight, shared or not


SPLIT = ("unfused", "in_graph")  # the step-stats modes, each split into forward and backward


def test_step_stats_split_each_row_into_forward_and_backward(mlp):
    timed = {"timing_settings": FAST_TIMING, "callback_samples": 0, "measure_peak": False}
    report = profile_model(mlp, batch_size=B, pass_="train", step_stats_runs=2, **timed)
    for mode in SPLIT:
        for row in report.layers:
            whole = getattr(row, f"{mode}_time_us")
            forward = getattr(row, f"{mode}_forward_time_us")
            backward = getattr(row, f"{mode}_backward_time_us")
            if whole is None:  # no node of its own ran (fused, or nothing to run)
                assert forward is None and backward is None, (mode, row.label)
                continue
            assert forward >= 0 and backward >= 0, (mode, row.label)
            assert forward + backward == pytest.approx(whole, rel=1e-9, abs=1e-9), row.label
        t = report.totals
        parts = getattr(t, f"{mode}_forward_time_us") + getattr(t, f"{mode}_backward_time_us")
        assert parts == pytest.approx(getattr(t, f"{mode}_time_us"))
    hidden = rows_by_label(report)["hidden"]
    assert hidden.unfused_forward_time_us > 0 and hidden.unfused_backward_time_us > 0
    inference = profile_model(mlp, batch_size=B, step_stats_runs=1, **timed)
    names = [f"{mode}_{part}_time_us" for mode in SPLIT for part in ("forward", "backward")]
    for item in (*inference.layers, inference.totals):
        assert all(getattr(item, name) is None for name in names)


def test_step_stats_backward_of_the_first_dense_has_no_input_gradient(mlp):
    """The nodes the unfused step-stats run executes, by the owner and phase maps: the first
    Dense's backward holds one MatMul (its weight gradient; its input needs none), a hidden
    Dense's two (weight and input gradients), each forward one."""
    from submodel_profiler import step_stats
    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.specs import resolve_input_specs
    from submodel_profiler.timing import random_inputs
    from submodel_profiler.training import profile_whole_step

    specs = resolve_input_specs(mlp, B)
    whole = profile_whole_step(mlp, plan_rows(mlp), specs)
    standalone = step_stats.standalone_graph(whole.instrumented_function)
    executed, _ = step_stats.run_traced(standalone, random_inputs(specs), False, runs=1)
    owner, phase = whole.node_owner(), whole.node_phase()
    graph = whole.instrumented_function.graph  # traced op types (oneDNN renames executed ones)

    def matmuls(name, part):
        return sum(
            owner.get(node) == (name, 0)
            and phase[node] == part
            and graph.get_operation_by_name(node).type == "MatMul"
            for node in executed
        )

    assert (matmuls("first", "forward"), matmuls("first", "backward")) == (1, 1)
    assert (matmuls("hidden", "forward"), matmuls("hidden", "backward")) == (1, 2)


@pytest.mark.architecture
def test_keras_hub_bert_training_step_is_exact_and_near_six_n_t():
    keras_hub = pytest.importorskip("keras_hub")
    seq, layers, d = 16, 2, 32
    model = keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=layers,
        num_heads=2,
        hidden_dim=d,
        intermediate_dim=64,
        max_sequence_length=seq,
        dropout=0.0,
    )
    report = train(model, batch_size=1, seq_len=seq)
    assert_step_exact(report)
    t = report.totals
    # Kaplan et al. (2020), §2.1: 6·N·T for the non-embedding parameters N and T tokens, plus
    # 6·n_layer·n_ctx·d per token for attention; our count adds softmax, GELU, normalisation,
    # biases and the embeddings' gradients, so it is above the rule, not far above
    embedding = sum(int(w.numpy().size) for w in model.trainable_weights if "embedding" in w.path)
    n = sum(int(w.numpy().size) for w in model.trainable_weights) - embedding
    rule = 6 * n * seq + 6 * layers * seq * d * seq
    assert rule < t.flops < 1.6 * rule


def test_a_timed_step_starts_its_backward_after_its_forward(keras):
    # Split where the forward ends (timing.Segment.split): a gradient op that needs only the
    # upstream gradient and a weight (Conv2D's input gradient) must wait for the forward's
    # timestamp, as inside the whole step, where the upstream gradient comes last.
    import tensorflow as tf

    from submodel_profiler.graph_walk import plan_rows
    from submodel_profiler.training import profile_submodel_step

    x = keras.Input((8, 8, 4))
    h = keras.layers.Conv2D(4, 3, padding="same", name="c1")(x)
    model = keras.Model(x, keras.layers.Conv2D(4, 3, padding="same", name="c2")(h))
    row = next(r for r in plan_rows(model) if r.label == "c2")
    spec = tf.TensorSpec((1, 8, 8, 4))
    sub = profile_submodel_step(row, [spec], needs_grad=(True,), output_specs=[spec])
    stamps = []

    def gate(done, held):
        with tf.control_dependencies(list(done)):
            stamps.append(tf.timestamp())
        with tf.control_dependencies(stamps):
            return [tf.identity(t) for t in held]

    graph = tf.function(lambda x: sub.call(x, split=gate), autograph=False)
    ops = graph.get_concrete_function(spec).graph.get_operations()
    (stamp,) = [op for op in ops if op.type == "Timestamp"]
    forward = next(op for op in ops if op.type == "Conv2D")
    backprops = [op for op in ops if op.type.startswith("Conv2DBackprop")]
    assert {op.type for op in backprops} == {"Conv2DBackpropInput", "Conv2DBackpropFilter"}
    assert depends_on(stamp, forward)
    assert all(depends_on(op, stamp) for op in backprops)
