"""Shared fixtures: tiny hand-built models with explicit layer names."""

from __future__ import annotations

import os
import subprocess
import sys

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from submodel_profiler.timing import TimingSettings  # noqa: E402

# Small, quick timing settings for tests that exercise timing code paths (not timing claims).
FAST_TIMING = TimingSettings(warmup=1, min_repeats=3, max_repeats=5, budget_s=0.001)


CLI = [sys.executable, "-m", "submodel_profiler"]
# The same, as CLI flags: few samples, one step-stats run, one callback sample.
FAST_FLAGS = (
    "--repeats=4",
    "--min-repeats=3",
    "--warmup=1",
    "--time-budget=0.001",
    "--step-stats-runs=1",
    "--callback-samples=1",
)


def rows_by_label(report) -> dict:
    return {row.label: row for row in report.layers}


def assert_exact(report):
    """Every row's counts (float ops in both conventions, MACs) agree between the sub-model and
    the whole graph, and the rows sum exactly to the whole graph in all three."""
    t = report.totals
    for row in report.layers:
        assert row.error is None, row.error
        assert row.flops == row.whole_graph_flops, row.label
        assert row.tf_flops == row.whole_graph_tf_flops, row.label
        assert row.macs == row.whole_graph_macs, row.label
    assert sum(r.flops for r in report.layers) == t.whole_graph_flops
    assert sum(r.tf_flops for r in report.layers) == t.whole_graph_tf_flops
    assert sum(r.macs for r in report.layers) == t.whole_graph_macs
    assert t.unattributed_flops == t.unattributed_tf_flops == t.unattributed_macs == 0
    assert report.cross_check.flops_exact


def seed_tf_flops(model, specs) -> int:
    """TF's profiler on `model(x)` traced the ordinary way (the seed's method), as one would
    without this tool: the independent anchor of TF's count. `specs`: one tf.TensorSpec (or a
    float32 shape) per input, batch included."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    from submodel_profiler.tf_logging import quiet_tf

    specs = [s if isinstance(s, tf.TensorSpec) else tf.TensorSpec(s) for s in specs]
    fn = tf.function(lambda *xs: model(xs[0] if len(xs) == 1 else list(xs), training=False))
    graph = fn.get_concrete_function(*specs).graph
    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    )
    with quiet_tf():
        return model_analyzer.profile(graph, options=options).total_float_ops


def run_cli(args, **kw):
    """`python -m submodel_profiler ARGS` as a user runs it; the CompletedProcess."""
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(CLI + args, capture_output=True, text=True, env=env, timeout=300, **kw)


@pytest.fixture(scope="session")
def keras():
    import keras

    return keras


@pytest.fixture(scope="session")
def tiny_cnn(keras):
    """Input 16x16x3 → Conv2D(8, 3, same) → BN → ReLU → GAP → Dense(4)."""
    layers = keras.layers
    x = inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(4, name="dense")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


@pytest.fixture(scope="session")
def model_file(tmp_path_factory, tiny_cnn):
    """tiny_cnn saved as a .keras file."""
    path = tmp_path_factory.mktemp("models") / "tiny.keras"
    tiny_cnn.save(path)
    return str(path)


def depends_on(op, target) -> bool:
    """Whether `op` runs after `target`: a path of data or control inputs leads to it."""
    from submodel_profiler.flops import _live

    return target.name in _live(op.graph, [op.name])
