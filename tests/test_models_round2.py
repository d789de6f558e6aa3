"""Models that used to end the run or leave failed rows (issue 16, items 1-3), each class on a
tiny hand-built model and on the small keras-hub backbone that showed it.

Expectations are formulas (2 float ops per multiply-add; 1 per elementwise op) or TF's own
profiler run on `model(x)` (`seed_tf_flops`), never the tool's output.
"""

from __future__ import annotations

import pytest

from submodel_profiler import profile_model

from conftest import assert_exact, rows_by_label, seed_tf_flops

B, N = 2, 4  # batch, features


def _profile(model, **kw):
    return profile_model(model, timing=False, batch_size=B, **kw)


def _exact(report):
    """Complete, no failed row or parent, every row and parent agreeing with the whole graph
    in float ops (both conventions), MACs and op bytes, rows summing exactly to it."""
    assert report.status == "complete"
    assert_exact(report)
    assert report.cross_check.bytes_exact
    assert report.cross_check.failed_rows == () and report.cross_check.mismatched_rows == ()
    assert all(p.error is None and p.counts_match for p in report.parents)


def _dense(n_in, n_out, rows=B):
    return rows * (2 * n_in * n_out + n_out)  # (rows, in) @ (in, out) + bias


# --- 1. None among a layer's outputs ------------------------------------------------------------


def _none_classes(keras):
    class PairOrNone(keras.layers.Layer):
        """Declares two outputs; its call returns (2x, None): no second stream asked for."""

        def call(self, x):
            return x * 2.0, None

        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, x.dtype), keras.KerasTensor(x.shape, x.dtype)

    class ScaleUnlessGiven(keras.layers.Layer):
        """3x, or x + other when `other` is a tensor: here it is the None above."""

        def call(self, x, other):
            return x * 3.0 if other is None else x + other

        def compute_output_spec(self, x, other):
            return keras.KerasTensor(x.shape, x.dtype)

    class Block(keras.layers.Layer):
        """A composite (--depth 2) whose sublayer returns a None."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.pair = PairOrNone(name="pair")
            self.dense = keras.layers.Dense(N, name="dense")

        def call(self, x):
            y, _ = self.pair(x)
            return self.dense(y) + 1.0

    return PairOrNone, ScaleUnlessGiven, Block


def test_none_outputs_and_inputs_carry_no_tensor_and_no_work(keras):
    pair, scale, block = _none_classes(keras)
    inputs = keras.Input((N,))
    y, maybe = pair(name="pair")(keras.layers.Dense(N, name="d1")(inputs))
    y = scale(name="scale")(y, maybe)  # takes the None
    model = keras.Model(inputs, block(name="block")(y))
    for depth in (1, 2):
        report = _profile(model, depth=depth)
        _exact(report)
        rows = rows_by_label(report)
        assert rows["pair"].flops == B * N  # x * 2; the None is no output
        assert rows["pair"].output_shapes == ((B, N),)
        assert rows["scale"].flops == B * N  # x * 3; the None is no input
        assert rows["scale"].input_shapes == ((B, N),)
    assert rows["block/pair"].flops == B * N
    assert rows["block/dense"].flops == _dense(N, N)
    assert rows["block/(inline ops)"].flops == B * N
    one = rows_by_label(_profile(model))
    assert one["block"].flops == B * N + _dense(N, N) + B * N


# --- 2. sub-models Keras refuses to build -------------------------------------------------------


def _refused_classes(keras):
    from keras import ops

    class Embed(keras.layers.Layer):
        """A composite whose `compute_output_spec` takes no `training` (DINOV2Embedding)."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.proj = keras.layers.Dense(N, name="proj")
            self.dropout = keras.layers.Dropout(0.5, name="dropout")

        def call(self, x, training=None):
            return self.dropout(self.proj(x) * 2.0, training=training)

        def compute_output_spec(self, x):
            return keras.KerasTensor((*x.shape[:-1], N), x.dtype)

    class Positions(keras.layers.Layer):
        """Adds embeddings looked up and projected from weights alone (SigLIP's and CLIP's
        position embedding: `self.position_embedding(self.position_ids)`)."""

        def __init__(self, length, **kw):
            super().__init__(**kw)
            self.length = length
            self.lookup = keras.layers.Embedding(length, N, name="lookup")
            self.project = keras.layers.Dense(N, name="project")

        def build(self, shape):
            self.ids = self.add_weight(
                shape=(1, self.length), dtype="int32", trainable=False, initializer="zeros"
            )
            self.ids.assign(ops.expand_dims(ops.arange(self.length, dtype="int32"), 0))
            self.table = self.add_weight(shape=(self.length, N), name="table")
            self.lookup.build((1, self.length))
            self.project.build((self.length, N))

        def call(self, x):
            return x + self.lookup(self.ids) + self.project(self.table)

    return Embed, Positions


def test_sub_models_keras_refuses_are_built_all_the_same(keras):
    embed, positions = _refused_classes(keras)
    length = 3
    inputs = keras.Input((length, N))
    x = embed(name="embed")(inputs)
    model = keras.Model(inputs, positions(length, name="positions")(x))
    expected_tf = seed_tf_flops(model, [(B, length, N)])
    proj = _dense(N, N, rows=B * length)
    for depth in (1, 2):
        report = _profile(model, depth=depth)
        _exact(report)
        assert report.totals.whole_graph_tf_flops == expected_tf
        rows = rows_by_label(report)
    one = rows_by_label(_profile(model))
    # the lookup's gather is data movement; Keras' Embedding wraps negative ids (Less and
    # AddV2 per id, which TF counts)
    lookup = 2 * length
    assert one["embed"].flops == proj + B * length * N  # the projection and * 2
    assert one["positions"].flops == lookup + _dense(N, N, rows=length) + 2 * B * length * N
    # depth 2: the rows computed from weights alone have sub-models without inputs
    assert rows["positions/lookup"].input_shapes == ()
    assert rows["positions/lookup"].flops == lookup
    assert rows["positions/project"].input_shapes == ()
    assert rows["positions/project"].flops == _dense(N, N, rows=length)
    assert rows["embed/proj"].flops == proj
    # and the expanded layer refusing `training` has its own sub-model, equal to its rows
    parents = {p.label: p for p in report.parents}
    assert parents["embed"].flops == one["embed"].flops
    # a training step's rows too: the weight a call takes as argument gets its gradient
    _exact(_profile(model, depth=2, pass_="train"))


# --- 3. what a sub-model keeps: every output the call returns, as used in the whole graph -------


def _rotary_classes(keras):
    from keras import ops

    class Rotary(keras.layers.Layer):
        """Returns (q·cos, k·cos) while `compute_output_shape` names one output (keras-hub's
        RotaryEmbedding, overridden by ESMRotaryEmbedding)."""

        def call(self, q, k):
            seq = q.shape[1]
            cos = ops.cos(ops.arange(seq, dtype="float32")[:, None] * 0.5)  # (seq, 1)
            return q * cos, k * cos

        def compute_output_shape(self, q_shape, k_shape=None):
            return q_shape

    class Attention(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.q = keras.layers.Dense(N, name="q")
            self.k = keras.layers.Dense(N, name="k")
            self.rotary = Rotary(name="rotary")
            self.unused = keras.layers.Dense(N, name="unused")
            self.after_unused = keras.layers.Dense(N, name="after_unused")

        def call(self, x):
            q, k = self.rotary(self.q(x), self.k(x))
            self.after_unused(self.unused(x))  # run by nobody: TF prunes both
            return q + k

    return Attention


def test_a_sub_model_keeps_every_output_the_whole_graph_uses(keras):
    attention = _rotary_classes(keras)
    seq = 5
    inputs = keras.Input((seq, N))
    model = keras.Model(inputs, attention(name="attention")(inputs))
    report = _profile(model, depth="all")
    _exact(report)
    assert report.totals.whole_graph_tf_flops == seed_tf_flops(model, [(B, seq, N)])
    rows = rows_by_label(report)
    # cos table: seq multiplies and seq cosines; then q·cos and k·cos
    assert rows["attention/rotary"].flops == 2 * seq + 2 * B * seq * N
    assert rows["attention/rotary"].output_shapes == ((B, seq, N), (B, seq, N))
    # nodes that never run: `unused` feeds only `after_unused`, whose output nobody reads
    assert rows["attention/unused"].flops == rows["attention/after_unused"].flops == 0
    assert rows["attention/unused"].tf_flops == _dense(N, N, rows=B * seq)  # TF counts all
    assert rows["attention/q"].flops == _dense(N, N, rows=B * seq)


# --- the keras-hub backbones that showed each class ----------------------------------------------


def _backbone(name):
    keras_hub = pytest.importorskip("keras_hub")  # a test extra: see pyproject.toml
    models = keras_hub.models
    if name == "XLNet":  # (x, None) outputs of its encoder layers: exit 4 before
        return models.XLNetBackbone(
            vocabulary_size=64, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16
        )
    if name == "DINOV2":  # compute_output_spec without training: a failed row and parent
        return models.DINOV2Backbone(
            patch_size=8,
            num_layers=1,
            hidden_dim=8,
            num_heads=2,
            intermediate_dim=16,
            image_shape=(16, 16, 3),
            position_embedding_shape=(32, 32, 3),
        )
    return models.ESM2Backbone(  # rotary embedding at depth all: 310 vs 534 before
        vocabulary_size=64, num_layers=1, num_heads=2, hidden_dim=8, intermediate_dim=16
    )


def _tf_profiler(model, specs: dict) -> int:
    """TF's profiler on `model(x)` traced the ordinary way, its inputs a dict by name (a
    keras-hub backbone's) or one tensor."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    if len(specs) == 1:
        fn = tf.function(lambda x: model(x, training=False))
        graph = fn.get_concrete_function(*specs.values()).graph
    else:
        fn = tf.function(lambda xs: model(xs, training=False))
        graph = fn.get_concrete_function(specs).graph
    options = ProfileOptionBuilder(ProfileOptionBuilder.float_operation())
    return model_analyzer.profile(
        graph, options=options.with_empty_output().build()
    ).total_float_ops


@pytest.mark.architecture
@pytest.mark.parametrize("name", ["XLNet", "DINOV2", "ESM2"])
def test_keras_hub_backbones_that_failed_profile_exact(name):
    import tensorflow as tf

    model = _backbone(name)
    seq = None if name == "DINOV2" else 8
    for depth in (1, "all"):
        report = profile_model(model, timing=False, depth=depth, seq_len=seq)
        _exact(report)
    specs = {t.name: tf.TensorSpec(t.shape, t.dtype) for t in report.model.inputs}
    assert report.totals.whole_graph_tf_flops == _tf_profiler(model, specs)
    if name == "ESM2":  # 2 heads of 4: the rotary tables, then x·cos + rotate(x)·sin per stream
        heads, head_dim = 2, 4
        tables = 3 * head_dim // 2 + seq * head_dim // 2 + 2 * seq * head_dim
        stream = seq * heads * head_dim * 7 // 2  # x·cos, −half, ·sin, +
        rows = rows_by_label(report)
        rotary = rows["transformer_layer_0/attention_layer/esm_rotary_embedding"]
        assert rotary.flops == tables + 2 * stream


def test_a_nested_model_input_of_shape_one_takes_a_rank_one_tensor(keras):
    # Keras' Functional call gives a (batch,) tensor the trailing 1 its Input (1,) declares;
    # expanding the nested model must do the same (keras-hub's StableDiffusion3 timestep)
    t = keras.Input((1,))
    inner = keras.Model(t, keras.layers.Dense(4, name="d")(t * 2.0), name="inner")
    x = keras.Input(())
    outer = keras.Model(x, inner(x))
    for options in ({"depth": "all"}, {"expand_nested": True}):
        report = profile_model(outer, batch_size=2, timing=False, **options)
        rows = {r.label: r for r in report.layers}
        assert report.status == "complete" and report.cross_check.flops_exact
        assert rows["inner/d"].flops == 2 * 2 * 1 * 4 + 2 * 4  # B·K·N multiply-adds, the bias
