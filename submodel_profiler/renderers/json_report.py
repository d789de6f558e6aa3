"""A Report as JSON: the report's own schema (report.py), indented."""

from __future__ import annotations

from submodel_profiler.report import Report


def render_json(report: Report) -> str:
    return report.to_json(indent=2) + "\n"
