"""The CLI as users run it: `python -m submodel_profiler` and the console script, run as
subprocesses."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from submodel_profiler.report import SCHEMA_VERSION

from conftest import FAST_FLAGS, run_cli


def test_table_on_a_model_file(model_file):
    result = run_cli([model_file, *FAST_FLAGS])
    assert result.returncode == 0, result.stderr
    assert "Cross-check: OK" in result.stdout
    assert "conv" in result.stdout and "dense" in result.stdout
    assert "Traceback" not in result.stderr


def test_json_to_file(model_file, tmp_path):
    out = tmp_path / "report.json"
    result = run_cli([model_file, "--no-timing", "--format", "json", "--output", str(out)])
    assert result.returncode == 0, result.stderr
    assert result.stdout == ""  # the report went to the file
    data = json.loads(out.read_text())
    assert data["model"]["source"].startswith("file:")
    assert data["totals"]["flops"] == data["totals"]["whole_graph_flops"]
    assert all(row["time_us"] is None for row in data["layers"])


def test_counting_flag_picks_what_flops_means(model_file, tmp_path):
    """tiny_cnn: conv 3x3 3→8 on 16x16 (+bias), BN, ReLU, GAP, Dense 8→4 (+bias)."""
    data = {}
    for counting in ("complete", "tf"):
        out = tmp_path / f"{counting}.json"
        result = run_cli(
            [
                model_file,
                "--no-timing",
                "--counting",
                counting,
                "--format",
                "json",
                "--output",
                str(out),
            ]
        )
        assert result.returncode == 0, result.stderr
        data[counting] = json.loads(out.read_text())
        assert data[counting]["settings"]["counting"] == counting
        assert data[counting]["schema_version"] == SCHEMA_VERSION
    complete, tf = data["complete"]["totals"], data["tf"]["totals"]
    assert tf["flops"] == tf["tf_flops"] == complete["tf_flops"]
    assert complete["flops"] - complete["tf_flops"] >= 16 * 16 * 8  # the ReLU TF skips
    assert complete["macs"] == tf["macs"] == 9 * 3 * 8 * 16 * 16 + 8 * 4
    relu = {r["name"]: r for r in data["tf"]["layers"]}["relu"]
    assert relu["uncounted_ops"] == {"Relu": 1} and relu["flops"] == 0


def test_unknown_counting_is_refused(model_file):
    result = run_cli([model_file, "--no-timing", "--counting", "fvcore"])
    assert result.returncode == 2 and "--counting" in result.stderr


def test_csv_to_stdout(model_file):
    import csv
    import io

    result = run_cli([model_file, "--no-timing", "--format", "csv", "--batch-size", "2"])
    assert result.returncode == 0, result.stderr
    rows = list(csv.DictReader(io.StringIO(result.stdout)))
    # tiny_cnn (conftest) at batch B = 2: 16x16x3 → Conv2D(8, 3, same) → BN → ReLU → GAP → Dense(4)
    b, h, w, cin, c, k, units = 2, 16, 16, 3, 8, 3, 4
    expected = {
        "conv": b * (2 * k * k * cin * c * h * w + c * h * w),  # multiply-adds + bias
        # x · scale + offset per element; 6 per channel (var + eps, rsqrt as 2, · gamma,
        # mean · scale, beta − that), independent of the batch
        "bn": b * 2 * h * w * c + 6 * c,
        "relu": b * h * w * c,
        "gap": b * h * w * c,  # TF's Mean: 1 per input element
        "dense": b * (2 * c * units + units),
    }
    assert [r["index"] for r in rows] == [str(i) for i in range(len(expected))]
    assert [r["name"] for r in rows] == list(expected)
    assert {r["name"]: int(r["flops"]) for r in rows} == expected
    assert all(r["whole_graph_flops"] == r["flops"] and r["flops_match"] == "True" for r in rows)
    assert rows[0]["input_shapes"] == f"({b},{h},{w},{cin})"
    assert int(rows[0]["macs"]) == b * k * k * cin * c * h * w
    assert {r["time_us_median"] for r in rows} == {""}  # --no-timing


def test_console_script_is_installed(model_file):
    script = os.path.join(os.path.dirname(sys.executable), "submodel-profiler")
    result = subprocess.run(
        [script, model_file, "--no-timing"], capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    assert "Cross-check: OK" in result.stdout


def test_help_explains_every_flag():
    import argparse
    import re

    from submodel_profiler.cli import build_parser

    result = run_cli(["--help"])
    assert result.returncode == 0
    assert "exit codes" in result.stdout
    printed = re.sub(r"\s+", "", result.stdout)  # help is wrapped, also at hyphens
    parser = build_parser()
    actions = parser._actions  # argparse has no public list of its arguments
    assert len(actions) > 10
    for action in actions:
        name = "/".join(action.option_strings) or action.dest
        assert action.help and action.help != argparse.SUPPRESS, f"{name} has no help text"
        for flag in action.option_strings or [action.metavar]:
            assert flag in result.stdout, name
        explained = parser._get_formatter()._expand_help(action)  # %(default)s etc. filled in
        assert re.sub(r"\s+", "", explained) in printed, name


@pytest.mark.parametrize(
    "args, message",
    [
        (["missing_model.keras"], "not found"),
        (["NotAModelName"], "keras.applications"),
        (["MobileNetV3Larg"], "Did you mean: MobileNetV3Large"),
        (["MobileNetV3Small", "--batch-size", "0"], "--batch-size"),
        (["MobileNetV3Small", "--batch-size", "-3"], "--batch-size"),
        (
            ["MobileNetV3Small", "--input-shape", "32,32,3", "--input-shape", "32,32,3"],
            "pass one --input-shape per input",
        ),
        (["MobileNetV3Small", "--input-shape", "224,abc"], "--input-shape"),
        (["MobileNetV3Small", "--output", "/nonexistent_dir/r.json"], "does not exist"),
    ],
)
def test_usage_errors_exit_2_without_traceback(args, message):
    result = run_cli(args)
    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr


def test_a_file_that_is_not_a_model(tmp_path):
    bogus = tmp_path / "bogus.keras"
    bogus.write_text("not a model")
    result = run_cli([str(bogus)])
    assert result.returncode == 2
    assert "Could not load" in result.stderr and "Traceback" not in result.stderr


def test_free_dims_need_input_shape(tmp_path, keras):
    inputs = keras.Input((None, None, 3))
    model = keras.Model(inputs, keras.layers.Conv2D(2, 3)(inputs))
    path = tmp_path / "free.keras"
    model.save(path)
    result = run_cli([str(path), "--no-timing"])
    assert result.returncode == 2 and "--input-shape" in result.stderr
    result = run_cli([str(path), "--no-timing", "--input-shape", "32,32,3"])
    assert result.returncode == 0, result.stderr


def test_verbose_prints_where_the_time_went(model_file, tmp_path):
    out = tmp_path / "r.json"
    result = run_cli(
        [model_file, "--no-timing", "--verbose", "--format", "json", "--output", str(out)]
    )
    assert result.returncode == 0, result.stderr
    phases = json.loads(out.read_text())["settings"]["phases"]
    assert {"loading", "walk", "whole_graph", "submodels", "memory"} <= set(phases)
    assert all(s >= 0 for s in phases.values())
    line = next(x for x in result.stderr.splitlines() if x.startswith("phases: "))
    assert all(name in line for name in phases)
