"""Turn a Report into text: a table (tabulate), JSON or CSV. Renderers return strings."""

from __future__ import annotations

import csv
import io
from collections.abc import Callable
from dataclasses import dataclass

from tabulate import tabulate

from submodel_profiler.counting import COUNTING_CONVENTIONS
from submodel_profiler.kernel_fusion import FUSED_INTO, FUSION_RATIO, ISOLATED_SLOWER
from submodel_profiler.methods import CROSS_CHECK_METHODS, IN_GRAPH, ISOLATED, TIMING_METHODS
from submodel_profiler.report import LayerRow, Report
from submodel_profiler.summaries import ordered_rows

FORMATS = ("table", "json", "csv")

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
)


def render(
    report: Report, fmt: str, *, top: int | None = None, sort: str = "order", columns=None
) -> str:
    """Render `report` as "table", "json" or "csv"; `top`, `sort` and `columns` shape the
    table only (JSON and CSV keep every field)."""
    columns = DEFAULT_COLUMNS if columns is None else columns
    renderers = {
        "table": lambda r: render_table(r, top=top, sort=sort, columns=columns),
        "json": render_json,
        "csv": render_csv,
    }
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
        "depth": row.depth,
        "parent": row.parent,
        "ghost_ops": " ".join(row.ghost_ops),
        "input_shapes": " ".join(_shape(s) for s in row.input_shapes),
        "input_dtypes": " ".join(row.input_dtypes),
        "output_shapes": " ".join(_shape(s) for s in row.output_shapes),
        "params": row.params,
        "flops": row.flops,
        "whole_graph_flops": row.whole_graph_flops,
        "tf_flops": row.tf_flops,
        "whole_graph_tf_flops": row.whole_graph_tf_flops,
        "macs": row.macs,
        "whole_graph_macs": row.whole_graph_macs,
        "flops_match": row.flops_match,
        "count_notes": "; ".join(row.count_notes),
        "time_us_median": _round(t and t.median),
        "time_us_min": _round(t and t.min),
        "time_us_max": _round(t and t.max),
        "time_us_iqr": _round(t and t.iqr),
        "time_us_repeats": None if t is None else t.repeats,
        "unfused_time_us": _round(row.unfused_time_us),
        "in_graph_time_us": _round(row.in_graph_time_us),
        "fused_into": row.fused_into,
        "callback_time_us_median": _round(row.callback_median_us),
        "uncounted_ops": " ".join(f"{k}:{v}" for k, v in row.uncounted_ops.items()),
        "same_as": row.same_as,
        "error": row.error,
        "flop_per_s": _round(row.flop_per_s),
        "peak_fraction": None if row.peak_fraction is None else round(row.peak_fraction, 6),
        "fusion_flag": row.fusion_flag,
        "isolated_over_in_graph": _round(row.isolated_over_in_graph),
    }


def _round(value):
    return None if value is None else round(value, 3)


@dataclass(frozen=True)
class Column:
    """One column of the table: key (for --columns), title, cell text of a row, alignment."""

    key: str
    title: str
    cell: Callable  # (row, _Context) -> str
    right: bool = True
    timed: bool = False  # only shown when the report was timed


@dataclass(frozen=True)
class _Context:
    index: int | str
    total_flops: int
    total_time: float
    tree: bool = False  # names indented under their parents (execution order, --depth)
    parent: bool = False  # the line of an expanded layer (its own sub-model's figures)
    name_width: int | None = None  # longer names are shortened in the middle


def _name_cell(row: LayerRow, c: _Context) -> str:
    marks = ("*" if row.uncounted_ops else "") + ("†" if _branch_rule(row) else "")
    if not c.tree:
        return _shortened(row.label, c.name_width) + ("/" if c.parent else "") + marks
    shown = row.label[len(row.parent) + 1 :] if row.parent else row.label
    shown = _shortened(shown, c.name_width)
    return "  " * (row.depth - 1) + shown + ("/" if c.parent else "") + marks


def _shortened(name: str, width: int | None) -> str:
    """`name`, or its start and end around "…" when longer than `width` (the end tells
    siblings apart: block_3_depthwise_conv, block_3_pointwise_conv)."""
    if width is None or len(name) <= width:
        return name
    head = (width - 1) // 3
    return name[:head] + "…" + name[len(name) - (width - 1 - head) :]


def _type_label(type_: str, kind: str) -> str:
    """A row's type; Keras ops that are not layers are marked (op)."""
    return f"{type_} (op)" if kind == "op" else type_


def _flops_cell(row: LayerRow, _=None) -> str:
    return "error" if row.flops is None and row.error else _int(row.flops)


def _whole_cell(row: LayerRow, _=None) -> str:
    whole = _int(row.whole_graph_flops)
    return whole + " ≠" if row.counts_differ else whole


def _time_cell(row: LayerRow, _=None) -> str:
    t = row.time_us
    return "—" if t is None else f"{t.median:,.1f} ± {t.iqr:,.1f}"


def _marks_cell(row: LayerRow, _=None) -> str:
    """≠ the counts disagree, E the row has an error, F a fusion flag (--wide: details)."""
    marks = "≠" if row.counts_differ else ""
    return marks + ("E" if row.error else "") + ("F" if row.fusion_flag else "")


COLUMNS = (
    Column("index", "#", lambda r, c: str(c.index)),
    Column("name", "name", _name_cell, right=False),
    Column("type", "type", lambda r, c: _type_label(r.type, r.kind), right=False),
    Column("ghost_ops", "ghost ops", lambda r, c: ", ".join(r.ghost_ops), right=False),
    Column(
        "output_shape",
        "output shape",
        lambda r, c: " ".join(_shape(s) for s in r.output_shapes),
        right=False,
    ),
    Column("params", "params", lambda r, c: _int(r.params)),
    Column("flops", "float ops", _flops_cell),
    Column("whole_graph_flops", "whole graph", _whole_cell),
    Column("flops_share", "% flops", lambda r, c: _percent(r.flops or 0, c.total_flops)),
    Column("macs", "MACs", lambda r, c: "error" if r.macs is None and r.error else _int(r.macs)),
    Column("tf_flops", "TF float ops", lambda r, c: _int(r.tf_flops)),
    Column("time", ISOLATED.column, _time_cell, timed=True),
    Column(
        "time_share",
        "% time",
        lambda r, c: (
            ""
            if r.time_us is None or not c.total_time or c.parent
            else _percent(r.time_us.median, c.total_time)
        ),
        timed=True,
    ),
    Column("gflops", "GFLOP/s", lambda r, c: _gflops(r.flop_per_s), timed=True),
    Column("peak", "% peak", lambda r, c: _fraction(r.peak_fraction), timed=True),
    *(
        Column(m.key, m.column, lambda r, c, m=m: _method_cell(m, r), timed=True)
        for m in CROSS_CHECK_METHODS
    ),
    Column("fusion", "fusion", lambda r, c: _fusion_cell(r), timed=True),
    Column("marks", "check", _marks_cell),
)
COLUMN_KEYS = tuple(c.key for c in COLUMNS)
# What a reader needs first, in about 150 characters: the rest with --wide or --columns.
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
    "time",
    "time_share",
    "marks",
)
WIDE_COLUMNS = tuple(k for k in COLUMN_KEYS if k != "tf_flops")


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
    unknown = [k for k in columns if k not in COLUMN_KEYS]
    if unknown:
        raise ValueError(f"Unknown column(s) {unknown}. Expected keys from {COLUMN_KEYS}.")
    by_key = {c.key: c for c in COLUMNS}
    shown = [by_key[k] for k in columns if report.settings.timing or not by_key[k].timed]
    total_flops = report.totals.flops or 1
    total_time = report.totals.time_us or 0.0
    pairs = ordered_rows(report, sort, top)
    tree = sort == "order" and top is None and bool(report.parents)
    width = DEFAULT_NAME_WIDTH if tuple(columns) == DEFAULT_COLUMNS else None
    body = []
    parents, opened = {p.label: p for p in report.parents}, set()
    for i, row in pairs:
        for parent in _enclosing(row, parents) if tree else ():
            if parent.label not in opened:  # a subtotal line before an expanded layer's rows
                opened.add(parent.label)
                context = _Context(
                    "", total_flops, total_time, tree=True, parent=True, name_width=width
                )
                body.append([c.cell(_as_row(parent), context) for c in shown])
        context = _Context(i, total_flops, total_time, tree=tree, name_width=width)
        body.append([c.cell(row, context) for c in shown])
    table = _tabulate_keeping_indents(
        body, [c.title for c in shown], ["right" if c.right else "left" for c in shown]
    )
    lines = _shown_line(report, len(pairs), sort)
    legend = _marks_legend(report) if "marks" in columns else []
    footer = [_wrap(line) for line in _footer(report)]
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
        flops = _int(p.flops) + (" ≠" if p.counts_differ else "")
        body.append(
            [
                p.label + "/",
                p.rows,
                flops,
                _int(p.rows_flops),
                _int(p.macs),
                _int(p.rows_macs),
                _us(p.time_us and p.time_us.median),
                _us(p.rows_time_us),
                _two_decimals(p.additivity),
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


TEXT_WIDTH = 120  # prose lines under the tables are wrapped to this width
NO_BREAK = "\u00a0"  # textwrap does not break lines at a no-break space


def _wrap(line: str) -> str:
    """A long prose line wrapped to TEXT_WIDTH, continuation lines indented."""
    import textwrap

    if len(line) <= TEXT_WIDTH:
        return line
    indent = " " * (len(line) - len(line.lstrip()))
    text = textwrap.fill(
        line.replace(" µs", NO_BREAK + "µs"),  # a figure and its unit stay on one line
        TEXT_WIDTH,
        subsequent_indent=indent + "  ",
        break_on_hyphens=False,
        break_long_words=False,
    )
    return text.replace(NO_BREAK, " ")


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
        time_us=parent.time_us,
        error=parent.error,
    )


def _marks_legend(report: Report) -> list[str]:
    if not any(_marks_cell(r) for r in report.layers):
        return []
    return [
        "check: ≠ sub-model and whole-graph counts differ, E error (see below), F fusion "
        "flag (--wide shows the timing methods and flags)"
    ]


def _shown_line(report: Report, shown: int, sort: str) -> list[str]:
    if shown == len(report.layers) and sort == "order":
        return []
    order = "execution order" if sort == "order" else f"{sort}, largest first"
    return [f"(showing {shown} of {len(report.layers)} rows, by {order}; totals cover all rows)"]


def _type_summary(report: Report) -> list[str]:
    """Per layer type: rows, float ops, isolated time and their shares of the totals."""
    if not report.summary_by_type:
        return []
    timed = report.settings.timing
    headers = ["type", "rows", "float ops", "% flops", "MACs", "% MACs"]
    if timed:
        headers += ["time µs", "% time", "GFLOP/s"]
    body = []
    for s in report.summary_by_type:
        cells = [
            _type_label(s.type, s.kind),
            s.count,
            _int(s.flops),
            f"{100.0 * s.flops_share:.1f}%",
            _int(s.macs),
            f"{100.0 * s.macs_share:.1f}%",
        ]
        if timed:
            share = "" if s.time_share is None else f"{100.0 * s.time_share:.1f}%"
            cells += [_us(s.time_us), share, _gflops(s.flop_per_s)]
        body.append(cells)
    table = tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=["left"] + ["right"] * (len(headers) - 1),  # the type, then numbers
    )
    return ["By type (all rows):", table]


def _gflops(value) -> str:
    return "" if value is None else f"{value / 1e9:,.2f}"


def _fraction(value) -> str:
    return "" if value is None else f"{100.0 * value:.1f}%"


def _fusion_cell(row: LayerRow) -> str:
    if row.fusion_flag == FUSED_INTO:
        return "F fused"
    if row.fusion_flag == ISOLATED_SLOWER:
        ratio = row.isolated_over_in_graph
        return "F" if ratio is None else f"F {ratio:.1f}×"
    return ""


def _us(value) -> str:
    return "" if value is None else f"{value:,.1f}"


def _method_cell(method, row: LayerRow) -> str:
    """A cross-check method's time of a row; as optimized, a fused row names its host."""
    if method is IN_GRAPH and row.fused_into:
        return f"→ {row.fused_into}"
    return _us(method.row_us(row))


def _branch_rule(row: LayerRow) -> bool:
    """The row holds an If/Case counted by its largest branch (an upper bound of what runs)."""
    return any(" branches counted" in note for note in row.count_notes)


def _header(report: Report) -> str:
    m, env = report.model, report.environment
    inputs = ", ".join(f"{t.name} {_shape(t.shape)} {t.dtype}" for t in m.inputs)
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
        f"{_count(t.whole_graph_flops)}   unattributed {_count(t.unattributed_flops)}",
    ]
    if t.macs is not None:
        lines.append(
            f"MACs: Σ rows {t.macs:,}   whole graph {_count(t.whole_graph_macs)}   "
            f"unattributed {_count(t.unattributed_macs)}"
        )
    if counting != "tf" and t.tf_flops is not None:
        lines.append(
            f"TF's profiler count (tf_flops): Σ rows {t.tf_flops:,}   whole graph "
            f"{_count(t.whole_graph_tf_flops)}   unattributed {_count(t.unattributed_tf_flops)}"
        )
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


def _two_decimals(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


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
        f"additivity (Σ rows / whole) {_two_decimals(t.additivity)}",
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
    line = f"Throughput: whole model {_gflops(t.flop_per_s)} GFLOP/s"
    if env.peak_flop_per_s:
        line += (
            f" = {_fraction(t.peak_fraction)} of this machine's peak "
            f"{_gflops(env.peak_flop_per_s)} GFLOP/s ({env.peak_method})"
        )
    return [line + "."]


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
            if any(map(_branch_rule, noted))
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
    if check.flops_exact and check.lower_bound_rows:
        rows = check.lower_bound_rows
        listed = ", ".join(rows[:10]) + (f" and {len(rows) - 10} more" if len(rows) > 10 else "")
        return (
            f"Cross-check: exact but a LOWER BOUND — every one of {n} rows' sub-model float "
            "ops (both conventions) and MACs equal the whole graph's and sum to it exactly, "
            f"but {len(rows)} row(s) hold op types without a count in the "
            f"{report.settings.counting} convention ({_uncounted_summary(report)}): {listed}. "
            "Their float ops are lower bounds; their GFLOP/s and % peak are left out."
        )
    if check.flops_exact:
        branches = [r.label for r in report.layers if _branch_rule(r)]
        upper = (
            f" Rows marked † ({', '.join(branches[:10])}) count the largest branch of an "
            "If/Case: an upper bound of what runs."
            if branches
            else ""
        )
        return (
            f"Cross-check: OK — every one of {n} rows' sub-model float ops (both "
            "conventions) and MACs equal the whole graph's, the rows sum exactly to the "
            "whole graph, and every arithmetic op is counted." + upper
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
    ):
        if value:
            problems.append(f"{value:,} whole-graph {what} are not claimed by any row")
    if report.totals.whole_graph_flops is None:
        problems.append("the whole model could not be traced, so Σ rows has nothing to equal")
    elif report.totals.flops != report.totals.whole_graph_flops:
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


def _count(value) -> str:
    """A total in prose: `n/a` where there is none (the whole model could not be traced)."""
    return "n/a" if value is None else f"{value:,}"


def _percent(part, whole) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else ""


# --- compare: two reports side by side --------------------------------------------------------

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
    table = tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("right", "left", "left") + ("right",) * (len(headers) - 3),
    )
    return "\n".join(
        [*_comparison_header(comparison), "", table, "", *_comparison_footer(comparison), ""]
    )


def _comparison_header(c) -> list[str]:
    lines = [
        f"{side}: {d['label']} — {d['model']}, batch size {d['batch_size']}, {d['device']}, "
        f"{d.get('counting', 'tf')} counting"
        for side, d in (("A", c.a), ("B", c.b))
    ]
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
        _int(m["flops"].a),
        _int(m["flops"].b),
        _ratio(m["flops"]),
        _us(m["time_us"].a),
        _us(m["time_us"].b),
        _ratio(m["time_us"]),
        *(_ratio(m[method.field]) for method in CROSS_CHECK_METHODS),
    ]


_TOTAL_LABELS = {
    "flops": "float ops, Σ rows",
    "whole_graph_flops": "float ops, whole graph",
    "tf_flops": "TF float ops, Σ rows",
    "macs": "MACs, Σ rows",
    "whole_model_time_us": "isolated µs, whole model",
    **{m.field: f"{m.label} µs, Σ rows" for m in TIMING_METHODS},
}


def _comparison_footer(c) -> list[str]:
    body = []
    for key, d in c.totals.items():
        fmt = _int if "flops" in key or key == "macs" else _us
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


# --- sweep: one report per batch size ----------------------------------------------------------


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
    table = tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("right", "left", "left") + ("right",) * (len(headers) - 3),
    )
    shown = _shown_line(largest, len(body), sort)
    footer = [_wrap(line) for line in _sweep_footer(sweep)]
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
                f"{_gflops(t.flop_per_s)} GFLOP/s ({_fraction(t.peak_fraction)} of peak)   "
                f"additivity {_two_decimals(t.additivity)}"
            )
        verdict = "OK" if r.cross_check.flops_exact else "FAILED"
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
                    "time_us_median": _round(median),
                    "time_us_per_sample": _round(median and median / b),
                }
            )
    return out.getvalue()
