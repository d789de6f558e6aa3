"""Fields derived from the measurements: throughput, the roofline, fusion flags, the per-type
summary.

`add_derived_fields` is pure: a Report, a measured peak and bandwidth in, a Report out.
`profile_model` measures the peak (throughput.measure_peak) and the bandwidth
(bandwidth.measure_bandwidth) and ends with it.
"""

from __future__ import annotations

from submodel_profiler.kernel_fusion import flag_fusion
from submodel_profiler.report import Report
from submodel_profiler.summaries import add_summary_by_type
from submodel_profiler.throughput import Peak, add_roofline, add_throughput


def add_derived_fields(report: Report, peak: Peak | None, bandwidth=None) -> Report:
    """Rows' and totals' flop_per_s / peak_fraction, the roofline (rows' bytes_per_s, bound,
    roofline_fraction), fusion flags and summary_by_type. `bandwidth`: a
    `bandwidth.Bandwidth` or None."""
    report = add_roofline(add_throughput(report, peak), bandwidth)
    return add_summary_by_type(flag_fusion(report))
