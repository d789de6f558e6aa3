"""Command line: `python -m submodel_profiler MODEL [options]`.

The CLI only validates arguments, calls `profile_model` and a renderer, and maps outcomes to exit
codes: 0 success, 1 the float-op cross-check found a disagreement (the report is still written),
2 usage errors and unreadable models.
"""

from __future__ import annotations

import argparse
import os
import sys

from submodel_profiler.errors import UsageError
from submodel_profiler.renderers import FORMATS

EXIT_OK, EXIT_CROSS_CHECK_FAILED, EXIT_USAGE = 0, 1, 2

DESCRIPTION = """\
Profile a Keras model layer by layer: float ops and isolated time of a standalone sub-model per
layer (and per Keras op that is not a layer), cross-checked float op by float op against the
whole model's graph. MODEL is a .keras/.h5 file or a keras.applications name (e.g.
MobileNetV3Large, ResNet50), built with weights=None; nothing is ever downloaded.

Float ops are counted by TensorFlow's profiler: a multiply-add counts as 2 float ops."""

EPILOG = """\
exit codes: 0 success; 1 the float-op cross-check found a disagreement (the report is still
written); 2 bad arguments or a model that cannot be read.

examples:
  python -m submodel_profiler MobileNetV3Large
  python -m submodel_profiler model.keras --input-shape 128,128,3 --format json --output report.json
  python -m submodel_profiler ResNet50 --batch-size 8 --no-timing"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m submodel_profiler",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("model", metavar="MODEL",
                   help="path to a .keras/.h5 model file, or a keras.applications model name; "
                        "a path that exists wins over a name")  # fmt: skip
    p.add_argument("--batch-size", type=int, default=1, metavar="N",
                   help="batch dimension every graph is traced and timed with (default: 1)")
    p.add_argument("--input-shape", action="append", metavar="SHAPE", default=None,
                   help="per-sample input shape without the batch, e.g. 224,224,3; repeat once "
                        "per model input, in order. Required when an input has undefined dims; "
                        "for applications it sets the size they are built at (default: their "
                        "documented size, e.g. 224,224,3 or 299,299,3)")  # fmt: skip
    p.add_argument("--format", choices=FORMATS, default="table",
                   help="report format (default: table); json is the versioned contract "
                        "documented in the README")  # fmt: skip
    p.add_argument("--output", metavar="PATH",
                   help="write the report to PATH instead of stdout")
    p.add_argument("--no-timing", action="store_true",
                   help="count float ops only; skip isolated timing")
    timing = p.add_argument_group("timing (see README: how isolated time is measured)")
    timing.add_argument("--repeats", type=int, default=50, metavar="N",
                        help="at most N timed executions per row (default: 50)")
    timing.add_argument("--min-repeats", type=int, default=10, metavar="N",
                        help="at least N timed executions per row (default: 10)")
    timing.add_argument("--warmup", type=int, default=2, metavar="N",
                        help="untimed passes over all rows before sampling (default: 2)")
    timing.add_argument("--tolerance", type=float, default=0.05, metavar="F",
                        help="stop repeating a row once its median's 95%% confidence interval "
                             "is within ±F of the median (or ±1 µs) (default: 0.05)")
    timing.add_argument("--time-budget", type=float, default=0.02, metavar="SECONDS",
                        help="sampling budget per row, in seconds; sampling stops once the "
                             "budget of all rows is spent and every row has --min-repeats "
                             "samples (default: 0.02)")
    checks = p.add_argument_group("timing cross-checks (only with timing)")
    checks.add_argument("--step-stats-runs", type=int, default=5, metavar="N",
                        help="traced runs of the whole model for TF's per-node step stats, as "
                             "optimized and unfused (default: 5; 0 skips both)")
    checks.add_argument("--callback-samples", type=int, default=5, metavar="N",
                        help="eager predict executions timed by LayerTimingCallback "
                             "(default: 5; 0 skips)")
    p.add_argument("--progress", action=argparse.BooleanOptionalAction, default=None,
                   help="progress bars on stderr (default: on when stderr is a terminal)")
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    from submodel_profiler import __version__

    return f"submodel_profiler {__version__}"


def validate(args) -> None:
    """Check every argument before any TensorFlow work; raise UsageError naming the flag."""
    from submodel_profiler.loading import resolve_source
    from submodel_profiler.specs import check_batch_size, parse_shape

    try:
        check_batch_size(args.batch_size)
    except UsageError:
        raise UsageError(f"--batch-size must be a positive integer. Received: {args.batch_size}.")
    args.input_shapes = [parse_shape(s) for s in args.input_shape] if args.input_shape else None
    for flag, value, low in (("--repeats", args.repeats, 1), ("--min-repeats", args.min_repeats, 1),
                             ("--warmup", args.warmup, 0),
                             ("--step-stats-runs", args.step_stats_runs, 0),
                             ("--callback-samples", args.callback_samples, 0)):  # fmt: skip
        if value < low:
            raise UsageError(f"{flag} must be at least {low}. Received: {value}.")
    if args.min_repeats > args.repeats:
        raise UsageError(f"--min-repeats ({args.min_repeats}) must not exceed --repeats ({args.repeats}).")
    for flag, value in (("--tolerance", args.tolerance), ("--time-budget", args.time_budget)):
        if not value > 0:
            raise UsageError(f"{flag} must be a positive number. Received: {value}.")
    if args.output:
        folder = os.path.dirname(os.path.abspath(args.output))
        if not os.path.isdir(folder):
            raise UsageError(f"--output: the directory {folder!r} does not exist. Received: {args.output!r}.")
    resolve_source(args.model)


def run(args) -> int:
    """Profile, render and write; returns the exit code."""
    from submodel_profiler.loading import load_model
    from submodel_profiler.profiler import profile_model
    from submodel_profiler.renderers import render
    from submodel_profiler.timing import TimingSettings

    build_shape = args.input_shapes[0] if args.input_shapes else None
    loaded = load_model(args.model, input_shape=build_shape)
    settings = TimingSettings(
        warmup=args.warmup, min_repeats=args.min_repeats, max_repeats=args.repeats,
        tolerance=args.tolerance, budget_s=args.time_budget,
    )  # fmt: skip
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    report = profile_model(
        loaded.model, batch_size=args.batch_size, input_shapes=args.input_shapes,
        timing=not args.no_timing, timing_settings=settings, source=loaded.source,
        progress=progress, step_stats_runs=args.step_stats_runs,
        callback_samples=args.callback_samples,
    )  # fmt: skip
    text = render(report, args.format)
    if args.output:
        with open(args.output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)
    return EXIT_OK if report.cross_check.flops_exact else EXIT_CROSS_CHECK_FAILED


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        validate(args)
        return run(args)
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
