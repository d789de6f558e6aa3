"""The human-readable report: header, one line per row, the per-type and expanded-layer
summaries, totals, the cross-check verdict and the notes under them."""

from __future__ import annotations

from tabulate import tabulate

from submodel_profiler.counting import COUNTING_CONVENTIONS
from submodel_profiler.kernel_fusion import FUSED_INTO, FUSION_RATIO, ISOLATED_SLOWER
from submodel_profiler.methods import CROSS_CHECK_METHODS
from submodel_profiler.renderers.columns import (
    COLUMN_KEYS,
    COLUMNS,
    DEFAULT_COLUMNS,
    DEFAULT_NAME_WIDTH,
    TRAIN_COLUMNS,
    Context,
    branch_rule,
    marks_cell,
    shortened,
    type_label,
)
from submodel_profiler.renderers.formatting import (
    fraction,
    gflops,
    integer,
    megabytes,
    shape,
    shown_line,
    total,
    two_decimals,
    us,
    wrap,
)
from submodel_profiler.report import LayerRow, Report
from submodel_profiler.roofline import ridge_point
from submodel_profiler.summaries import ordered_rows


def render_table(
    report: Report, *, top: int | None = None, sort: str = "order", columns=DEFAULT_COLUMNS
) -> str:
    """The human-readable report: header, one line per row, the per-type summary, totals,
    cross-check verdict. `sort` ("order", "flops", "time", "params") orders the rows, largest
    first; `top` keeps the first N (the summary and totals still cover every row); `columns`
    picks the table's columns by key (COLUMN_KEYS; timed columns only when the report is
    timed).

    Raises:
        ValueError: an unknown column key.
    """
    default_view = tuple(columns) == DEFAULT_COLUMNS  # names shortened in that view only
    if report.settings.pass_name == "train" and default_view:
        columns = TRAIN_COLUMNS
        if report.totals.optimizer is not None:
            columns = (*TRAIN_COLUMNS[:-1], "optimizer", "optimizer_time", TRAIN_COLUMNS[-1])
    unknown = [k for k in columns if k not in COLUMN_KEYS]
    if unknown:
        raise ValueError(f"Unknown column(s) {unknown}. Expected keys from {COLUMN_KEYS}.")
    by_key = {c.key: c for c in COLUMNS}
    train = report.settings.pass_name == "train"
    shown = [
        by_key[k]
        for k in columns
        if (report.settings.timing or not by_key[k].timed) and (train or not by_key[k].train)
    ]
    total_flops = report.totals.flops or 1
    total_time = report.totals.time_us or 0.0
    pairs = ordered_rows(report, sort, top)
    tree = sort == "order" and top is None and bool(report.parents)
    width = DEFAULT_NAME_WIDTH if default_view else None
    body = []
    parents, opened = {p.label: p for p in report.parents}, set()
    for i, row in pairs:
        for parent in _enclosing(row, parents) if tree else ():
            if parent.label not in opened:  # a subtotal line before an expanded layer's rows
                opened.add(parent.label)
                context = Context(
                    "", total_flops, total_time, tree=True, parent=True, name_width=width
                )
                body.append([c.cell(_as_row(parent), context) for c in shown])
        context = Context(i, total_flops, total_time, tree=tree, name_width=width)
        body.append([c.cell(row, context) for c in shown])
    table = _tabulate_keeping_indents(
        body, [c.title for c in shown], ["right" if c.right else "left" for c in shown]
    )
    lines = shown_line(report, len(pairs), sort)
    legend = _marks_legend(report) if "marks" in columns else []
    footer = [wrap(line) for line in _footer(report)]
    return "\n".join(
        [
            _header(report),
            "",
            table,
            *lines,
            *legend,
            "",
            *_type_summary(report),
            "",
            *_parents_summary(report),
            *footer,
            "",
        ]
    )


def _parents_summary(report: Report) -> list[str]:
    """Per expanded layer: its own sub-model beside the sums of its rows, and additivity."""
    if not report.parents:
        return []
    headers = [
        "layer (--depth)",
        "rows",
        "float ops",
        "Σ rows",
        "MACs",
        "Σ rows MACs",
        "isolated µs",
        "Σ rows µs",
        "additivity",
    ]
    body = []
    for p in report.parents:
        flops = integer(p.flops) + (" ≠" if p.counts_differ else "")
        body.append(
            [
                p.label + "/",
                p.rows,
                flops,
                integer(p.rows_flops),
                integer(p.macs),
                integer(p.rows_macs),
                us(p.time_us and p.time_us.median),
                us(p.rows_time_us),
                two_decimals(p.additivity),
            ]
        )
    table = tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(headers) - 1),
    )
    return [
        "Expanded layers: each one's own sub-model beside the sums of its rows "
        "(additivity = Σ rows µs / its µs):",
        table,
        "",
    ]


def _tabulate_keeping_indents(body, headers, align) -> str:
    """tabulate, keeping the leading spaces that indent names by depth (tabulate 0.10 takes
    `preserve_whitespace` as an argument and ignores its old module-level switch)."""
    return tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=align,
        preserve_whitespace=True,
    )


def _enclosing(row: LayerRow, parents: dict) -> list:
    """The expanded layers around `row`, outermost first."""
    chain, label = [], row.parent
    while label is not None and label in parents:
        chain.insert(0, parents[label])
        label = parents[label].parent
    return chain


def _as_row(parent) -> LayerRow:
    """An expanded layer as a table line: its own sub-model's figures; `whole graph` holds the
    sums of its rows, so a disagreement shows as ≠."""
    return LayerRow(
        name=parent.name,
        type=parent.type,
        kind="layer",
        call_index=parent.call_index,
        depth=parent.depth,
        parent=parent.parent,
        params=parent.params,
        flops=parent.flops,
        whole_graph_flops=parent.rows_flops,
        tf_flops=parent.tf_flops,
        whole_graph_tf_flops=parent.rows_tf_flops,
        macs=parent.macs,
        whole_graph_macs=parent.rows_macs,
        op_bytes=parent.op_bytes,
        whole_graph_op_bytes=parent.rows_op_bytes,
        time_us=parent.time_us,
        error=parent.error,
    )


def _marks_legend(report: Report) -> list[str]:
    if not any(marks_cell(r) for r in report.layers):
        return []
    return [
        "check: ≠ sub-model and whole-graph counts differ, E error (see below), F fusion "
        "flag (--wide shows the timing methods and flags)"
    ]


def _type_summary(report: Report) -> list[str]:
    """Per layer type: rows, float ops, isolated time and their shares of the totals."""
    if not report.summary_by_type:
        return []
    timed = report.settings.timing
    headers = ["type", "rows", "float ops", "% flops", "MACs", "% MACs", "bytes", "flop/B"]
    if timed:
        headers += ["time µs", "% time", "GFLOP/s"]
    body = []
    for s in report.summary_by_type:
        cells = [
            type_label(s.type, s.kind),
            s.count,
            integer(s.flops),
            f"{100.0 * s.flops_share:.1f}%",
            integer(s.macs),
            f"{100.0 * s.macs_share:.1f}%",
            integer(s.bytes_accessed),
            "" if s.arithmetic_intensity is None else f"{s.arithmetic_intensity:,.1f}",
        ]
        if timed:
            share = "" if s.time_share is None else f"{100.0 * s.time_share:.1f}%"
            cells += [us(s.time_us), share, gflops(s.flop_per_s)]
        body.append(cells)
    table = tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(headers) - 1),  # the type, then numbers
    )
    return ["By type (all rows):", table]


def _header(report: Report) -> str:
    m, env = report.model, report.environment
    inputs = ", ".join(f"{t.name} {shape(t.shape)} {t.dtype}" for t in m.inputs)
    lines = [
        f"Model: {m.name} ({m.source})   batch size {m.batch_size}   inputs: {inputs}",
        f"TensorFlow {env.tensorflow}, Keras {env.keras}, Python {env.python} on {env.device}",
    ]
    if report.status != "complete":
        lines.append(f"STATUS: {report.status.upper()} — {_STATUS_TEXT[report.status]}")
    return "\n".join(lines)


_STATUS_TEXT = {
    "partial": "some rows could not be profiled; see their error below and in the JSON.",
    "interrupted": "Ctrl-C stopped timing; times hold the samples taken before it.",
}


def _footer(report: Report) -> list[str]:
    t = report.totals
    counting = report.settings.counting
    lines = [
        f"Rows: {len(report.layers)}   params: {report.model.params:,}",
        f"Float ops ({counting}): Σ rows (sub-models) {t.flops:,}   whole graph "
        f"{total(t.whole_graph_flops)}   unattributed {total(t.unattributed_flops)}",
    ]
    if t.macs is not None:
        lines.append(
            f"MACs: Σ rows {t.macs:,}   whole graph {total(t.whole_graph_macs)}   "
            f"unattributed {total(t.unattributed_macs)}"
        )
    if counting != "tf" and t.tf_flops is not None:
        lines.append(
            f"TF's profiler count (tf_flops): Σ rows {t.tf_flops:,}   whole graph "
            f"{total(t.whole_graph_tf_flops)}   unattributed {total(t.unattributed_tf_flops)}"
        )
    lines += _step_footer(report)
    lines += _bytes_footer(report)
    lines += _timing_footer(report)
    lines.append(_verdict(report))
    # each error opens with the label of its row (or expanded layer)
    lines += [f"  error: {r.error}" for r in report.layers if r.error]
    lines += [f"  error in an expanded layer: {p.error}" for p in report.parents if p.error]
    lines.append(COUNTING_CONVENTIONS.get(counting, ""))
    lines += _notes_footer(report)
    if any(r.same_as for r in report.layers):
        lines.append(
            "Rows identical to an earlier row (same config and input specs) reuse its "
            "sub-model measurements; see same_as in the JSON."
        )
    return lines


def _step_footer(report: Report) -> list[str]:
    """The training step's split (--pass train): forward, backward, saved activations."""
    t = report.totals
    if report.settings.pass_name != "train" or t.forward_flops is None:
        return []
    line = (
        f"Training step: forward {t.forward_flops:,} float ops ({total(t.forward_macs)} MACs)"
        f"   backward {total(t.backward_flops)} ({total(t.backward_macs)} MACs)"
    )
    if t.forward_macs:
        line += f" = {t.backward_macs / t.forward_macs:.2f} × forward MACs"
    if t.saved_activation_bytes is not None:
        line += f"   saved activations {megabytes(t.saved_activation_bytes)} MB"
    lines = [line]
    whole = t.whole_forward_time_us
    if t.forward_time_us is not None and whole is not None:
        line = (
            f"Forward time (training mode): Σ rows {t.forward_time_us:,.1f} µs, the whole step's "
            f"forward and loss {whole.median:,.1f} ± {whole.iqr:,.1f} µs"
        )
        ratio = f" (Σ ÷ whole {t.forward_time_us / whole.median:.2f})" if whole.median > 0 else ""
        lines.append(line + ratio)
    if t.optimizer is not None:
        lines.append(
            f"Optimizer update ({t.optimizer}): {t.optimizer_flops:,} float ops, of which "
            f"{t.unattributed_optimizer_flops:,} are its own per-step ops (no row's weights)"
        )
        whole = t.whole_optimizer_time_us
        if t.optimizer_time_us is not None and whole is not None:
            lines.append(
                f"Optimizer update time: Σ rows {t.optimizer_time_us:,.1f} µs, one update of "
                f"every weight {whole.median:,.1f} ± {whole.iqr:,.1f} µs (per-step ops and "
                "call costs once per row against warm caches: docs/training.md)"
            )
    return lines


def _prediction_footer(report: Report) -> list[str]:
    """The whole model predicted from its rows by list scheduling, beside the measured one."""
    t = report.totals
    if t.predicted_whole_us is None:
        return []
    line = (
        f"Predicted whole model (rows list-scheduled along the model's graph on "
        f"{t.predicted_threads} inter-op threads): {t.predicted_whole_us:,.1f} µs"
    )
    whole = t.whole_model_time_us
    if whole is not None and whole.median > 0:
        line += f" = {t.predicted_whole_us / whole.median:.2f} × the measured whole model"
    return [line + f"; critical path (unlimited threads) {t.critical_path_us:,.1f} µs."]


def _bytes_footer(report: Report) -> list[str]:
    """Op bytes beside the whole graph, and the memory summary (torchinfo's lines)."""
    t = report.totals
    if t.op_bytes is None or t.param_bytes is None:  # a report from before bytes
        return []
    lines = [
        f"Op bytes: Σ rows {t.op_bytes:,}   whole graph {total(t.whole_graph_op_bytes)}   "
        f"unattributed {total(t.unattributed_op_bytes)}"
    ]
    memory = [
        f"params {megabytes(t.param_bytes)} MB",
        f"bytes accessed (Σ rows) {megabytes(t.bytes_accessed)} MB",
    ]
    if t.peak_activation_bytes is not None:
        memory.append(
            f"activation peak (static) {megabytes(t.peak_activation_bytes)} MB"
            + (f" during {shortened(t.peak_row, DEFAULT_NAME_WIDTH)}" if t.peak_row else "")
        )
    if t.measured_peak_bytes is not None:
        memory.append(
            f"measured peak {megabytes(t.measured_peak_bytes)} MB ({t.measured_peak_method})"
        )
    if t.estimated_total_bytes is not None:
        memory.append(f"estimated total (params + peak) {megabytes(t.estimated_total_bytes)} MB")
    lines.append("Memory (MB = 10^6 bytes): " + "   ".join(memory))
    return lines


def _timing_footer(report: Report) -> list[str]:
    t, check = report.totals, report.cross_check
    errors = [
        f"The {method} cross-check did not run: {error}"
        for method, error in check.method_errors.items()
    ]
    if t.time_us is None or t.whole_model_time_us is None:
        return errors
    w = t.whole_model_time_us
    lines = [
        f"Isolated time: Σ rows {t.time_us:,.1f} µs   whole model (same method) "
        f"{w.median:,.1f} ± {w.iqr:,.1f} µs   "
        f"additivity (Σ rows / whole) {two_decimals(t.additivity)}",
        *_prediction_footer(report),
    ]
    others = [
        (m.label, getattr(t, m.field))
        for m in CROSS_CHECK_METHODS
        if getattr(t, m.field) is not None
    ]
    if others:
        lines.append("Other methods, Σ rows: " + "   ".join(f"{k} {v:,.1f} µs" for k, v in others))
    rho = {k: v for k, v in check.rank_correlation.items() if v is not None}
    if rho:
        lines.append(
            "Rank correlation (Spearman) of isolated times with: "
            + "   ".join(f"{k} {v:.2f}" for k, v in rho.items())
        )
    fused = sum(1 for r in report.layers if r.fused_into)
    if fused:
        lines.append(f"{fused} row(s) fused into a neighbour by TF's optimizer (in-graph → row).")
    lines += _throughput_footer(report)
    lines += _fusion_footer(report)
    return lines + errors


def _throughput_footer(report: Report) -> list[str]:
    t, env = report.totals, report.environment
    if t.flop_per_s is None:
        return []
    line = f"Throughput: whole model {gflops(t.flop_per_s)} GFLOP/s"
    if env.peak_flop_per_s:
        line += (
            f" = {fraction(t.peak_fraction)} of this machine's peak "
            f"{gflops(env.peak_flop_per_s)} GFLOP/s ({env.peak_method})"
        )
    return [line + ".", *_roofline_footer(report)]


def _roofline_footer(report: Report) -> list[str]:
    """The bandwidth, the ridge point and how the rows and their time split by bound."""
    env = report.environment
    if not env.peak_bytes_per_s or not env.peak_flop_per_s:
        return []
    ridge = ridge_point(env.peak_flop_per_s, env.peak_bytes_per_s)
    line = (
        f"Roofline: memory bandwidth {env.peak_bytes_per_s / 1e9:,.2f} GB/s "
        f"({env.bandwidth_method}); ridge point {ridge:,.1f} flop/B."
    )
    timed = report.totals.time_us  # Σ rows' isolated medians
    for bound in ("memory", "compute"):
        rows = [r for r in report.layers if r.bound == bound]
        share = sum(r.time_median_us or 0.0 for r in rows) / timed if timed else 0.0
        line += f" {bound}-bound: {len(rows)} row(s), {100 * share:.1f}% of Σ rows' time;"
    return [line.rstrip(";") + "."]


def _fusion_footer(report: Report) -> list[str]:
    flags = [r.fusion_flag for r in report.layers]
    fused, slower = flags.count(FUSED_INTO), flags.count(ISOLATED_SLOWER)
    if not fused and not slower:
        return []
    return [
        f"Fusion (F): {fused} row(s) fused into a neighbour as optimized, {slower} row(s) "
        f"isolated ≥ {FUSION_RATIO:g}× their in-graph time (F n×). Alone, these rows pay the "
        "kernel launch and memory round trip that the optimized whole graph fuses away: they "
        "are where Σ isolated rows and the whole model part ways (the additivity gap).",
    ]


def _notes_footer(report: Report) -> list[str]:
    """Counting remarks: loops and branches, and what no rule counts."""
    lines = []
    noted = [r for r in report.layers if r.count_notes]
    for row in noted[:_NOTED_ROWS]:
        lines.append(f"  {row.label}: {'; '.join(row.count_notes)}")
    if len(noted) > _NOTED_ROWS:
        lines.append(
            f"  ... and {len(noted) - _NOTED_ROWS} more row(s) with counting notes "
            "(count_notes in the JSON/CSV)"
        )
    if noted:
        lines.insert(
            0,
            "How loops and branches were counted (rows marked † count the largest If/Case branch):"
            if any(map(branch_rule, noted))
            else "How loops and branches were counted:",
        )
    uncounted = _uncounted_summary(report)
    if uncounted:
        lines.append(
            f"Op types without a float-op count ({report.settings.counting} "
            f"convention; rows marked * are lower bounds): {uncounted}."
        )
    return lines


_NOTED_ROWS = 10


def _verdict(report: Report) -> str:
    check, n = report.cross_check, len(report.layers)
    counts = (
        "float ops (both conventions), MACs and op bytes"
        if check.bytes_exact
        else "float ops (both conventions) and MACs"
    )
    if check.counts_exact and check.lower_bound_rows:
        rows = check.lower_bound_rows
        listed = ", ".join(rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        return (
            f"Cross-check: exact but a LOWER BOUND — every one of {n} rows' sub-model "
            f"{counts} equal the whole graph's and sum to it exactly, "
            f"but {len(rows)} row(s) hold op types without a count in the "
            f"{report.settings.counting} convention ({_uncounted_summary(report)}): {listed}. "
            "Their float ops are lower bounds; their GFLOP/s and % peak are left out."
        )
    if check.counts_exact:
        branches = [r.label for r in report.layers if branch_rule(r)]
        upper = (
            f" Rows marked † ({', '.join(branches[:10])}) count the largest branch of an "
            "If/Case: an upper bound of what runs."
            if branches
            else ""
        )
        return (
            f"Cross-check: OK — every one of {n} rows' sub-model {counts} equal the whole "
            "graph's, the rows sum exactly to the whole graph, and every arithmetic op is "
            "counted." + upper
        )
    problems = []
    if check.mismatched_rows:
        problems.append(
            f"{len(check.mismatched_rows)} row(s) differ from the whole graph "
            f"(marked ≠): {', '.join(check.mismatched_rows[:10])}"
        )
    if check.failed_rows:
        problems.append(
            f"{len(check.failed_rows)} row(s) failed: {', '.join(check.failed_rows[:10])}"
        )
    t = report.totals
    for what, value in (
        ("float ops", t.unattributed_flops),
        ("TF float ops", t.unattributed_tf_flops),
        ("MACs", t.unattributed_macs),
        ("op bytes", t.unattributed_op_bytes),
    ):
        if value:
            problems.append(f"{value:,} whole-graph {what} are not claimed by any row")
    if report.totals.whole_graph_flops is None:
        problems.append("the whole model could not be traced, so Σ rows has nothing to equal")
    elif report.totals.flops != report.totals.whole_graph_flops:
        problems.append("Σ rows ≠ whole graph")
    elif t.whole_graph_op_bytes is not None and t.op_bytes != t.whole_graph_op_bytes:
        problems.append("Σ rows' op bytes ≠ whole graph's")
    return "Cross-check: FAILED — " + "; ".join(problems) + "."


def _uncounted_summary(report: Report) -> str:
    totals: dict = {}
    for row in report.layers:
        for op_type, count in row.uncounted_ops.items():
            totals[op_type] = totals.get(op_type, 0) + count
    return ", ".join(f"{k} ×{v}" for k, v in sorted(totals.items()))
