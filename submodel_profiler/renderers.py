"""Turn a Report into text: a table (tabulate), JSON or CSV. Renderers return strings."""

from __future__ import annotations

import csv
import io

from tabulate import tabulate

from submodel_profiler.flops import COUNTING_CONVENTION
from submodel_profiler.report import LayerRow, Report

FORMATS = ("table", "json", "csv")

CSV_COLUMNS = (
    "index", "name", "type", "kind", "call_index", "fused_ops", "input_shapes",
    "output_shapes", "params", "flops", "whole_graph_flops", "flops_match", "time_us_median",
    "time_us_min", "time_us_max", "time_us_iqr", "time_us_repeats", "unfused_time_us",
    "in_graph_time_us", "fused_into", "callback_time_us_median", "uncounted_ops", "same_as",
    "error",
)  # fmt: skip


def render(report: Report, fmt: str) -> str:
    """Render `report` as "table", "json" or "csv"."""
    renderers = {"table": render_table, "json": render_json, "csv": render_csv}
    if fmt not in renderers:
        raise ValueError(f"Unknown format. Expected one of {FORMATS}. Received: {fmt!r}.")
    return renderers[fmt](report)


def render_json(report: Report) -> str:
    return report.to_json(indent=2) + "\n"


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
        "fused_ops": " ".join(row.fused_ops),
        "input_shapes": " ".join(_shape(s) for s in row.input_shapes),
        "output_shapes": " ".join(_shape(s) for s in row.output_shapes),
        "params": row.params,
        "flops": row.flops,
        "whole_graph_flops": row.whole_graph_flops,
        "flops_match": row.flops_match,
        "time_us_median": _round(t and t.median),
        "time_us_min": _round(t and t.min),
        "time_us_max": _round(t and t.max),
        "time_us_iqr": _round(t and t.iqr),
        "time_us_repeats": None if t is None else t.repeats,
        "unfused_time_us": _round(row.unfused_time_us),
        "in_graph_time_us": _round(row.in_graph_time_us),
        "fused_into": row.fused_into,
        "callback_time_us_median": _round(row.callback_time_us.median if row.callback_time_us else None),
        "uncounted_ops": " ".join(f"{k}:{v}" for k, v in row.uncounted_ops.items()),
        "same_as": row.same_as,
        "error": row.error,
    }


def _round(value):
    return None if value is None else round(value, 3)


def render_table(report: Report) -> str:
    """The human-readable report: header, one line per row, totals, cross-check verdict."""
    timed = report.settings.timing
    headers = ["#", "name", "type", "fused ops", "output shape", "params", "float ops",
               "whole graph", "% flops"]  # fmt: skip
    if timed:
        headers += ["time µs (median ± IQR)", "% time", "unfused µs", "in-graph µs", "callback µs"]
    total_flops = report.totals.flops or 1
    total_time = report.totals.time_us or 0.0
    body = [_table_row(i, r, total_flops, total_time, timed) for i, r in enumerate(report.layers)]
    table = tabulate(body, headers=headers, tablefmt="simple", disable_numparse=True,
                     colalign=_alignment(headers))  # fmt: skip
    return "\n".join([_header(report), "", table, "", *_footer(report), ""])


def _alignment(headers) -> tuple:
    right = {"#", "params", "float ops", "whole graph", "% flops", "% time"}
    return tuple("right" if h in right or "µs" in h else "left" for h in headers)


def _table_row(index, row: LayerRow, total_flops, total_time, timed) -> list:
    name = row.label + ("*" if row.uncounted_ops else "")
    whole = _int(row.whole_graph_flops)
    if row.error is None and not row.flops_match:
        whole += " ≠"
    cells = [
        index,
        name,
        row.type if row.kind == "layer" else f"{row.type} (op)",
        ", ".join(row.fused_ops),
        " ".join(_shape(s) for s in row.output_shapes),
        _int(row.params),
        "error" if row.error else _int(row.flops),
        whole,
        _percent(row.flops or 0, total_flops),
    ]
    if timed:
        t = row.time_us
        cb = row.callback_time_us
        cells += [
            "—" if t is None else f"{t.median:,.1f} ± {t.iqr:,.1f}",
            "" if t is None or not total_time else _percent(t.median, total_time),
            _us(row.unfused_time_us),
            f"→ {row.fused_into}" if row.fused_into else _us(row.in_graph_time_us),
            _us(cb.median if cb else None),
        ]
    return cells


def _us(value) -> str:
    return "" if value is None else f"{value:,.1f}"


def _header(report: Report) -> str:
    m, env = report.model, report.environment
    inputs = ", ".join(f"{t.name} {_shape(t.shape)} {t.dtype}" for t in m.inputs)
    return "\n".join([
        f"Model: {m.name} ({m.source})   batch size {m.batch_size}   inputs: {inputs}",
        f"TensorFlow {env.tensorflow}, Keras {env.keras}, Python {env.python} on {env.device}",
    ])  # fmt: skip


def _footer(report: Report) -> list[str]:
    t, check = report.totals, report.cross_check
    lines = [
        f"Rows: {len(report.layers)}   params: {report.model.params:,}",
        f"Float ops: Σ rows (sub-models) {t.flops:,}   whole graph {t.whole_graph_flops:,}   "
        f"unattributed {t.unattributed_flops:,}",
    ]
    lines += _timing_footer(report)
    lines.append(_verdict(report))
    lines.append(COUNTING_CONVENTION)
    uncounted = _uncounted_summary(report)
    if uncounted:
        lines.append(f"Op types TF counted no float ops for: {uncounted}.")
    if any(r.same_as for r in report.layers):
        lines.append("Rows identical to an earlier row (same config and input specs) reuse its "
                     "sub-model measurements; see same_as in the JSON.")  # fmt: skip
    return lines


def _timing_footer(report: Report) -> list[str]:
    t, check = report.totals, report.cross_check
    if t.time_us is None or t.whole_model_time_us is None:
        return []
    w = t.whole_model_time_us
    lines = [
        f"Isolated time: Σ rows {t.time_us:,.1f} µs   whole model (same method) "
        f"{w.median:,.1f} ± {w.iqr:,.1f} µs   additivity (Σ rows / whole) {t.additivity:.2f}",
    ]
    others = [(label, total) for label, total in (
        ("unfused step stats", t.unfused_time_us), ("in-graph step stats (as optimized)",
        t.in_graph_time_us), ("callback (eager)", t.callback_time_us)) if total is not None]  # fmt: skip
    if others:
        lines.append("Other methods, Σ rows: " + "   ".join(f"{k} {v:,.1f} µs" for k, v in others))
    rho = {k: v for k, v in check.rank_correlation.items() if v is not None}
    if rho:
        lines.append("Rank correlation (Spearman) of isolated times with: "
                     + "   ".join(f"{k} {v:.2f}" for k, v in rho.items()))  # fmt: skip
    fused = sum(1 for r in report.layers if r.fused_into)
    if fused:
        lines.append(f"{fused} row(s) fused into a neighbour by TF's optimizer (in-graph → row).")
    for method, error in check.method_errors.items():
        lines.append(f"The {method} cross-check did not run: {error}")
    return lines


def _verdict(report: Report) -> str:
    check, n = report.cross_check, len(report.layers)
    if check.flops_exact:
        return (f"Cross-check: OK — every one of {n} rows' sub-model float ops equals its "
                "whole-graph float ops, and the rows sum exactly to the whole graph.")  # fmt: skip
    problems = []
    if check.mismatched_rows:
        problems.append(f"{len(check.mismatched_rows)} row(s) differ from the whole graph "
                        f"(marked ≠): {', '.join(check.mismatched_rows[:10])}")  # fmt: skip
    if check.failed_rows:
        problems.append(f"{len(check.failed_rows)} row(s) failed: {', '.join(check.failed_rows[:10])}")
    if report.totals.unattributed_flops:
        problems.append(f"{report.totals.unattributed_flops:,} whole-graph float ops are not "
                        "claimed by any row")  # fmt: skip
    if report.totals.flops != report.totals.whole_graph_flops:
        problems.append("Σ rows ≠ whole graph")
    return "Cross-check: FAILED — " + "; ".join(problems) + "."


def _uncounted_summary(report: Report) -> str:
    totals: dict = {}
    for row in report.layers:
        for op_type, count in row.uncounted_ops.items():
            totals[op_type] = totals.get(op_type, 0) + count
    return ", ".join(f"{k} ×{v}" for k, v in sorted(totals.items()))


def _shape(shape) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def _int(value) -> str:
    return "" if value is None else f"{value:,}"


def _percent(part, whole) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else ""
