"""Renderers turn a Report (or a comparison or batch sweep of reports) into text, returned as
a string; they never measure. `render` picks one by format. The modules: `table` (the
human-readable report), `columns` (the table's columns), `csv_report` and `json_report` (the
same report as CSV or JSON), `comparison` (two reports side by side), `sweep` (one report per
batch size) and `formatting` (the number, shape and prose helpers they share).
"""

from __future__ import annotations

from submodel_profiler.renderers.columns import (
    COLUMN_KEYS,
    COLUMNS,
    DEFAULT_COLUMNS,
    DEFAULT_NAME_WIDTH,
    WIDE_COLUMNS,
    Column,
)
from submodel_profiler.renderers.comparison import COMPARE_FORMATS, render_comparison
from submodel_profiler.renderers.csv_report import CSV_COLUMNS, render_csv
from submodel_profiler.renderers.formatting import FORMATS
from submodel_profiler.renderers.json_report import render_json
from submodel_profiler.renderers.sweep import SWEEP_CSV_COLUMNS, render_sweep
from submodel_profiler.renderers.table import render_table
from submodel_profiler.report import Report

__all__ = [
    "COLUMNS",
    "COLUMN_KEYS",
    "COMPARE_FORMATS",
    "CSV_COLUMNS",
    "DEFAULT_COLUMNS",
    "DEFAULT_NAME_WIDTH",
    "FORMATS",
    "SWEEP_CSV_COLUMNS",
    "WIDE_COLUMNS",
    "Column",
    "render",
    "render_comparison",
    "render_csv",
    "render_json",
    "render_sweep",
    "render_table",
]


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
