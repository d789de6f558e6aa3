"""Roofline arithmetic (Williams, Waterman and Patterson, 2009): pure functions, no TensorFlow.

A computation of arithmetic intensity I (float ops per byte of memory traffic) can run no
faster than its roof, min(peak FLOP/s, I × peak B/s): below the ridge point (peak FLOP/s ÷
peak B/s) memory bandwidth bounds it, above it the float-op peak does. Units: float ops (a
multiply-add is 2, as everywhere in this package), bytes, seconds and microseconds as named;
rates are per second. Every function returns None rather than guess when an input is missing
(None), so a row without a count, a byte total or a time passes through as "unknown".
"""

from __future__ import annotations

from typing import Literal

Bound = Literal["memory", "compute"]


def arithmetic_intensity(flops: float | None, n_bytes: float | None) -> float | None:
    """Intensity = float ops ÷ bytes moved (flop per byte); None when either is missing or
    n_bytes ≤ 0."""
    if flops is None or n_bytes is None or n_bytes <= 0:
        return None
    return flops / n_bytes


def ridge_point(peak_flop_per_s: float | None, peak_bytes_per_s: float | None) -> float | None:
    """Ridge = peak FLOP/s ÷ peak B/s (flop per byte), the intensity where the two roofs meet;
    None when either is missing or not positive."""
    if not _positive(peak_flop_per_s) or not _positive(peak_bytes_per_s):
        return None
    return peak_flop_per_s / peak_bytes_per_s


def bound(intensity: float | None, ridge: float | None) -> Bound | None:
    """ "memory" when intensity < ridge, else "compute" (at the ridge both roofs are equal);
    None when either is missing."""
    if intensity is None or ridge is None:
        return None
    return "memory" if intensity < ridge else "compute"


def roof_flop_per_s(
    intensity: float | None, peak_flop_per_s: float | None, peak_bytes_per_s: float | None
) -> float | None:
    """Roof = min(peak FLOP/s, intensity × peak B/s), the attainable rate at this intensity;
    None when any input is missing."""
    if intensity is None or peak_flop_per_s is None or peak_bytes_per_s is None:
        return None
    return min(peak_flop_per_s, intensity * peak_bytes_per_s)


def roofline_fraction(
    flop_per_s: float | None,
    intensity: float | None,
    peak_flop_per_s: float | None,
    peak_bytes_per_s: float | None,
) -> float | None:
    """Fraction = achieved FLOP/s ÷ roof (1 = on the roof; a median can exceed it slightly);
    None when any input is missing or the roof is 0 or below."""
    roof = roof_flop_per_s(intensity, peak_flop_per_s, peak_bytes_per_s)
    if flop_per_s is None or roof is None or roof <= 0:
        return None
    return flop_per_s / roof


def bytes_per_s(n_bytes: float | None, time_us: float | None) -> float | None:
    """Rate = bytes ÷ (time_us · 10⁻⁶ s); None when either is missing or time_us ≤ 0."""
    if n_bytes is None or time_us is None or time_us <= 0:
        return None
    return n_bytes / (time_us * 1e-6)


def _positive(value: float | None) -> bool:
    return value is not None and value > 0
