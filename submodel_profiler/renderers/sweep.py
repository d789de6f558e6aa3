"""One report per batch size (`sweep.Sweep`): float ops and µs per sample at each batch size,
as a table, JSON or long-format CSV."""

from __future__ import annotations

import csv
import io

from submodel_profiler.counting import COUNTING_CONVENTIONS
from submodel_profiler.renderers.formatting import (
    FORMATS,
    fraction,
    gflops,
    rounded,
    row_table,
    shown_line,
    two_decimals,
    wrap,
)
from submodel_profiler.summaries import ordered_rows


def render_sweep(sweep, fmt: str, *, top: int | None = None, sort: str = "order") -> str:
    """A `sweep.Sweep` as "table" (per-sample columns per batch size), "json" or "csv"."""
    if fmt == "json":
        return sweep.to_json(indent=2) + "\n"
    if fmt == "csv":
        return _sweep_csv(sweep)
    if fmt != "table":
        raise ValueError(f"Unknown format. Expected one of {FORMATS}. Received: {fmt!r}.")
    from submodel_profiler.sweep import per_sample_rows

    timed = sweep.reports[0].settings.timing
    headers = ["#", "name", "type"]
    for b in sweep.batch_sizes:
        headers += [f"float ops/sample @{b}"] + ([f"µs/sample @{b}"] if timed else [])
    rows = {(r.name, r.call_index): r for r in per_sample_rows(sweep)}
    largest = max(sweep.reports, key=lambda r: r.model.batch_size)
    order = ordered_rows(largest, sort, top)  # sorted by the largest batch
    body = [
        _sweep_row(i, rows[(r.name, r.call_index)], timed)
        for i, r in order
        if (r.name, r.call_index) in rows
    ]
    table = row_table(body, headers)
    shown = shown_line(largest, len(body), sort)
    footer = [wrap(line) for line in _sweep_footer(sweep)]
    return "\n".join([*_sweep_header(sweep), "", table, *shown, "", *footer, ""])


def _sweep_header(sweep) -> list[str]:
    first = sweep.reports[0]
    m, env = first.model, first.environment
    sizes = ", ".join(str(b) for b in sweep.batch_sizes)
    inputs = ", ".join(
        f"{t.name} (N,{','.join(str(d) for d in t.shape[1:])}) {t.dtype}" for t in m.inputs
    )
    return [
        f"Model: {m.name} ({m.source})   batch sizes N = {sizes}   inputs: {inputs}",
        f"TensorFlow {env.tensorflow}, Keras {env.keras}, Python {env.python} on {env.device}",
    ]


def _sweep_row(index: int, row, timed: bool) -> list:
    cells = [index, row.label, row.type]
    for flops, time_us in zip(row.flops, row.time_us):
        cells.append(
            "" if flops is None else f"{flops:,.0f}" if flops == int(flops) else f"{flops:,.1f}"
        )
        if timed:
            cells.append("" if time_us is None else f"{time_us:,.2f}")
    return cells


def _sweep_footer(sweep) -> list[str]:
    lines = ["Per batch size (per sample = ÷ batch size):"]
    for r in sweep.reports:
        t, b = r.totals, r.model.batch_size
        per_sample = "n/a" if t.whole_graph_flops is None else f"{t.whole_graph_flops / b:,.0f}"
        line = f"  batch {b}: float ops/sample {per_sample}"
        if t.whole_model_time_us is not None:
            line += (
                f"   whole model {t.whole_model_time_us.median / b:,.1f} µs/sample   "
                f"{gflops(t.flop_per_s)} GFLOP/s ({fraction(t.peak_fraction)} of peak)   "
                f"additivity {two_decimals(t.additivity)}"
            )
        verdict = "OK" if r.cross_check.counts_exact else "FAILED"
        lines.append(f"{line}   float-op cross-check {verdict}")
    lines.append(COUNTING_CONVENTIONS.get(sweep.reports[0].settings.counting, ""))
    lines.append(
        "Each batch size's full report (all columns, cross-checks) is in the JSON "
        "(--format json): sweep[k]."
    )
    return lines


SWEEP_CSV_COLUMNS = (
    "batch_size",
    "index",
    "name",
    "type",
    "call_index",
    "flops",
    "flops_per_sample",
    "time_us_median",
    "time_us_per_sample",
)


def _sweep_csv(sweep) -> str:
    """Long format: one line per (batch size, row)."""
    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=SWEEP_CSV_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for report in sweep.reports:
        b = report.model.batch_size
        for index, row in enumerate(report.layers):
            median = row.time_median_us
            writer.writerow(
                {
                    "batch_size": b,
                    "index": index,
                    "name": row.name,
                    "type": row.type,
                    "call_index": row.call_index,
                    "flops": row.flops,
                    "flops_per_sample": None if row.flops is None else row.flops / b,
                    "time_us_median": rounded(median),
                    "time_us_per_sample": rounded(median and median / b),
                }
            )
    return out.getvalue()
