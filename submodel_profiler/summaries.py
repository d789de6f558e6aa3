"""Summaries of a report: rows sorted and cut to the top N, and totals per layer type."""

from __future__ import annotations

import dataclasses

from submodel_profiler.report import LayerRow, Report, Totals, TypeSummary
from submodel_profiler.roofline import arithmetic_intensity

SORT_KEYS = ("order", "flops", "time", "params")


def _sort_value(row: LayerRow, key: str) -> float:
    if key == "flops":
        return row.flops or 0
    if key == "time":
        return -1.0 if row.time_median_us is None else row.time_median_us
    return row.params


def ordered_rows(report: Report, sort: str = "order", top: int | None = None) -> list:
    """(index, row) pairs: execution order, or by float ops / isolated time / params, largest
    first (ties keep execution order); the first `top` only when given.

    Raises:
        ValueError: unknown `sort` key or `top` < 1.
    """
    if sort not in SORT_KEYS:
        raise ValueError(f"Unknown sort key. Expected one of {SORT_KEYS}. Received: {sort!r}.")
    if top is not None and top < 1:
        raise ValueError(f"top must be at least 1. Received: {top!r}.")
    pairs = list(enumerate(report.layers))
    if sort != "order":
        pairs.sort(key=lambda p: -_sort_value(p[1], sort))  # stable: ties keep their order
    return pairs if top is None else pairs[:top]


def summary_by_type(layers, totals: Totals) -> tuple:
    """One TypeSummary per (type, kind), by float ops then time, descending.

    Σ flops over the summaries equals totals.flops, Σ time_us equals totals.time_us.
    """
    groups: dict = {}
    for row in layers:
        groups.setdefault((row.type, row.kind), []).append(row)
    summaries = [_summarize(t, k, rows, totals) for (t, k), rows in groups.items()]
    return tuple(sorted(summaries, key=lambda s: (-s.flops, -(s.time_us or 0.0))))


def _summarize(type_: str, kind: str, rows: list, totals: Totals) -> TypeSummary:
    from submodel_profiler.throughput import rate

    flops = sum(r.flops or 0 for r in rows)
    macs = sum(r.macs or 0 for r in rows)
    medians = [r.time_us.median for r in rows if r.time_us is not None]
    time_us = float(sum(medians)) if medians else None
    accessed = sum(r.bytes_accessed or 0 for r in rows)
    return TypeSummary(
        type=type_,
        kind=kind,
        count=len(rows),
        flops=flops,
        flops_share=flops / totals.flops if totals.flops else 0.0,
        macs=macs,
        macs_share=macs / totals.macs if totals.macs else 0.0,
        time_us=time_us,
        time_share=time_us / totals.time_us if time_us is not None and totals.time_us else None,
        flop_per_s=None if any(r.uncounted_ops for r in rows) else rate(flops, time_us),
        bytes_accessed=accessed,
        op_bytes=sum(r.op_bytes or 0 for r in rows),
        arithmetic_intensity=arithmetic_intensity(flops, accessed),
    )


def add_summary_by_type(report: Report) -> Report:
    return dataclasses.replace(
        report, summary_by_type=summary_by_type(report.layers, report.totals)
    )
