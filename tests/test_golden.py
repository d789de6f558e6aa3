"""Golden rendered output: a hand-built report (no TensorFlow) rendered as a table and CSV must
match the files in tests/golden/ byte for byte; the printed rows sum to the printed totals.

To update after an intended format change: SP_UPDATE_GOLDEN=1 python -m pytest tests/test_golden.py,
then read the diff before committing it.
"""

from __future__ import annotations

import os
import pathlib
import re

import pytest

from submodel_profiler.derived import add_derived_fields
from submodel_profiler.methods import CROSS_CHECK_METHODS
from submodel_profiler.renderers import COLUMN_KEYS, COLUMNS, render_csv, render_table
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
    conv = LayerRow(
        "conv",
        "Conv2D",
        "layer",
        0,
        (),
        ((1, 16, 16, 3),),
        ("float32",),
        ((1, 16, 16, 8),),
        224,
        112_640,
        112_640,
        tf_flops=112_640,
        whole_graph_tf_flops=112_640,
        macs=55_296,
        whole_graph_macs=55_296,
        time_us=_stats(40.0, 4.0),
        in_graph_time_us=35.0,
        unfused_time_us=41.0,
        callback_time_us=_stats(120.0, 10.0),
        # bytes, float32: input 16·16·3·4 = 3,072, output 16·16·8·4 = 8,192, weights 224·4 =
        # 896; op bytes: Conv2D 3,072 + 864 + 8,192, BiasAdd 8,192 + 32 + 8,192 = 28,544
        input_bytes=3_072,
        output_bytes=8_192,
        param_bytes=896,
        bytes_accessed=12_160,
        arithmetic_intensity=112_640 / 12_160,
        op_bytes=28_544,
        whole_graph_op_bytes=28_544,
    )
    relu = LayerRow(
        "re_lu",
        "ReLU",
        "layer",
        0,
        ("add", "multiply"),
        ((1, 16, 16, 8),),
        ("float32",),
        ((1, 16, 16, 8),),
        0,
        4_096,
        4_096,
        tf_flops=4_096,
        whole_graph_tf_flops=4_096,
        macs=0,
        whole_graph_macs=0,
        time_us=_stats(6.0, 1.0),
        uncounted_ops={"Relu6": 1},
        # bytes: in and out 8,192 each; op bytes: add, multiply and Relu6, each 8,192 + 4 + 8,192
        # (Relu6: 8,192 + 8,192)
        input_bytes=8_192,
        output_bytes=8_192,
        bytes_accessed=16_384,
        arithmetic_intensity=4_096 / 16_384,
        op_bytes=16_388 + 16_388 + 16_384,
        whole_graph_op_bytes=16_388 + 16_388 + 16_384,
        in_graph_time_us=None,
        unfused_time_us=7.0,
        fused_into="conv",
        callback_time_us=_stats(30.0, 3.0),
    )
    add = LayerRow(
        "add_1",
        "Add",
        "op",
        0,
        (),
        ((1, 16, 16, 8), (1, 16, 16, 8)),
        ("float32", "float32"),
        ((1, 16, 16, 8),),
        0,
        2_048,
        2_048,
        tf_flops=2_048,
        whole_graph_tf_flops=2_048,
        macs=0,
        whole_graph_macs=0,
        time_us=_stats(4.0, 0.5),
        in_graph_time_us=3.0,
        unfused_time_us=4.5,
        input_bytes=16_384,
        output_bytes=8_192,
        bytes_accessed=24_576,
        arithmetic_intensity=2_048 / 24_576,
        op_bytes=24_576,
        whole_graph_op_bytes=24_576,
    )
    layers = (conv, relu, add)
    time_us = 50.0  # 40 + 6 + 4 µs
    return Report(
        model=ModelInfo(
            "golden", "python", 1, (TensorInfo("image", (1, 16, 16, 3), "float32"),), 224
        ),
        environment=Environment("3.11.7", "2.21.0", "3.15.1", "Linux", "CPU: test", 2, 2),
        settings=Settings(True, 2, 10, 50, 0.05, 0.02, counting="tf", overhead_us=3.0),
        layers=layers,
        totals=Totals(
            flops=118_784,
            whole_graph_flops=118_784,
            unattributed_flops=0,
            tf_flops=118_784,
            whole_graph_tf_flops=118_784,
            unattributed_tf_flops=0,
            macs=55_296,
            whole_graph_macs=55_296,
            unattributed_macs=0,
            time_us=time_us,
            whole_model_time_us=_stats(48.0, 2.0),
            additivity=time_us / 48.0,
            in_graph_time_us=38.0,
            unfused_time_us=52.5,
            callback_time_us=150.0,
            op_bytes=28_544 + 49_160 + 24_576,
            whole_graph_op_bytes=28_544 + 49_160 + 24_576,
            unattributed_op_bytes=0,
            param_bytes=896,
            bytes_accessed=12_160 + 16_384 + 24_576,
            # static peak: during conv, its input and output (3,072 + 8,192)
            peak_activation_bytes=11_264,
            peak_row="conv",
            estimated_total_bytes=896 + 11_264,
        ),
        cross_check=CrossCheck(
            True,
            bytes_exact=True,
            lower_bound_rows=("re_lu",),
            uncounted_ops={"Relu6": 1},
            rank_correlation={"unfused": 1.0, "in_graph": 1.0, "callback": 1.0},
        ),
    )


def _rows_table(text: str) -> list[dict]:
    """The rendered table's first table as one dict per row, cells cut at the dash rule."""
    lines = text.splitlines()
    rule = next(i for i, line in enumerate(lines) if line.startswith("---"))
    spans = [m.span() for m in re.finditer(r"-+", lines[rule])]

    def cells(line):
        return [line[a:b].strip() for a, b in spans]

    header = cells(lines[rule - 1])
    rows = []
    for line in lines[rule + 1 :]:
        if not line.strip():
            break
        rows.append(dict(zip(header, cells(line))))
    return rows


def _number(cell: str) -> float | None:
    """The leading number of a cell ("40.0 ± 4.0" -> 40.0, "94.8%" -> 94.8), None if none."""
    found = re.match(r"-?[\d,]+(\.\d+)?", cell)
    return float(found[0].replace(",", "")) if found else None


def _printed_total(text: str, pattern: str, group: int = 1) -> float:
    return float(re.search(pattern, text)[group].replace(",", ""))


def test_rendered_rows_sum_to_the_printed_totals():
    # Read back from the rendered text (every column): each row shows its report values, and
    # the printed row values add up to the printed totals and percentages.
    report = hand_built_report()
    text = render_table(report, columns=COLUMN_KEYS)
    title = {c.key: c.title for c in COLUMNS}
    rows = _rows_table(text)

    def column(key):
        return [_number(r[title[key]]) for r in rows]

    assert [r[title["name"]].rstrip("*") for r in rows] == [r.name for r in report.layers]
    flops, whole, macs, times = (column(k) for k in ("flops", "whole_graph_flops", "macs", "time"))
    assert flops == [r.flops for r in report.layers]
    assert whole == [r.whole_graph_flops for r in report.layers]
    assert times == [r.time_us.median for r in report.layers]
    flops_line = r"Σ rows \(sub-models\)\s+([\d,]+)\s+whole graph\s+([\d,]+)"
    assert _printed_total(text, flops_line) == sum(flops)
    assert _printed_total(text, flops_line, 2) == sum(whole)
    assert _printed_total(text, r"MACs: Σ rows\s+([\d,]+)") == sum(macs)
    isolated = _printed_total(text, r"Isolated time: Σ rows\s+([\d.,]+) µs")
    assert isolated == pytest.approx(sum(times))
    for method in CROSS_CHECK_METHODS:  # "→ conv" (a fused row) is no number
        printed = _printed_total(text, re.escape(method.label) + r"\s+([\d.,]+) µs")
        assert printed == pytest.approx(sum(v for v in column(method.key) if v is not None))
    for percent in ("flops_share", "time_share"):  # each rounded to 0.1%
        assert sum(column(percent)) == pytest.approx(100.0, abs=0.05 * len(rows))


@pytest.mark.parametrize("name, render", [("table.txt", render_table), ("rows.csv", render_csv)])
def test_rendered_output_matches_golden(name, render):
    # 1 GFLOP/s peak makes the throughput columns easy to check by eye.
    from submodel_profiler.throughput import Peak

    text = render(add_derived_fields(hand_built_report(), Peak(1e9, "test peak")))
    path = GOLDEN / name
    if os.environ.get("SP_UPDATE_GOLDEN"):
        path.write_text(text, encoding="utf-8")
    assert text == path.read_text(encoding="utf-8")
