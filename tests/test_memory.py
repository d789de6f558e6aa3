"""Static activation memory (memory.py) against bytes derived by hand from the liveness rule.

Every expectation is a count of tensors of known shape: t = B·N·(dtype size) bytes for one
activation of shape (B, N). Ops run in creation order; a tensor lives from its op to its last
reader, graph inputs from the start, graph outputs to the end.
"""

from __future__ import annotations

import math

import pytest

from submodel_profiler.memory import (
    Liveness,
    activation_peak,
    device_peak_bytes,
    peak_row,
    row_peaks,
)

B, N = 3, 5
T32 = B * N * 4  # bytes of one (B, N) float32 tensor


@pytest.fixture(scope="module")
def tf():
    import tensorflow as tf

    return tf


def _graph(tf, fn, shape=(B, N), dtype="float32"):
    return tf.function(fn).get_concrete_function(tf.TensorSpec(shape, dtype)).graph


def test_elementwise_chain_holds_one_ops_input_and_output(tf):
    def chain(x):
        return tf.add(tf.multiply(tf.nn.relu(x, name="relu"), 2.0, name="mul"), 1.0, name="add")

    live = activation_peak(_graph(tf, chain))
    # x:    [x, relu]         relu: [relu, mul]     mul: [mul, add]     add: [add, end]
    # At relu: x + relu; at mul: relu + mul (x freed after relu); at add: mul + add.
    # The output Identity aliases add: 1 tensor. Peak 2·T, first reached at relu.
    assert live.peak_bytes == 2 * T32
    assert live.peak_op == "relu"
    assert [live.live_bytes[n] for n in ("x", "relu", "mul", "add")] == [T32] + [2 * T32] * 3
    assert live.live_bytes["Identity"] == T32
    assert live.weight_bytes == 0 and live.unknown_tensors == 0


def test_residual_input_stays_live_until_the_add(tf):
    def residual(x):
        y = tf.nn.relu(x, name="f")
        z = tf.multiply(y, 2.0, name="g")
        return tf.add(x, z, name="add")

    live = activation_peak(_graph(tf, residual))
    # x: [x, add]   y: [f, g]   z: [g, add]   out: [add, end]
    # At f: x, y (2); at g: x, y, z (3); at add: x, z, out (3). Peak 3·T, first at g.
    assert live.live_bytes["f"] == 2 * T32
    assert live.live_bytes["g"] == 3 * T32
    assert live.live_bytes["add"] == 3 * T32
    assert live.peak_bytes == 3 * T32
    assert live.peak_op == "g"


def test_graph_outputs_live_until_the_end(tf):
    def two_outputs(x):
        a = tf.nn.relu(x, name="a")
        b = tf.tanh(a, name="b")
        return a, tf.sigmoid(b, name="c")

    live = activation_peak(_graph(tf, two_outputs))
    # a is an output: [a, end]. b: [b, c]. c: [c, end]. At c: a, b, c (3). (tf.function
    # returns each output through an Identity made after c, so a's buffer is read that late
    # too; test_roots_of_a_plain_graph has an output with no later reader.)
    assert live.live_bytes["c"] == 3 * T32
    assert live.peak_bytes == 3 * T32


def test_float16_tensors_take_two_bytes_per_element(tf):
    def chain(x):
        return tf.tanh(tf.nn.relu(x, name="relu"), name="tanh")

    live = activation_peak(_graph(tf, chain, dtype="float16"))
    # As the float32 chain: input and output of one op, 2 bytes per element.
    assert live.peak_bytes == 2 * B * N * 2


def test_reshape_allocates_nothing(tf):
    def through(alias: bool):
        def fn(x):
            y = tf.nn.relu(x, name="relu")
            mid = tf.reshape(y, (N, B), name="mid") if alias else tf.negative(y, name="mid")
            return tf.tanh(mid, name="tanh")

        return fn

    aliased = activation_peak(_graph(tf, through(alias=True)))
    copied = activation_peak(_graph(tf, through(alias=False)))
    # Reshape: its output is relu's buffer, so only that buffer is live while it runs; relu's
    # buffer lives on to tanh, its reshaped view's reader. Negative allocates its own output.
    assert aliased.live_bytes["mid"] == T32
    assert copied.live_bytes["mid"] == 2 * T32
    assert aliased.live_bytes["tanh"] == copied.live_bytes["tanh"] == 2 * T32


def test_identity_of_the_output_allocates_nothing(tf):
    def fn(x):
        return tf.identity(tf.nn.relu(x, name="relu"), name="same")

    live = activation_peak(_graph(tf, fn))
    # relu's buffer, viewed by `same` and by the graph's output Identity: 1 tensor each.
    assert live.live_bytes["same"] == live.live_bytes["Identity"] == T32


def test_weights_are_counted_apart_and_each_variable_once(tf):
    v = tf.Variable(tf.ones((N,)))

    def fn(x):
        scale = tf.multiply(v, 2.0, name="scale")  # computed from a weight and a constant only
        return tf.add(tf.multiply(x, scale, name="mul"), v, name="add")  # v read a second time

    live = activation_peak(_graph(tf, fn))
    # Weights: v (N float32), read twice from one handle: N·4 bytes once. `scale` is
    # weight-derived: while it runs only x is live. At mul: x + mul; at add: mul + add.
    assert live.weight_bytes == N * 4
    assert live.live_bytes["scale"] == T32
    assert live.peak_bytes == 2 * T32


def test_ops_no_output_needs_are_skipped(tf):
    def fn(x):
        tf.tile(x, (100, 1), name="unused")  # a stateless op nothing reads: never runs
        return tf.nn.relu(x, name="relu")

    live = activation_peak(_graph(tf, fn))
    assert "unused" not in live.live_bytes
    assert live.peak_bytes == 2 * T32  # x + relu


def test_roots_of_a_plain_graph(tf):
    graph = tf.Graph()
    with graph.as_default():
        x = tf.compat.v1.placeholder(tf.float32, (B, N), name="x")
        a = tf.nn.relu(x, name="a")
        b = tf.tanh(a, name="b")
        tf.exp(b, name="c")
        tf.sigmoid(x, name="other")
    everything = activation_peak(graph)
    needed = activation_peak(graph, roots=["a", "c"])
    # No roots: every op runs and nothing outlives its last reader. At c: b, c (2).
    # x is read by `other`, last: x is live until then.
    assert everything.live_bytes["c"] == 3 * T32  # x, b, c
    assert everything.live_bytes["other"] == 2 * T32  # x, other
    # Roots a and c: `other` never runs, x is freed after a, and a (a root's output) lives to
    # the end. At c: a, b, c (3).
    assert "other" not in needed.live_bytes
    assert needed.live_bytes["b"] == 2 * T32  # a, b
    assert needed.live_bytes["c"] == 3 * T32
    with pytest.raises(KeyError):
        activation_peak(graph, roots=["nope"])


def test_unknown_dims_are_counted_not_guessed(tf):
    def chain(x):
        return tf.multiply(tf.nn.relu(x), 2.0)

    live = activation_peak(_graph(tf, chain, shape=(None, N)))
    # Buffers x, relu, mul (the output Identity aliases mul): 3 of unknown size.
    assert live.unknown_tensors == 3
    assert live.peak_bytes == 0 and live.peak_op is None


def _tensor_bytes(shape, batch: int) -> int:
    """Bytes of a float32 Keras tensor of `shape` (batch dim None) at `batch`."""
    return batch * math.prod(shape[1:]) * 4


@pytest.mark.parametrize("kernel", [1, 3])
def test_keras_weights_are_not_activations(tf, keras, kernel):
    b, h, w, cin, cout, units = 2, 6, 6, 3, 4, 5
    x = inputs = keras.Input((h, w, cin))
    x = keras.layers.Conv2D(cout, kernel, padding="same", name="conv")(x)
    x = keras.layers.BatchNormalization(name="bn")(x)
    x = keras.layers.Flatten(name="flat")(x)
    model = keras.Model(inputs, keras.layers.Dense(units, name="dense")(x))
    spec = tf.TensorSpec((b, h, w, cin))
    graph = tf.function(lambda t: model(t, training=False)).get_concrete_function(spec).graph
    live = activation_peak(graph)

    from_layers = sum(math.prod(v.shape) * 4 for layer in model.layers for v in layer.weights)
    # conv k·k·cin·cout + cout; bn gamma, beta, mean, variance: 4·cout; dense (h·w·cout)·units
    # + units; float32.
    by_formula = 4 * (kernel * kernel * cin * cout + cout + 4 * cout + h * w * cout * units + units)
    assert live.weight_bytes == from_layers == by_formula
    layer_io = [
        _tensor_bytes(layer.input.shape, b) + _tensor_bytes(layer.output.shape, b)
        for layer in model.layers[1:]
    ]
    assert live.peak_bytes >= max(layer_io)
    # The activations' shapes do not depend on the kernel size, only the weights do. The
    # largest live set is the input and output of one (b, h, w, cout) op: the conv's bias add
    # or one of bn's: 2 · b·h·w·cout floats (x, b·h·w·cin, and the conv's output are less).
    assert live.peak_bytes == 2 * b * h * w * cout * 4


def test_peak_row_and_row_peaks_on_a_hand_made_owner():
    live = Liveness(
        peak_bytes=7,
        peak_op="c",
        live_bytes={"a": 2, "b": 5, "c": 7, "d": 3, "e": 4},
        weight_bytes=0,
    )
    owner = {"a": "r1", "b": "r1", "c": "r2", "d": "r2", "e": "r3", "never_ran": "r4"}
    assert peak_row(live, owner) == "r2"
    assert row_peaks(live, owner) == {"r1": 5, "r2": 7, "r3": 4}
    assert list(row_peaks(live, owner)) == ["r1", "r2", "r3"]  # in the order rows first run
    assert peak_row(live, {"a": "r1"}) is None  # the peak's op belongs to no row
    assert peak_row(Liveness(0, None, {"a": 0}, 0), owner) is None


def test_device_peak_bytes_is_none_without_a_gpu(tf):
    calls = []

    def fn(x):
        calls.append(x)
        return x * 2.0

    # A CPU's allocator statistics are refused, or kept at 0 (by machine): None, fn not run.
    assert device_peak_bytes(fn, tf.ones((2,)), device="CPU:0") is None
    if tf.config.list_physical_devices("GPU"):
        pytest.skip("a GPU is present: its peak is a measurement, not tested here")
    assert device_peak_bytes(fn, tf.ones((2,))) is None
    assert calls == []
