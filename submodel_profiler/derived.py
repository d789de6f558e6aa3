"""Fields derived from the measurements: throughput, fusion flags, the per-type summary.

`add_derived_fields` is pure: a Report and a measured peak in, a Report out. `profile_model`
measures the peak (throughput.measure_peak) and ends with it.
"""

from __future__ import annotations

from submodel_profiler.kernel_fusion import flag_fusion
from submodel_profiler.report import Report
from submodel_profiler.summaries import add_summary_by_type
from submodel_profiler.throughput import Peak, add_throughput


def add_derived_fields(report: Report, peak: Peak | None) -> Report:
    """Rows' and totals' flop_per_s / peak_fraction, fusion flags and summary_by_type."""
    return add_summary_by_type(flag_fusion(add_throughput(report, peak)))
