"""Batch-size sweep: one report per batch size, and per-sample float ops and time per row.

The sweep's JSON is `{"schema_version": SCHEMA_VERSION, "batch_sizes": [...], "sweep": [...],
"per_sample": [...]}`; each entry of `sweep` is a complete single report (docs/schema.md).
Per sample means divided by the batch size: a row's float ops per sample stay constant when it
scales linearly with the batch, and its time per sample falls as larger batches amortize
per-call costs. The machine's peak is measured once for the whole sweep.
"""

from __future__ import annotations

import json
from dataclasses import dataclass

from submodel_profiler.errors import UsageError
from submodel_profiler.report import SCHEMA_VERSION, row_label


@dataclass(frozen=True)
class PerSampleRow:
    """One row across the sweep, in batch-size order: float ops and isolated µs per sample."""

    name: str
    call_index: int
    type: str
    flops: tuple  # per batch size: flops / batch_size, None where missing
    time_us: tuple  # per batch size: isolated median / batch_size, None where not timed

    @property
    def label(self) -> str:
        return row_label(self.name, self.call_index)


@dataclass(frozen=True)
class Sweep:
    reports: tuple  # of Report, one per batch size, in the order asked for
    schema_version: int = SCHEMA_VERSION

    @property
    def batch_sizes(self) -> tuple:
        return tuple(r.model.batch_size for r in self.reports)

    def to_dict(self) -> dict:
        return {
            "schema_version": self.schema_version,
            "batch_sizes": list(self.batch_sizes),
            "sweep": [r.to_dict() for r in self.reports],
            "per_sample": [_plain_row(r) for r in per_sample_rows(self)],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _plain_row(row: PerSampleRow) -> dict:
    return {
        "name": row.name,
        "call_index": row.call_index,
        "type": row.type,
        "flops_per_sample": list(row.flops),
        "time_us_per_sample": list(row.time_us),
    }


def parse_batch_sizes(text: str) -> tuple:
    """ "1,8,32" -> (1, 8, 32): distinct positive integers.

    Raises:
        UsageError: anything else, naming --batch-sizes.
    """
    try:
        sizes = tuple(int(part) for part in text.split(","))
    except ValueError:
        sizes = ()
    if not sizes or any(s < 1 for s in sizes) or len(set(sizes)) != len(sizes):
        raise UsageError(
            "--batch-sizes must be distinct positive integers separated by commas, "
            f"e.g. 1,8,32. Received: {text!r}."
        )
    return sizes


def per_sample(value, batch_size: int):
    return None if value is None else value / batch_size


def per_sample_rows(sweep: Sweep) -> tuple:
    """Rows of the first report, matched by (name, call_index) in every other report."""
    if not sweep.reports:
        return ()
    indexed = [{(r.name, r.call_index): r for r in rep.layers} for rep in sweep.reports]
    rows = []
    for row in sweep.reports[0].layers:
        found = [rows_of.get((row.name, row.call_index)) for rows_of in indexed]
        flops = tuple(
            None if r is None else per_sample(r.flops, b) for r, b in zip(found, sweep.batch_sizes)
        )
        times = tuple(
            None if r is None or r.time_us is None else per_sample(r.time_us.median, b)
            for r, b in zip(found, sweep.batch_sizes)
        )
        rows.append(PerSampleRow(row.name, row.call_index, row.type, flops, times))
    return tuple(rows)


def profile_sweep(
    model,
    batch_sizes,
    *,
    timing: bool = True,
    timing_settings=None,
    measured_bandwidth=None,
    **kwargs,
) -> Sweep:
    """`profile_model` once per batch size; the peak and the bandwidth are measured once and shared
    (the bandwidth only if not `measured_bandwidth`, as for `profile_model`).

    Other keyword arguments are passed on to `profile_model`. Raises what it raises.
    """
    from submodel_profiler.derived import add_derived_fields
    from submodel_profiler.profiler import measure_machine, profile_model
    from submodel_profiler.throughput import compute_dtype
    from submodel_profiler.timing import TimingSettings

    settings = timing_settings or TimingSettings()
    reports = []
    for b in batch_sizes:
        reports.append(
            profile_model(
                model,
                batch_size=b,
                timing=timing,
                timing_settings=settings,
                measure_peak=False,
                **kwargs,
            )
        )
        if reports[-1].status == "interrupted":  # Ctrl-C: keep what was measured, stop here
            break
    interrupted = reports[-1].status == "interrupted"
    dtype = compute_dtype(reports[-1].layers)
    peak = bandwidth = None
    if timing and not interrupted:
        # errors: null fields, as before
        peak, bandwidth, _ = measure_machine(settings, dtype, measured_bandwidth)
    return Sweep(tuple(add_derived_fields(r, peak, bandwidth) for r in reports))
