"""Golden rendered output: a hand-built report (no TensorFlow) rendered as a table and CSV must
match the files in tests/golden/ byte for byte; rows sum to the printed totals.

To update after an intended format change: SP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py,
then read the diff before committing it.
"""

from __future__ import annotations

import os
import pathlib

import pytest

from submodel_profiler.derived import add_derived_fields
from submodel_profiler.renderers import render_csv, render_table
from submodel_profiler.report import (
    CrossCheck,
    Environment,
    LayerRow,
    ModelInfo,
    Report,
    Settings,
    TensorInfo,
    Totals,
)
from submodel_profiler.timing import TimeStats

GOLDEN = pathlib.Path(__file__).parent / "golden"


def _stats(median, iqr):
    return TimeStats(median=median, min=median - iqr, max=median + iqr, iqr=iqr, repeats=10)


def hand_built_report() -> Report:
    # Conv 3x3, 3 -> 8 channels on 16x16 ("same"): 2*9*3*8*256 + 8*256 = 112,640 float ops.
    conv = LayerRow("conv", "Conv2D", "layer", 0, (), ((1, 16, 16, 3),), ("float32",),
                    ((1, 16, 16, 8),), 224, 112_640, 112_640, tf_flops=112_640,
                    whole_graph_tf_flops=112_640, macs=55_296, whole_graph_macs=55_296,
                    time_us=_stats(40.0, 4.0),
                    in_graph_time_us=35.0, unfused_time_us=41.0,
                    callback_time_us=_stats(120.0, 10.0))  # fmt: skip
    relu = LayerRow("re_lu", "ReLU", "layer", 0, ("add", "multiply"), ((1, 16, 16, 8),),
                    ("float32",), ((1, 16, 16, 8),), 0, 4_096, 4_096, tf_flops=4_096,
                    whole_graph_tf_flops=4_096, macs=0, whole_graph_macs=0,
                    time_us=_stats(6.0, 1.0),
                    uncounted_ops={"Relu6": 1}, in_graph_time_us=None, unfused_time_us=7.0,
                    fused_into="conv", callback_time_us=_stats(30.0, 3.0))  # fmt: skip
    add = LayerRow("add_1", "Add", "op", 0, (), ((1, 16, 16, 8), (1, 16, 16, 8)),
                   ("float32", "float32"), ((1, 16, 16, 8),), 0, 2_048, 2_048, tf_flops=2_048,
                   whole_graph_tf_flops=2_048, macs=0, whole_graph_macs=0,
                   time_us=_stats(4.0, 0.5),
                   in_graph_time_us=3.0, unfused_time_us=4.5)  # fmt: skip
    layers = (conv, relu, add)
    time_us = sum(r.time_us.median for r in layers)
    return Report(
        model=ModelInfo("golden", "python", 1, (TensorInfo("image", (1, 16, 16, 3), "float32"),), 224),
        environment=Environment("3.11.7", "2.21.0", "3.15.1", "Linux", "CPU: test", 2, 2),
        settings=Settings(True, 2, 10, 50, 0.05, 0.02, counting="tf", overhead_us=3.0),
        layers=layers,
        totals=Totals(flops=118_784, whole_graph_flops=118_784, unattributed_flops=0,
                      tf_flops=118_784, whole_graph_tf_flops=118_784, unattributed_tf_flops=0,
                      macs=55_296, whole_graph_macs=55_296, unattributed_macs=0,
                      time_us=time_us, whole_model_time_us=_stats(48.0, 2.0),
                      additivity=time_us / 48.0, in_graph_time_us=38.0, unfused_time_us=52.5,
                      callback_time_us=150.0),  # fmt: skip
        cross_check=CrossCheck(True, lower_bound_rows=("re_lu",), uncounted_ops={"Relu6": 1},
                               rank_correlation={"unfused": 1.0, "in_graph": 1.0,
                                                 "callback": 1.0}),  # fmt: skip
    )


def test_rows_sum_to_the_printed_totals():
    report = hand_built_report()
    assert sum(r.flops for r in report.layers) == report.totals.flops
    assert sum(r.whole_graph_flops for r in report.layers) == report.totals.whole_graph_flops
    text = render_table(report)
    assert f"Σ rows (sub-models) {report.totals.flops:,}" in text
    assert f"Σ rows {report.totals.time_us:,.1f} µs" in text


@pytest.mark.parametrize("name, render", [("table.txt", render_table), ("rows.csv", render_csv)])
def test_rendered_output_matches_golden(name, render):
    # 1 GFLOP/s peak makes the throughput columns easy to check by eye.
    from submodel_profiler.throughput import Peak

    text = render(add_derived_fields(hand_built_report(), Peak(1e9, "test peak")))
    path = GOLDEN / name
    if os.environ.get("SP_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
