"""Roofline arithmetic against numbers worked out here, and the bandwidth measurement's plumbing
(a sanity check of its rates, not a timing claim)."""

from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from submodel_profiler import bandwidth, host_stream
from submodel_profiler.bandwidth import Bandwidth, measure_bandwidth
from submodel_profiler.roofline import (
    arithmetic_intensity,
    bound,
    bytes_per_s,
    ridge_point,
    roof_flop_per_s,
    roofline_fraction,
)

from conftest import FAST_TIMING

PEAK_FLOP_PER_S = 1e11
PEAK_BYTES_PER_S = 1e10  # ridge 10 flop/B

# Dense, batch 512, 1024 → 1024, float32: 512·1024 outputs, 1024 multiply-adds each; it reads
# the input [512, 1024] and the kernel [1024, 1024] and writes the output [512, 1024].
DENSE_FLOPS = 2 * 512 * 1024 * 1024
DENSE_BYTES = 4 * (512 * 1024 + 1024 * 1024 + 512 * 1024)
# BatchNormalization (inference) on (1, 112, 112, 64): a multiply and an add per element; it
# reads and writes every element (4 + 4 bytes), the 4 per-channel vectors are extra.
BN_ELEMENTS = 1 * 112 * 112 * 64
BN_FLOPS = 2 * BN_ELEMENTS
BN_BYTES = 8 * BN_ELEMENTS + 4 * 4 * 64


def test_intensity_is_flops_per_byte():
    assert arithmetic_intensity(DENSE_FLOPS, DENSE_BYTES) == pytest.approx(128.0)
    assert arithmetic_intensity(BN_FLOPS, BN_BYTES) < 2 / 8
    assert arithmetic_intensity(0, 100) == 0.0


def test_ridge_point_is_peak_rate_over_bandwidth():
    assert ridge_point(PEAK_FLOP_PER_S, PEAK_BYTES_PER_S) == pytest.approx(10.0)
    assert ridge_point(2e12, 4e11) == pytest.approx(5.0)


def test_dense_is_compute_bound_on_the_flat_roof():
    intensity = arithmetic_intensity(DENSE_FLOPS, DENSE_BYTES)
    ridge = ridge_point(PEAK_FLOP_PER_S, PEAK_BYTES_PER_S)
    assert bound(intensity, ridge) == "compute"
    assert roof_flop_per_s(intensity, PEAK_FLOP_PER_S, PEAK_BYTES_PER_S) == PEAK_FLOP_PER_S
    achieved = 0.5 * PEAK_FLOP_PER_S
    assert roofline_fraction(
        achieved, intensity, PEAK_FLOP_PER_S, PEAK_BYTES_PER_S
    ) == pytest.approx(0.5)


@pytest.mark.parametrize("ridge", [1.0, 10.0, 100.0])
def test_batch_norm_is_memory_bound_at_any_ridge_from_1(ridge):
    intensity = arithmetic_intensity(BN_FLOPS, BN_BYTES)
    assert bound(intensity, ridge) == "memory"


def test_batch_norm_roof_is_the_bandwidth_slope():
    intensity = arithmetic_intensity(BN_FLOPS, BN_BYTES)
    roof = roof_flop_per_s(intensity, PEAK_FLOP_PER_S, PEAK_BYTES_PER_S)
    assert roof == pytest.approx(intensity * PEAK_BYTES_PER_S)
    assert roof < PEAK_FLOP_PER_S
    # Timed at the bandwidth peak, the layer sits exactly on its roof.
    time_us = BN_BYTES / PEAK_BYTES_PER_S * 1e6
    achieved = BN_FLOPS / (time_us * 1e-6)
    assert bytes_per_s(BN_BYTES, time_us) == pytest.approx(PEAK_BYTES_PER_S)
    assert roofline_fraction(
        achieved, intensity, PEAK_FLOP_PER_S, PEAK_BYTES_PER_S
    ) == pytest.approx(1.0)


def test_at_the_ridge_both_roofs_agree_and_it_counts_as_compute():
    assert bound(10.0, 10.0) == "compute"
    assert bound(9.999, 10.0) == "memory"
    assert roof_flop_per_s(10.0, PEAK_FLOP_PER_S, PEAK_BYTES_PER_S) == pytest.approx(
        PEAK_FLOP_PER_S
    )


def test_bytes_per_s():
    assert bytes_per_s(4_000_000, 1000.0) == pytest.approx(4e9)  # 4 MB in 1 ms
    assert bytes_per_s(0, 10.0) == 0.0


def test_missing_inputs_give_none():
    assert arithmetic_intensity(None, 100) is None
    assert arithmetic_intensity(100, None) is None
    assert arithmetic_intensity(100, 0) is None
    assert ridge_point(None, 1e10) is None
    assert ridge_point(1e11, None) is None
    assert ridge_point(1e11, 0.0) is None
    assert bound(None, 10.0) is None
    assert bound(1.0, None) is None
    assert roof_flop_per_s(None, 1e11, 1e10) is None
    assert roof_flop_per_s(1.0, None, 1e10) is None
    assert roof_flop_per_s(1.0, 1e11, None) is None
    assert roofline_fraction(None, 1.0, 1e11, 1e10) is None
    assert roofline_fraction(1e9, None, 1e11, 1e10) is None
    assert roofline_fraction(1e9, 1.0, None, 1e10) is None
    assert roofline_fraction(1e9, 1.0, 1e11, None) is None
    assert roofline_fraction(1e9, 0.0, 1e11, 1e10) is None  # a roof of 0
    assert bytes_per_s(None, 10.0) is None
    assert bytes_per_s(100, None) is None
    assert bytes_per_s(100, 0.0) is None
    assert bytes_per_s(100, -1.0) is None


def test_stream_byte_counts():
    n = 1000
    assert bandwidth.copy_bytes(n) == 2 * n * 4  # read a, write b
    assert bandwidth.triad_bytes(n) == 3 * n * 4  # read c and a, write c


def test_array_size_rule(tmp_path):
    mib = 2**20
    for level, size in enumerate(["32K", "512K", "32768K"]):
        (tmp_path / f"index{level}").mkdir()
        (tmp_path / f"index{level}" / "size").write_text(size + "\n")
    assert bandwidth.last_level_cache_bytes(tmp_path) == 32 * mib
    assert bandwidth.last_level_cache_bytes(tmp_path / "absent") == 32 * mib  # the fallback
    assert bandwidth.cpu_array_bytes(32 * mib) == 128 * mib  # 4× the cache
    assert bandwidth.cpu_array_bytes(8 * mib) == 64 * mib  # 64 MiB at least
    assert bandwidth.cpu_array_bytes(480 * mib) == 128 * mib  # 128 MiB at most


def test_capped_arrays_are_named_in_the_method(monkeypatch):
    mib = 2**20
    monkeypatch.setattr(bandwidth, "last_level_cache_bytes", lambda: 480 * mib)
    n_bytes, note = bandwidth._default_bytes(gpu=False)
    assert n_bytes == 128 * mib
    assert note == "; arrays capped at 128 MiB, below 4× the 480 MiB last-level cache"
    monkeypatch.setattr(bandwidth, "last_level_cache_bytes", lambda: 32 * mib)
    assert bandwidth._default_bytes(gpu=False) == (128 * mib, "")  # 4× 32 MiB: not capped
    monkeypatch.setattr(bandwidth, "last_level_cache_bytes", lambda: 8 * mib)
    assert bandwidth._default_bytes(gpu=False) == (64 * mib, "")


def test_kernels_compute_copy_and_triad():
    import numpy as np
    import tensorflow as tf

    arrays = bandwidth._StreamArrays(tf, 1000)
    tf.function(arrays.copy)()
    np.testing.assert_array_equal(arrays.b.numpy(), arrays.a.numpy())
    arrays.free_copy_target()
    assert arrays.b.numpy().size == 0  # freed before c exists: two arrays alive at a time
    tf.function(arrays.triad)()
    expected = -bandwidth.TRIAD_SCALAR * np.ones((1, 1000), np.float32)  # c = 0 − s·1
    np.testing.assert_allclose(arrays.c.numpy(), expected)
    arrays.release()
    assert arrays.a.numpy().size == 0


@pytest.mark.parametrize("n_bytes", [0, 3, -8, 2.5, True, "8"])
def test_measure_bandwidth_refuses_bad_sizes(n_bytes):
    with pytest.raises(ValueError, match="n_bytes"):
        measure_bandwidth(FAST_TIMING, n_bytes=n_bytes)


def test_measure_bandwidth_small_arrays():
    result = measure_bandwidth(FAST_TIMING, n_bytes=8 * 2**20)
    assert isinstance(result, Bandwidth)
    assert set(result.kernel_bytes_per_s) == {"copy", "add"}  # on the host (no GPU in CI)
    rates = (result.bytes_per_s, *result.kernel_bytes_per_s.values())
    for rate in rates:
        assert math.isfinite(rate) and 1e8 < rate < 1e13, rates
    assert result.bytes_per_s == max(result.kernel_bytes_per_s.values())
    assert "copy 2×8 MiB" in result.method and "add 3×8 MiB" in result.method
    assert "in a child process" in result.method


def test_host_kernels_compute_copy_and_add():
    a = np.arange(1000, dtype=np.float32)
    b = np.zeros_like(a)
    host_stream.copy_into(b, a, slice(0, 1000))
    np.testing.assert_array_equal(b, a)
    host_stream.add_into(b, a, slice(0, 500))
    np.testing.assert_array_equal(b[:500], 2 * a[:500])
    np.testing.assert_array_equal(b[500:], a[500:])  # each thread writes its own slice only


def test_host_stream_runs_as_a_child_that_prints_json():
    done = subprocess.run(
        [sys.executable, str(bandwidth.HOST_STREAM_SCRIPT), "4096", "2"],
        capture_output=True,
        text=True,
        check=True,
    )
    result = json.loads(done.stdout)
    assert result["n"] == 1024 and result["repeats"] == 2 and result["threads"] >= 1
    assert result["copy_s"] > 0 and result["add_s"] > 0
    assert "tensorflow" not in done.stderr.lower()


def test_a_waiting_child_touches_its_arrays_then_runs_on_go_only():
    command = [sys.executable, str(bandwidth.HOST_STREAM_SCRIPT), "4096", "2", "--wait"]
    done = subprocess.run(command, input="go\n", capture_output=True, text=True, check=True)
    ready, line = done.stdout.splitlines()
    assert ready == "ready"
    result = json.loads(line)
    assert result["n"] == 1024 and result["repeats"] == 2 and result["copy_s"] > 0
    # At end of file instead of "go" (the profile ended without measuring): no kernels.
    done = subprocess.run(command, input="", capture_output=True, text=True, check=True)
    assert done.stdout.splitlines() == ["ready"]


@pytest.mark.parametrize("extra", [[], ["--wait", "more"], ["--later"]])
def test_the_child_refuses_other_arguments(extra):
    command = [sys.executable, str(bandwidth.HOST_STREAM_SCRIPT), "4096", *extra]
    if extra:
        command.insert(3, "2")
    done = subprocess.run(command, input="go\n", capture_output=True, text=True)
    assert done.returncode == 2 and "usage" in done.stderr and not done.stdout


def test_allocate_touches_both_arrays_when_asked():
    a, b = host_stream.allocate(4100, touch=True)  # rounded down to 1025 float32
    assert len(a) == len(b) == 1025
    np.testing.assert_array_equal(b, np.ones(1025, np.float32))


def test_a_host_stream_started_ahead_measures_in_its_child():
    host = bandwidth.HostStream(FAST_TIMING, n_bytes=2**20)
    child = host._child
    assert host.ready()
    assert child.poll() is None  # touched its arrays, now waits for "go"
    result = host.bandwidth()
    assert "in a child process" in result.method and "2×1 MiB" in result.method
    assert result.bytes_per_s == max(result.kernel_bytes_per_s.values()) > 0
    assert child.returncode == 0 and host._child is None


def test_a_host_stream_closed_unused_ends_its_child():
    host = bandwidth.HostStream(FAST_TIMING, n_bytes=2**20)
    child = host._child
    host.close()
    assert child.returncode is not None and host._child is None
    host.close()  # again: nothing to do


def test_a_host_stream_whose_child_failed_measures_here(monkeypatch):
    monkeypatch.setattr(bandwidth.sys, "executable", "/nonexistent/python")
    host = bandwidth.HostStream(FAST_TIMING, n_bytes=2**20)
    assert not host.ready()
    assert "in this process (the child failed)" in host.bandwidth().method


@pytest.fixture
def started_streams(monkeypatch) -> list:
    """(HostStream, its child) of every stream a profile starts, with 1 MiB arrays."""
    from submodel_profiler import profiler

    started = []

    class Recorded(bandwidth.HostStream):
        def __init__(self, settings):
            super().__init__(settings, n_bytes=2**20)
            started.append((self, self._child))

    monkeypatch.setattr(profiler, "HostStream", Recorded)
    return started


def test_a_profile_starts_the_child_ahead_and_leaves_none_behind(tiny_cnn, started_streams):
    from submodel_profiler import profile_model

    started = started_streams
    report = profile_model(tiny_cnn, timing_settings=FAST_TIMING)
    ((host, child),) = started
    assert child.returncode == 0 and host._child is None  # it ran, and it ended
    assert "in a child process" in report.environment.bandwidth_method
    assert "2×1 MiB" in report.environment.bandwidth_method
    profile_model(tiny_cnn, timing=False)
    assert len(started) == 1  # nothing to measure, no child


def test_a_profile_that_fails_ends_its_child(tiny_cnn, started_streams, monkeypatch):
    from submodel_profiler import profile_model, profiler

    def failing(*args, **kwargs):
        raise RuntimeError("sub-models failed")

    monkeypatch.setattr(profiler, "_profile_submodels", failing)
    with pytest.raises(RuntimeError, match="sub-models failed"):
        profile_model(tiny_cnn, timing_settings=FAST_TIMING)
    ((_, child),) = started_streams
    assert child.returncode is not None  # killed, not left waiting


def test_the_child_imports_neither_tensorflow_nor_the_package():
    command = [sys.executable, "-X", "importtime", str(bandwidth.HOST_STREAM_SCRIPT), "4096", "1"]
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    imported = {line.rsplit("|", 1)[-1].strip() for line in done.stderr.splitlines()}
    assert "numpy" in imported  # -X importtime lists every module imported
    assert not {m for m in imported if m.startswith(("tensorflow", "keras", "submodel"))}


def test_the_host_arrays_never_count_in_this_process_memory():
    # Run in a fresh process, whose peak is read before and after 2 × 128 MiB arrays were timed:
    # the arrays live in the child, so this process's peak (ru_maxrss, KiB) must not grow by them.
    code = (
        "import resource\n"
        "from submodel_profiler import bandwidth\n"
        "before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "result = bandwidth._host_bandwidth(128 * 2**20, 2, '')\n"
        "after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss\n"
        "print(after - before, result.method)\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    grown_kib, method = done.stdout.split(" ", 1)
    assert "in a child process" in method
    assert int(grown_kib) < 32 * 1024, done.stdout  # the arrays are 256 MiB


def test_a_failed_child_runs_the_host_kernels_here_and_says_so(monkeypatch):
    monkeypatch.setattr(bandwidth.sys, "executable", "/nonexistent/python")
    result = bandwidth._host_bandwidth(2**20, 2, "")
    assert "in this process (the child failed)" in result.method
    assert result.bytes_per_s == max(result.kernel_bytes_per_s.values()) > 0


def test_ctrl_c_during_host_bandwidth_is_said(monkeypatch):
    from submodel_profiler import profiler

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt  # as subprocess.run after killing the child on Ctrl-C

    monkeypatch.setattr(bandwidth.subprocess, "run", interrupted)
    with pytest.raises(KeyboardInterrupt):
        measure_bandwidth(FAST_TIMING, n_bytes=4096)
    _, result, errors = profiler.measure_machine(FAST_TIMING, "float32")
    assert result is None and "interrupted" in errors["bandwidth"]


def test_device_kernels_timed_in_graph(monkeypatch):
    # The GPU path, run on the CPU: copy and triad timed by SegmentTimer.
    import tensorflow as tf

    result = bandwidth._device_bandwidth(tf, 2**20, FAST_TIMING, "")
    assert set(result.kernel_bytes_per_s) == {"copy", "triad"}
    assert result.bytes_per_s == max(result.kernel_bytes_per_s.values()) > 0
    assert "triad 3×4 MiB" in result.method and "in-graph median" in result.method


def test_ctrl_c_during_device_bandwidth_frees_the_arrays(monkeypatch):
    import tensorflow as tf

    from submodel_profiler import timing

    created = []
    real_init = bandwidth._StreamArrays.__init__

    def recording_init(self, tf, n):
        real_init(self, tf, n)
        created.append(self)

    def interrupted(self, groups, progress=None):
        self.interrupted = True  # as SegmentTimer.time after a Ctrl-C while sampling
        return [[None] * len(g) for g in groups]

    monkeypatch.setattr(bandwidth._StreamArrays, "__init__", recording_init)
    monkeypatch.setattr(timing.SegmentTimer, "time", interrupted)
    with pytest.raises(KeyboardInterrupt):
        bandwidth._device_bandwidth(tf, 1024, FAST_TIMING, "")
    assert created[0].a.numpy().size == 0 and created[0].b.numpy().size == 0


def test_a_given_bandwidth_is_used_not_measured_again(tiny_cnn, monkeypatch):
    # A user profiling many models measures the bandwidth once and passes it to each profile.
    from submodel_profiler import bandwidth, profile_model, profiler
    from submodel_profiler.timing import TimingSettings

    def measured(settings):
        raise AssertionError("measured although given")

    monkeypatch.setattr(profiler, "measure_bandwidth", measured)
    stub = bandwidth.Bandwidth({"copy": 1e10, "add": 1.25e10}, "stub")
    fast = TimingSettings(warmup=1, min_repeats=3, max_repeats=3, budget_s=0.001)
    report = profile_model(tiny_cnn, timing_settings=fast, measured_bandwidth=stub)
    assert report.environment.peak_bytes_per_s == 1.25e10
    assert report.environment.bandwidth_method == "stub"
    assert report.settings.phases["machine"] > 0  # the matmul peak is still measured
