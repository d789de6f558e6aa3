"""Hardening, as a user running someone else's model meets it: failing rows, crashes, flags that
would be ignored, a terminal-sized table, quiet stderr, type checks up front (legacy files:
test_legacy.py)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest

from submodel_profiler import UsageError, profile_model

from conftest import CLI, FAST_FLAGS, FAST_TIMING, assert_exact, rows_by_label, run_cli

CUSTOM_LAYERS = textwrap.dedent('''
    import keras
    import tensorflow as tf


    @keras.saving.register_keras_serializable(package="hardening")
    class NonNegative(keras.layers.Layer):
        """Asserts its input is >= 0: traces fine, fails on random normal data."""

        def call(self, x):
            tf.debugging.assert_non_negative(x, message="negative input")
            return x * 2.0


    @keras.saving.register_keras_serializable(package="hardening")
    class BatchOneFails(keras.layers.Layer):
        """Builds symbolically (batch None) and fails when traced with a batch of 1."""

        def call(self, x):
            if x.shape[0] == 1:
                raise RuntimeError("this layer refuses a batch of one")
            return x
''')


@pytest.fixture(scope="module")
def custom_module(tmp_path_factory):
    folder = tmp_path_factory.mktemp("custom")
    (folder / "hardening_layers.py").write_text(CUSTOM_LAYERS)
    sys.path.insert(0, str(folder))
    import hardening_layers

    yield folder, hardening_layers
    sys.path.remove(str(folder))


def _cli(args, folder, **kw):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3", "PYTHONPATH": str(folder)}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.fixture(scope="module")
def failing_row_file(keras, custom_module, tmp_path_factory):
    folder, layers = custom_module
    inputs = keras.Input((8,))
    # "before" outputs -1 whatever the input, so the whole model fails on every run; with random
    # weights its outputs were all >= 0 on the tool's seeded input about one build in 256
    negative = {
        "kernel_initializer": "zeros",
        "bias_initializer": keras.initializers.Constant(-1.0),
    }
    x = keras.layers.Dense(8, name="before", **negative)(inputs)
    x = layers.NonNegative(name="fragile")(x)
    model = keras.Model(inputs, keras.layers.Dense(2, name="after")(x))
    path = tmp_path_factory.mktemp("models") / "fragile.keras"
    model.save(path)
    return str(path)


# --- 1. a row that fails when run ------------------------------------------------------------


def test_a_row_failing_at_run_time_leaves_every_other_row_complete(
    failing_row_file, custom_module, tmp_path
):
    folder, _ = custom_module
    out = tmp_path / "r.json"
    result = _cli(
        [
            failing_row_file,
            *FAST_FLAGS,
            "--custom-objects",
            "hardening_layers",
            "--format",
            "json",
            "--output",
            str(out),
        ],
        folder,
    )
    assert result.returncode == 3, result.stderr  # partial
    assert "Traceback" not in result.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "partial"
    rows = {r["name"]: r for r in data["layers"]}
    assert "fragile" in rows["fragile"]["error"] and "negative input" in rows["fragile"]["error"]
    for name in ("before", "after"):
        assert rows[name]["error"] is None and rows[name]["time_us"] is not None
    # counted all the same: 2·8·8 + 8 and 2·8·2 + 2; the assert's x >= 0 and x * 2: 8 + 8
    assert rows["before"]["flops"] == 2 * 8 * 8 + 8 and rows["after"]["flops"] == 2 * 8 * 2 + 2
    assert rows["fragile"]["flops"] == 8 + 8
    errors = data["cross_check"]["method_errors"]
    assert "whole_model" in errors and "callback" in errors and "step_stats" in errors


def test_a_row_failing_in_the_whole_model_trace_leaves_every_other_row_complete(
    keras, custom_module, tmp_path
):
    folder, layers = custom_module
    inputs = keras.Input((4,))
    x = keras.layers.Dense(6, name="before")(inputs)
    x = layers.BatchOneFails(name="picky")(x)
    model = keras.Model(inputs, keras.layers.Dense(3, name="after")(x))
    path, out = tmp_path / "picky.keras", tmp_path / "r.json"
    model.save(path)
    args = [str(path), *FAST_FLAGS, "--custom-objects", "hardening_layers"]
    result = _cli([*args, "--format", "json", "--output", str(out)], folder)
    assert result.returncode == 3, result.stderr  # partial, not a crash
    assert "Traceback" not in result.stderr
    data = json.loads(out.read_text())
    assert data["status"] == "partial"
    rows = {r["name"]: r for r in data["layers"]}
    assert "picky" in rows["picky"]["error"] and "refuses a batch of one" in rows["picky"]["error"]
    # the rows before and after it are counted (2 per multiply-add, + bias) and timed
    assert rows["before"]["flops"] == 2 * 4 * 6 + 6 and rows["after"]["flops"] == 2 * 6 * 3 + 3
    for name in ("before", "after"):
        assert rows[name]["error"] is None and rows[name]["time_us"] is not None
    assert rows["after"]["input_shapes"] == [[1, 6]]
    assert data["totals"]["whole_graph_flops"] is None  # model(x) itself cannot be traced
    errors = data["cross_check"]["method_errors"]
    assert {"whole_graph", "whole_model", "step_stats", "callback"} <= set(errors)
    assert "picky" in errors["whole_graph"] and "refuses a batch of one" in errors["whole_graph"]
    table = _cli(args, folder)
    assert table.returncode == 3 and "could not be traced" in table.stdout


# --- 2. a crash is told apart ----------------------------------------------------------------


def test_a_crash_exits_4_with_one_paragraph_naming_phase_and_layer(keras, custom_module, tmp_path):
    # A layer failing in the trace whose output shape is not static past the batch dimension:
    # nothing can stand in for its outputs, so the rows after it cannot be traced.
    folder, layers = custom_module
    inputs = keras.Input((None, 4))
    model = keras.Model(inputs, layers.BatchOneFails(name="picky")(keras.layers.Dense(4)(inputs)))
    path = tmp_path / "picky.keras"
    model.save(path)
    args = [str(path), "--no-timing", "--custom-objects", "hardening_layers"]
    args += ["--input-shape", "5,4"]
    result = _cli(args, folder)
    assert result.returncode == 4
    assert "tracing the whole model" in result.stderr and "'picky'" in result.stderr
    assert "--debug" in result.stderr and "Traceback" not in result.stderr
    debug = _cli([*args, "--debug"], folder)
    assert debug.returncode == 4 and "Traceback" in debug.stderr


# --- 3. --repeats alone ----------------------------------------------------------------------


def test_repeats_alone_lowers_the_minimum(model_file, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli(
        [
            model_file,
            "--repeats",
            "5",
            "--time-budget",
            "0.001",
            "--step-stats-runs",
            "0",
            "--callback-samples",
            "0",
            "--format",
            "json",
            "--output",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    settings = json.loads(out.read_text())["settings"]
    assert settings["max_repeats"] == 5 and settings["min_repeats"] == 5


# --- 4. flags that would be ignored are refused ----------------------------------------------


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--dtype-policy", "mixed_float16"], "--dtype-policy"),
        (["--batch-size", "2", "--batch-sizes", "1,2"], "--batch-sizes"),
        (["--batch-size", "1", "--batch-sizes", "1,2"], "--batch-sizes"),
        (["--wide", "--format", "json"], "--columns and --wide"),
        (["--columns", "name,bogus"], "--columns"),
    ],
)
def test_flags_that_would_be_ignored_are_refused(model_file, extra, message):
    result = run_cli([model_file, "--no-timing", *extra])
    assert result.returncode == 2, result.stdout
    assert message in result.stderr and "Traceback" not in result.stderr


def test_expand_nested_on_a_subclassed_model_is_refused(keras):
    class Sub(keras.Model):
        def __init__(self):
            super().__init__()
            self.d = keras.layers.Dense(2)

        def call(self, x):
            return self.d(x)

    with pytest.raises(UsageError, match="subclassed"):
        profile_model(Sub(), input_shapes=[(3,)], timing=False, expand_nested=True)


# --- 5. a table that fits a terminal ----------------------------------------------------------


@pytest.mark.architecture
def test_default_mobilenet_v3_small_table_fits_190_columns():
    result = run_cli(["MobileNetV3Small", *FAST_FLAGS])
    assert result.returncode == 0, result.stderr
    widths = [len(line) for line in result.stdout.splitlines()]
    assert max(widths) <= 190, max(widths)
    wide = run_cli(["MobileNetV3Small", "--no-timing", "--wide"])
    assert wide.returncode == 0 and "whole graph" in wide.stdout and "ghost ops" in wide.stdout


def test_long_names_are_shortened_in_the_default_table_only(keras):
    from submodel_profiler.renderers import WIDE_COLUMNS, render_table

    long = "convnext_tiny_stage_3_block_2_pointwise_conv_1"  # 46 characters
    inputs = keras.Input((4,))
    report = profile_model(
        keras.Model(inputs, keras.layers.Dense(2, name=long)(inputs)), timing=False
    )
    default = render_table(report)
    assert long not in default and "convnext_tiny…" in default and "pointwise_conv_1" in default
    assert max(len(line) for line in default.splitlines()[:6]) < 140
    assert long in render_table(report, columns=WIDE_COLUMNS)


def test_columns_pick_the_table(model_file):
    result = run_cli([model_file, "--no-timing", "--columns", "name,macs"])
    assert result.returncode == 0, result.stderr
    header = result.stdout.splitlines()[3]
    assert header.split() == ["name", "MACs"]
    # conv 3x3, 3 -> 8 on 16x16: 9·3·8·256 MACs
    assert f"{9 * 3 * 8 * 16 * 16:,}" in result.stdout


# --- 6. stderr without TensorFlow's C++ start-up lines -----------------------------------------


def test_stderr_holds_no_tensorflow_log_lines_by_default(model_file):
    env = {k: v for k, v in os.environ.items() if k != "TF_CPP_MIN_LOG_LEVEL"}
    result = subprocess.run(
        CLI + [model_file, "--no-timing"], capture_output=True, text=True, env=env, timeout=300
    )
    assert result.returncode == 0, result.stderr
    for noise in ("cuda", "cuInit", "oneDNN", "absl", "I0000", "E0000"):
        assert noise not in result.stderr, result.stderr
    verbose = subprocess.run(
        CLI + [model_file, "--no-timing", "--verbose"],
        capture_output=True,
        text=True,
        env=env,
        timeout=300,
    )
    assert verbose.returncode == 0


# --- 8. rows share a measurement only when their graphs are identical ------------------------


def test_layers_with_equal_configs_but_different_graphs_are_measured_apart(keras):
    class Mode(keras.layers.Layer):
        """Its behaviour is not in its config (a bug users write): matmul or double."""

        def __init__(self, matmul=False, **kw):
            super().__init__(**kw)
            self.matmul = matmul

        def build(self, shape):
            self.w = self.add_weight(shape=(shape[-1], shape[-1]))

        def call(self, x):
            return x @ self.w if self.matmul else x * 2.0

    inputs = keras.Input((6,))
    x = Mode(matmul=False, name="double")(inputs)
    model = keras.Model(inputs, Mode(matmul=True, name="project")(x))
    report = profile_model(
        model,
        timing=True,
        timing_settings=FAST_TIMING,
        step_stats_runs=0,
        callback_samples=0,
        measure_peak=False,
    )
    rows = rows_by_label(report)
    assert rows["project"].same_as is None
    assert rows["double"].flops == 6 and rows["project"].macs == 6 * 6
    assert_exact(report)


# --- 9. type checks up front -----------------------------------------------------------------


def test_a_non_model_is_refused_up_front():
    with pytest.raises(UsageError, match="expects a keras.Model"):
        profile_model("not a model", timing=False)


def test_an_unbuilt_sequential_is_refused_up_front(keras):
    with pytest.raises(UsageError, match="not built"):
        profile_model(keras.Sequential([keras.layers.Dense(2)]), timing=False)


# --- 10. the peak in the rows' compute dtype ---------------------------------------------------


def test_the_peak_is_measured_in_the_compute_dtype():
    from submodel_profiler.report import LayerRow
    from submodel_profiler.throughput import compute_dtype, measure_peak

    rows = [
        LayerRow("a", "Dense", "layer", 0, input_dtypes=("float16",), flops=100),
        LayerRow("b", "Dense", "layer", 0, input_dtypes=("float32",), flops=10),
    ]
    assert compute_dtype(rows) == "float16"
    # 256: a 64x64 matmul could take no measurable time once the loop's overhead is taken out
    peak = measure_peak(FAST_TIMING, size=256, dtype="float16")
    assert peak is not None and peak.method.startswith("float16 matmul 256x256")


def test_ctrl_c_while_sub_models_are_built_keeps_what_was_counted(tiny_cnn, monkeypatch):
    from submodel_profiler import profiler

    real, calls = profiler.profile_submodel, []

    def interrupted_on_the_third(row, *args):
        calls.append(row.name)
        if len(calls) == 3:
            raise KeyboardInterrupt
        return real(row, *args)

    monkeypatch.setattr(profiler, "profile_submodel", interrupted_on_the_third)
    report = profile_model(tiny_cnn, timing=True, timing_settings=FAST_TIMING)
    assert report.status == "interrupted"
    rows = report.layers
    assert [r.flops is not None for r in rows] == [True, True, False, False, False]
    assert all("interrupted" in r.error for r in rows[2:])
    assert all(r.time_us is None for r in rows)  # timing never started


def test_step_stats_are_cpu_only_and_raise_no_fusion_flags_on_a_gpu(tiny_cnn, monkeypatch):
    from submodel_profiler import cross_checks

    monkeypatch.setattr(cross_checks, "gpu_visible", lambda: True)  # as on a GPU machine
    report = profile_model(
        tiny_cnn,
        timing_settings=FAST_TIMING,
        step_stats_runs=1,
        callback_samples=0,
        measure_peak=False,
    )
    assert "kernel launches" in report.cross_check.method_errors["step_stats"]
    assert all(r.in_graph_time_us is None and r.unfused_time_us is None for r in report.layers)
    assert not any(r.fusion_flag for r in report.layers)


def test_a_profile_hands_back_the_objects_it_froze_and_keeps_a_callers_freeze(
    tiny_cnn, monkeypatch
):
    # The objects alive at the start are out of full collections while it runs (gc.freeze),
    # and back in them once it returns; a caller's own freeze is left alone.
    import gc

    from submodel_profiler import profiler

    seen, plan = [], profiler.plan_rows

    def recording_plan(*args, **kwargs):
        seen.append(gc.get_freeze_count())
        return plan(*args, **kwargs)

    monkeypatch.setattr(profiler, "plan_rows", recording_plan)
    profile_model(tiny_cnn, timing=False)
    assert seen[0] > 0 and gc.get_freeze_count() == 0
    gc.freeze()
    try:
        # A caller's freeze: the profile neither freezes nor unfreezes. (Counts cannot say so:
        # a frozen object that dies while the profile runs leaves the permanent generation.)
        calls = []
        monkeypatch.setattr(gc, "freeze", lambda: calls.append("freeze"))
        monkeypatch.setattr(gc, "unfreeze", lambda: calls.append("unfreeze"))
        profile_model(tiny_cnn, timing=False)
        assert calls == [] and seen[1] > 0 and gc.get_freeze_count() > 0
    finally:
        monkeypatch.undo()
        gc.unfreeze()
