"""A figure of a report (matplotlib, the optional extra `plot`): written to a file, never shown.

Five panels: isolated time per row and MACs per row (execution order), float ops against
isolated time (log-log) with the machine's peak as a line, the four timing methods side by
side for the rows that take longest in isolation, and the roofline: each timed row's achieved
FLOP/s against its arithmetic intensity (log-log) under both ceilings, the matmul peak and
intensity × the measured bandwidth.
"""

from __future__ import annotations

import os

from submodel_profiler.errors import UsageError, check_output_folder
from submodel_profiler.methods import TIMING_METHODS
from submodel_profiler.report import LayerRow, Report
from submodel_profiler.roofline import ridge_point

PLOT_FORMATS = (".png", ".svg", ".pdf")
METHOD_ROWS = 12  # rows in the timing-methods panel (longest isolated times)
LABELLED_ROWS = 3  # largest rows named in the per-row panels
TYPE_COLOURS = 8  # layer types with their own colour in the scatter; the rest are grey
FIGSIZE_IN, DPI = (21, 10), 80  # 1680×800 pixels


def require_matplotlib():
    """Import matplotlib with the file-only Agg backend.

    Raises:
        UsageError: matplotlib is not installed.
    """
    try:
        import matplotlib
    except ImportError as e:
        raise UsageError(
            '--plot needs matplotlib. Install it with: pip install -e ".[plot]"'
        ) from e
    matplotlib.use("Agg")
    return matplotlib


def check_plot_path(path: str) -> None:
    """Raises UsageError unless `path` ends in a supported suffix inside an existing folder."""
    suffix = os.path.splitext(path)[1].lower()
    if suffix not in PLOT_FORMATS:
        raise UsageError(
            f"--plot must end in one of {', '.join(PLOT_FORMATS)}. Received: {path!r}."
        )
    check_output_folder("--plot", path)


def write_plot(report: Report, path: str) -> None:
    """Draw the five panels of `report` and save them to `path` (format from its suffix).

    Raises:
        UsageError: matplotlib is missing or `path` is unusable.
    """
    check_plot_path(path)
    require_matplotlib()
    import matplotlib.pyplot as plt

    fig = plt.figure(figsize=FIGSIZE_IN, dpi=DPI)
    grid = fig.add_gridspec(2, 3)
    axes = [[fig.add_subplot(grid[i, j]) for j in range(2)] for i in range(2)]
    try:
        _per_row(
            axes[0][0],
            report,
            lambda r: _time(r) and _time(r) * 1e-6,
            "isolated time per execution",
            "tab:blue",
            "s",
        )
        _per_row(
            axes[1][0],
            report,
            lambda r: r.macs,
            "MACs (multiply-accumulates, the MAdds papers publish)",
            "tab:orange",
            "",
        )
        _flops_vs_time(axes[0][1], report)
        _methods(axes[1][1], report)
        _roofline(fig.add_subplot(grid[:, 2]), report)
        fig.suptitle(_title(report), fontsize=13)
        fig.tight_layout(rect=(0, 0, 1, 0.96))
        fig.savefig(path, dpi=DPI)
    finally:
        plt.close(fig)


def _title(report: Report) -> str:
    m, env = report.model, report.environment
    step = (
        " — one training step (forward + backward)" if report.settings.pass_name == "train" else ""
    )
    return (
        f"{m.name}{step} — batch size {m.batch_size} — TensorFlow {env.tensorflow}, "
        f"Keras {env.keras} — {env.device}"
    )


def _time(row: LayerRow):
    return row.time_median_us


def _no_data(ax, text: str) -> None:
    ax.text(0.5, 0.5, text, ha="center", va="center", transform=ax.transAxes, color="grey")
    ax.set_xticks([])
    ax.set_yticks([])


def _per_row(ax, report: Report, value, ylabel: str, colour: str, unit: str) -> None:
    """Bars in execution order; the LABELLED_ROWS largest numbered and named in a box."""
    from matplotlib.ticker import EngFormatter

    values = [value(r) for r in report.layers]
    if all(v is None for v in values):
        _no_data(ax, "not measured (--no-timing)")
        ax.set_ylabel(ylabel)
        return
    heights = [v or 0 for v in values]
    ax.bar(range(len(heights)), heights, width=1.0, color=colour)
    ax.set_xlim(-0.5, len(heights) - 0.5)
    ax.set_ylim(0, max(heights) * 1.4 or 1)  # room for the box of names
    ax.yaxis.set_major_formatter(EngFormatter(unit=unit, sep=" "))
    ax.set_xlabel("row (execution order, as in the table's # column)")
    ax.set_ylabel(ylabel)
    ax.grid(axis="y", alpha=0.3)
    ranked = sorted(range(len(heights)), key=lambda i: -heights[i])[:LABELLED_ROWS]
    legend = []
    for rank, i in enumerate(ranked, start=1):
        ax.annotate(
            str(rank),
            (i, heights[i]),
            xytext=(0, 2),
            textcoords="offset points",
            ha="center",
            va="bottom",
            fontsize=8,
            fontweight="bold",
        )
        legend.append(f"{rank}: #{i} {report.layers[i].label}")
    ax.text(
        0.99,
        0.97,
        "largest\n" + "\n".join(legend),
        transform=ax.transAxes,
        ha="right",
        va="top",
        fontsize=8,
        bbox={"facecolor": "white", "alpha": 0.85, "edgecolor": "grey"},
    )


def _flops_vs_time(ax, report: Report) -> None:
    points = [
        (r.time_us.median, r.flops, r.type)
        for r in report.layers
        if r.time_us and r.time_us.median > 0 and r.flops
    ]
    if not points:
        _no_data(ax, "no timed rows with float ops")
        return
    common = [s.type for s in report.summary_by_type][:TYPE_COLOURS] or sorted(
        {p[2] for p in points}
    )
    for type_ in [t for t in common if any(p[2] == t for p in points)]:
        xs, ys = zip(*[(t, f) for t, f, ty in points if ty == type_])
        ax.scatter(xs, ys, s=18, label=type_, alpha=0.8)
    rest = [(t, f) for t, f, ty in points if ty not in common]
    if rest:
        ax.scatter(*zip(*rest), s=18, color="lightgrey", label="other types")
    ax.set_xscale("log")
    ax.set_yscale("log")
    _peak_lines(ax, report, points)
    ax.set_xlabel("isolated time per execution (µs, log)")
    ax.set_ylabel("float ops (count, log)")
    ax.set_title(
        "float ops vs isolated time per row (rows with 0 counted float ops omitted)", fontsize=10
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper left", ncol=2)  # above the peak line: always empty


def _peak_lines(ax, report: Report, points) -> None:
    """float ops = rate × time for the peak and 10% / 1% of it, labelled at their right end."""
    peak = report.environment.peak_flop_per_s
    lo, hi = min(p[0] for p in points) / 2, max(p[0] for p in points) * 2
    ys = [p[1] for p in points]
    top = max(max(ys), (peak or 0) * hi * 1e-6) * 30  # room for the legend
    ax.set_xlim(lo, hi)
    ax.set_ylim(min(ys) / 3, top)
    if not peak:
        return
    for share, style in ((1.0, "-"), (0.1, "--"), (0.01, ":")):
        ax.plot(
            [lo, hi],
            [share * peak * lo * 1e-6, share * peak * hi * 1e-6],
            style,
            color="black",
            linewidth=1,
        )
        x = hi / 1.15
        label = "peak" if share == 1 else f"{share:.0%} of peak"
        ax.text(
            x,
            share * peak * x * 1e-6,
            f"{label} {share * peak / 1e9:,.1f} GFLOP/s",
            ha="right",
            va="bottom",
            fontsize=8,
            bbox={"facecolor": "white", "alpha": 0.7, "edgecolor": "none", "pad": 1},
        )


def _roofline(ax, report: Report) -> None:
    """Achieved FLOP/s vs arithmetic intensity per timed row, under min(peak, I × B/s)."""
    env = report.environment
    points = [
        (r.arithmetic_intensity, r.flop_per_s, r.type)
        for r in report.layers
        if r.arithmetic_intensity and r.flop_per_s
    ]
    if not points or not env.peak_flop_per_s or not env.peak_bytes_per_s:
        _no_data(ax, "roofline: needs timing, the peak and the bandwidth")
        return
    common = [s.type for s in report.summary_by_type][:TYPE_COLOURS]
    for type_ in [t for t in common if any(p[2] == t for p in points)]:
        ax.scatter(*zip(*[(x, y) for x, y, t in points if t == type_]), s=18, label=type_)
    rest = [(x, y) for x, y, t in points if t not in common]
    if rest:
        ax.scatter(*zip(*rest), s=18, color="lightgrey", label="other types")
    ridge = ridge_point(env.peak_flop_per_s, env.peak_bytes_per_s)
    xs = [p[0] for p in points]
    lo, hi = min(min(xs), ridge) / 3, max(max(xs), ridge) * 3
    ax.plot([lo, ridge], [lo * env.peak_bytes_per_s, env.peak_flop_per_s], color="black")
    ax.plot([ridge, hi], [env.peak_flop_per_s] * 2, color="black")
    ax.axvline(ridge, color="grey", linestyle=":", linewidth=1)
    ax.text(ridge, env.peak_flop_per_s * 1.15, f" ridge {ridge:,.1f} flop/B", fontsize=8)
    ax.text(
        lo * 1.2,
        lo * 1.2 * env.peak_bytes_per_s * 1.3,
        f"{env.peak_bytes_per_s / 1e9:,.1f} GB/s",
        fontsize=8,
        rotation=30,
    )
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlim(lo, hi)
    ax.set_xlabel("arithmetic intensity (float ops per byte accessed, log)")
    ax.set_ylabel("achieved FLOP/s (isolated, log)")
    ax.set_title(
        f"roofline: peak {env.peak_flop_per_s / 1e9:,.1f} GFLOP/s (matmul), bandwidth "
        f"{env.peak_bytes_per_s / 1e9:,.1f} GB/s (STREAM)",
        fontsize=10,
    )
    ax.grid(alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="lower right", ncol=2)


_METHODS = tuple((m.label, m.field, m.row_us) for m in TIMING_METHODS)


def _methods(ax, report: Report) -> None:
    """Horizontal bars: each timing method for the METHOD_ROWS longest rows in isolation."""
    rows = sorted((r for r in report.layers if r.time_us), key=lambda r: -r.time_us.median)
    rows = rows[:METHOD_ROWS][::-1]  # longest at the top
    if not rows:
        _no_data(ax, "not measured (--no-timing)")
        return
    step = 0.7 / (len(_METHODS) - 1)
    for k, ((label, total_field, value), marker) in enumerate(zip(_METHODS, "os^D")):
        total = getattr(report.totals, total_field)
        pairs = [(value(r), i + 0.35 - k * step) for i, r in enumerate(rows) if value(r)]
        suffix = "" if total is None else f": Σ rows {total:,.0f} µs"
        if pairs:
            ax.scatter(*zip(*pairs), marker=marker, s=28, label=label + suffix, zorder=3)
    for i in range(len(rows)):
        ax.axhline(i - 0.5, color="lightgrey", linewidth=0.5)
    ax.set_yticks(range(len(rows)))
    ax.set_yticklabels([r.label for r in rows], fontsize=8)
    ax.set_ylim(-0.5, len(rows) + 1.6)  # room for the legend above the rows
    ax.set_xscale("log")
    ax.set_xlabel("time per execution (µs, log)")
    ax.set_title(
        f"timing methods, {len(rows)} longest rows in isolation "
        "(fused rows: no as-optimized point)",
        fontsize=10,
    )
    ax.grid(axis="x", alpha=0.3, which="both")
    ax.legend(fontsize=8, loc="upper center", ncol=2)
