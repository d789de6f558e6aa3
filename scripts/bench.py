"""Benchmarks for the profiler's timing claims (issue 3). Not a test: prints a report.

Runs side by side, in one process run, for each model:
  * the seed method alone: trace model(x) with a static signature and count whole-graph float ops;
  * our full default profile (float ops, isolated timing, step-stats and callback cross-checks);
  * a second full profile, to see whether two runs rank their rows alike.
and reports wall times, time per row, additivity, identity-layer times and rank correlations.

With --processes it also times, alternately, two fresh processes: the seed method alone and
`python -m submodel_profiler MODEL` (the default run), which is what a user waits for.

Usage:
  python scripts/bench.py                       # MobileNetV3Large ResNet50 EfficientNetB0 NASNetMobile
  python scripts/bench.py MobileNetV3Large --processes 3
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
    """Whole-graph float ops the seed's way; returns (float ops, seconds)."""
    import tensorflow as tf

    from submodel_profiler.flops import count_graph_flops

    start = time.perf_counter()
    spec = tf.TensorSpec((1, *model.inputs[0].shape[1:]), model.inputs[0].dtype)
    graph = tf.function(lambda x: model(x, training=False)).get_concrete_function(spec).graph
    total = count_graph_flops(graph).total
    return total, time.perf_counter() - start


def spearman(a, b) -> float:
    from scipy.stats import spearmanr

    return float(spearmanr(a, b).statistic)


def bench_model(name: str) -> dict:
    from submodel_profiler import profile_model
    from submodel_profiler.loading import load_model

    model = load_model(name).model
    flops, seed_s = seed_method(model)
    start = time.perf_counter()
    first = profile_model(model)
    full_s = time.perf_counter() - start
    second = profile_model(model)
    a = [r.time_us.median for r in first.layers if r.time_us]
    b = [r.time_us.median for r in second.layers if r.time_us]
    big = [(x, y) for x, y in zip(a, b) if max(x, y) > 50.0]
    identity = [r.time_us.median for r in first.layers if r.type in IDENTITY_TYPES and r.time_us]
    return {
        "model": name,
        "rows": len(first.layers),
        "flops_exact": first.cross_check.flops_exact and first.totals.whole_graph_flops == flops,
        "seed_s": seed_s,
        "profile_s": full_s,
        "ms_per_row": 1e3 * full_s / len(first.layers),
        "additivity": first.totals.additivity,
        "additivity_2nd": second.totals.additivity,
        "whole_ms": first.totals.whole_model_time_us.median / 1e3,
        "identity_us_max": max(identity) if identity else None,
        "run_to_run_spearman_gt50us": spearman(*zip(*big)) if len(big) > 2 else None,
        "rank_correlation": getattr(first.cross_check, "rank_correlation", None),
    }


def time_processes(name: str, rounds: int) -> dict:
    """Alternate fresh processes: seed method alone vs. the default profiler run."""
    seed_cmd = [sys.executable, "-c", SEED_SNIPPET, name]
    full_cmd = [sys.executable, "-m", "submodel_profiler", name]
    seed, full = [], []
    for _ in range(rounds):
        for cmd, into in ((seed_cmd, seed), (full_cmd, full)):
            start = time.perf_counter()
            subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
            into.append(time.perf_counter() - start)
    s, f = statistics.median(seed), statistics.median(full)
    return {"model": name, "seed_process_s": s, "profiler_process_s": f, "ratio": f / s}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("models", nargs="*", default=DEFAULT_MODELS)
    parser.add_argument("--processes", type=int, default=0, metavar="ROUNDS",
                        help="also time fresh processes, alternating, ROUNDS times each")
    args = parser.parse_args()
    for name in args.models:
        if args.processes:
            print(time_processes(name, args.processes), flush=True)
        print(bench_model(name), flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
