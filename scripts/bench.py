"""Benchmarks for the profiler's timing claims (issue 3) and the cost of bytes (issue 14). Not a
test: prints a report.

Runs side by side, in one process run, for each model:
  * the seed method alone: trace model(x) with a static signature and count whole-graph float ops
    with TF's profiler (independently of this tool's counter);
  * our full default profile (float ops, isolated timing, step-stats and callback cross-checks),
    with the time spent counting measured inside it: all of `flops._count` (every graph and body
    the profile counts) and, of that, TF's own profiler (`flops._profile`); what remains is the
    cost of our own rules (complete convention, MACs, loop bodies);
  * a second full profile, to see whether two runs rank their rows alike.
and reports wall times, time per row, the profile's phases (settings.phases), both counting
conventions and MACs, additivity, the list-scheduled prediction and the critical path over the
measured whole model, identity-layer times and rank correlations.

With --processes it also times, alternately, four fresh processes: the seed method alone (the
bare count), `python -m submodel_profiler MODEL` (the default run, what a user waits for), the
same without the timing cross-checks (`--step-stats-runs 0 --callback-samples 0`) and with
--no-timing, with each process's peak RSS. With
--train it only times, alternately, the default run and `--pass train` (a training profile).
With --bert-base it only profiles a BERT-base encoder (keras-hub, built from its config with
random weights: 12 layers × 768, 128 tokens) at depths 1 to 3 and prints the prediction
against the measured whole model.

Usage:
  python scripts/bench.py    # MobileNetV3Large ResNet50 EfficientNetB0 NASNetMobile
  python scripts/bench.py MobileNetV3Large --processes 3
  python scripts/bench.py MobileNetV3Large NASNetMobile ResNet152V2 --processes 3 --processes-only
  python scripts/bench.py ResNet50 ResNet101 ResNet152V2 --processes 3 --processes-only  # per row
  python scripts/bench.py MobileNetV3Large --train 3
  python scripts/bench.py --bert-base
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")

DEFAULT_MODELS = ["MobileNetV3Large", "ResNet50", "EfficientNetB0", "NASNetMobile"]
IDENTITY_TYPES = {"Dropout", "Flatten", "Reshape", "Identity"}
SEED_SNIPPET = """
import os, sys
os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
import keras, tensorflow as tf
from tensorflow.python.profiler import model_analyzer
from tensorflow.python.profiler.option_builder import ProfileOptionBuilder
from submodel_profiler.loading import load_model
model = load_model(sys.argv[1]).model
spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
opts = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
print(model_analyzer.profile(graph, options=opts).total_float_ops)
"""


def seed_method(model) -> tuple[int, float]:
    """Whole-graph float ops the seed's way (TF's profiler); returns (float ops, seconds)."""
    import tensorflow as tf
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    from submodel_profiler.tf_logging import quiet_tf

    start = time.perf_counter()
    spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    opts = ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    with quiet_tf():
        total = model_analyzer.profile(graph, options=opts).total_float_ops
    return total, time.perf_counter() - start


class CountingClock:
    """Seconds spent in flops._count (outermost calls) and in flops._profile (TF's profiler)."""

    def __init__(self):
        from submodel_profiler import flops

        self.flops, self.count_s, self.tf_s, self._depth = flops, 0.0, 0.0, 0
        self._count, self._profile = flops._count, flops._profile

    def __enter__(self):
        def count(*args):
            self._depth += 1
            start = time.perf_counter()
            try:
                return self._count(*args)
            finally:
                self._depth -= 1
                if not self._depth:
                    self.count_s += time.perf_counter() - start

        def profile(graph):
            start = time.perf_counter()
            try:
                return self._profile(graph)
            finally:
                self.tf_s += time.perf_counter() - start

        self.flops._count, self.flops._profile = count, profile
        return self

    def __exit__(self, *exc):
        self.flops._count, self.flops._profile = self._count, self._profile


class BytesClock:
    """Seconds spent on bytes and memory inside a profile: op bytes per graph op
    (flops._moved), the static liveness peaks (memory.activation_peak, where the sub-models and
    the whole model call it) and the bandwidth measurement (bandwidth.measure_bandwidth)."""

    TARGETS = (
        ("submodel_profiler.flops", "_moved"),
        ("submodel_profiler.submodels", "activation_peak"),
        ("submodel_profiler.footprint", "activation_peak"),
        ("submodel_profiler.profiler", "measure_bandwidth"),
    )

    def __init__(self):
        import importlib

        self.seconds = {f"{m}.{a}": 0.0 for m, a in self.TARGETS}
        self._saved = [(importlib.import_module(m), a) for m, a in self.TARGETS]
        self._saved = [(mod, a, getattr(mod, a)) for mod, a in self._saved]

    def __enter__(self):
        for mod, attr, original in self._saved:
            key = f"{mod.__name__}.{attr}"

            def timed(*args, _original=original, _key=key, **kwargs):
                start = time.perf_counter()
                try:
                    return _original(*args, **kwargs)
                finally:
                    self.seconds[_key] += time.perf_counter() - start

            setattr(mod, attr, timed)
        return self

    def __exit__(self, *exc):
        for mod, attr, original in self._saved:
            setattr(mod, attr, original)

    @property
    def total_s(self) -> float:
        return sum(self.seconds.values())


def run_to_run_spearman(a: dict, b: dict) -> float | None:
    """Spearman of two runs' row medians ({(name, call index): µs}), paired by key, over the
    rows above 50 µs in either run; None with fewer than 3 such rows."""
    from submodel_profiler.cross_checks import spearman

    big = [(a[k], b[k]) for k in a if k in b and max(a[k], b[k]) > 50.0]
    return spearman(*zip(*big)) if len(big) > 2 else None


def bench_model(name: str) -> dict:
    from submodel_profiler import profile_model
    from submodel_profiler.loading import load_model

    model = load_model(name).model
    flops, seed_s = seed_method(model)
    start = time.perf_counter()
    with CountingClock() as clock, BytesClock() as bytes_clock:
        first = profile_model(model)
    full_s = time.perf_counter() - start
    second = profile_model(model)
    first_times, second_times = (
        {(r.name, r.call_index): r.time_us.median for r in report.layers if r.time_us}
        for report in (first, second)
    )
    identity = [r.time_us.median for r in first.layers if r.type in IDENTITY_TYPES and r.time_us]
    t = first.totals
    return {
        "model": name,
        "rows": len(first.layers),
        # the tool's cross-check, and its TF count against TF's profiler run the seed's way
        "cross_check_exact": first.cross_check.flops_exact,
        "tf_flops_equal_seed": t.whole_graph_tf_flops == flops,
        "flops_complete": t.flops,
        "tf_flops": t.tf_flops,
        "seed_tf_flops": flops,
        "macs": t.macs,
        "uncounted_ops": first.cross_check.uncounted_ops,
        "seed_s": seed_s,
        "profile_s": full_s,
        "counting_s": clock.count_s,
        "tf_profiler_s": clock.tf_s,
        "our_rules_s": clock.count_s - clock.tf_s,
        "our_rules_share_of_profile": (clock.count_s - clock.tf_s) / full_s,
        "ms_per_row": 1e3 * full_s / len(first.layers),
        # bytes: op bytes, static peaks, bandwidth; share of the profile they cost
        "bytes_exact": first.cross_check.bytes_exact,
        "bytes_s": bytes_clock.total_s,
        "bytes_share_of_profile": bytes_clock.total_s / full_s,
        "bytes_parts_s": bytes_clock.seconds,
        "peak_activation_mb": (t.peak_activation_bytes or 0) / 1e6,
        "measured_peak_mb": (t.measured_peak_bytes or 0) / 1e6,
        "static_over_measured": (
            t.peak_activation_bytes / t.measured_peak_bytes if t.measured_peak_bytes else None
        ),
        "bandwidth_gb_s": (first.environment.peak_bytes_per_s or 0) / 1e9,
        "memory_bound_types": sorted({r.type for r in first.layers if r.bound == "memory"}),
        "compute_bound_types": sorted({r.type for r in first.layers if r.bound == "compute"}),
        "phases_s": {k: round(v, 2) for k, v in first.settings.phases.items()},
        "additivity": first.totals.additivity,
        "additivity_2nd": second.totals.additivity,
        # the list-scheduled prediction of the whole model from the rows (schedule.py)
        "predicted_over_measured": _ratio(t.predicted_whole_us, t.whole_model_time_us),
        "critical_path_over_measured": _ratio(t.critical_path_us, t.whole_model_time_us),
        "whole_ms": first.totals.whole_model_time_us.median / 1e3,
        "identity_us_max": max(identity) if identity else None,
        "run_to_run_spearman_gt50us": run_to_run_spearman(first_times, second_times),
        "rank_correlation": getattr(first.cross_check, "rank_correlation", None),
    }


def _ratio(us, whole) -> float | None:
    return us / whole.median if us is not None and whole is not None else None


def run_measured(cmd) -> tuple[float, float]:
    """(wall seconds, peak RSS in MB) of one fresh process (exit status 0 or 1 both count: 1
    only says a cross-check disagreed); the RSS is this child's own, from wait4."""
    start = time.perf_counter()
    child = subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    _, status, usage = os.wait4(child.pid, 0)
    seconds = time.perf_counter() - start
    child.returncode = os.waitstatus_to_exitcode(status)
    if child.returncode not in (0, 1):
        raise RuntimeError(f"{cmd} exited with {child.returncode}")
    return seconds, usage.ru_maxrss / 1024  # ru_maxrss is in KiB on Linux


def alternate(commands, rounds: int, after=None) -> list[list[tuple[float, float]]]:
    """(wall seconds, peak RSS MB) of every run of each command, run as fresh processes,
    alternating, `rounds` times each; `after(i)`, if given, is called after each run of
    command i (to read what it wrote)."""
    runs: list[list[tuple[float, float]]] = [[] for _ in commands]
    for _ in range(rounds):
        for i, (cmd, into) in enumerate(zip(commands, runs)):
            into.append(run_measured(cmd))
            if after is not None:
                after(i)
    return runs


def _medians(runs) -> tuple[float, float]:
    return statistics.median(s for s, _ in runs), statistics.median(m for _, m in runs)


def time_processes(name: str, rounds: int) -> dict:
    """Alternate fresh processes: the seed method alone (the bare count), the default profile,
    the same without the timing cross-checks (`--step-stats-runs 0 --callback-samples 0`) and
    `--no-timing`; their medians, and their ratios to the bare count in time and RSS.

    The default and --no-timing processes write their JSON reports (a negligible cost), so the
    figures of the very runs timed are read from them: rows, phases (medians), and the fidelity
    the speed must not cost: additivity, predicted ÷ measured whole model, and the run-to-run
    Spearman of the rows over 50 µs between consecutive default processes (median)."""
    import json
    import tempfile

    with tempfile.TemporaryDirectory() as folder:
        out = [os.path.join(folder, f"{i}.json") for i in range(4)]
        base = [sys.executable, "-m", "submodel_profiler", name, "--format", "json"]
        reports: dict = {1: [], 2: []}

        def read(i):
            if i in reports:
                with open(out[i]) as f:
                    reports[i].append(json.load(f))

        commands = [
            [sys.executable, "-c", SEED_SNIPPET, name],
            [*base, "--output", out[1]],
            [*base, "--no-timing", "--output", out[2]],
            [*base, "--step-stats-runs", "0", "--callback-samples", "0", "--output", out[3]],
        ]
        bare, full, count, unchecked = (_medians(r) for r in alternate(commands, rounds, read))
    timed = reports[1]

    def median_of(values):
        values = [v for v in values if v is not None]
        return statistics.median(values) if values else None

    def row_times(report):
        return {
            (r["name"], r["call_index"]): r["time_us"]["median"]
            for r in report["layers"]
            if r.get("time_us")
        }

    spearmans = [run_to_run_spearman(row_times(a), row_times(b)) for a, b in zip(timed, timed[1:])]
    totals = [r["totals"] for r in timed]
    predicted = [
        t["predicted_whole_us"] / t["whole_model_time_us"]["median"]
        if t.get("predicted_whole_us") and t.get("whole_model_time_us")
        else None
        for t in totals
    ]
    phases = {
        key: round(statistics.median(r["settings"]["phases"].get(key, 0.0) for r in timed), 2)
        for key in timed[0]["settings"]["phases"]
    }
    rows = len(timed[0]["layers"])
    return {
        "model": name,
        "rows": rows,
        "exact": all(r["cross_check"]["flops_exact"] for r in timed + reports[2]),
        "bare_count_s": bare[0],
        "profile_s": full[0],
        "no_timing_s": count[0],
        "no_cross_checks_s": unchecked[0],
        "profile_ratio": full[0] / bare[0],
        "no_cross_checks_ratio": unchecked[0] / bare[0],
        "no_timing_ratio": count[0] / bare[0],
        "profile_ms_per_row": 1e3 * full[0] / rows,
        "bare_count_rss_mb": bare[1],
        "profile_rss_mb": full[1],
        "no_timing_rss_mb": count[1],
        "profile_rss_ratio": full[1] / bare[1],
        "no_timing_rss_ratio": count[1] / bare[1],
        "profile_phases_s": phases,
        "additivity": median_of(t.get("additivity") for t in totals),
        "predicted_over_measured": median_of(predicted),
        "run_to_run_spearman_gt50us": median_of(spearmans),
    }


def markdown_row(r: dict) -> str:
    """One line of the README's performance table."""
    return (
        f"| {r['model']} | {r['rows']} | {r['bare_count_s']:.1f} s | {r['profile_s']:.1f} s "
        f"({r['profile_ratio']:.2f}×) | {r['no_cross_checks_s']:.1f} s "
        f"({r['no_cross_checks_ratio']:.2f}×) | {r['no_timing_s']:.1f} s "
        f"({r['no_timing_ratio']:.2f}×) "
        f"| {r['profile_ms_per_row']:.0f} | {r['bare_count_rss_mb']:.0f} → "
        f"{r['profile_rss_mb']:.0f} MB ({r['profile_rss_ratio']:.2f}×) "
        f"| {_two(r['additivity'])} | {_two(r['predicted_over_measured'])} "
        f"| {_two(r['run_to_run_spearman_gt50us'])} |"
    )


def _two(x) -> str:
    return "–" if x is None else f"{x:.2f}"


MARKDOWN_HEADER = (
    "| model | rows | bare count | default profile | no timing cross-checks | --no-timing "
    "| ms per row (default) | peak RSS bare → default | additivity | predicted ÷ measured "
    "| run-to-run Spearman |\n"
    "|---|---|---|---|---|---|---|---|---|---|---|"
)


def time_training(name: str, rounds: int) -> dict:
    """Alternate fresh processes: the default (inference) profile vs. `--pass train`."""
    base = [sys.executable, "-m", "submodel_profiler", name]
    inference, train = (
        _medians(r)[0] for r in alternate([base, [*base, "--pass", "train"]], rounds)
    )
    return {
        "model": name,
        "inference_process_s": inference,
        "train_process_s": train,
        "ratio": train / inference,
    }


def bench_bert_base(depth: int) -> dict:
    """The list-scheduled prediction of a BERT-base encoder's whole time, at `depth`."""
    import keras_hub

    from submodel_profiler import profile_model

    model = keras_hub.models.BertBackbone(
        vocabulary_size=30522,
        num_layers=12,
        num_heads=12,
        hidden_dim=768,
        intermediate_dim=3072,
        max_sequence_length=512,
        dropout=0.0,
    )
    report = profile_model(model, seq_len=128, depth=depth, measure_peak=False)
    t = report.totals
    whole = t.whole_model_time_us.median
    return {
        "model": "BERT-base encoder, 128 tokens",
        "depth": depth,
        "rows": len(report.layers),
        "additivity": t.additivity,
        "predicted_over_measured": t.predicted_whole_us / whole,
        "critical_path_over_measured": t.critical_path_us / whole,
        "threads": t.predicted_threads,
    }


def main() -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument(
        "--processes",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="also time fresh processes, alternating, ROUNDS times each",
    )
    parser.add_argument(
        "--train",
        type=int,
        default=0,
        metavar="ROUNDS",
        help="only time fresh processes of the default profile and of --pass train, "
        "alternating, ROUNDS times each (medians, and their ratio)",
    )
    parser.add_argument(
        "--processes-only",
        action="store_true",
        help="with --processes: skip the in-process benchmark, and end with the README's "
        "performance table (markdown) of the models",
    )
    parser.add_argument(
        "--bert-base",
        action="store_true",
        help="only profile a BERT-base encoder at depths 1-3: the prediction against the "
        "measured whole model",
    )
    args = parser.parse_args()
    if args.bert_base:
        for depth in (1, 2, 3):
            print(bench_bert_base(depth), flush=True)
        return 0
    table = []
    for name in args.models:
        if args.train:
            print(time_training(name, args.train), flush=True)
            continue
        if args.processes:
            result = time_processes(name, args.processes)
            table.append(markdown_row(result))
            print(result, flush=True)
        if not args.processes_only:
            print(bench_model(name), flush=True)
    if table:
        print("\n".join([MARKDOWN_HEADER, *table]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
