"""Research outputs: throughput, per-type summary, fusion flags, --top/--sort, plots, compare,
batch sweeps. CLI behaviour is tested as users run it, in a subprocess."""

from __future__ import annotations

import dataclasses
import json
import struct
import sys

import pytest

from submodel_profiler import Report, profile_model
from submodel_profiler.derived import add_derived_fields
from submodel_profiler.kernel_fusion import FUSED_INTO, FUSION_RATIO, ISOLATED_SLOWER, fusion_flag
from submodel_profiler.report import SCHEMA_VERSION, LayerRow
from submodel_profiler.summaries import ordered_rows
from submodel_profiler.throughput import Peak, matmul_flops
from submodel_profiler.timing import TimeStats

from conftest import FAST_FLAGS, FAST_TIMING, run_cli

RATE_TOLERANCE = 1e-9  # relative; the rates are one division of stored values


@pytest.fixture(scope="module")
def timed_report(tiny_cnn):
    return profile_model(tiny_cnn, timing_settings=FAST_TIMING)


# --- throughput --------------------------------------------------------------------------------


def test_matmul_flops_formula():
    n = 7
    assert matmul_flops(n) == n * n * (2 * n)  # n² outputs, n multiply-adds of 2 float ops


def test_throughput_is_flops_over_median_time(timed_report):
    peak = timed_report.environment.peak_flop_per_s
    assert peak and peak > 0 and "matmul" in timed_report.environment.peak_method
    for row in timed_report.layers:
        expected = row.flops / (row.time_us.median * 1e-6) if row.time_us.median > 0 else None
        if row.uncounted_ops:  # a rate of a lower bound is left out
            expected = None
        assert row.flop_per_s == pytest.approx(expected, rel=RATE_TOLERANCE)
        if expected is not None:
            assert row.peak_fraction == pytest.approx(expected / peak, rel=RATE_TOLERANCE)
    t = timed_report.totals
    assert t.flop_per_s == pytest.approx(
        t.whole_graph_flops / (t.whole_model_time_us.median * 1e-6)
    )
    assert t.peak_fraction == pytest.approx(t.flop_per_s / peak)


def test_throughput_with_an_injected_peak(timed_report):
    again = add_derived_fields(timed_report, Peak(1e12, "injected"))
    assert again.environment.peak_flop_per_s == 1e12
    conv = next(r for r in again.layers if r.name == "conv")
    assert conv.peak_fraction == pytest.approx(conv.flop_per_s / 1e12)
    assert add_derived_fields(again, None).layers[0].peak_fraction is None


def test_no_timing_means_no_rates(tiny_cnn):
    report = profile_model(tiny_cnn, timing=False)
    assert report.environment.peak_flop_per_s is None
    assert all(r.flop_per_s is None and r.peak_fraction is None for r in report.layers)
    assert report.totals.flop_per_s is None


# --- per-type summary and ordering --------------------------------------------------------------


def test_summary_by_type_sums_to_the_totals(timed_report):
    summary = timed_report.summary_by_type
    assert sum(s.count for s in summary) == len(timed_report.layers)
    assert sum(s.flops for s in summary) == timed_report.totals.flops
    assert sum(s.time_us for s in summary) == pytest.approx(timed_report.totals.time_us)
    assert sum(s.flops_share for s in summary) == pytest.approx(1.0)
    assert sum(s.time_share for s in summary) == pytest.approx(1.0)
    assert [s.flops for s in summary] == sorted((s.flops for s in summary), reverse=True)


def test_summary_by_type_round_trips(timed_report):
    data = json.loads(timed_report.to_json())
    assert {
        "type",
        "kind",
        "count",
        "flops",
        "flops_share",
        "time_us",
        "time_share",
        "flop_per_s",
    } <= set(data["summary_by_type"][0])
    assert Report.from_dict(data) == timed_report


@pytest.mark.parametrize(
    "key, value",
    [
        ("flops", lambda r: r.flops),
        ("params", lambda r: r.params),
        ("time", lambda r: r.time_us.median),
    ],
)
def test_sorted_rows_are_largest_first(timed_report, key, value):
    pairs = ordered_rows(timed_report, key)
    values = [value(r) for _, r in pairs]
    assert values == sorted(values, reverse=True)
    assert sorted(i for i, _ in pairs) == list(range(len(timed_report.layers)))
    assert [i for i, _ in ordered_rows(timed_report, key, top=2)] == [i for i, _ in pairs[:2]]


# --- fusion flags -------------------------------------------------------------------------------


def _row(isolated, in_graph, fused_into=None) -> LayerRow:
    stats = None if isolated is None else TimeStats(isolated, isolated, isolated, 0.0, 3)
    return LayerRow(
        "r", "Conv2D", "layer", 0, time_us=stats, in_graph_time_us=in_graph, fused_into=fused_into
    )


def test_fusion_flag_rules():
    assert fusion_flag(_row(10.0, None, fused_into="conv")) == FUSED_INTO
    assert fusion_flag(_row(FUSION_RATIO * 100.0, 100.0)) == ISOLATED_SLOWER
    assert fusion_flag(_row(FUSION_RATIO * 100.0 - 1, 100.0)) is None
    assert fusion_flag(_row(0.5, 0.1)) is None  # 5× but under the 1 µs resolution
    assert fusion_flag(_row(5.0, 0.0)) == ISOLATED_SLOWER
    assert fusion_flag(_row(None, 10.0)) is None and fusion_flag(_row(10.0, None)) is None


def test_fusion_flags_show_in_table_and_json(timed_report):
    from submodel_profiler.renderers import WIDE_COLUMNS, render_table

    layers = list(timed_report.layers)
    layers[0] = dataclasses.replace(layers[0], in_graph_time_us=layers[0].time_us.median / 10)
    layers[1] = dataclasses.replace(layers[1], fused_into="conv", in_graph_time_us=None)
    report = add_derived_fields(dataclasses.replace(timed_report, layers=tuple(layers)), None)
    assert [r.fusion_flag for r in report.layers[:2]] == [ISOLATED_SLOWER, FUSED_INTO]
    assert json.loads(report.to_json())["layers"][0]["isolated_over_in_graph"] == pytest.approx(10)
    text = render_table(report, columns=WIDE_COLUMNS)
    assert "F 10.0×" in text and "F fused" in text and "additivity gap" in text


# --- CLI: table options and plot ----------------------------------------------------------------


def _png_size(path) -> tuple:
    with open(path, "rb") as f:
        head = f.read(24)
    assert head[:8] == b"\x89PNG\r\n\x1a\n", "not a PNG file"
    assert head[12:16] == b"IHDR"
    return struct.unpack(">II", head[16:24])


def test_cli_top_sort_and_plot(model_file, tmp_path):
    pytest.importorskip("matplotlib")
    png = tmp_path / "tiny.png"
    result = run_cli([model_file, *FAST_FLAGS, "--top", "2", "--sort", "flops", "--plot", str(png)])
    assert result.returncode == 0, result.stderr
    table = result.stdout.split("By type")[0]
    rows = [line.split()[1] for line in table.splitlines() if line[:3].strip().isdigit()]
    assert rows == ["conv", "bn"]  # the two largest float-op counts, largest first
    assert "showing 2 of 5 rows" in result.stdout
    assert "Throughput: whole model" in result.stdout
    width, height = _png_size(png)
    assert 800 <= width <= 3000 and 500 <= height <= 2000
    assert png.stat().st_size > 20_000  # drawn, not blank


def test_cli_research_usage_errors(model_file, tmp_path):
    for args, message in (
        (["--top", "0"], "--top"),
        (["--sort", "time", "--no-timing"], "--sort time"),
        (["--top", "3", "--format", "json"], "table only"),
        (["--batch-sizes", "1,x"], "--batch-sizes"),
        (["--plot", str(tmp_path / "fig.gif")], "--plot"),
    ):
        result = run_cli([model_file, *args])
        assert result.returncode == 2, (args, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_missing_matplotlib_is_a_usage_error(monkeypatch):
    from submodel_profiler.errors import UsageError
    from submodel_profiler.plots import require_matplotlib

    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import fails
    with pytest.raises(UsageError, match=r'pip install -e "\.\[plot\]"'):
        require_matplotlib()


def test_help_lists_the_research_flags():
    result = run_cli(["--help"])
    for flag in ("--top", "--sort", "--plot", "--batch-sizes"):
        assert flag in result.stdout
    result = run_cli(["compare", "--help"])
    assert result.returncode == 0 and "(name, call_index)" in result.stdout


# --- compare ------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def two_reports(tiny_cnn, tmp_path_factory):
    folder = tmp_path_factory.mktemp("reports")
    paths = []
    for batch in (1, 3):
        path = folder / f"b{batch}.json"
        path.write_text(profile_model(tiny_cnn, batch_size=batch, timing=False).to_json())
        paths.append(str(path))
    return paths


def test_compare_gives_the_batch_ratio_of_float_ops(two_reports, tmp_path):
    out = tmp_path / "cmp.json"
    result = run_cli(["compare", *two_reports, "--format", "json", "--output", str(out)])
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    rows = {r["name"]: r for r in data["rows"]}
    for name in ("conv", "dense"):  # float ops linear in the batch
        flops = rows[name]["flops"]
        assert flops["b"] == 3 * flops["a"] and flops["ratio"] == 3.0
        assert flops["delta"] == flops["b"] - flops["a"]
    assert data["totals"]["flops"]["a"] == sum(r["flops"]["a"] for r in data["rows"])
    assert data["only_in_a"] == [] and data["only_in_b"] == []
    table = run_cli(["compare", *two_reports])
    assert table.returncode == 0 and "3×" in table.stdout


def test_compare_lists_rows_in_one_report_only(two_reports, tmp_path):
    data = json.loads(open(two_reports[1]).read())
    data["layers"] = [r for r in data["layers"] if r["name"] != "gap"]
    edited = tmp_path / "edited.json"
    edited.write_text(json.dumps(data))
    result = run_cli(["compare", two_reports[0], str(edited)])
    assert result.returncode == 0, result.stderr
    assert "Only in A (1): gap" in result.stdout


def test_compare_refuses_an_unknown_schema_version(two_reports, tmp_path):
    data = json.loads(open(two_reports[0]).read())
    data["schema_version"] = 99
    future = tmp_path / "future.json"
    future.write_text(json.dumps(data))
    result = run_cli(["compare", two_reports[0], str(future)])
    assert result.returncode == 2
    assert "schema_version" in result.stderr and "Traceback" not in result.stderr


def test_a_version_1_report_reads_as_tf_counting_and_compare_warns(two_reports, tmp_path):
    data = json.loads(open(two_reports[0]).read())
    old = {**data, "schema_version": 1}  # version 1: flops was TF's count; no tf_flops, no macs
    old["settings"] = {k: v for k, v in data["settings"].items() if k != "counting"}
    old["layers"] = [
        {k: v for k, v in r.items() if "tf_flops" not in k and "macs" not in k}
        for r in data["layers"]
    ]
    report = Report.from_dict(old)
    assert report.settings.counting == "tf" and report.schema_version == SCHEMA_VERSION
    for row, raw in zip(report.layers, old["layers"]):
        assert row.tf_flops == raw["flops"] and row.macs is None
    path = tmp_path / "v1.json"
    path.write_text(json.dumps(old))
    result = run_cli(["compare", str(path), two_reports[0]])
    assert result.returncode == 0, result.stderr
    assert "different conventions" in result.stdout


# --- batch sweep --------------------------------------------------------------------------------


def test_sweep_cli_json_layout(model_file, tmp_path):
    out = tmp_path / "sweep.json"
    result = run_cli(
        [
            model_file,
            "--no-timing",
            "--batch-sizes",
            "1,2",
            "--format",
            "json",
            "--output",
            str(out),
        ]
    )
    assert result.returncode == 0, result.stderr
    data = json.loads(out.read_text())
    assert data["schema_version"] == SCHEMA_VERSION and data["batch_sizes"] == [1, 2]
    reports = [Report.from_dict(r) for r in data["sweep"]]
    assert [r.model.batch_size for r in reports] == [1, 2]
    conv = next(r for r in data["per_sample"] if r["name"] == "conv")
    assert conv["flops_per_sample"][0] == conv["flops_per_sample"][1]  # linear in the batch


def test_sweep_timed_table(tiny_cnn):
    from submodel_profiler.renderers import render_sweep
    from submodel_profiler.sweep import per_sample_rows, profile_sweep

    sweep = profile_sweep(
        tiny_cnn, (1, 2), timing_settings=FAST_TIMING, step_stats_runs=1, callback_samples=0
    )
    peaks = {r.environment.peak_flop_per_s for r in sweep.reports}
    assert len(peaks) == 1 and None not in peaks  # measured once, shared
    for row in per_sample_rows(sweep):
        report_rows = [next(r for r in rep.layers if r.name == row.name) for rep in sweep.reports]
        assert row.time_us == pytest.approx(
            tuple(r.time_us.median / b for r, b in zip(report_rows, (1, 2)))
        )
    text = render_sweep(sweep, "table")
    assert "µs/sample @2" in text and "float ops/sample @1" in text


def test_compare_by_order_pairs_a_model_renamed_by_the_keras_counter(keras):
    from submodel_profiler.compare import compare_reports

    def build():  # auto-named layers: the second build gets other names
        inputs = keras.Input((6,))
        x = keras.layers.Dense(4)(inputs)
        return keras.Model(inputs, keras.layers.Dense(2)(keras.layers.ReLU()(x)))

    a = profile_model(build(), timing=False)
    b = profile_model(build(), timing=False)
    assert [r.name for r in a.layers] != [r.name for r in b.layers]
    by_name = compare_reports(a, b)
    assert by_name.rows == () and len(by_name.only_in_a) == 3
    by_order = compare_reports(a, b, match="order")
    assert len(by_order.rows) == 3 and not by_order.only_in_a and not by_order.only_in_b
    assert all(row.metrics["flops"].ratio in (1.0, None) for row in by_order.rows)


def test_phases_time_each_timing_cross_check(timed_report):
    phases = timed_report.settings.phases
    assert {"timing", "cross_checks", "step_stats", "callback"} <= set(phases)
    assert phases["step_stats"] > 0 and phases["callback"] > 0
    assert phases["step_stats"] + phases["callback"] <= phases["cross_checks"]


def test_a_cross_check_not_run_has_no_phase(tiny_cnn):
    report = profile_model(
        tiny_cnn, timing_settings=FAST_TIMING, callback_samples=0, measure_peak=False
    )
    assert "step_stats" in report.settings.phases
    assert "callback" not in report.settings.phases
