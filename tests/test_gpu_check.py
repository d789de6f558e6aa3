"""scripts/gpu_check.py as users run it: `python scripts/gpu_check.py --quick` in a subprocess.

Without a GPU (CI) it runs its checks on the CPU and says so; every figure it promises is
printed, and a clean run ends with "gpu_check: N cases, 0 problems" and exit code 0. Its GPU
branch is checked in-process on the quick run's report made to look like an H200's.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from submodel_profiler.report import Report

SCRIPT = Path(__file__).resolve().parents[1] / "scripts" / "gpu_check.py"
# One line per figure, in every case block (the label the script prints it under).
FIGURES = (
    "device",
    "profile wall time",
    "rows",
    "float ops exact",
    "bytes exact",
    "isolated time",
    "additivity",
    "overhead subtracted",
    "Spearman, isolated",
    "matmul peak",
    "bandwidth",
    "vs specification",
    "memory, static",
    "memory, measured",
    "static ÷ measured",
    "method errors",
    "problems",
)


def run_script(*args):
    env = {**os.environ, "TF_CPP_MIN_LOG_LEVEL": "3"}
    return subprocess.run(
        [sys.executable, str(SCRIPT), *args], capture_output=True, text=True, env=env, timeout=300
    )


def _gpu_machine() -> bool:
    return os.path.exists("/dev/nvidiactl") or os.path.exists("/proc/driver/nvidia/version")


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory):
    """One `--quick --json-dir DIR` run: (CompletedProcess, DIR)."""
    json_dir = tmp_path_factory.mktemp("gpu_check")
    return run_script("--quick", "--json-dir", str(json_dir)), json_dir


def test_help_names_the_options():
    result = run_script("--help")
    assert result.returncode == 0, result.stderr
    for flag in ("--quick", "--large-batch", "--budget-s", "--json-dir"):
        assert flag in result.stdout


def test_quick_run_prints_every_figure_and_no_problem(quick_run):
    result, json_dir = quick_run
    out = result.stdout
    assert result.returncode == 0, out + result.stderr
    assert "Traceback" not in out + result.stderr
    first = out.splitlines()[0]
    if _gpu_machine():
        assert first.startswith("gpu_check: GPU:") or "CPU fallback" in first, first
    else:
        assert "CPU fallback" in first, first

    blocks = re.split(r"\n(?=\[\d+/\d+\] )", out)[1:]
    assert len(blocks) == 2, out
    for block in blocks:
        for label in FIGURES:
            assert re.search(rf"^  +{re.escape(label)} ", block, re.M), (label, block)
        assert re.search(r"float ops exact +True", block) and re.search(r"bytes exact +True", block)
        assert re.search(r"additivity +\d+\.\d+ \(Σ isolated rows ÷ whole model\)", block)
        assert re.search(r"overhead subtracted +\d+\.\d+ µs per segment", block)
        assert re.search(r"Spearman, isolated +callback -?\d\.\d\d", block)
        assert re.search(r"matmul peak +\d[\d.]* [kMGT]?FLOP/s \(float32 matmul", block)
        assert re.search(r"bandwidth +\d[\d.]* [kMGT]?B/s \(STREAM copy", block)
        assert re.search(r"memory, static +activation peak \d[\d.]* [kMG]?B", block)
        assert re.search(r"memory, measured +\d[\d.]* [kMG]?B \((CPU|GPU):", block)
        assert re.search(r"static ÷ measured +\d+\.\d+ \(activation peak\)", block)
        assert re.search(r"problems +none", block)
        assert "PROBLEM" not in block
        if "CPU fallback" in first:
            assert "unknown device" in block
            assert re.search(r"method errors +none", block)
    assert re.search(r"^gpu_check: 2 cases, 0 problems", out, re.M), out
    written = sorted(p.name for p in json_dir.iterdir())
    assert written == ["tiny_cnn_b1.json", "tiny_residual_b4.json"]


# --- the GPU branch, without a GPU: the script's checks on a report made to look like an H200's --


@pytest.fixture(scope="module")
def gpu_check():
    spec = importlib.util.spec_from_file_location("gpu_check", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up there
    spec.loader.exec_module(module)
    yield module
    sys.modules.pop(spec.name, None)


@pytest.fixture(scope="module")
def cpu_report(quick_run):
    _, json_dir = quick_run
    return Report.from_json((json_dir / "tiny_cnn_b1.json").read_text())


def _as_on_an_h200(report, peak=400e12, errors=None, method=None):
    """`report` with the figures a GPU run gives: device, sizes, GPU memory method, step stats
    skipped (their Spearman figures None), the given matmul peak, a 4.2 TB/s bandwidth."""
    from submodel_profiler.cross_checks import GPU_STEP_STATS
    from submodel_profiler.footprint import GPU_PEAK_METHOD

    env = dataclasses.replace(
        report.environment,
        device="GPU: NVIDIA H200",
        peak_flop_per_s=peak,
        peak_method="float32 matmul 4096x4096 @ 4096x4096, 137,438,953,472 float ops, in-graph "
        "median of 10 runs; TF32 allowed",
        peak_bytes_per_s=4.2e12,
        bandwidth_method="STREAM copy 2×1 GiB / triad 3×1 GiB float32, in place (b = a; "
        "c −= s·a), in-graph median of 5 runs",
    )
    t = report.totals
    totals = dataclasses.replace(
        t, measured_peak_bytes=t.param_bytes + 10**6, measured_peak_method=method or GPU_PEAK_METHOD
    )
    check = dataclasses.replace(
        report.cross_check,
        method_errors={"step_stats": GPU_STEP_STATS} if errors is None else errors,
        rank_correlation={**report.cross_check.rank_correlation, "unfused": None, "in_graph": None},
    )
    return dataclasses.replace(report, environment=env, totals=totals, cross_check=check)


def _checked(gpu_check, report):
    out = gpu_check.Outcome()
    gpu_check.check_report(report, True, report.totals.param_bytes, out)
    return "\n".join(out.lines), out.problems


def test_a_clean_gpu_report_has_no_problem(gpu_check, cpu_report):
    text, problems = _checked(gpu_check, _as_on_an_h200(cpu_report))
    assert problems == [], problems
    assert "80.9% of H200 SXM TF32 dense 494 TFLOP/s" in text, text
    assert "87.5% of H200 SXM 4.8 TB/s" in text, text
    assert "[expected on a GPU, skipped by design] skipped: a GPU is visible" in text, text
    assert "measured − baseline 1 MB" in text, text
    assert re.search(r"static ÷ measured +\d+\.\d+ \(activation peak\); \d+\.\d+ \(params", text)


def test_gpu_problems_are_counted(gpu_check, cpu_report):
    broken = {
        "above the published peak": _as_on_an_h200(cpu_report, peak=600e12),
        "method error callback": _as_on_an_h200(cpu_report, errors={"callback": "Error: x"}),
        "does not start with 'GPU:'": _as_on_an_h200(cpu_report, method="CPU: step stats"),
    }
    for expected, report in broken.items():
        _, problems = _checked(gpu_check, report)
        assert any(expected in p for p in problems), (expected, problems)
    # the CPU report as it came, checked as if a GPU were visible: its step stats ran
    _, problems = _checked(gpu_check, cpu_report)
    assert any("ran although a GPU is visible" in p for p in problems), problems


def test_device_specs_match_tf_device_names(gpu_check):
    names = {
        "GPU: NVIDIA H200": "H200 SXM",
        "GPU: NVIDIA H200 NVL": "H200 NVL",
        "GPU: NVIDIA H100 80GB HBM3": "H100 SXM",
        "GPU: NVIDIA H100 PCIe": "H100 PCIe",
        "GPU: NVIDIA H100 NVL": "H100 NVL",
        "GPU: NVIDIA A100-SXM4-80GB": "A100 80GB SXM",
        "GPU: NVIDIA A100 80GB PCIe": "A100 80GB PCIe",
        "GPU: NVIDIA A100-PCIE-40GB": "A100 40GB",
        "GPU: NVIDIA L4": "L4",
    }
    for device, spec in names.items():
        assert gpu_check.device_spec(device).name == spec, device
    for unknown in ("GPU: NVIDIA L40S", "GPU: Tesla T4", "CPU: AMD EPYC"):
        assert gpu_check.device_spec(unknown) is None, unknown
