"""Throughput: float ops per second of every row and of the whole model, against a peak.

`flop_per_s` is a rate: a row's float ops (a count; a multiply-add is 2) divided by its isolated
median time. The peak is this machine's attainable rate, measured once per run on a large matmul
in the rows' compute dtype (float16 for a mixed_float16 model) timed by the very method the rows
are timed with (`timing.SegmentTimer`), so `peak_fraction` = row rate / peak compares like with
like. The peak is a median, not a best case, so a row can come out slightly above 1.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from submodel_profiler.report import LayerRow, Report, Totals
from submodel_profiler.timing import Segment, SegmentTimer, TimingSettings

PEAK_MATMUL_SIZE_CPU = 1024  # ~2.1 GFLOP per run: tens of ms on a few cores
PEAK_MATMUL_SIZE_GPU = 4096  # ~137 GFLOP per run: large enough to saturate a data-centre GPU


@dataclass(frozen=True)
class Peak:
    """Attainable float ops per second and how they were measured."""

    flop_per_s: float
    method: str


def matmul_flops(n: int) -> int:
    """Float ops of [n, n] @ [n, n]: n² outputs, n multiply-adds each, 2 float ops each."""
    return 2 * n**3


def measure_peak(
    settings: TimingSettings = TimingSettings(), size: int | None = None, dtype: str = "float32"
) -> Peak | None:
    """Time a `size`×`size` matmul of `dtype` in-graph (like the rows) and return its rate.

    Args:
        settings: repeats, tolerance and budget, normally the run's own timing settings.
        size: matrix size; default PEAK_MATMUL_SIZE_GPU on a GPU, else PEAK_MATMUL_SIZE_CPU.
        dtype: the rows' compute dtype ("float32", "float16", "bfloat16").

    Returns None (peak unknown) if Ctrl-C stopped the measurement or it took no measurable time.
    """
    import tensorflow as tf

    n = size or _default_size(tf)
    spec = tf.TensorSpec((n, n), tf.as_dtype(dtype))
    segment = Segment(lambda a, b: tf.linalg.matmul(a, b), (spec, spec))
    ((stats,),) = SegmentTimer(settings).time([[segment]])
    if stats is None or stats.median <= 0:
        return None
    tf32 = (
        dtype == "float32"
        and tf.config.list_physical_devices("GPU")
        and (tf.config.experimental.tensor_float_32_execution_enabled())
    )
    method = (
        f"{dtype} matmul {n}x{n} @ {n}x{n}, {matmul_flops(n):,} float ops, in-graph "
        f"median of {stats.repeats} runs{'; TF32 allowed' if tf32 else ''}"
    )
    return Peak(matmul_flops(n) / (stats.median * 1e-6), method)


def compute_dtype(layers) -> str:
    """The float dtype most of the rows' float ops run in (their inputs' dtype), float32 when
    no row says."""
    work: dict = {}
    for row in layers:
        floats = [d for d in row.input_dtypes if d in ("float16", "bfloat16", "float32", "float64")]
        if floats:
            work[floats[0]] = work.get(floats[0], 0) + (row.flops or 0)
    return max(work, key=work.get) if work and any(work.values()) else "float32"


def _default_size(tf) -> int:
    return PEAK_MATMUL_SIZE_GPU if tf.config.list_physical_devices("GPU") else PEAK_MATMUL_SIZE_CPU


def rate(flops: int | None, time_us: float | None) -> float | None:
    """Float ops per second; None without a count, without a time, or for a zero time."""
    if flops is None or not time_us or time_us <= 0:
        return None
    return flops / (time_us * 1e-6)


def fraction(value: float | None, peak: float | None) -> float | None:
    return None if value is None or not peak else value / peak


def add_throughput(report: Report, peak: Peak | None) -> Report:
    """A copy of `report` with rows' and totals' flop_per_s and peak_fraction, and the peak."""
    peak_rate = None if peak is None else peak.flop_per_s
    layers = tuple(_row(r, peak_rate) for r in report.layers)
    environment = dataclasses.replace(
        report.environment, peak_flop_per_s=peak_rate, peak_method=peak and peak.method
    )
    complete = not report.cross_check.uncounted_ops
    return dataclasses.replace(
        report,
        layers=layers,
        environment=environment,
        totals=_totals(report.totals, peak_rate, complete),
    )


def _row(row: LayerRow, peak: float | None) -> LayerRow:
    """A rate of a lower-bound count (a row with uncounted ops) would mislead: left out."""
    value = None if row.uncounted_ops else rate(row.flops, row.time_median_us)
    return dataclasses.replace(row, flop_per_s=value, peak_fraction=fraction(value, peak))


def _totals(totals: Totals, peak: float | None, complete: bool) -> Totals:
    whole = totals.whole_model_time_us
    value = rate(totals.whole_graph_flops, whole.median if whole and complete else None)
    return dataclasses.replace(totals, flop_per_s=value, peak_fraction=fraction(value, peak))


def add_roofline(report: Report, bandwidth) -> Report:
    """A copy of `report` with the measured bandwidth (`bandwidth.Bandwidth` or None) in its
    environment and each row's bytes_per_s, bound and roofline_fraction (roofline.py), against
    the peaks in the environment; call after add_throughput."""
    from submodel_profiler import roofline

    env = dataclasses.replace(
        report.environment,
        peak_bytes_per_s=bandwidth and bandwidth.bytes_per_s,
        bandwidth_method=bandwidth and bandwidth.method,
    )
    flop_peak, byte_peak = env.peak_flop_per_s, env.peak_bytes_per_s
    ridge = roofline.ridge_point(flop_peak, byte_peak)

    def row(r: LayerRow) -> LayerRow:
        x = r.arithmetic_intensity
        return dataclasses.replace(
            r,
            bytes_per_s=roofline.bytes_per_s(r.bytes_accessed, r.time_median_us),
            bound=roofline.bound(x, ridge),
            roofline_fraction=roofline.roofline_fraction(r.flop_per_s, x, flop_peak, byte_peak),
        )

    return dataclasses.replace(report, environment=env, layers=tuple(row(r) for r in report.layers))
