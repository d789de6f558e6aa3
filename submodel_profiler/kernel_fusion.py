"""Fusion insight: rows whose isolated time overstates what they cost inside the whole model.

TF's optimizer fuses a Conv2D with its BatchNormalization and activation, folds constants and
merges element-wise ops; a sub-model measured alone pays for its own kernel launch and a full
round trip of its tensor through memory. A row is flagged when
  * `fused_into`: as optimized, its work runs inside a neighbour's node (step stats), or
  * `isolated_slower`: its isolated median is at least FUSION_RATIO times its in-graph (step
    stats, as optimized) time, and at least ABSOLUTE_TOLERANCE_US more.
These rows are where Σ isolated times and the whole model's time part ways (the additivity gap).
"""

from __future__ import annotations

import dataclasses

from submodel_profiler.report import LayerRow, Report
from submodel_profiler.timing import ABSOLUTE_TOLERANCE_US

FUSION_RATIO = 3.0  # isolated / in-graph time at or above which a row is flagged
FUSED_INTO, ISOLATED_SLOWER = "fused_into", "isolated_slower"


def isolated_over_in_graph(row: LayerRow) -> float | None:
    """Isolated median ÷ in-graph (as optimized) time; None when either is missing or 0."""
    if row.time_us is None or not row.in_graph_time_us:
        return None
    return row.time_us.median / row.in_graph_time_us


def fusion_flag(row: LayerRow) -> str | None:
    """FUSED_INTO, ISOLATED_SLOWER or None (see the module docstring)."""
    if row.fused_into:
        return FUSED_INTO
    if row.time_us is None or row.in_graph_time_us is None:
        return None
    excess = row.time_us.median - row.in_graph_time_us
    ratio = isolated_over_in_graph(row)
    slower = ratio is None or ratio >= FUSION_RATIO  # None here: in-graph time 0
    return ISOLATED_SLOWER if slower and excess >= ABSOLUTE_TOLERANCE_US else None


def flag_fusion(report: Report) -> Report:
    """A copy of `report` with every row's fusion_flag and isolated_over_in_graph set."""
    layers = tuple(
        dataclasses.replace(
            r, fusion_flag=fusion_flag(r), isolated_over_in_graph=isolated_over_in_graph(r)
        )
        for r in report.layers
    )
    return dataclasses.replace(report, layers=layers)
