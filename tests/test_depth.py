"""--depth: composite layers replaced by a row per sublayer call and an inline row, each a real
sub-model, cross-checked against the whole graph and against the parent's own sub-model.
Expectations are formulas (2 float ops per multiply-add)."""

from __future__ import annotations

import json

import pytest

from submodel_profiler import profile_model

from conftest import FAST_TIMING, assert_exact, rows_by_label, run_cli


def _profile(model, **kw):
    return profile_model(model, timing=False, **kw)


def _timed(model, step_stats_runs: int = 1, **kw):
    """Profiled with quick timing, step stats and one callback sample (no peak)."""
    return profile_model(
        model,
        timing_settings=FAST_TIMING,
        step_stats_runs=step_stats_runs,
        callback_samples=1,
        measure_peak=False,
        **kw,
    )


def _composite_classes(keras):
    class TwoDenseAndAdd(keras.layers.Layer):
        """d1(x) + d2(x): two sublayers and one inline add."""

        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.d1 = keras.layers.Dense(units, name="d1")
            self.d2 = keras.layers.Dense(units, name="d2")

        def call(self, x):
            return self.d1(x) + self.d2(x)

    class Twice(keras.layers.Layer):
        """The same square Dense called twice."""

        def __init__(self, units, **kw):
            super().__init__(**kw)
            self.d = keras.layers.Dense(units, name="d")

        def call(self, x):
            return self.d(self.d(x))

    class MaskedSoftmax(keras.layers.Layer):
        """A sublayer called with a mask argument computed inline."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.softmax = keras.layers.Softmax(name="softmax")

        def call(self, x):
            return self.softmax(x, mask=x > 0.0)

    return TwoDenseAndAdd, Twice, MaskedSoftmax


def test_composite_layer_rows_sum_to_its_depth_1_row(keras):
    two, _, _ = _composite_classes(keras)
    b, n_in, n_out = 2, 6, 4
    inputs = keras.Input((n_in,))
    model = keras.Model(inputs, two(n_out, name="comp")(inputs))
    one = rows_by_label(_profile(model, batch_size=b))
    deep = _profile(model, batch_size=b, depth=2)
    rows = rows_by_label(deep)
    dense = b * (2 * n_in * n_out + n_out)  # (B, in) @ (in, out) + bias
    assert [r.label for r in deep.layers] == ["comp/d1", "comp/d2", "comp/(inline ops)"]
    assert rows["comp/d1"].flops == rows["comp/d2"].flops == dense
    assert rows["comp/(inline ops)"].flops == b * n_out  # the add
    assert rows["comp/(inline ops)"].kind == "inline"
    assert one["comp"].flops == 2 * dense + b * n_out == sum(r.flops for r in deep.layers)
    assert {r.depth for r in deep.layers} == {2} and {r.parent for r in deep.layers} == {"comp"}
    (parent,) = deep.parents
    assert parent.label == "comp" and parent.counts_match and parent.flops == one["comp"].flops
    assert_exact(deep)


def test_a_sublayer_called_twice_gets_two_rows(keras):
    _, twice, _ = _composite_classes(keras)
    n = 5
    inputs = keras.Input((n,))
    model = keras.Model(inputs, twice(n, name="twice")(inputs))
    report = _profile(model, depth=2)
    rows = rows_by_label(report)
    assert rows["twice/d"].flops == rows["twice/d[1]"].flops == 2 * n * n + n
    assert rows["twice/d"].params == n * n + n and rows["twice/d[1]"].params == 0
    assert_exact(report)


def test_a_sublayer_with_a_mask_argument(keras):
    _, _, masked = _composite_classes(keras)
    inputs = keras.Input((3, 7))
    model = keras.Model(inputs, masked(name="ms")(inputs))
    report = _profile(model, depth=2)
    rows = rows_by_label(report)
    softmax = rows["ms/softmax"]
    assert softmax.input_dtypes == ("float32", "bool")  # the mask is an input of its sub-model
    assert rows["ms/(inline ops)"].flops == 3 * 7  # x > 0: one comparison per element
    assert_exact(report)


def test_multi_head_attention_gives_its_projections_and_inline_row(keras):
    s, e, heads, dk = 16, 32, 2, 16
    inputs = keras.Input((s, e))
    model = keras.Model(
        inputs, keras.layers.MultiHeadAttention(heads, dk, name="mha")(inputs, inputs)
    )
    report = _timed(model, depth=2)
    assert report.cross_check.method_errors == {}
    rows = rows_by_label(report)
    for name in ("query", "key", "value", "attention_output"):
        row = rows[f"mha/{name}"]
        assert row.macs == s * e * heads * dk, name
        # every sublayer row is timed, in isolation, in the graph and by the callback
        assert None not in (row.time_us, row.in_graph_time_us, row.callback_time_us), name
    inline = rows["mha/(inline ops)"]
    assert inline.macs == 2 * heads * s * s * dk  # the scores and combine einsums
    assert inline.time_us is None  # inline ops cannot be isolated
    assert inline.callback_time_us is None  # nor timed as a layer call
    assert inline.in_graph_time_us is not None  # their nodes are in the graph
    (parent,) = report.parents
    assert parent.counts_match and parent.time_us is not None and parent.additivity is not None
    assert_exact(report)


def test_subclassed_model_composite_layers_expand_the_same_way(keras):
    two, _, _ = _composite_classes(keras)

    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.block = two(4, name="block")
            self.head = keras.layers.Dense(2, name="head")

        def call(self, x):
            return self.head(self.block(x)) * 2.0

    report = _profile(Net(), input_shapes=[(6,)], depth=2)
    rows = rows_by_label(report)
    assert rows["block/d1"].flops == rows["block/d2"].flops == 2 * 6 * 4 + 4
    assert rows["block/(inline ops)"].flops == 4
    assert rows["head"].flops == 2 * 4 * 2 + 2
    assert [p.label for p in report.parents] == ["block"]
    assert_exact(report)


def test_depth_1_is_unchanged(keras):
    two, _, _ = _composite_classes(keras)
    inputs = keras.Input((6,))
    model = keras.Model(inputs, two(4, name="comp")(inputs))
    report = _profile(model)
    assert [r.label for r in report.layers] == ["comp"] and report.parents == ()
    assert report.settings.depth == 1


def test_cli_depth_json_rows_carry_depth_and_parent(keras, tmp_path):
    inputs = keras.Input((8, 16))
    model = keras.Model(inputs, keras.layers.MultiHeadAttention(2, 8, name="mha")(inputs, inputs))
    path = tmp_path / "mha.keras"
    model.save(path)
    out = tmp_path / "r.json"
    result = run_cli(
        [str(path), "--no-timing", "--depth", "2", "--format", "json", "--output", str(out)]
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["layers"]}
    assert rows["mha/query"]["depth"] == 2 and rows["mha/query"]["parent"] == "mha"
    assert data["parents"][0]["name"] == "mha" and data["settings"]["depth"] == 2
    table = run_cli([str(path), "--no-timing", "--depth", "2"])
    assert "mha/" in table.stdout and "Expanded layers" in table.stdout
    # sublayer rows are indented under their parent's subtotal line, two spaces a level
    lines = table.stdout.splitlines()
    parent_at = next(line for line in lines if "mha/" in line).index("mha/")
    query = next(line for line in lines if "query" in line and "EinsumDense" in line)
    assert query.index("query") == parent_at + 2
    bad = run_cli([str(path), "--no-timing", "--depth", "0"])
    assert bad.returncode == 2 and "--depth" in bad.stderr


@pytest.mark.architecture
def test_keras_hub_bert_at_depth_3(keras):
    keras_hub = pytest.importorskip("keras_hub")  # a test extra: see pyproject.toml
    s, hdim, inter = 16, 32, 64
    model = keras_hub.models.BertBackbone(
        vocabulary_size=100,
        num_layers=2,
        num_heads=2,
        hidden_dim=hdim,
        intermediate_dim=inter,
        max_sequence_length=s,
    )
    shapes = {name: (s,) for name in ("token_ids", "segment_ids", "padding_mask")}
    one = rows_by_label(_profile(model, input_shapes=shapes))
    deep = _timed(model, input_shapes=shapes, depth=3, step_stats_runs=0)
    assert_exact(deep)
    assert deep.cross_check.method_errors == {}
    rows = rows_by_label(deep)
    attention = "transformer_layer_0/self_attention_layer/"
    for name in ("query", "key", "value", "attention_output"):
        assert rows[attention + name].macs == s * hdim * hdim, name  # textbook projection
    assert rows[attention + "(inline ops)"].macs == 2 * s * s * hdim  # scores and combine
    for name in ("self_attention_layer_norm", "feedforward_layer_norm"):
        assert rows[f"transformer_layer_0/{name}"].type == "LayerNormalization"
    assert rows["transformer_layer_0/feedforward_intermediate_dense"].macs == s * hdim * inter
    assert rows["transformer_layer_0/feedforward_output_dense"].macs == s * inter * hdim
    for layer in ("transformer_layer_0", "transformer_layer_1"):
        inside = [r for r in deep.layers if r.label.startswith(layer + "/")]
        assert sum(r.flops for r in inside) == one[layer].flops
        assert sum(r.macs for r in inside) == one[layer].macs
        for r in inside:
            if r.kind != "inline":
                assert r.time_us is not None and r.callback_time_us is not None, r.label
    parents = {p.label: p for p in deep.parents}
    assert parents["transformer_layer_0"].additivity is not None
    assert all(p.counts_match for p in deep.parents)


def test_a_composite_layer_called_twice_expands_both_calls(keras):
    two, _, _ = _composite_classes(keras)
    n = 4
    block = two(n, name="blk")
    inputs = keras.Input((n,))
    model = keras.Model(inputs, block(block(inputs)))
    report = _timed(model, depth=2, step_stats_runs=0)
    rows = rows_by_label(report)
    dense = 2 * n * n + n
    for call in ("blk", "blk[1]"):
        assert rows[f"{call}/d1"].flops == rows[f"{call}/d2"].flops == dense
        assert rows[f"{call}/(inline ops)"].flops == n
        # the callback times each call's sublayers under that call's path
        assert rows[f"{call}/d1"].callback_time_us is not None
        assert rows[f"{call}/d2"].callback_time_us is not None
    assert [p.label for p in report.parents] == ["blk", "blk[1]"]
    assert all(p.counts_match for p in report.parents)
    # shared weights count once, whatever the path
    assert sum(r.params for r in report.layers) == model.count_params() == 2 * (n * n + n)
    assert_exact(report)


def test_nested_models_are_parents_outermost_first(keras):
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="d")], name="inner")
    middle_in = keras.Input((3,))
    middle = keras.Model(middle_in, inner(middle_in), name="middle")
    inputs = keras.Input((3,))
    model = keras.Model(inputs, middle(inputs))
    report = _profile(model, depth="all")
    assert [p.label for p in report.parents] == ["middle", "middle/inner"]
    assert [r.label for r in report.layers] == ["middle/inner/d"]
    assert report.layers[0].depth == 3 and report.layers[0].parent == "middle/inner"
    assert all(p.counts_match for p in report.parents)
    assert_exact(report)


def _strict_and_tuple_classes(keras):
    class Strict(keras.layers.Layer):
        """`cache` in its call but not in its own output spec, like MultiHeadAttention under
        keras-hub's CachedMultiHeadAttention."""

        def call(self, x, cache=None):
            return x * 2.0

        def compute_output_spec(self, x):
            return keras.KerasTensor(x.shape, x.dtype)

    class PairWithNone(keras.layers.Layer):
        """Returns (dense(x), None): fine inside a layer, refused as a model's output."""

        def __init__(self, **kw):
            super().__init__(**kw)
            self.d = keras.layers.Dense(4, name="d")

        def call(self, x):
            return self.d(x), None

    class Outer(keras.layers.Layer):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.strict = Strict(name="strict")
            self.pair = PairWithNone(name="pair")

        def call(self, x):
            y, _ = self.pair(self.strict(x, cache=None))
            return y + 1.0

    return Outer


def test_call_sites_keras_cannot_call_symbolically_as_recorded(keras):
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _strict_and_tuple_classes(keras)(name="outer")(inputs))
    report = _profile(model, depth=3)
    assert_exact(report)
    rows = rows_by_label(report)
    # `cache=None` is left out of the sub-model's call: Strict's spec does not take it
    assert rows["outer/strict"].error is None and rows["outer/strict"].flops == 4  # x * 2
    assert rows["outer/pair/d"].flops == 2 * 4 * 4 + 4
    assert rows["outer/(inline ops)"].flops == 4  # y + 1
    # pair returns (tensor, None): its sub-model outputs the tensor alone
    parents = {p.label: p for p in report.parents}
    assert parents["outer/pair"].error is None and parents["outer/pair"].flops == 2 * 4 * 4 + 4
    assert all(p.counts_match for p in report.parents)
    # at depth 2 pair is a row of its own, built the same way
    shallow = rows_by_label(_profile(model, depth=2))
    assert shallow["outer/pair"].error is None and shallow["outer/pair"].flops == 2 * 4 * 4 + 4


def test_a_failing_expanded_layer_is_reported_and_named(keras, monkeypatch):
    from submodel_profiler import profiler
    from submodel_profiler.cli import EXIT_PARTIAL, exit_code
    from submodel_profiler.renderers import render_table

    real = profiler.profile_submodel

    def failing_for_pair(row, *args, **kwargs):
        if row.name == "outer/pair":
            raise RuntimeError("cannot be built")
        return real(row, *args, **kwargs)

    monkeypatch.setattr(profiler, "profile_submodel", failing_for_pair)
    inputs = keras.Input((4,))
    model = keras.Model(inputs, _strict_and_tuple_classes(keras)(name="outer")(inputs))
    report = _profile(model, depth=3)
    parents = {p.label: p for p in report.parents}
    assert parents["outer/pair"].error == "outer/pair: RuntimeError: cannot be built"
    assert parents["outer"].error is None and parents["outer"].counts_match
    # the failed expanded layer is a failed row, and nothing is marked as a disagreement
    assert report.cross_check.failed_rows == ("outer/pair/",)
    assert report.cross_check.mismatched_rows == ()
    assert all(r.error is None for r in report.layers)
    assert report.status == "partial" and exit_code(report) == EXIT_PARTIAL
    text = render_table(report)
    assert "error in an expanded layer: outer/pair: " in text and "≠" not in text.split("check:")[0]


def test_a_nested_model_called_twice_expands_both_calls(keras):
    # a siamese model: one backbone on two inputs
    backbone = keras.Sequential([keras.Input((3,)), keras.layers.Dense(4, name="d")], name="sub")
    a, b = keras.Input((3,), name="a"), keras.Input((3,), name="b")
    model = keras.Model([a, b], keras.layers.Add(name="add")([backbone(a), backbone(b)]))
    for kw in ({"depth": "all"}, {"expand_nested": True}):
        report = _timed(model, **kw)
        assert_exact(report)
        assert report.cross_check.method_errors == {}
        rows = rows_by_label(report)
        assert list(rows) == ["sub/d", "sub[1]/d", "add"]
        assert rows["sub/d"].flops == rows["sub[1]/d"].flops == 2 * 3 * 4 + 4
        assert rows["sub/d"].params == 3 * 4 + 4 and rows["sub[1]/d"].params == 0
        assert [p.label for p in report.parents] == ["sub", "sub[1]"]
        assert all(p.counts_match for p in report.parents)
        for label in ("sub/d", "sub[1]/d"):
            row = rows[label]
            assert None not in (row.time_us, row.callback_time_us, row.unfused_time_us), label


def test_doubly_nested_parents_keep_their_own_calls_shapes(keras):
    # mid (holding inner) called on 5 and on 7 steps: each call's parents have their own specs
    inner = keras.Sequential(
        [keras.Input((None, 4)), keras.layers.Dense(3, name="d")], name="inner"
    )
    xi = keras.Input((None, 4))
    mid = keras.Model(xi, inner(xi), name="mid")
    a, b = keras.Input((5, 4)), keras.Input((7, 4))
    model = keras.Model([a, b], keras.layers.Concatenate(axis=1)([mid(a), mid(b)]))
    report = _profile(model, expand_nested=True)
    assert_exact(report)
    parents = {p.label: p for p in report.parents}
    dense = 2 * 4 * 3 + 3  # per step
    for label, steps in (("mid", 5), ("mid/inner", 5), ("mid[1]", 7), ("mid[1]/inner", 7)):
        assert parents[label].flops == parents[label].rows_flops == steps * dense, label


def test_an_expanded_layer_failing_only_when_run_still_counts(keras):
    import tensorflow as tf

    class NonNegative(keras.layers.Layer):
        def call(self, x):
            tf.debugging.assert_non_negative(x)
            return x * 2.0

    negative = {
        "kernel_initializer": "zeros",
        "bias_initializer": keras.initializers.Constant(-1.0),
    }
    xi = keras.Input((4,))
    inner = keras.layers.Dense(4, name="before", **negative)(xi)
    sub = keras.Model(xi, NonNegative(name="fragile")(inner), name="sub")
    a = keras.Input((4,))
    model = keras.Model(a, keras.layers.Dense(2, name="head")(sub(a)))
    report = _timed(model, expand_nested=True, step_stats_runs=0)
    (parent,) = report.parents
    # its sub-model was built and counted; only running it failed (a timing error)
    assert parent.counts_match and parent.flops == 2 * 4 * 4 + 4 + 4 + 4  # dense, assert, x * 2
    assert "failed when run" in parent.error and parent.time_us is None
    assert report.cross_check.failed_rows == () and report.cross_check.flops_exact
