"""Fields derived from the measurements: throughput, fusion flags, the per-type summary.

`add_derived_fields` is pure (a Report and a peak in, a Report out); `finish_report` also
measures the peak, once, when timing is on. `profile_model` ends with `finish_report`.
"""

from __future__ import annotations

from submodel_profiler.fusion import flag_fusion
from submodel_profiler.report import Report
from submodel_profiler.summaries import add_summary_by_type
from submodel_profiler.throughput import Peak, add_throughput, measure_peak
from submodel_profiler.timing import TimingSettings


def add_derived_fields(report: Report, peak: Peak | None) -> Report:
    """Rows' and totals' flop_per_s / peak_fraction, fusion flags and summary_by_type."""
    return add_summary_by_type(flag_fusion(add_throughput(report, peak)))


def finish_report(report: Report, peak_settings: TimingSettings | None) -> Report:
    """Measure the peak with `peak_settings`, then add the derived fields. The peak is skipped
    when `peak_settings` is None or the run was interrupted (Ctrl-C during timing)."""
    skip = peak_settings is None or report.status == "interrupted"
    peak = None if skip else measure_peak(peak_settings)
    return add_derived_fields(report, peak)
