"""Shared fixtures: tiny hand-built models with explicit layer names."""

from __future__ import annotations

import os

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

import pytest  # noqa: E402

from submodel_profiler.timing import TimingSettings  # noqa: E402

# Small, quick timing settings for tests that exercise timing code paths (not timing claims).
FAST_TIMING = TimingSettings(warmup=1, min_repeats=3, max_repeats=5, budget_s=0.001)


def rows_by_label(report) -> dict:
    return {row.label: row for row in report.layers}


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
