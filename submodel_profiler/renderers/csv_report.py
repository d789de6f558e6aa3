"""A Report as CSV: one line per row, every field (CSV_COLUMNS)."""

from __future__ import annotations

import csv
import io

from submodel_profiler.renderers.formatting import rounded, shape
from submodel_profiler.report import STEP_STATS_SPLIT, LayerRow, Report, median_us

# Row fields written as they are (bytes), in this order.
_BYTE_FIELDS = (
    "op_bytes",
    "whole_graph_op_bytes",
    "param_bytes",
    "input_bytes",
    "output_bytes",
    "bytes_accessed",
    "peak_activation_bytes",
    "measured_peak_bytes",
)
# The training step's fields (--pass train; empty at inference), written as they are.
_STEP_FIELDS = (
    "forward_flops",
    "whole_graph_forward_flops",
    "forward_tf_flops",
    "whole_graph_forward_tf_flops",
    "forward_macs",
    "whole_graph_forward_macs",
    "backward_flops",
    "backward_tf_flops",
    "backward_macs",
    "saved_activation_bytes",
    "optimizer_flops",
)
# The training step's step-stats times split into forward and backward (µs, rounded).
_STEP_STATS_SPLIT = tuple(field for field, *_ in STEP_STATS_SPLIT)
CSV_COLUMNS = (
    "index",
    "name",
    "type",
    "kind",
    "call_index",
    "depth",
    "parent",
    "ghost_ops",
    "input_shapes",
    "input_dtypes",
    "output_shapes",
    "params",
    "flops",
    "whole_graph_flops",
    "tf_flops",
    "whole_graph_tf_flops",
    "macs",
    "whole_graph_macs",
    "flops_match",
    "output_dtypes",
    *_BYTE_FIELDS,
    "arithmetic_intensity",
    "count_notes",
    "time_us_median",
    "time_us_min",
    "time_us_max",
    "time_us_iqr",
    "time_us_repeats",
    "unfused_time_us",
    "in_graph_time_us",
    "fused_into",
    "callback_time_us_median",
    "uncounted_ops",
    "same_as",
    "error",
    "flop_per_s",
    "peak_fraction",
    "fusion_flag",
    "isolated_over_in_graph",
    "bytes_per_s",
    "bound",
    "roofline_fraction",
    *_STEP_FIELDS,
    "forward_time_us_median",
    "backward_time_ratio",
    *_STEP_STATS_SPLIT,
    "optimizer_time_us_median",
)


def render_csv(report: Report) -> str:
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for index, row in enumerate(report.layers):
        writer.writerow(_csv_row(index, row))
    return out.getvalue()


def _csv_row(index: int, row: LayerRow) -> dict:
    t = row.time_us
    return {
        "index": index,
        "name": row.name,
        "type": row.type,
        "kind": row.kind,
        "call_index": row.call_index,
        "depth": row.depth,
        "parent": row.parent,
        "ghost_ops": " ".join(row.ghost_ops),
        "input_shapes": " ".join(shape(s) for s in row.input_shapes),
        "input_dtypes": " ".join(row.input_dtypes),
        "output_shapes": " ".join(shape(s) for s in row.output_shapes),
        "params": row.params,
        "flops": row.flops,
        "whole_graph_flops": row.whole_graph_flops,
        "tf_flops": row.tf_flops,
        "whole_graph_tf_flops": row.whole_graph_tf_flops,
        "macs": row.macs,
        "whole_graph_macs": row.whole_graph_macs,
        "flops_match": row.flops_match,
        "output_dtypes": " ".join(row.output_dtypes),
        **{key: getattr(row, key) for key in _BYTE_FIELDS},
        "arithmetic_intensity": rounded(row.arithmetic_intensity),
        "count_notes": "; ".join(row.count_notes),
        "time_us_median": rounded(t and t.median),
        "time_us_min": rounded(t and t.min),
        "time_us_max": rounded(t and t.max),
        "time_us_iqr": rounded(t and t.iqr),
        "time_us_repeats": None if t is None else t.repeats,
        "unfused_time_us": rounded(row.unfused_time_us),
        "in_graph_time_us": rounded(row.in_graph_time_us),
        "fused_into": row.fused_into,
        "callback_time_us_median": rounded(row.callback_median_us),
        "uncounted_ops": " ".join(f"{k}:{v}" for k, v in row.uncounted_ops.items()),
        "same_as": row.same_as,
        "error": row.error,
        "flop_per_s": rounded(row.flop_per_s),
        "peak_fraction": None if row.peak_fraction is None else round(row.peak_fraction, 6),
        "fusion_flag": row.fusion_flag,
        "isolated_over_in_graph": rounded(row.isolated_over_in_graph),
        "bytes_per_s": rounded(row.bytes_per_s),
        "bound": row.bound,
        "roofline_fraction": rounded(row.roofline_fraction),
        **{key: getattr(row, key) for key in _STEP_FIELDS},
        "forward_time_us_median": rounded(median_us(row.forward_time_us)),
        "backward_time_ratio": rounded(row.backward_time_ratio),
        **{key: rounded(getattr(row, key)) for key in _STEP_STATS_SPLIT},
        "optimizer_time_us_median": rounded(median_us(row.optimizer_time_us)),
    }
