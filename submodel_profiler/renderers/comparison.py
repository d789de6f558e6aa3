"""Two reports side by side (`compare.Comparison`): per-row ratios B/A and the totals."""

from __future__ import annotations

from tabulate import tabulate

from submodel_profiler.methods import CROSS_CHECK_METHODS, TIMING_METHODS
from submodel_profiler.renderers.formatting import integer, row_table, us

COMPARE_FORMATS = ("table", "json")


def render_comparison(comparison, fmt: str = "table") -> str:
    """A `compare.Comparison` as "table" or "json"."""
    if fmt == "json":
        return comparison.to_json(indent=2) + "\n"
    if fmt != "table":
        raise ValueError(f"Unknown format. Expected one of {COMPARE_FORMATS}. Received: {fmt!r}.")
    headers = [
        "#",
        "name",
        "type",
        "float ops A",
        "float ops B",
        "B/A",
        "isolated µs A",
        "isolated µs B",
        "B/A ",
        *(f"{m.key} B/A" for m in CROSS_CHECK_METHODS),
    ]
    body = [_comparison_row(i, r) for i, r in enumerate(comparison.rows)]
    table = row_table(body, headers)
    return "\n".join(
        [*_comparison_header(comparison), "", table, "", *_comparison_footer(comparison), ""]
    )


def _comparison_header(c) -> list[str]:
    lines = [
        f"{side}: {d['label']} — {d['model']}, batch size {d['batch_size']}, {d['device']}, "
        f"{d.get('counting', 'tf')} counting, {d.get('pass_name', 'inference')} pass"
        for side, d in (("A", c.a), ("B", c.b))
    ]
    if c.a.get("pass_name", "inference") != c.b.get("pass_name", "inference"):
        lines.append(
            "A and B measure different passes: B ÷ A of a row is what a training step costs "
            "beside inference (the train pass adds its (loss) and (gradient aggregation) rows)."
        )
    if c.a.get("counting") != c.b.get("counting"):
        lines.append(
            "WARNING: A and B count float ops in different conventions: compare their "
            "tf_flops (both have TF's count) or MACs, not flops."
        )
    return lines


def _ratio(d) -> str:
    return "" if d.ratio is None else f"{d.ratio:.3g}×"


def _comparison_row(index: int, r) -> list:
    m = r.metrics
    return [
        index,
        r.label,
        r.type,
        integer(m["flops"].a),
        integer(m["flops"].b),
        _ratio(m["flops"]),
        us(m["time_us"].a),
        us(m["time_us"].b),
        _ratio(m["time_us"]),
        *(_ratio(m[method.field]) for method in CROSS_CHECK_METHODS),
    ]


_TOTAL_LABELS = {
    "flops": "float ops, Σ rows",
    "whole_graph_flops": "float ops, whole graph",
    "tf_flops": "TF float ops, Σ rows",
    "macs": "MACs, Σ rows",
    "op_bytes": "op bytes, Σ rows",
    "bytes_accessed": "bytes accessed, Σ rows",
    "peak_activation_bytes": "activation peak bytes (static)",
    "whole_model_time_us": "isolated µs, whole model",
    **{m.field: f"{m.label} µs, Σ rows" for m in TIMING_METHODS},
}


def _comparison_footer(c) -> list[str]:
    body = []
    for key, d in c.totals.items():
        fmt = us if key.endswith("_us") else integer
        delta = "" if d.delta is None else ("+" if d.delta >= 0 else "") + fmt(d.delta)
        body.append([_TOTAL_LABELS[key], fmt(d.a), fmt(d.b), delta, _ratio(d)])
    lines = [
        tabulate(
            body,
            headers=["totals", "A", "B", "B − A", "B/A"],
            tablefmt="simple",
            disable_numparse=True,
            colalign=("left",) + ("right",) * 4,
        )
    ]
    how = "(name, call_index)" if c.match == "name" else "execution order and type"
    lines.append(f"Rows matched by {how}: {len(c.rows)}.")
    for side, labels in (("A", c.only_in_a), ("B", c.only_in_b)):
        if labels:
            lines.append(f"Only in {side} ({len(labels)}): {', '.join(labels)}")
    return lines
