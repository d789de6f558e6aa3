"""Models users bring: nested, custom layers, integer inputs, mixed precision, named inputs,
failing rows and interrupted timing (issue 4)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import pytest

from submodel_profiler import profile_model

from conftest import FAST_TIMING, assert_exact, rows_by_label, seed_tf_flops


def _nested(keras):
    layers = keras.layers
    inner_in = keras.Input((6, 6, 3))
    x = layers.Conv2D(4, 3, padding="same", name="inner_conv")(inner_in)
    x = layers.ReLU(name="inner_relu")(x + 1.0)
    block = keras.Model(inner_in, x, name="block")
    inputs = keras.Input((6, 6, 3))
    y = block(inputs)
    y = layers.GlobalAveragePooling2D(name="pool")(y)
    return keras.Model(inputs, layers.Dense(2, name="head")(y))


def test_nested_model_is_one_row_by_default(keras):
    report = profile_model(_nested(keras), timing=False)
    assert [r.name for r in report.layers] == ["block", "pool", "head"]
    conv = 2 * 9 * 3 * 4 * 36 + 4 * 36
    # + the ghost add and the ReLU, one per element each (TF counts no ReLU)
    assert rows_by_label(report)["block"].flops == conv + 4 * 36 + 4 * 36
    assert rows_by_label(report)["block"].tf_flops == conv + 4 * 36
    assert_exact(report)


def test_expand_nested_gives_path_named_rows(keras):
    model = _nested(keras)
    report = profile_model(model, timing=False, expand_nested=True)
    names = [r.name for r in report.layers]
    assert names == ["block/inner_conv", "block/inner_relu", "pool", "head"]
    assert rows_by_label(report)["block/inner_relu"].ghost_ops[0].startswith("add")
    assert rows_by_label(report)["block/inner_conv"].flops == 2 * 9 * 3 * 4 * 36 + 4 * 36
    assert sum(r.params for r in report.layers) == model.count_params()
    assert_exact(report)


@pytest.mark.architecture
def test_application_backbone_inside_sequential(keras):
    base = keras.applications.MobileNetV3Small(
        include_top=False, weights=None, input_shape=(96, 96, 3)
    )
    model = keras.Sequential(
        [
            keras.Input((96, 96, 3)),
            base,
            keras.layers.GlobalAveragePooling2D(name="gap"),
            keras.layers.Dense(10, name="head"),
        ]
    )
    _, h, w, c = base.output.shape  # the backbone's feature map, (1, 3, 3, 576)
    head = {
        "gap": h * w * c,  # TF's Mean: 1 per input element
        "head": 2 * c * 10 + 10,
    }  # (1, c) @ (c, 10) + bias
    seed_base = seed_tf_flops(base, [(1, 96, 96, 3)])
    one_row = profile_model(model, timing=False)
    assert_exact(one_row)
    assert [r.name for r in one_row.layers] == [base.name, *head]
    assert one_row.layers[0].type == "Functional"
    assert one_row.layers[0].tf_flops == seed_base
    expanded = profile_model(model, timing=False, expand_nested=True)
    assert_exact(expanded)
    inner = expanded.layers[:-2]
    assert len(inner) > 100 and all(r.name.startswith(f"{base.name}/") for r in inner)
    assert sum(r.tf_flops for r in inner) == seed_base
    assert sum(r.flops for r in inner) == one_row.layers[0].flops  # complete: also our rules
    for report in (one_row, expanded):
        assert {r.name: r.flops for r in report.layers[-2:]} == head


def test_integer_inputs_stay_within_the_embedding(keras):
    inputs = keras.Input((7,), dtype="int32")
    x = keras.layers.Embedding(5, 3, name="emb")(inputs)
    x = keras.layers.Dense(2, name="d")(keras.layers.Flatten(name="flat")(x))
    report = profile_model(
        keras.Model(inputs, x), timing_settings=FAST_TIMING, callback_samples=2, step_stats_runs=1
    )
    assert rows_by_label(report)["emb"].input_shapes == ((1, 7),)
    assert rows_by_label(report)["emb"].input_dtypes == ("int32",)
    assert all(r.time_us is not None for r in report.layers)
    assert report.cross_check.method_errors == {}
    assert set(report.cross_check.step_stats) == {"in_graph", "unfused"}
    assert_exact(report)


def test_mixed_precision_profiles_in_the_compute_dtype(keras):
    previous = keras.config.dtype_policy()
    keras.config.set_dtype_policy("mixed_float16")
    try:
        inputs = keras.Input((8, 8, 3))
        x = keras.layers.Conv2D(4, 3, name="c")(inputs)
        x = keras.layers.Dense(2, name="d")(x)
        model = keras.Model(inputs, x)
    finally:
        keras.config.set_dtype_policy(previous)
    report = profile_model(model, timing=False)
    assert rows_by_label(report)["d"].input_shapes == ((1, 6, 6, 4),)
    # The model's input is float32 (the conv casts it); the conv computes and passes on float16.
    assert rows_by_label(report)["c"].input_dtypes == ("float32",)
    assert rows_by_label(report)["d"].input_dtypes == ("float16",)
    assert rows_by_label(report)["c"].flops == 2 * 9 * 3 * 4 * 36 + 4 * 36
    assert_exact(report)


def test_input_shapes_by_name(keras):
    a = keras.Input((4,), name="a")
    b = keras.Input((None, 2), name="b")
    x = keras.layers.Dense(3, name="da")(a)
    y = keras.layers.Flatten(name="fb")(keras.layers.Dense(3, name="db")(b))
    model = keras.Model([a, b], [x, y])
    report = profile_model(model, timing=False, input_shapes={"b": (5, 2)})
    assert [t.shape for t in report.model.inputs] == [(1, 4), (1, 5, 2)]
    assert rows_by_label(report)["db"].flops == 5 * (2 * 2 * 3 + 3)
    from submodel_profiler import UsageError

    with pytest.raises(UsageError, match="does not have: c"):
        profile_model(model, timing=False, input_shapes={"c": (4,)})


def test_a_failing_row_does_not_sink_the_run(keras, monkeypatch):
    from submodel_profiler import profiler
    from submodel_profiler.cli import EXIT_PARTIAL, exit_code

    class Fragile(keras.layers.Layer):
        def call(self, x):
            return x * 2.0

    original = profiler.profile_submodel

    def failing_for_fragile(row, *args, **kwargs):
        if row.name == "fragile":  # sub-models are built on concrete tensors: force a failure
            raise RuntimeError("cannot be called symbolically")
        return original(row, *args, **kwargs)

    monkeypatch.setattr(profiler, "profile_submodel", failing_for_fragile)
    inputs = keras.Input((4,))
    x = Fragile(name="fragile")(keras.layers.Dense(4, name="d1")(inputs))
    model = keras.Model(inputs, keras.layers.Dense(2, name="d2")(x))
    report = profile_model(
        model, timing_settings=FAST_TIMING, callback_samples=0, step_stats_runs=0
    )
    rows = rows_by_label(report)
    assert "fragile" in rows["fragile"].error and "symbolically" in rows["fragile"].error
    assert rows["fragile"].flops is None and rows["fragile"].time_us is None
    assert rows["fragile"].whole_graph_flops == 4  # x * 2.0 still counted in the whole graph
    assert rows["d2"].flops == 2 * 4 * 2 + 2 and rows["d2"].time_us is not None
    assert report.status == "partial" and report.cross_check.failed_rows == ("fragile",)
    assert exit_code(report) == EXIT_PARTIAL
    from submodel_profiler.renderers import render_table

    text = render_table(report)
    assert "STATUS: PARTIAL" in text and "error: fragile: " in text and "symbolically" in text


def test_ctrl_c_during_timing_keeps_the_samples_so_far(tiny_cnn, monkeypatch):
    from submodel_profiler import timing

    original = timing._Chunk.sample
    calls = {"n": 0}

    def interrupt_on_third_batch(self, n, keep=True):
        if keep:
            calls["n"] += 1
            if calls["n"] == 3:
                raise KeyboardInterrupt
        return original(self, n, keep)

    monkeypatch.setattr(timing._Chunk, "sample", interrupt_on_third_batch)
    settings = timing.TimingSettings(
        warmup=0, min_repeats=2, max_repeats=10, budget_s=100.0, tolerance=1e-12
    )
    report = profile_model(tiny_cnn, timing_settings=settings)
    assert report.status == "interrupted"
    from submodel_profiler.cli import EXIT_INTERRUPTED, exit_code

    assert exit_code(report) == EXIT_INTERRUPTED
    # The first sampling round (2 samples) finished for the rows' chunk before Ctrl-C.
    assert all(r.time_us is not None and r.time_us.repeats == 2 for r in report.layers)


CUSTOM_MODULE = textwrap.dedent(
    """
    import keras

    @keras.saving.register_keras_serializable(package="sp_test")
    class Doubler(keras.layers.Layer):
        def call(self, x):
            return x * 2.0
    """
)


def test_custom_layer_needs_custom_objects(tmp_path, keras):
    (tmp_path / "sp_custom.py").write_text(CUSTOM_MODULE)
    sys.path.insert(0, str(tmp_path))
    try:
        import sp_custom

        inputs = keras.Input((3,))
        model = keras.Model(
            inputs, keras.layers.Dense(2, name="d")(sp_custom.Doubler(name="dbl")(inputs))
        )
        model.save(tmp_path / "custom.keras")
    finally:
        sys.path.remove(str(tmp_path))
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(tmp_path)}
    cli = [sys.executable, "-m", "submodel_profiler", str(tmp_path / "custom.keras"), "--no-timing"]
    missing = subprocess.run(
        cli,
        capture_output=True,
        text=True,
        cwd=str(tmp_path / ".."),
        env={**env, "PYTHONPATH": ""},
        timeout=300,
    )
    assert missing.returncode == 2
    assert "Doubler" in missing.stderr and "--custom-objects" in missing.stderr
    assert "Traceback" not in missing.stderr
    found = subprocess.run(
        cli + ["--custom-objects", "sp_custom:Doubler"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert found.returncode == 0, found.stderr
    assert "dbl" in found.stdout and "Cross-check: OK" in found.stdout
    bad = subprocess.run(
        cli + ["--custom-objects", "no_such_module_xyz"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert bad.returncode == 2 and "could not import module" in bad.stderr


def test_subclassed_model_rows_and_inline_ops(keras):
    class Net(keras.Model):
        def __init__(self):
            super().__init__()
            self.conv = keras.layers.Conv2D(4, 3, padding="same", name="conv")
            self.pool = keras.layers.GlobalAveragePooling2D(name="pool")
            self.head = keras.layers.Dense(2, name="head")

        def call(self, x):
            y = self.conv(x)
            y = y * 0.5 + 1.0  # written inline: no layer owns these ops
            return self.head(self.pool(y))

    model = Net()
    model(keras.ops.zeros((1, 8, 8, 3)))
    from submodel_profiler import UsageError

    with pytest.raises(UsageError, match="--input-shape"):
        profile_model(model, timing=False)
    report = profile_model(
        model,
        input_shapes=[(8, 8, 3)],
        timing_settings=FAST_TIMING,
        callback_samples=2,
        step_stats_runs=1,
    )
    rows = rows_by_label(report)
    assert rows["conv"].flops == 2 * 9 * 3 * 4 * 64 + 4 * 64
    assert rows["head"].flops == 2 * 4 * 2 + 2
    inline = rows["(inline ops)"]
    assert inline.kind == "inline" and inline.whole_graph_flops == 2 * 8 * 8 * 4  # * and +
    assert_exact(report)
    assert all(r.time_us is not None for r in report.layers if r.kind == "layer")
    assert all("call" not in layer.__dict__ for layer in model.layers)  # wrappers removed


@pytest.mark.architecture
def test_convnext_tiny_nested_blocks_both_modes(keras):
    """Nested Sequential stem/downsampling blocks, 18 residual ghost adds, grouped convs."""
    model = keras.applications.ConvNeXtTiny(weights=None, input_shape=(224, 224, 3))
    one_row = profile_model(model, timing=False)
    expanded = profile_model(model, timing=False, expand_nested=True)
    for report in (one_row, expanded):
        assert_exact(report)
        assert sum(r.kind == "op" for r in report.layers) == 18
    one, many = rows_by_label(one_row), rows_by_label(expanded)
    blocks = ["convnext_tiny_stem"] + [f"convnext_tiny_downsampling_block_{i}" for i in range(3)]
    # Expanding replaces each block's row by one row per layer of the block, nothing else.
    added = sum(len(model.get_layer(name).layers) - 1 for name in blocks)
    assert len(expanded.layers) == len(one_row.layers) + added
    assert {k: r.flops for k, r in one.items() if k not in blocks} == {
        k: r.flops for k, r in many.items() if "/" not in k
    }
    for i, name in enumerate(blocks):
        block = model.get_layer(name)
        _, h, w, c = block.input.shape
        seed = seed_tf_flops(block, [(1, h, w, c)])
        assert one[name].type == "Sequential" and one[name].tf_flops == seed
        inner = [many[f"{name}/{layer.name}"] for layer in block.layers]
        assert sum(r.tf_flops for r in inner) == seed
        conv = next(r for r in inner if r.type == "Conv2D")
        # stem: Conv2D(96, 4, strides=4); downsampling: Conv2D(2c, 2, strides=2)
        k, cout = (4, 96) if i == 0 else (2, 2 * c)
        ho, wo = h // k, w // k  # stride = kernel size, "valid"
        assert conv.flops == 2 * k * k * c * cout * ho * wo + cout * ho * wo  # + bias


def test_dtype_policy_builds_applications_in_that_policy(keras):
    from submodel_profiler.loading import load_model

    before = keras.config.dtype_policy().name
    model = load_model(
        "MobileNetV3Small", input_shape=(32, 32, 3), dtype_policy="mixed_float16"
    ).model
    assert keras.config.dtype_policy().name == before  # restored
    report = profile_model(model, timing=False)
    convs = [r for r in report.layers if r.type == "Conv2D"][1:]  # after the float32 stem
    assert convs and all(r.input_dtypes == ("float16",) for r in convs)
    assert_exact(report)
