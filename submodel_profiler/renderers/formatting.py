"""What the renderers share: the output format names, and small helpers that write numbers,
shapes, percentages and µs (blank or n/a where a value is None), round CSV figures, wrap prose
lines under the tables and say how many rows a table shows."""

from __future__ import annotations

from submodel_profiler.report import Report

FORMATS = ("table", "json", "csv")  # of a report, and of a batch sweep

TEXT_WIDTH = 120  # prose lines under the tables are wrapped to this width
NO_BREAK = "\u00a0"  # textwrap does not break lines at a no-break space


def wrap(line: str) -> str:
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


def shown_line(report: Report, shown: int, sort: str) -> list[str]:
    if shown == len(report.layers) and sort == "order":
        return []
    order = "execution order" if sort == "order" else f"{sort}, largest first"
    return [f"(showing {shown} of {len(report.layers)} rows, by {order}; totals cover all rows)"]


def shape(shape) -> str:
    return "(" + ",".join(str(d) for d in shape) + ")"


def integer(value) -> str:
    return "" if value is None else f"{value:,}"


def total(value) -> str:
    """A total in prose: `n/a` where there is none (the whole model could not be traced)."""
    return "n/a" if value is None else f"{value:,}"


def percent(part, whole) -> str:
    return f"{100.0 * part / whole:.1f}%" if whole else ""


def us(value) -> str:
    return "" if value is None else f"{value:,.1f}"


MB = 1e6  # the unit of bytes in the table and footers: MB = 10^6 bytes (torchinfo's unit)


def megabytes(value) -> str:
    """Bytes in MB (10^6 bytes): 2 decimals, 3 significant digits below 1 MB (0.000064); ""
    when missing."""
    if value is None:
        return ""
    mb = value / MB
    if mb >= 1 or mb == 0:
        return f"{mb:,.2f}"
    return f"{float(f'{mb:.3g}'):.9f}".rstrip("0")  # 3 significant digits, no exponent


def gflops(value) -> str:
    return "" if value is None else f"{value / 1e9:,.2f}"


def fraction(value) -> str:
    return "" if value is None else f"{100.0 * value:.1f}%"


def two_decimals(value) -> str:
    return "n/a" if value is None else f"{value:.2f}"


def rounded(value):
    return None if value is None else round(value, 3)


def row_table(body, headers) -> str:
    """A table of rows whose first three columns are #, name and type (left-aligned after the
    index) and whose other columns are figures (right-aligned)."""
    from tabulate import tabulate

    return tabulate(
        body,
        headers=headers,
        tablefmt="simple",
        disable_numparse=True,
        colalign=("right", "left", "left") + ("right",) * (len(headers) - 3),
    )
