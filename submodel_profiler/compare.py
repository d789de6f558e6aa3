"""Compare two reports row by row: float ops and every timing method, deltas and ratios.

Rows are matched by (name, call_index), or by execution order and type (`match="order"`).
`delta` is B − A and `ratio` is B ÷ A (None when either
side is missing or A is 0). Rows present in only one report are listed, never dropped.
Rendering lives in `renderers.render_comparison`.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from submodel_profiler.errors import UsageError
from submodel_profiler.methods import TIMING_METHODS
from submodel_profiler.report import SCHEMA_VERSION, Report, Totals, row_label

COUNT_FIELDS = ("flops", "tf_flops", "macs", "op_bytes", "bytes_accessed")
ROW_METRICS = {  # name -> the row's value (float ops, MACs: counts; times: µs per execution)
    **{name: (lambda r, name=name: getattr(r, name)) for name in COUNT_FIELDS},
    **{m.field: m.row_us for m in TIMING_METHODS},  # medians where a method has statistics
}
TOTAL_METRICS = {
    "flops": lambda t: t.flops,
    "whole_graph_flops": lambda t: t.whole_graph_flops,
    "tf_flops": lambda t: t.tf_flops,
    "macs": lambda t: t.macs,
    "op_bytes": lambda t: t.op_bytes,
    "bytes_accessed": lambda t: t.bytes_accessed,
    "peak_activation_bytes": lambda t: t.peak_activation_bytes,
    "whole_model_time_us": lambda t: (
        t.whole_model_time_us.median if t.whole_model_time_us else None
    ),
    # Σ rows per timing method (time_us: the isolated medians)
    **{m.field: (lambda t, f=m.field: getattr(t, f)) for m in TIMING_METHODS},
}


@dataclass(frozen=True)
class Delta:
    a: float | None
    b: float | None
    delta: float | None  # b - a
    ratio: float | None  # b / a


@dataclass(frozen=True)
class RowComparison:
    name: str
    call_index: int
    type: str
    metrics: dict  # ROW_METRICS name -> Delta

    @property
    def label(self) -> str:
        return row_label(self.name, self.call_index)


@dataclass(frozen=True)
class Comparison:
    a: dict  # {label, model, batch_size, device, counting, pass_name}
    b: dict
    rows: tuple  # of RowComparison, in A's order
    totals: dict  # TOTAL_METRICS name -> Delta
    only_in_a: tuple  # row labels
    only_in_b: tuple
    schema_version: int = SCHEMA_VERSION
    match: str = "name"  # rows paired by "name" (name, call_index) or "order" (position, type)

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "comparison": {"a": self.a, "b": self.b, "match": self.match},
            "rows": [
                {
                    "name": r.name,
                    "call_index": r.call_index,
                    "type": r.type,
                    **{k: vars(d) for k, d in r.metrics.items()},
                }
                for r in self.rows
            ],
            "totals": {k: vars(d) for k, d in self.totals.items()},
            "only_in_a": list(self.only_in_a),
            "only_in_b": list(self.only_in_b),
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def delta(a, b) -> Delta:
    """B − A and B ÷ A of two values, None where they cannot be formed."""
    if a is None or b is None:
        return Delta(a, b, None, None)
    return Delta(a, b, b - a, b / a if a else None)


MATCH_MODES = ("name", "order")


def _keys(report: Report, match: str) -> list:
    """Row keys: (name, call_index), or (position, type) when matching by execution order.

    Keras auto-names layers from a per-process counter, so the same architecture built twice in
    one process gets other names (`re_lu_7` becomes `re_lu_26`); "order" pairs such reports.
    """
    if match == "order":
        return [(i, r.type) for i, r in enumerate(report.layers)]
    return [(r.name, r.call_index) for r in report.layers]


def _side(report: Report, label: str) -> dict:
    m = report.model
    return {
        "label": label,
        "model": m.name,
        "batch_size": m.batch_size,
        "device": report.environment.device,
        "counting": report.settings.counting,
        "pass_name": report.settings.pass_name,
    }


def compare_reports(
    a: Report, b: Report, a_label: str = "A", b_label: str = "B", match: str = "name"
) -> Comparison:
    """Match rows of `a` and `b` by (name, call_index), or with match="order" by position and
    type; deltas and ratios of every metric. Rows are named after A."""
    if match not in MATCH_MODES:
        raise ValueError(f"match must be one of {MATCH_MODES}. Received: match={match!r}.")
    a_keys, b_keys = _keys(a, match), _keys(b, match)
    b_rows, in_a = dict(zip(b_keys, b.layers)), set(a_keys)
    rows = tuple(
        RowComparison(
            r.name,
            r.call_index,
            r.type,
            {m: delta(f(r), f(b_rows[k])) for m, f in ROW_METRICS.items()},
        )
        for k, r in zip(a_keys, a.layers)
        if k in b_rows
    )
    return Comparison(
        a=_side(a, a_label),
        b=_side(b, b_label),
        rows=rows,
        totals=_totals(a.totals, b.totals),
        only_in_a=tuple(r.label for k, r in zip(a_keys, a.layers) if k not in b_rows),
        only_in_b=tuple(r.label for k, r in zip(b_keys, b.layers) if k not in in_a),
        match=match,
    )


def _totals(a: Totals, b: Totals) -> dict:
    return {k: delta(f(a), f(b)) for k, f in TOTAL_METRICS.items()}


def read_report(path: str) -> Report:
    """Load a single report written by `--format json`.

    Raises:
        UsageError: the file is missing, not JSON, a sweep, or of another schema version.
    """
    try:
        with open(path, encoding="utf-8") as f:
            data = json.load(f)
    except OSError as e:
        raise UsageError(f"Could not read the report {path!r}: {e.strerror}.") from e
    except json.JSONDecodeError as e:
        raise UsageError(f"{path!r} is not a JSON report (written by --format json): {e}.") from e
    if not isinstance(data, dict):
        raise UsageError(f"{path!r} is not a JSON report. Received: a {type(data).__name__}.")
    if "sweep" in data:
        raise UsageError(f"{path!r} is a batch-size sweep; compare takes single reports.")
    try:
        return Report.from_dict(data)
    except ValueError as e:
        raise UsageError(f"{path!r}: {e}") from e
    except (KeyError, TypeError) as e:
        raise UsageError(
            f"{path!r} is not a submodel_profiler report: {type(e).__name__}: {e}."
        ) from e
