"""Report JSON contract, renderers, and rows-sum-to-totals."""

from __future__ import annotations

import csv
import dataclasses
import io
import json

import pytest

from submodel_profiler import SCHEMA_VERSION, Report, profile_model
from submodel_profiler.renderers import render, render_csv, render_table

from conftest import FAST_TIMING


@pytest.fixture(scope="module")
def timed_report(tiny_cnn):
    # No sampling budget: every chunk stops after the same min_repeats samples, never one
    # (a chunk stable early) sooner than the rest because the budget was not yet spent.
    return profile_model(tiny_cnn, timing_settings=dataclasses.replace(FAST_TIMING, budget_s=0.0))


def test_json_round_trip(timed_report):
    text = timed_report.to_json()
    again = Report.from_json(text)
    assert again == timed_report
    assert again.to_json() == text


def test_json_has_the_documented_keys(timed_report):
    data = json.loads(render(timed_report, "json"))
    assert data["schema_version"] == SCHEMA_VERSION
    assert set(data) >= {"model", "environment", "settings", "layers", "totals", "cross_check"}
    assert set(data["model"]) >= {"name", "source", "batch_size", "inputs"}
    assert set(data["model"]["inputs"][0]) == {"name", "shape", "dtype"}
    assert set(data["environment"]) >= {"python", "tensorflow", "keras", "platform", "device"}
    assert set(data["settings"]) >= {"max_repeats", "warmup"}
    row_keys = {
        "name",
        "type",
        "kind",
        "call_index",
        "ghost_ops",
        "input_shapes",
        "output_shapes",
        "params",
        "flops",
        "whole_graph_flops",
        "time_us",
        "error",
    }
    for row in data["layers"]:
        assert set(row) >= row_keys
        assert set(row["time_us"]) >= {"median", "min", "max", "iqr", "repeats"}
    assert set(data["totals"]) >= {"flops", "whole_graph_flops", "unattributed_flops", "time_us"}


def test_unknown_schema_version_is_refused(timed_report):
    data = timed_report.to_dict()
    data["schema_version"] = 99
    with pytest.raises(ValueError, match="schema_version"):
        Report.from_dict(data)


# tiny_cnn at batch 1 (conftest): image 16x16x3 → Conv2D(8, 3, same) → BN → ReLU → GAP → Dense(4).
H, W, C_IN, C, K, UNITS = 16, 16, 3, 8, 3, 4
TINY_CNN_FLOPS = {
    "conv": 2 * K * K * C_IN * C * H * W + C * H * W,  # multiply-adds + bias
    # x · scale + offset per element; per channel: var + eps, rsqrt (TF: 2), · gamma,
    # mean · scale, beta − that
    "bn": 2 * H * W * C + 6 * C,
    "relu": H * W * C,  # 1 per element (our rule; TF counts 0)
    "gap": H * W * C,  # TF's Mean: 1 per input element
    "dense": 2 * C * UNITS + UNITS,  # (1, C) @ (C, UNITS) + bias
}
TINY_CNN_MACS = {"conv": K * K * C_IN * C * H * W, "dense": C * UNITS}


def test_rows_and_totals_match_the_formulas(timed_report):
    t = timed_report.totals
    assert {r.name: r.flops for r in timed_report.layers} == TINY_CNN_FLOPS
    assert {r.name: r.macs for r in timed_report.layers} == {
        **dict.fromkeys(TINY_CNN_FLOPS, 0),
        **TINY_CNN_MACS,
    }
    assert t.flops == t.whole_graph_flops == sum(TINY_CNN_FLOPS.values())
    assert t.tf_flops == t.whole_graph_tf_flops == sum(TINY_CNN_FLOPS.values()) - H * W * C
    assert t.macs == t.whole_graph_macs == sum(TINY_CNN_MACS.values())
    assert t.unattributed_flops == t.unattributed_tf_flops == t.unattributed_macs == 0


def test_rows_and_the_whole_model_are_sampled_together(timed_report):
    # All segments are sampled in the same loop iterations: every row and the whole model have
    # the same number of samples, within the settings' bounds, and an overhead was measured.
    repeats = {r.name: r.time_us.repeats for r in timed_report.layers}
    assert set(repeats) == set(TINY_CNN_FLOPS)
    whole = timed_report.totals.whole_model_time_us.repeats
    assert set(repeats.values()) == {whole}
    assert FAST_TIMING.min_repeats <= whole <= FAST_TIMING.max_repeats
    assert timed_report.settings.overhead_us is not None


def test_csv_parses_and_matches_rows(timed_report):
    parsed = list(csv.DictReader(io.StringIO(render_csv(timed_report))))
    assert [r["name"] for r in parsed] == [r.name for r in timed_report.layers]
    assert [int(r["flops"]) for r in parsed] == [r.flops for r in timed_report.layers]
    medians = [float(r["time_us_median"]) for r in parsed]
    assert medians == pytest.approx([r.time_us.median for r in timed_report.layers], abs=1e-3)


def test_table_shows_rows_totals_and_verdict(timed_report):
    text = render_table(timed_report)
    for row in timed_report.layers:
        assert row.name in text
    assert f"{timed_report.totals.whole_graph_flops:,}" in text
    assert "Cross-check: OK" in text
    assert "a multiply-add = 2 float ops" in text
    assert "every arithmetic op is counted" in text
    assert "relu*" not in text  # Relu is counted by our rule: not a lower bound


def test_table_marks_disagreement(timed_report):
    import dataclasses

    rows = list(timed_report.layers)
    rows[0] = dataclasses.replace(rows[0], whole_graph_flops=rows[0].flops + 1)
    broken = dataclasses.replace(
        timed_report,
        layers=tuple(rows),
        cross_check=dataclasses.replace(
            timed_report.cross_check, flops_exact=False, mismatched_rows=(rows[0].label,)
        ),
    )
    text = render_table(broken)
    assert "≠" in text and "Cross-check: FAILED" in text


def test_status_and_unknown_keys_survive_the_round_trip(timed_report):
    import dataclasses

    partial = dataclasses.replace(timed_report, status="partial")
    assert Report.from_json(partial.to_json()).status == "partial"
    data = timed_report.to_dict()
    data["a_key_from_a_newer_tool"] = 1  # same schema_version, more keys: still readable
    data["layers"][0]["another_new_key"] = "x"
    data["totals"]["yet_another"] = 2.0
    assert Report.from_dict(data) == timed_report


def test_table_without_additivity_or_times_still_renders(timed_report):
    import dataclasses

    no_ratio = dataclasses.replace(
        timed_report, totals=dataclasses.replace(timed_report.totals, additivity=None)
    )
    assert "additivity (Σ rows / whole) n/a" in render_table(no_ratio)
    no_times = dataclasses.replace(
        timed_report,
        totals=dataclasses.replace(timed_report.totals, time_us=None),
        cross_check=dataclasses.replace(
            timed_report.cross_check, method_errors={"callback": "EagerTimingError: refused"}
        ),
    )
    assert "The callback cross-check did not run: EagerTimingError: refused" in render_table(
        no_times
    )


def test_exit_code_precedence(timed_report):
    import dataclasses

    from submodel_profiler.cli import (
        EXIT_CROSS_CHECK_FAILED,
        EXIT_INTERRUPTED,
        EXIT_OK,
        EXIT_PARTIAL,
        exit_code,
    )

    check = timed_report.cross_check
    mismatch = dataclasses.replace(check, flops_exact=False, mismatched_rows=("conv",))
    failed = dataclasses.replace(check, flops_exact=False, failed_rows=("bn",))
    cases = [
        (dict(), EXIT_OK),
        (dict(status="partial", cross_check=failed), EXIT_PARTIAL),
        (dict(status="partial", cross_check=mismatch), EXIT_CROSS_CHECK_FAILED),
        (dict(status="interrupted", cross_check=mismatch), EXIT_INTERRUPTED),
    ]
    for change, expected in cases:
        assert exit_code(dataclasses.replace(timed_report, **change)) == expected, change


def test_rank_correlation_is_spearmans_with_ties():
    """The tool's numpy Spearman against scipy's, ties included."""
    import numpy as np
    from scipy.stats import spearmanr

    from submodel_profiler.cross_checks import spearman

    rng = np.random.default_rng(0)
    for _ in range(20):
        a = rng.integers(0, 6, 15).astype(float)  # many ties
        b = a + rng.normal(0, 2, 15)
        assert spearman(a, b) == pytest.approx(float(spearmanr(a, b).statistic), abs=1e-12)
    assert spearman([1, 2, 3], [30, 20, 10]) == pytest.approx(-1.0)
