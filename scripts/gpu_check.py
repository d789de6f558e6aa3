"""GPU check: one run through every GPU path of the profiler, for a reviewer. Not a test: prints
a report, one block per case, and exits 1 when something needs a look.

Each case profiles a model with `profile_model` (timing on, the callback on, the matmul peak and
the bandwidth on), which on a GPU exercises:
  * isolated in-graph timing with the device sync (each segment's result copied to the host
    before its closing timestamp), and the whole model timed the same way;
  * the callback's device sync (`LayerTimingCallback`, tf.test.experimental.sync_devices);
  * the matmul peak (4096x4096 on a GPU) and the STREAM bandwidth on the device (1 GiB arrays);
  * the measured memory from tf.config.experimental.get_memory_info ("GPU: ..." method).
On a GPU the step-stats methods are skipped by design (`method_errors["step_stats"]` says so);
that is reported as expected, not as a problem. Without a GPU the same checks run on the CPU,
and the first line says so.

Cases: keras.applications MobileNetV3Small and ResNet50 (weights=None, 224x224x3: nothing is
downloaded) at batch 1 and at a larger batch (32 on a GPU, 4 on a CPU). `--quick`: two tiny
hand-built models with few repeats (a few seconds each), for tests and CI.

A problem is something a reviewer must look at: float ops or bytes not exact, a row that failed,
a method error other than the expected GPU step-stats skip, a figure missing that the platform
should have, a measured rate above the device's published peak (the clock stopped before the
device finished), a GPU that TensorFlow does not see, a case that crashed or was skipped for
time. The last line is "gpu_check: N cases, M problems"; exit code 0 when M is 0, else 1.

Usage:
  python scripts/gpu_check.py                  # the full check (under 5 minutes on a GPU)
  python scripts/gpu_check.py --quick          # tiny models, few repeats
  python scripts/gpu_check.py --json-dir DIR   # also write each case's report as JSON
"""

from __future__ import annotations

import argparse
import gc
import os
import re
import shutil
import sys
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

LABEL_WIDTH = 21
IMAGE_SHAPE = (224, 224, 3)
LARGE_BATCH_GPU = 32
LARGE_BATCH_CPU = 4
DEFAULT_BUDGET_S = 270.0  # no case starts after this many seconds (a case runs to its end)
ABOVE_SPEC = 1.05  # a measured rate this far above the published peak cannot be real

# Published peaks of the devices we may be lent, dense (no sparsity): FP32 on the CUDA cores,
# TF32 on the Tensor Cores (the datasheets print TF32 "with sparsity"; dense is half of that),
# and the memory bandwidth, all in decimal units (1 TFLOP/s = 1e12 FLOP/s, 1 TB/s = 1e12 B/s).
# Sources, NVIDIA's product pages and datasheets:
#   H200: https://www.nvidia.com/en-us/data-center/h200/ (SXM: FP32 67 TFLOPS, TF32 989*
#         TFLOPS, 4.8 TB/s; NVL: FP32 60, TF32 835*, 4.8 TB/s)
#   H100: https://www.nvidia.com/en-us/data-center/h100/ (SXM: FP32 67, TF32 989*, 3.35 TB/s;
#         NVL: FP32 60, TF32 835*, 3.9 TB/s; PCIe: FP32 51, TF32 756*, 2 TB/s)
#   A100: https://www.nvidia.com/en-us/data-center/a100/ and the A100 datasheet (FP32 19.5, TF32
#         156 dense / 312*; 80GB SXM 2,039 GB/s, 80GB PCIe 1,935 GB/s, 40GB 1,555 GB/s)
#   L4:   https://www.nvidia.com/en-us/data-center/l4/ (FP32 30.3, TF32 120*, 300 GB/s)
# (* with sparsity.) The first pattern that matches TF's device name wins.


@dataclass(frozen=True)
class DeviceSpec:
    name: str
    fp32_flop_per_s: float
    tf32_dense_flop_per_s: float
    bytes_per_s: float


T, G = 1e12, 1e9
DEVICE_SPECS = (
    (r"H200.*NVL", DeviceSpec("H200 NVL", 60 * T, 835 / 2 * T, 4.8 * T)),
    (r"H200", DeviceSpec("H200 SXM", 67 * T, 989 / 2 * T, 4.8 * T)),
    (r"H100.*NVL", DeviceSpec("H100 NVL", 60 * T, 835 / 2 * T, 3.9 * T)),
    (r"H100.*PCI", DeviceSpec("H100 PCIe", 51 * T, 756 / 2 * T, 2.0 * T)),
    (r"H100", DeviceSpec("H100 SXM", 67 * T, 989 / 2 * T, 3.35 * T)),
    (r"A100.*80GB.*PCI|A100.*PCI.*80GB", DeviceSpec("A100 80GB PCIe", 19.5 * T, 156 * T, 1935 * G)),
    (r"A100.*80GB", DeviceSpec("A100 80GB SXM", 19.5 * T, 156 * T, 2039 * G)),
    (r"A100", DeviceSpec("A100 40GB", 19.5 * T, 156 * T, 1555 * G)),
    (r"\bL4\b", DeviceSpec("L4", 30.3 * T, 120 / 2 * T, 300 * G)),
)


def device_spec(device: str) -> DeviceSpec | None:
    """The published peaks of `device` (the report's "GPU: NVIDIA H200"), None when unknown."""
    if not device.startswith("GPU:"):
        return None
    for pattern, spec in DEVICE_SPECS:
        if re.search(pattern, device, re.IGNORECASE):
            return spec
    return None


@dataclass
class Case:
    model: str  # a keras.applications name, or a tiny model's name
    batch_size: int
    build: object  # () -> keras.Model
    input_shapes: list | None = None


@dataclass
class Outcome:
    lines: list = field(default_factory=list)
    problems: list = field(default_factory=list)

    def add(self, label: str, value: str) -> None:
        self.lines.append(f"  {label:<{LABEL_WIDTH}} {value}")

    def problem(self, text: str) -> None:
        self.problems.append(text)


# --- formatting -------------------------------------------------------------------------------


def si(value: float | None, unit: str, digits: int = 3) -> str:
    """`value` with an SI prefix: 1.23 TFLOP/s, 45.6 MB; "—" for None."""
    if value is None:
        return "—"
    for scale, prefix in ((1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")):
        if abs(value) >= scale:
            return f"{value / scale:.{digits}g} {prefix}{unit}"
    return f"{value:.{digits}g} {unit}"


def num(value, fmt: str = ".3g") -> str:
    return "—" if value is None else format(value, fmt)


def ratio(a, b) -> float | None:
    return None if a is None or not b else a / b


# --- the models -------------------------------------------------------------------------------


def application(name: str):
    def build():
        import keras

        return getattr(keras.applications, name)(weights=None, input_shape=IMAGE_SHAPE)

    return build


def tiny_cnn():
    """Input 16x16x3 → Conv2D(8, 3) → BN → ReLU → GAP → Dense(4)."""
    import keras

    layers = keras.layers
    x = inputs = keras.Input((16, 16, 3), name="image")
    x = layers.Conv2D(8, 3, padding="same", name="conv")(x)
    x = layers.BatchNormalization(name="bn")(x)
    x = layers.ReLU(name="relu")(x)
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(4, name="dense")(x)
    return keras.Model(inputs, outputs, name="tiny_cnn")


def tiny_residual():
    """Input 16x16x8 → Conv2D 1x1 → DepthwiseConv2D → BN → ReLU → Add(input) → GAP → Dense(4):
    a branch and a join, as in the real models' blocks."""
    import keras

    layers = keras.layers
    x = inputs = keras.Input((16, 16, 8), name="features")
    y = layers.Conv2D(8, 1, name="expand")(x)
    y = layers.DepthwiseConv2D(3, padding="same", name="depthwise")(y)
    y = layers.BatchNormalization(name="bn")(y)
    y = layers.ReLU(name="relu")(y)
    x = layers.Add(name="add")([x, y])
    x = layers.GlobalAveragePooling2D(name="gap")(x)
    outputs = layers.Dense(4, name="dense")(x)
    return keras.Model(inputs, outputs, name="tiny_residual")


def cases(quick: bool, large_batch: int) -> list[Case]:
    if quick:
        return [Case("tiny_cnn", 1, tiny_cnn), Case("tiny_residual", large_batch, tiny_residual)]
    shapes = [IMAGE_SHAPE]
    return [
        Case(name, batch, application(name), shapes)
        for name in ("MobileNetV3Small", "ResNet50")
        for batch in (1, large_batch)
    ]


# --- the platform -----------------------------------------------------------------------------


def nvidia_device_present() -> bool:
    """An NVIDIA device or driver is on this machine, whether or not TensorFlow can use it."""
    paths = ("/dev/nvidiactl", "/dev/nvidia0", "/proc/driver/nvidia/version")
    return any(os.path.exists(p) for p in paths) or shutil.which("nvidia-smi") is not None


def header(tf, gpus) -> tuple[list[str], list[str]]:
    """The first lines (the platform) and the problems found there."""
    from submodel_profiler.environment import collect_environment

    env = collect_environment()
    build = tf.sysconfig.get_build_info()
    lines, problems = [], []
    if gpus:
        lines.append(f"gpu_check: {env.device} ({len(gpus)} GPU(s) visible to TensorFlow)")
    else:
        lines.append(
            "gpu_check: no GPU visible to TensorFlow: CPU fallback, the same checks run on the "
            f"CPU ({env.device})"
        )
        if nvidia_device_present():
            problems.append(
                "an NVIDIA device is on this machine but TensorFlow sees no GPU (its CUDA "
                f"{build.get('cuda_version')} / cuDNN {build.get('cudnn_version')} libraries "
                "are missing or do not load): the GPU paths were not exercised"
            )
    tf32 = tf.config.experimental.tensor_float_32_execution_enabled()
    lines.append(
        f"  python {env.python}, tensorflow {env.tensorflow}, keras {env.keras}; TF built with "
        f"CUDA {build.get('cuda_version', '—')}, cuDNN {build.get('cudnn_version', '—')} "
        f"(cuda build: {build.get('is_cuda_build')}); TF32 enabled: {tf32}"
    )
    # Where eager constants (the timed segments' random inputs) live: on the GPU they must, or
    # every timed window would hold a host-to-device copy of its inputs.
    placed = tf.constant([0.0]).device
    lines.append(f"  {env.platform}; {os.cpu_count()} CPU cores; eager constants on {placed}")
    if gpus and "GPU" not in placed:
        problems.append(f"eager constants (the timed inputs) are placed on {placed}, not the GPU")
    return lines, problems


def device_bytes_in_use(tf) -> int | None:
    try:
        return int(tf.config.experimental.get_memory_info("GPU:0")["current"])
    except (ValueError, RuntimeError):
        return None


# --- one case ---------------------------------------------------------------------------------


def run_case(case: Case, quick: bool, gpu: bool, json_dir: Path | None) -> tuple[Outcome, float]:
    """Profile `case` and check its report; (outcome, the profile's wall seconds)."""
    import tensorflow as tf

    from submodel_profiler import TimingSettings, profile_model

    out = Outcome()
    if quick:  # tests/conftest.py's FAST_TIMING, one step-stats run, two callback samples
        settings = TimingSettings(warmup=1, min_repeats=3, max_repeats=5, budget_s=0.001)
        step_stats_runs, callback_samples = 1, 2
    else:
        settings, step_stats_runs, callback_samples = TimingSettings(), 5, 5
    start = time.perf_counter()
    model = case.build()
    built_s = time.perf_counter() - start
    in_use_before = device_bytes_in_use(tf) if gpu else None
    start = time.perf_counter()
    report = profile_model(
        model,
        batch_size=case.batch_size,
        input_shapes=case.input_shapes,
        timing_settings=settings,
        step_stats_runs=step_stats_runs,
        callback_samples=callback_samples,
    )
    profile_s = time.perf_counter() - start
    if json_dir is not None:
        json_dir.mkdir(parents=True, exist_ok=True)
        (json_dir / f"{case.model}_b{case.batch_size}.json").write_text(report.to_json())
    check_report(report, gpu, in_use_before, out)
    out.lines.insert(
        1,
        f"  {'profile wall time':<{LABEL_WIDTH}} {profile_s:.1f} s (model built "
        f"in {built_s:.1f} s)",
    )
    del model, report
    return out, profile_s


def check_report(report, gpu: bool, in_use_before: int | None, out: Outcome) -> None:
    """Print the figures of `report` into `out` and record what a reviewer must look at."""
    env, t, check, s = report.environment, report.totals, report.cross_check, report.settings
    out.add("device", env.device)
    if gpu != env.device.startswith("GPU:"):
        out.problem(
            f"the report's device is {env.device!r} while a GPU is {'' if gpu else 'not '}visible"
        )
    timed = [r for r in report.layers if r.kind != "inline"]
    untimed = [r.label for r in timed if r.time_us is None]
    out.add(
        "rows", f"{len(report.layers)} ({len(timed) - len(untimed)} timed); status {report.status}"
    )
    if report.status != "complete":
        errors = [r.error for r in report.layers if r.error][:3]
        out.problem(f"status {report.status}: {'; '.join(errors)}")
    if untimed:
        out.problem(f"{len(untimed)} row(s) without an isolated time: {', '.join(untimed[:5])}")

    out.add(
        "float ops exact",
        f"{check.flops_exact} (Σ rows {t.flops:,}, whole graph {num(t.whole_graph_flops, ',')})",
    )
    out.add(
        "bytes exact",
        f"{check.bytes_exact} (Σ rows {num(t.op_bytes, ',')}, whole graph "
        f"{num(t.whole_graph_op_bytes, ',')})",
    )
    if not check.flops_exact:
        out.problem(
            f"float ops not exact: mismatched {check.mismatched_rows}, failed {check.failed_rows}"
        )
    if check.bytes_exact is not True:
        out.problem(f"op bytes not exact ({check.bytes_exact}): mismatched {check.mismatched_rows}")
    if check.uncounted_ops:
        out.add("uncounted ops", f"{check.uncounted_ops} (float ops are lower bounds)")

    whole = t.whole_model_time_us
    whole_text = (
        "—"
        if whole is None
        else (f"{whole.median:,.1f} µs (IQR {whole.iqr:,.1f}, {whole.repeats} repeats)")
    )
    out.add("isolated time", f"Σ rows {num(t.time_us, ',.1f')} µs; whole model {whole_text}")
    out.add("additivity", f"{num(t.additivity, '.3f')} (Σ isolated rows ÷ whole model)")
    sync = "empty body, its result copied to the host" if gpu else "empty body"
    out.add("overhead subtracted", f"{num(s.overhead_us, '.2f')} µs per segment ({sync})")
    for label, value in (
        ("whole model's time", whole),
        ("additivity", t.additivity),
        ("segment overhead", s.overhead_us),
    ):
        if value is None:
            out.problem(f"no {label}")

    correlations = check.rank_correlation
    out.add(
        "Spearman, isolated",
        "   ".join(
            f"{m} {num(correlations.get(m), '.2f')}" for m in ("callback", "unfused", "in_graph")
        ),
    )
    with_callback = sum(r.callback_time_us is not None for r in report.layers)
    out.add("callback times", f"{with_callback} of {len(report.layers)} rows (layer calls only)")
    if correlations.get("callback") is None:
        out.problem("no rank correlation with the callback")
    for method in ("unfused", "in_graph"):
        present = correlations.get(method) is not None
        if gpu and present:
            out.problem(f"step stats ({method}) ran although a GPU is visible")
        elif not gpu and not present:
            out.problem(f"no rank correlation with step stats ({method}) on the CPU")

    check_rates(report, gpu, out)
    check_memory(report, gpu, in_use_before, out)
    check_method_errors(check.method_errors, gpu, out)


def check_rates(report, gpu: bool, out: Outcome) -> None:
    """The matmul peak and the bandwidth, against the device's published figures."""
    env = report.environment
    spec = device_spec(env.device)
    tf32 = "TF32 allowed" in (env.peak_method or "")
    out.add("matmul peak", f"{si(env.peak_flop_per_s, 'FLOP/s')} ({env.peak_method or '—'})")
    if spec is None:
        out.add("  vs specification", "unknown device")
    else:
        published = spec.tf32_dense_flop_per_s if tf32 else spec.fp32_flop_per_s
        kind = "TF32 dense" if tf32 else "FP32"
        fp32 = spec.fp32_flop_per_s
        out.add(
            "  vs specification",
            f"{num(ratio(env.peak_flop_per_s, published), '.1%')} of {spec.name} {kind} "
            f"{si(published, 'FLOP/s')} ({num(ratio(env.peak_flop_per_s, fp32), '.2f')}× its "
            f"FP32 {si(fp32, 'FLOP/s')})",
        )
        if env.peak_flop_per_s and env.peak_flop_per_s > ABOVE_SPEC * published:
            out.problem("the matmul peak is above the published peak: did the clock stop early?")
        above = [
            r.label for r in report.layers if r.flop_per_s and r.flop_per_s > ABOVE_SPEC * published
        ]
        whole = report.totals.flop_per_s
        out.add(
            "  rows above it",
            f"{len(above)} (whole model {si(whole, 'FLOP/s')}, "
            f"{num(ratio(whole, published), '.1%')} of it)",
        )
        if above:
            out.problem(f"{len(above)} row(s) run faster than the published peak: {above[:5]}")
    out.add("bandwidth", f"{si(env.peak_bytes_per_s, 'B/s')} ({env.bandwidth_method or '—'})")
    if spec is None:
        out.add("  vs specification", "unknown device")
    else:
        out.add(
            "  vs specification",
            f"{num(ratio(env.peak_bytes_per_s, spec.bytes_per_s), '.1%')} of {spec.name} "
            f"{si(spec.bytes_per_s, 'B/s')}",
        )
        if env.peak_bytes_per_s and env.peak_bytes_per_s > ABOVE_SPEC * spec.bytes_per_s:
            out.problem("the bandwidth is above the published one: did the clock stop early?")
    ridge = ratio(env.peak_flop_per_s, env.peak_bytes_per_s)
    bounds = [r.bound for r in report.layers]
    out.add(
        "ridge point",
        f"{num(ridge, '.3g')} flop/B; {bounds.count('memory')} memory-bound, "
        f"{bounds.count('compute')} compute-bound rows",
    )
    for label, value in (("matmul peak", env.peak_flop_per_s), ("bandwidth", env.peak_bytes_per_s)):
        if value is None:
            out.problem(f"no {label}")
    if gpu and "4096x4096" not in (env.peak_method or ""):
        out.problem("the matmul peak did not use the GPU size (4096x4096)")
    if gpu and "1 GiB" not in (env.bandwidth_method or ""):
        out.problem("the bandwidth did not use the GPU arrays (1 GiB)")


def check_memory(report, gpu: bool, in_use_before: int | None, out: Outcome) -> None:
    """The static activation peak beside the allocator's measured peak."""
    t = report.totals
    out.add(
        "memory, static",
        f"activation peak {si(t.peak_activation_bytes, 'B')} (row {t.peak_row}); params "
        f"{si(t.param_bytes, 'B')}; params + peak {si(t.estimated_total_bytes, 'B')}",
    )
    out.add(
        "memory, measured", f"{si(t.measured_peak_bytes, 'B')} ({t.measured_peak_method or '—'})"
    )
    static_ratio = f"{num(ratio(t.peak_activation_bytes, t.measured_peak_bytes), '.3f')}"
    if gpu:  # the GPU's figure holds the weights and inputs too, the CPU's does not
        total_ratio = num(ratio(t.estimated_total_bytes, t.measured_peak_bytes), ".3f")
        out.add(
            "static ÷ measured", f"{static_ratio} (activation peak); {total_ratio} (params + peak)"
        )
    else:
        out.add("static ÷ measured", f"{static_ratio} (activation peak)")
    if gpu:
        above = None
        if t.measured_peak_bytes is not None and in_use_before is not None:
            above = t.measured_peak_bytes - in_use_before
        out.add(
            "  device baseline",
            f"{si(in_use_before, 'B')} in use before the profile (this model's weights and "
            f"anything left over); measured − baseline {si(above, 'B')}, static activation "
            f"peak ÷ that {num(ratio(t.peak_activation_bytes, above), '.3f')}",
        )
    if t.peak_activation_bytes is None:
        out.problem("no static activation peak")
    prefix = "GPU:" if gpu else "CPU:"
    if t.measured_peak_bytes is None:
        out.problem("no measured peak")
    elif not (t.measured_peak_method or "").startswith(prefix):
        out.problem(f"the measured peak's method does not start with {prefix!r}")
    elif gpu and t.param_bytes and t.measured_peak_bytes < t.param_bytes:
        out.problem("the GPU's measured peak is below the weights it holds")


def check_method_errors(errors: dict, gpu: bool, out: Outcome) -> None:
    from submodel_profiler.cross_checks import GPU_STEP_STATS

    if not errors:
        out.add("method errors", "none")
    for method, error in errors.items():
        expected = gpu and method == "step_stats" and error == GPU_STEP_STATS
        verdict = "expected on a GPU, skipped by design" if expected else "PROBLEM"
        out.add(f"method error {method}", f"[{verdict}] {error}")
        if not expected:
            out.problem(f"method error {method}: {error}")


# --- main -------------------------------------------------------------------------------------


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument(
        "--quick", action="store_true", help="tiny hand-built models, few repeats (tests, CI)"
    )
    parser.add_argument(
        "--large-batch",
        type=int,
        default=None,
        metavar="N",
        help=f"the larger batch (default {LARGE_BATCH_GPU} on a GPU, {LARGE_BATCH_CPU} on a CPU)",
    )
    parser.add_argument(
        "--budget-s",
        type=float,
        default=None,
        metavar="S",
        help="start no case after S seconds; a skipped case counts as a problem (default "
        f"{DEFAULT_BUDGET_S:g} on a GPU, no limit on a CPU)",
    )
    parser.add_argument(
        "--json-dir", type=Path, default=None, metavar="DIR", help="write each report as JSON"
    )
    args = parser.parse_args(argv)
    start = time.perf_counter()
    try:
        import keras
        import tensorflow as tf
    except ImportError as e:
        print(f"gpu_check: cannot import TensorFlow/Keras here: {e}", flush=True)
        print("gpu_check: 0 cases, 1 problems", flush=True)
        return 1

    gpus = tf.config.list_physical_devices("GPU")
    lines, problems = header(tf, gpus)
    print("\n".join(lines), flush=True)
    large = args.large_batch or (LARGE_BATCH_GPU if gpus else LARGE_BATCH_CPU)
    todo = cases(args.quick, large)
    budget_s = args.budget_s if args.budget_s is not None or not gpus else DEFAULT_BUDGET_S
    for problem in problems:
        print(f"  PROBLEM: {problem}", flush=True)
    for i, case in enumerate(todo, 1):
        title = f"[{i}/{len(todo)}] {case.model}, batch {case.batch_size}"
        elapsed = time.perf_counter() - start
        if budget_s is not None and elapsed > budget_s:
            problems.append(f"{title}: skipped")
            print(
                f"\n{title}: SKIPPED, {elapsed:.0f} s past the {budget_s:g} s budget",
                flush=True,
            )
            continue
        print(f"\n{title}", flush=True)
        try:
            outcome, _ = run_case(case, args.quick, bool(gpus), args.json_dir)
        except Exception as e:
            frames = traceback.format_exception(type(e), e, e.__traceback__)
            outcome = Outcome(lines=["  " + line for line in "".join(frames[-4:]).splitlines()])
            outcome.problem(f"crashed: {type(e).__name__}: {e}")
        print("\n".join(outcome.lines), flush=True)
        for problem in outcome.problems:
            print(f"  PROBLEM: {problem}", flush=True)
        print(f"  {'problems':<{LABEL_WIDTH}} {len(outcome.problems) or 'none'}", flush=True)
        problems += [f"{title}: {p}" for p in outcome.problems]
        keras.backend.clear_session()
        gc.collect()
    total_s = time.perf_counter() - start
    print(f"\ngpu_check: {len(todo)} cases, {len(problems)} problems ({total_s:.0f} s in all)")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
