"""Our counting rules (counting.py) against formulas written here, fvcore style.

Conventions: a multiply-add is 2 float ops; MACs count the multiply-accumulates of contractions
only. TF's own count (`tf_flops`) is anchored on TF's profiler run the seed's way on the whole
graph (`seed_tf_flops`), independently of this tool.
"""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model
from submodel_profiler.counting import einsum_macs, parse_einsum

from conftest import assert_exact, rows_by_label, seed_tf_flops

T, D, H = 16, 64, 32  # sequence length, features, hidden units


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def _single_row(keras, layer, shape, batch=1, **kw):
    inputs = keras.Input(shape)
    outputs = layer(inputs)
    model = keras.Model(inputs, outputs)
    return model, _profile(model, batch_size=batch, **kw)


# --- recurrent layers: the While body × the sequence length ---------------------------------

RNN_MACS = {  # per step, per sample: gates × H × (D + H)
    "LSTM": lambda d, h: 4 * h * (d + h),
    "GRU": lambda d, h: 3 * h * (d + h),
    "SimpleRNN": lambda d, h: h * (d + h),
}


@pytest.mark.parametrize("kind", sorted(RNN_MACS))
def test_recurrent_layer_counts_every_step(keras, kind):
    import tensorflow as tf

    b = 2
    model, report = _single_row(keras, getattr(keras.layers, kind)(H), (T, D), batch=b)
    (row,) = report.layers
    assert_exact(report)
    gt = b * T * RNN_MACS[kind](D, H)
    assert row.macs == gt
    # 2 float ops per MAC, plus a few elementwise ops (gates, biases) per hidden unit and step.
    assert 2 * gt <= row.flops <= 2 * gt + b * T * H * 20
    assert row.uncounted_ops == {}
    assert any("× 16 iterations" in note for note in row.count_notes)
    # TF's own count is kept, exactly as TF's profiler gives it for the whole graph.
    assert row.tf_flops == seed_tf_flops(model, [tf.TensorSpec((b, T, D))])
    assert row.tf_flops < row.flops / 10  # TF counts one step, outside the loop


def test_recurrent_count_is_linear_in_the_trip_count(keras):
    """The body counted once per step: f(16) − f(8) = 2 · (f(8) − f(4))."""
    counts = {}
    for steps in (4, 8, 16):
        _, report = _single_row(keras, keras.layers.LSTM(H), (steps, D))
        counts[steps] = report.layers[0].flops
    per_step = (counts[8] - counts[4]) / 4
    assert counts[16] - counts[8] == 8 * per_step
    assert per_step >= 2 * 4 * H * (D + H)


def test_bidirectional_lstm_counts_both_directions(keras):
    layer = keras.layers.Bidirectional(keras.layers.LSTM(H))
    _, report = _single_row(keras, layer, (T, D))
    (row,) = report.layers
    assert_exact(report)
    assert row.macs == 2 * T * 4 * H * (D + H)
    assert row.uncounted_ops == {}


def test_rnn_with_a_cell_counts_every_step(keras):
    layer = keras.layers.RNN(keras.layers.GRUCell(H))
    _, report = _single_row(keras, layer, (T, D))
    assert report.layers[0].macs == T * 3 * H * (D + H)
    assert report.layers[0].uncounted_ops == {}


def test_tf_convention_reports_the_loop_as_uncounted(keras):
    _, report = _single_row(keras, keras.layers.SimpleRNN(H), (T, D), counting="tf")
    (row,) = report.layers
    assert row.flops == row.tf_flops
    assert "While" in row.uncounted_ops and "Tanh" in row.uncounted_ops
    assert row.macs == T * H * (D + H)  # MACs do not depend on the convention
    assert report.cross_check.flops_exact and report.cross_check.lower_bound_rows == (row.label,)
    assert report.settings.counting == "tf"


# --- attention: einsums --------------------------------------------------------------------


def test_multi_head_attention_projections_scores_and_combine(keras):
    import tensorflow as tf

    s, e, heads, dk = 64, 64, 4, 16
    inputs = keras.Input((s, e))
    outputs = keras.layers.MultiHeadAttention(heads, dk, name="mha")(inputs, inputs)
    model = keras.Model(inputs, outputs)
    report = _profile(model)
    row = rows_by_label(report)["mha"]
    assert_exact(report)
    projections = 3 * s * e * heads * dk + s * heads * dk * e  # query, key, value; output
    scores = heads * s * s * dk  # BTNH,BSNH->BNTS
    combine = heads * s * s * dk  # BNTS,BSNH->BTNH
    assert row.macs == projections + scores + combine
    # 2 per MAC, plus the four biases, scaling the scores by 1/√dk, TF's 5 per element softmax.
    extra = 3 * heads * dk * s + e * s + heads * s * s + 5 * heads * s * s
    assert row.flops == 2 * row.macs + extra
    assert row.uncounted_ops == {}
    assert row.tf_flops == seed_tf_flops(model, [tf.TensorSpec((1, s, e))])
    assert row.flops - row.tf_flops == 2 * (scores + combine)  # what TF leaves at 0


def test_einsum_dense_matches_its_equation(keras):
    t, din, dout = 8, 16, 32
    layer = keras.layers.EinsumDense("abc,cd->abd", output_shape=(t, dout), bias_axes="d")
    _, report = _single_row(keras, layer, (t, din), batch=3)
    (row,) = report.layers
    assert row.macs == 3 * t * din * dout
    assert row.flops == 2 * row.macs + 3 * t * dout
    assert_exact(report)


@pytest.mark.parametrize(
    "equation, shapes, gt",
    [
        ("bqhd,bkhd->bhqk", [(2, 5, 3, 4), (2, 7, 3, 4)], 2 * 5 * 3 * 4 * 7),
        ("...ij,...jk->...ik", [(6, 2, 3), (3, 4)], 6 * 2 * 3 * 4),  # broadcast batch
        # "..." of different ranks line up from the right: (2, 3) against (3,)
        ("...ij,...jk->...ik", [(2, 3, 4, 5), (3, 5, 6)], 2 * 3 * 4 * 5 * 6),
        ("ij,ij->ij", [(3, 4), (3, 4)], 0),  # elementwise product: multiplies, no accumulation
        ("bi,j->bij", [(2, 3), (4,)], 0),  # outer product: no accumulation
        ("ii->", [(5, 5)], 0),  # one operand: no multiply
        ("ij,jk,kl->il", [(1, 128), (128, 128), (128, 64)], 1 * 128 * 128 + 1 * 128 * 64),
    ],
)
def test_einsum_rule(equation, shapes, gt):
    assert einsum_macs(equation, shapes) == gt


@pytest.mark.parametrize(
    "equation, shapes, gt",
    [
        ("ij,ij->ij", [(3, 4), (3, 4)], 3 * 4),  # one multiply per output element, as Mul
        ("bi,j->bij", [(2, 3), (4,)], 2 * 3 * 4),
    ],
)
def test_einsum_products_without_a_summed_index_count_one_per_output(equation, shapes, gt):
    from submodel_profiler.counting import einsum_product_flops

    assert einsum_product_flops(equation, shapes) == gt


def test_one_operand_einsum_sums_what_it_reads():
    from submodel_profiler.counting import einsum_single_operand_flops

    assert einsum_single_operand_flops("ii->", [(5, 5)]) == 5  # a trace reads the diagonal
    assert einsum_single_operand_flops("ij->i", [(5, 3)]) == 15
    assert einsum_single_operand_flops("ij->ji", [(5, 3)]) == 0  # a transpose moves data


def test_einsum_implicit_output_is_numpy_order():
    _, output = parse_einsum("ba,ac", [(2, 3), (3, 4)])
    assert output == ["b", "c"]


def test_three_operand_einsum_uses_the_cheap_order(keras):
    import tensorflow as tf

    class Chain(keras.layers.Layer):
        def build(self, shape):
            self.w1 = self.add_weight(shape=(128, 128))
            self.w2 = self.add_weight(shape=(128, 64))

        def call(self, x):
            return tf.einsum("bi,ij,jk->bk", x, self.w1, self.w2)

    _, report = _single_row(keras, Chain(name="chain"), (128,))
    row = rows_by_label(report)["chain"]
    # TF contracts pairwise along opt_einsum's path; (x·w1)·w2 is the optimal one here.
    assert row.macs == 128 * 128 + 128 * 64
    assert row.flops == 2 * row.macs
    assert_exact(report)


# --- elementwise math TF skips --------------------------------------------------------------


def test_gelu_counts_its_erf(keras):
    b, n_in, n_out = 2, 64, 64
    _, report = _single_row(keras, keras.layers.Dense(n_out, activation="gelu"), (n_in,), batch=b)
    (row,) = report.layers
    assert row.macs == b * n_in * n_out
    assert row.uncounted_ops == {}
    assert row.flops - row.tf_flops == b * n_out  # one per element of Erf(c), which TF skips
    _, tf_report = _single_row(
        keras, keras.layers.Dense(n_out, activation="gelu"), (n_in,), batch=b, counting="tf"
    )
    assert set(tf_report.layers[0].uncounted_ops) & {"Erf", "Erfc"}


@pytest.mark.parametrize("activation", ["tanh", "sigmoid", "relu", "exponential", "softplus"])
def test_elementwise_activation_is_one_per_element(keras, activation):
    _, report = _single_row(keras, keras.layers.Activation(activation), (5, 7), batch=2)
    (row,) = report.layers
    assert row.uncounted_ops == {}
    assert row.flops >= 2 * 5 * 7
    assert row.macs == 0


def test_max_reduction_is_one_per_input_element(keras):
    _, report = _single_row(keras, keras.layers.GlobalMaxPooling1D(), (9, 4), batch=3)
    (row,) = report.layers
    assert row.uncounted_ops == {}
    assert row.flops == 3 * 9 * 4


# --- control flow written in a custom layer -------------------------------------------------


def _loop_layer(keras, n, loop, name="loop"):
    """A layer named `name` running `loop(x, w)` (a loop or a branch) with a weight w of shape
    (n, n)."""

    class Loop(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(n, n))

        def call(self, x):
            return loop(x, self.w)

    return Loop(name=name)


def test_loop_with_a_constant_limit_counts_every_iteration(keras):
    import tensorflow as tf

    steps, n = 5, 8

    def loop(x, w):
        return tf.while_loop(lambda i, h: i < steps, lambda i, h: (i + 1, h @ w), (0, x))[1]

    _, report = _single_row(keras, _loop_layer(keras, n, loop, "power"), (n,), batch=2)
    row = rows_by_label(report)["power"]
    assert row.macs == steps * 2 * n * n
    assert row.uncounted_ops == {}
    assert_exact(report)


def test_loop_without_a_static_trip_count_stays_uncounted(keras):
    import tensorflow as tf

    n = 8

    def loop(x, w):
        limit = tf.reduce_sum(tf.cast(x > 0, tf.int32))  # depends on the data
        return tf.while_loop(lambda i, h: i < limit, lambda i, h: (i + 1, h @ w), (0, x))[1]

    _, report = _single_row(keras, _loop_layer(keras, n, loop, "dd"), (n,))
    row = rows_by_label(report)["dd"]
    assert row.uncounted_ops.get("While") == 1
    assert any("trip count not static" in note for note in row.count_notes)
    assert report.cross_check.lower_bound_rows == ("dd",)
    assert report.cross_check.uncounted_ops == {"While": 1}
    assert report.cross_check.flops_exact  # still exact between methods, but a lower bound


def test_branch_counts_the_largest_branch(keras):
    import tensorflow as tf

    n = 16

    def either(x, w):
        return tf.cond(tf.reduce_sum(x) > 0, lambda: x @ w, lambda: x * 2.0)

    _, report = _single_row(keras, _loop_layer(keras, n, either, "either"), (n,))
    row = rows_by_label(report)["either"]
    assert row.macs == n * n
    assert any("largest of 2 branches" in note for note in row.count_notes)
    assert row.uncounted_ops == {}
    assert_exact(report)


def test_loop_with_a_data_dependent_condition_stays_uncounted_despite_maximum_iterations(keras):
    import tensorflow as tf

    def loop(x, w):
        return tf.while_loop(
            lambda i, h: tf.reduce_sum(h) < 0.0,
            lambda i, h: (i + 1, h @ w),
            (0, x),
            maximum_iterations=7,
        )[1]

    _, report = _single_row(keras, _loop_layer(keras, 4, loop), (4,))
    row = rows_by_label(report)["loop"]
    assert row.uncounted_ops.get("While") == 1  # may stop at once: 7 is only an upper bound
    assert row.macs == 0


@pytest.mark.parametrize(
    "start, cond, step, trips",
    [
        (0.0, lambda t: t <= 1.0, lambda t: t + 0.5, 3),  # float counter, inclusive: 0, .5, 1
        (5, lambda t: t > 0, lambda t: t - 1, 5),  # counting down
        (5, lambda t: 0 < t, lambda t: t - 2, 3),  # limit on the left: 5, 3, 1
    ],
)
def test_loop_counters_up_down_and_float(keras, start, cond, step, trips):
    import tensorflow as tf

    def loop(x, w):
        return tf.while_loop(lambda t, h: cond(t), lambda t, h: (step(t), h @ w), (start, x))[1]

    n = 4
    _, report = _single_row(keras, _loop_layer(keras, n, loop), (n,))
    row = rows_by_label(report)["loop"]
    assert row.uncounted_ops == {}
    assert row.macs == trips * n * n


def test_loop_whose_variable_grows_is_not_counted_at_its_first_shape(keras):
    import tensorflow as tf

    def loop(x, w):
        return tf.while_loop(
            lambda i, h: i < 3,
            lambda i, h: (i + 1, tf.concat([h, h @ w], 0)),
            (0, x),
            shape_invariants=(tf.TensorShape([]), tf.TensorShape([None, 4])),
        )[1]

    _, report = _single_row(keras, _loop_layer(keras, 4, loop), (4,))
    row = rows_by_label(report)["loop"]
    assert row.uncounted_ops  # the matmul's rows change every iteration: not static
    assert row.macs != 3 * 1 * 4 * 4  # never the first iteration's count times three


def test_unused_output_of_a_layer_is_not_counted_and_the_methods_agree(keras):
    class TwoOut(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(4, 8))
            self.v = self.add_weight(shape=(4, 16))

        def call(self, x):
            return x @ self.w, x @ self.v

    inputs = keras.Input((4,))
    a, _ = TwoOut(name="two")(inputs)  # the second output is never used
    model = keras.Model(inputs, keras.layers.Dense(3, use_bias=False, name="d")(a))
    report = _profile(model)
    assert_exact(report)
    assert rows_by_label(report)["two"].macs == 4 * 8  # x @ w only: x @ v never runs
    assert report.totals.macs == 4 * 8 + 8 * 3


def test_conv3d_transpose_counts_its_multiply_adds(keras):
    d, c_in, c_out, k = 4, 3, 2, 3
    layer = keras.layers.Conv3DTranspose(c_out, k, padding="same", use_bias=False)
    _, report = _single_row(keras, layer, (d, d, d, c_in))
    (row,) = report.layers
    assert row.macs == d * d * d * c_in * k * k * k * c_out  # each input element × kernel
    assert row.flops == 2 * row.macs
    assert row.uncounted_ops == {}


def test_masked_lstm_is_complete(keras):
    inputs = keras.Input((T, D))
    x = keras.layers.Masking(name="mask")(inputs)
    model = keras.Model(inputs, keras.layers.LSTM(H, name="lstm")(x))
    report = _profile(model)
    assert report.cross_check.uncounted_ops == {}  # boolean Any/All move no float data
    assert rows_by_label(report)["lstm"].macs == T * 4 * H * (D + H)
    assert_exact(report)


# --- a transformer nobody here wrote --------------------------------------------------------


@pytest.mark.architecture
def test_keras_hub_bert_attention_matches_the_textbook(keras):
    keras_hub = pytest.importorskip("keras_hub")  # a test extra: see pyproject.toml
    s, hdim, heads, inter, layers = 16, 32, 2, 64, 2
    model = keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=layers,
        num_heads=heads,
        hidden_dim=hdim,
        intermediate_dim=inter,
        max_sequence_length=s,
    )
    shapes = {name: (s,) for name in ("token_ids", "segment_ids", "padding_mask")}
    report = _profile(model, input_shapes=shapes)
    assert_exact(report)
    assert report.cross_check.uncounted_ops == {}
    per_layer = (
        4 * s * hdim * hdim  # query, key, value, output projections
        + 2 * s * s * hdim  # scores and combine, over all heads
        + 2 * s * hdim * inter
    )  # the two feed-forward denses
    encoder = [r for r in report.layers if r.type == "TransformerEncoder"]
    assert len(encoder) == layers
    assert all(r.macs == per_layer for r in encoder)
    assert report.totals.macs == layers * per_layer + hdim * hdim  # + the pooler dense


# --- data movement vs arithmetic; resampling, FFT, selections, scatters and segments --------


def _graph_count(fn, *specs):
    """count_graph_flops of `fn` traced at `specs` (tf.TensorSpec)."""
    import tensorflow as tf

    from submodel_profiler.flops import count_graph_flops

    return count_graph_flops(tf.function(fn).get_concrete_function(*specs).graph)


def test_data_movement_types_are_tf_op_types_and_never_counted_by_tf_or_a_rule():
    import tensorflow  # noqa: F401  (registers the op types and TF's statistics)
    from tensorflow.python.framework import op_def_registry, ops

    from submodel_profiler.counting import NON_ARITHMETIC_OPS, RULES

    tf_counted = {key.split(",")[0] for key in ops._stats_registry.list() if key.endswith(",flops")}
    assert [t for t in sorted(NON_ARITHMETIC_OPS) if op_def_registry.get(t) is None] == []
    assert NON_ARITHMETIC_OPS.isdisjoint(tf_counted)  # data movement is checked first
    assert NON_ARITHMETIC_OPS.isdisjoint(RULES)
    # Adding values is arithmetic, however the values are placed.
    assert {"UnsortedSegmentSum", "ScatterNd", "TopKV2", "Unique"}.isdisjoint(NON_ARITHMETIC_OPS)


def test_roll_slice_update_and_scatter_update_move_data_and_the_count_is_no_lower_bound(keras):
    ops = keras.ops
    b, n = 2, 16
    x = inputs = keras.Input((n,), batch_size=b)
    x = keras.layers.Dense(n, name="dense")(x)
    x = ops.roll(x, 3, axis=1)  # Roll (shifted-window attention)
    x = ops.slice_update(x, (0, 2), ops.zeros((b, 4)))  # XlaDynamicUpdateSlice
    x = ops.scatter_update(x, [[0, 1]], [5.0])  # TensorScatterUpdate
    report = _profile(keras.Model(inputs, x), batch_size=b)
    assert_exact(report)
    assert report.cross_check.lower_bound_rows == ()
    assert report.cross_check.uncounted_ops == {}
    assert all(row.uncounted_ops == {} for row in report.layers)
    assert report.totals.flops == 2 * b * n * n + b * n  # the Dense's matmul and bias only


@pytest.mark.parametrize("interpolation, taps", [("bilinear", 4), ("bicubic", 16)])
def test_resizing_is_a_multiply_add_per_tap(keras, interpolation, taps):
    b, c = 2, 3
    layer = keras.layers.Resizing(16, 12, interpolation=interpolation)
    _, report = _single_row(keras, layer, (8, 6, c), batch=b)
    (row,) = report.layers
    assert row.uncounted_ops == {}
    assert row.flops == 2 * taps * b * 16 * 12 * c
    assert row.macs == 0
    assert_exact(report)


def test_nearest_resizing_is_a_copy(keras):
    layer = keras.layers.Resizing(16, 16, interpolation="nearest")
    _, report = _single_row(keras, layer, (8, 8, 3))
    (row,) = report.layers
    assert row.uncounted_ops == {}
    assert row.flops == 0
    assert report.cross_check.lower_bound_rows == ()


@pytest.mark.parametrize(
    "interpolation, antialias, out, span",
    [
        ("lanczos3", False, 16, 2 * 3 + 1),  # radius 3, upsampling: 7 taps
        ("bilinear", True, 4, 2 * 1 * 2 + 1),  # triangle radius 1, widened 2× to downsample 2×
    ],
)
def test_scale_and_translate_is_separable_spans_of_multiply_adds(
    keras, interpolation, antialias, out, span
):
    b, h_in, w_in, c = 2, 8, 8, 3
    layer = keras.layers.Resizing(out, out, interpolation=interpolation, antialias=antialias)
    _, report = _single_row(keras, layer, (h_in, w_in, c), batch=b)
    (row,) = report.layers
    assert row.uncounted_ops == {}
    # rows first (into [b, out, w_in, c]), then columns; TF counts the scale's RealDiv itself
    assert row.flops - row.tf_flops == 2 * b * c * (out * w_in * span + out * out * span)
    assert_exact(report)


def test_fft_is_5_n_log2_n_per_transform_and_half_for_a_real_signal():
    import tensorflow as tf

    b, n = 3, 64
    x = tf.TensorSpec((b, n))
    fft = _graph_count(lambda x: tf.signal.fft(tf.complex(x, x)), x)
    assert fft.uncounted_ops() == {}
    assert fft.total.flops == b * 5 * n * 6  # log2 64 = 6
    rfft = _graph_count(lambda x: tf.math.real(tf.signal.rfft(x)), x)
    assert rfft.uncounted_ops() == {}
    assert rfft.total.flops == b * 5 * n * 6 // 2
    irfft = _graph_count(lambda x: tf.signal.irfft(tf.complex(x, x)), tf.TensorSpec((b, 33)))
    assert irfft.total.flops == b * 5 * n * 6 // 2  # 33 bins → a real signal of 64
    fft2d = _graph_count(lambda x: tf.signal.fft2d(tf.complex(x, x)), tf.TensorSpec((b, 8, 16)))
    assert fft2d.total.flops == b * 5 * 128 * 7  # N = 8 · 16, log2 128 = 7


@pytest.mark.parametrize("k", [1, 4, 16])
def test_top_k_is_a_heap_of_k(keras, k):
    rows, n = 3, 16
    x = inputs = keras.Input((rows, n), batch_size=1)
    report = _profile(keras.Model(inputs, keras.ops.top_k(x, k)[0]))
    assert report.cross_check.uncounted_ops == {}
    log2_k_ceil = {1: 0, 4: 2, 16: 4}[k]
    assert report.totals.flops == rows * n * (1 + log2_k_ceil)  # k = 1: Max's count


@pytest.mark.parametrize(
    "segment", ["unsorted_segment_sum", "unsorted_segment_max", "unsorted_segment_prod"]
)
def test_segment_reductions_count_one_per_data_element(segment):
    import tensorflow as tf

    n, d = 6, 5
    ids = tf.constant([0, 0, 1, 2, 2, 2])
    reduce = getattr(tf.math, segment)
    counted = _graph_count(lambda x: reduce(x, ids, 3), tf.TensorSpec((n, d)))
    assert counted.uncounted_ops() == {}
    assert counted.total.flops == n * d


def test_sorted_segment_sum_scatter_nd_and_unique_count_one_per_element():
    import tensorflow as tf

    n, d = 6, 5
    ids = tf.constant([0, 0, 1, 2, 2, 2])
    sorted_sum = _graph_count(lambda x: tf.math.segment_sum(x, ids), tf.TensorSpec((n, d)))
    assert sorted_sum.uncounted_ops() == {}
    assert sorted_sum.total.flops == n * d
    rows = tf.constant([[1], [3], [1]])  # row 1 twice: ScatterNd adds the duplicates
    scatter = _graph_count(lambda u: tf.scatter_nd(rows, u, (4, d)), tf.TensorSpec((3, d)))
    assert scatter.uncounted_ops() == {}
    assert scatter.total.flops == 3 * d
    unique = _graph_count(lambda v: tf.unique(v)[0], tf.TensorSpec((n,)))
    assert unique.uncounted_ops() == {}
    assert unique.total.flops == n
