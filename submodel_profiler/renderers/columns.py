"""The table's columns: a `Column` per key, with the function that writes a row's cell.

Adding a column to the table only needs this module: write its cell function, add a
`Column` to COLUMNS (its key is then accepted by --columns and shown by --wide), and add
its key to DEFAULT_COLUMNS if the default view should show it. A figure that should also be
a CSV field goes in csv_report.py (CSV_COLUMNS and its row).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from submodel_profiler.kernel_fusion import FUSED_INTO, ISOLATED_SLOWER
from submodel_profiler.methods import CROSS_CHECK_METHODS, IN_GRAPH, ISOLATED
from submodel_profiler.renderers.formatting import (
    fraction,
    gflops,
    integer,
    percent,
    shape,
    us,
)
from submodel_profiler.report import STEP_STATS_SPLIT, LayerRow, median_us


@dataclass(frozen=True)
class Column:
    """One column of the table: key (for --columns), title, cell text of a row, alignment."""

    key: str
    title: str
    cell: Callable  # (row, Context) -> str
    right: bool = True
    timed: bool = False  # only shown when the report was timed
    train: bool = False  # only shown for a training step (--pass train)


@dataclass(frozen=True)
class Context:
    index: int | str
    total_flops: int
    total_time: float
    tree: bool = False  # names indented under their parents (execution order, --depth)
    parent: bool = False  # the line of an expanded layer (its own sub-model's figures)
    name_width: int | None = None  # longer names are shortened in the middle


def _name_cell(row: LayerRow, c: Context) -> str:
    marks = ("*" if row.uncounted_ops else "") + ("†" if branch_rule(row) else "")
    if not c.tree:
        return shortened(row.label, c.name_width) + ("/" if c.parent else "") + marks
    shown = row.label[len(row.parent) + 1 :] if row.parent else row.label
    shown = shortened(shown, c.name_width)
    return "  " * (row.depth - 1) + shown + ("/" if c.parent else "") + marks


def shortened(name: str, width: int | None) -> str:
    """`name`, or its start and end around "…" when longer than `width` (the end tells
    siblings apart: block_3_depthwise_conv, block_3_pointwise_conv)."""
    if width is None or len(name) <= width:
        return name
    head = (width - 1) // 3
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def type_label(type_: str, kind: str) -> str:
    """A row's type; Keras ops that are not layers are marked (op)."""
    return f"{type_} (op)" if kind == "op" else type_


def _flops_cell(row: LayerRow, _=None) -> str:
    return "error" if row.flops is None and row.error else integer(row.flops)


def _whole_cell(row: LayerRow, _=None) -> str:
    whole = integer(row.whole_graph_flops)
    return whole + " ≠" if row.counts_differ else whole


def _time_cell(row: LayerRow, _=None) -> str:
    t = row.time_us
    return "—" if t is None else f"{t.median:,.1f} ± {t.iqr:,.1f}"


def _op_bytes_cell(row: LayerRow, _=None) -> str:
    return integer(row.op_bytes) + (" ≠" if row.bytes_differ else "")


def _intensity_cell(row: LayerRow, _=None) -> str:
    x = row.arithmetic_intensity
    return "" if x is None else f"{x:,.1f}"


def _gbytes_cell(row: LayerRow, _=None) -> str:
    return "" if row.bytes_per_s is None else f"{row.bytes_per_s / 1e9:,.2f}"


def _ratio_cell(row: LayerRow, _=None) -> str:
    r = row.backward_time_ratio
    return "" if r is None else f"{r:.2f}"


def marks_cell(row: LayerRow, _=None) -> str:
    """≠ the counts disagree, E the row has an error, F a fusion flag (--wide: details)."""
    marks = "≠" if row.counts_differ or row.bytes_differ else ""
    return marks + ("E" if row.error else "") + ("F" if row.fusion_flag else "")


def _fusion_cell(row: LayerRow) -> str:
    if row.fusion_flag == FUSED_INTO:
        return "F fused"
    if row.fusion_flag == ISOLATED_SLOWER:
        ratio = row.isolated_over_in_graph
        return "F" if ratio is None else f"F {ratio:.1f}×"
    return ""


def _method_cell(method, row: LayerRow) -> str:
    """A cross-check method's time of a row; as optimized, a fused row names its host."""
    if method is IN_GRAPH and row.fused_into:
        return f"→ {row.fused_into}"
    return us(method.row_us(row))


def branch_rule(row: LayerRow) -> bool:
    """The row holds an If/Case counted by its largest branch (an upper bound of what runs)."""
    return any(" branches counted" in note for note in row.count_notes)


COLUMNS = (
    Column("index", "#", lambda r, c: str(c.index)),
    Column("name", "name", _name_cell, right=False),
    Column("type", "type", lambda r, c: type_label(r.type, r.kind), right=False),
    Column("ghost_ops", "ghost ops", lambda r, c: ", ".join(r.ghost_ops), right=False),
    Column(
        "output_shape",
        "output shape",
        lambda r, c: " ".join(shape(s) for s in r.output_shapes),
        right=False,
    ),
    Column("params", "params", lambda r, c: integer(r.params)),
    Column("flops", "float ops", _flops_cell),
    Column("whole_graph_flops", "whole graph", _whole_cell),
    Column("flops_share", "% flops", lambda r, c: percent(r.flops or 0, c.total_flops)),
    Column("macs", "MACs", lambda r, c: "error" if r.macs is None and r.error else integer(r.macs)),
    Column("tf_flops", "TF float ops", lambda r, c: integer(r.tf_flops)),
    Column("bytes", "bytes", lambda r, c: integer(r.bytes_accessed)),
    Column("op_bytes", "op bytes", _op_bytes_cell),
    Column("param_bytes", "param bytes", lambda r, c: integer(r.param_bytes)),
    Column("intensity", "flop/B", _intensity_cell),
    Column("bound", "bound", lambda r, c: r.bound or "", right=False, timed=True),
    Column("peak_memory", "peak bytes", lambda r, c: integer(r.peak_activation_bytes)),
    Column("time", ISOLATED.column, _time_cell, timed=True),
    Column(
        "time_share",
        "% time",
        lambda r, c: (
            ""
            if r.time_us is None or not c.total_time or c.parent
            else percent(r.time_us.median, c.total_time)
        ),
        timed=True,
    ),
    Column("gflops", "GFLOP/s", lambda r, c: gflops(r.flop_per_s), timed=True),
    Column("peak", "% peak", lambda r, c: fraction(r.peak_fraction), timed=True),
    Column("gbytes", "GB/s", _gbytes_cell, timed=True),
    Column("roof", "% roof", lambda r, c: fraction(r.roofline_fraction), timed=True),
    *(
        Column(m.key, m.column, lambda r, c, m=m: _method_cell(m, r), timed=True)
        for m in CROSS_CHECK_METHODS
    ),
    Column("fusion", "fusion", lambda r, c: _fusion_cell(r), timed=True),
    # the training step (--pass train)
    Column("forward_flops", "fwd float ops", lambda r, c: integer(r.forward_flops), train=True),
    Column("backward_flops", "bwd float ops", lambda r, c: integer(r.backward_flops), train=True),
    Column("backward_macs", "bwd MACs", lambda r, c: integer(r.backward_macs), train=True),
    Column("saved", "saved bytes", lambda r, c: integer(r.saved_activation_bytes), train=True),
    Column(
        "forward_time",
        "fwd µs",
        lambda r, c: us(median_us(r.forward_time_us)),
        timed=True,
        train=True,
    ),
    Column("backward_ratio", "bwd/fwd", _ratio_cell, timed=True, train=True),
    *(  # TF's step stats of the whole step, each row's split into forward and backward
        Column(
            field.removesuffix("_time_us"),  # unfused_forward, ...
            f"{mode.replace('_', '-')} {('fwd', 'bwd')[phase]} µs",  # unfused fwd µs, ...
            lambda r, c, f=field: us(getattr(r, f)),
            timed=True,
            train=True,
        )
        for field, mode, phase in STEP_STATS_SPLIT
    ),
    Column("optimizer", "update float ops", lambda r, c: integer(r.optimizer_flops), train=True),
    Column(
        "optimizer_time",
        "update µs",
        lambda r, c: us(median_us(r.optimizer_time_us)),
        timed=True,
        train=True,
    ),
    Column("marks", "check", marks_cell),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
# What a reader needs first, in about 190 characters: the rest with --wide or --columns.
# Names longer than DEFAULT_NAME_WIDTH are shortened in the middle in that view only.
DEFAULT_NAME_WIDTH = 40
DEFAULT_COLUMNS = (
    "index",
    "name",
    "type",
    "output_shape",
    "params",
    "flops",
    "macs",
    "bytes",
    "intensity",
    "bound",
    "time",
    "time_share",
    "marks",
)
# The default view of a training-step report: float ops split, the step's time beside the
# forward's, and the backward ÷ forward time.
TRAIN_COLUMNS = (
    "index",
    "name",
    "type",
    "output_shape",
    "params",
    "forward_flops",
    "backward_flops",
    "macs",
    "saved",
    "forward_time",
    "time",
    "backward_ratio",
    "marks",
)
WIDE_COLUMNS = tuple(k for k in COLUMN_KEYS if k != "tf_flops")
