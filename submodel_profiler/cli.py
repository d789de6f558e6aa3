"""Command line: `python -m submodel_profiler MODEL [options]`.

The CLI only validates arguments, calls `profile_model` and a renderer, and maps outcomes to exit
codes (see EPILOG): 0 success, 1 float-op disagreement, 2 usage error, 3 partial, 4 crash,
130 Ctrl-C.
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
import time

from submodel_profiler.counting import COUNTINGS, DEFAULT_COUNTING
from submodel_profiler.errors import UsageError, check_output_folder
from submodel_profiler.renderers import COLUMN_KEYS, DEFAULT_COLUMNS, FORMATS

EXIT_OK, EXIT_CROSS_CHECK_FAILED, EXIT_USAGE, EXIT_PARTIAL, EXIT_CRASH = 0, 1, 2, 3, 4
EXIT_INTERRUPTED = 130
DEFAULT_MIN_REPEATS, DEFAULT_BATCH_SIZE = 10, 1

DESCRIPTION = """\
Profile a Keras model layer by layer: float ops and isolated time of a standalone sub-model per
layer (and per Keras op that is not a layer), cross-checked float op by float op against the
whole model's graph. MODEL is a .keras/.h5 file or a keras.applications name (e.g.
MobileNetV3Large, ResNet50), built with weights=None; nothing is ever downloaded.

Float ops (a multiply-add counts as 2) follow --counting: "complete" (default) keeps TensorFlow's
profiler count wherever TF has one and adds our rules for what TF skips (einsum, elementwise math,
reductions, loop bodies × trip count); "tf" is TF's profiler alone. MACs (multiply-accumulates of
convolutions, matmuls and einsums, the "MAdds" papers publish) and TF's own count are reported
either way.

Bytes, at the dtypes the graph runs, batch included (docs/counting.md): "bytes" is a row's
inputs + outputs + the weights it reads, each once (the row as one fused kernel); "op bytes" is
what every executed op reads and writes on its own (cross-checked against the whole graph like
float ops); "flop/B" = float ops ÷ bytes; "bound" is memory or compute against this machine's
ridge point (its measured matmul peak ÷ its STREAM bandwidth). Footers give MB = 10^6 bytes."""

EPILOG = """\
exit codes: 0 success; 1 the float-op cross-check found a disagreement (the report is still
written); 2 bad arguments or a model that cannot be read; 3 partial: some rows could not be
profiled or run (each carries its error; the rest is complete); 4 a crash: the profiler itself
failed (one paragraph names the phase and the layer; --debug prints the traceback); 130 Ctrl-C
(the report holds what was measured so far). A disagreement among rows that completed wins over
partial; Ctrl-C wins over both; a sweep exits with the first of 130, 1, 3 any of its reports
has.

examples:
  python -m submodel_profiler MobileNetV3Large
  python -m submodel_profiler model.keras --input-shape 128,128,3 --format json --output report.json
  python -m submodel_profiler ResNet50 --batch-size 8 --no-timing
  python -m submodel_profiler bert.keras --seq-len 128 --no-timing
  python -m submodel_profiler MobileNetV3Large --sort time --top 20 --plot mnv3.png
  python -m submodel_profiler MobileNetV3Large --batch-sizes 1,8,32 --no-timing

subcommand:
  python -m submodel_profiler compare A.json B.json   compare two JSON reports row by row
      (see: python -m submodel_profiler compare --help)"""


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m submodel_profiler",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument(
        "model",
        metavar="MODEL",
        help="path to a .keras/.h5 model file, or a keras.applications model name; "
        "a path that exists wins over a name",
    )
    p.add_argument(
        "--batch-size",
        type=int,
        default=None,
        metavar="N",
        help="batch dimension every graph is traced and timed with (default: 1); "
        "not with --batch-sizes",
    )
    p.add_argument(
        "--input-shape",
        action="append",
        metavar="SHAPE",
        default=None,
        help="per-sample input shape without the batch, e.g. 224,224,3; repeat once "
        "per model input, in order, or name them: NAME=224,224,3. Required when "
        "an input has undefined dims; "
        "for applications it sets the size they are built at (default: their "
        "documented size, e.g. 224,224,3 or 299,299,3)",
    )
    p.add_argument(
        "--seq-len",
        type=int,
        default=None,
        metavar="N",
        help="sequence length of every input whose only free dim is the one right after the "
        "batch: (batch, seq) token ids, segment ids and padding masks of a text model, and "
        "(batch, seq, features) inputs with the features fixed; an input --input-shape names "
        "keeps that shape. Refused where it would fill no input",
    )
    p.add_argument(
        "--format",
        choices=FORMATS,
        default="table",
        help="report format (default: table); json is the versioned contract "
        "documented in docs/schema.md",
    )
    p.add_argument("--output", metavar="PATH", help="write the report to PATH instead of stdout")
    p.add_argument(
        "--depth",
        default="1",
        metavar="N|all",
        help="how deep rows go (default: 1, the model's own layers). Down to N, a "
        "layer whose call calls other layers (a composite layer, "
        "MultiHeadAttention, a transformer block, a nested model) is replaced by "
        "one row per sublayer call, named by path (block/attention/query), and "
        "an inline row for the ops it runs itself; each replaced layer is still "
        "profiled, and its totals and additivity are shown; all: no limit",
    )
    p.add_argument(
        "--expand-nested",
        action="store_true",
        help="replace each nested Functional/Sequential model by rows for its own "
        "layers, named by path (backbone/conv; backbone[1]/conv for its second call), at "
        "every level; "
        "--depth does the same down to its depth, for composite layers too "
        "(default: one row per nested model)",
    )
    p.add_argument(
        "--custom-objects",
        action="append",
        metavar="MODULE[:NAME]",
        default=None,
        help="import custom layers a model file needs: MODULE:NAME passes that "
        "object, MODULE alone imports a module that registers its objects "
        "with keras.saving.register_keras_serializable; repeatable",
    )
    p.add_argument(
        "--dtype-policy",
        metavar="POLICY",
        help="Keras dtype policy to build a keras.applications model with, e.g. "
        "mixed_float16 or bfloat16; rows are profiled in the compute dtype. "
        "Refused with a model file, which keeps the policies it was saved "
        "with",
    )
    p.add_argument(
        "--no-safe-mode",
        action="store_true",
        help="load a model file with Keras' safe_mode off, which a Lambda layer "
        "needs: this EXECUTES the Python code stored in the file, so use it only "
        "on files you trust (default: safe mode on)",
    )
    p.add_argument(
        "--counting",
        choices=COUNTINGS,
        default=DEFAULT_COUNTING,
        help="what the float-op column counts: complete = TF's profiler where TF "
        "counts an op, our rules (docs/counting.md) for what it skips; "
        "tf = TF's profiler alone, a lower bound (the count of reports before "
        "schema 2). Rows carry tf_flops and macs either way (default: complete)",
    )
    p.add_argument(
        "--pass",
        dest="pass_",
        choices=("inference", "train"),
        default="inference",
        help="what each row measures: inference = model(x, training=False); train = one "
        "training step, the forward with training=True and the backward of a loss with "
        "respect to every trainable weight, each row's float ops split into forward and "
        "backward, with the activations its backward keeps (docs/training.md) "
        "(default: inference)",
    )
    p.add_argument(
        "--optimizer",
        metavar="NAME",
        help="with --pass train: also count and time this keras.optimizers optimizer's "
        "update (sgd, adam, adamw, rmsprop, ...), each row's for the weights it owns, with "
        "its default settings (default: no update counted; model files load uncompiled)",
    )
    p.add_argument(
        "--no-timing", action="store_true", help="count float ops only; skip isolated timing"
    )
    timing = p.add_argument_group("timing (docs/timing.md: how isolated time is measured)")
    timing.add_argument(
        "--repeats",
        type=int,
        default=50,
        metavar="N",
        help="at most N timed executions per row (default: 50)",
    )
    timing.add_argument(
        "--min-repeats",
        type=int,
        default=None,
        metavar="N",
        help="at least N timed executions per row (default: 10, or --repeats when that is smaller)",
    )
    timing.add_argument(
        "--warmup",
        type=int,
        default=2,
        metavar="N",
        help="untimed passes over all rows before sampling; at least one runs, "
        "which also finds rows that fail when run (default: 2)",
    )
    timing.add_argument(
        "--tolerance",
        type=float,
        default=0.05,
        metavar="F",
        help="stop repeating a row once its median's 95%% confidence interval "
        "is within ±F of the median (or ±1 µs) (default: 0.05)",
    )
    timing.add_argument(
        "--time-budget",
        type=float,
        default=0.02,
        metavar="SECONDS",
        help="sampling budget per row, in seconds; sampling stops once the "
        "budget of all rows is spent and every row has --min-repeats "
        "samples (default: 0.02)",
    )
    checks = p.add_argument_group("timing cross-checks (only with timing)")
    checks.add_argument(
        "--step-stats-runs",
        type=int,
        default=5,
        metavar="N",
        help="traced runs of the whole model for TF's per-node step stats, as "
        "optimized and unfused (default: 5; 0 skips both)",
    )
    checks.add_argument(
        "--callback-samples",
        type=int,
        default=2,
        metavar="N",
        help="eager predict executions timed by LayerTimingCallback, after one untimed "
        "(default: 2; 0 skips)",
    )
    _add_research_arguments(p)
    p.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="progress bars on stderr (default: on when stderr is a terminal)",
    )
    p.add_argument(
        "--verbose",
        action="store_true",
        help="keep TensorFlow's C++ log lines on stderr (by default they are "
        "silenced: 'Could not find cuda drivers' and the like), and print the seconds each "
        "phase took (loading, walk, whole_graph, submodels, timing, cross_checks and of "
        "them step_stats and callback, memory, machine; settings.phases in the JSON)",
    )
    p.add_argument(
        "--debug",
        action="store_true",
        help="on a crash (exit code 4), print the full Python traceback",
    )
    p.add_argument("--version", action="version", version=_version())
    return p


def _version() -> str:
    from submodel_profiler import __version__

    return f"submodel_profiler {__version__}"


def validate(args) -> None:
    """Check every argument before any TensorFlow work; raise UsageError naming the flag."""
    from submodel_profiler.loading import resolve_source
    from submodel_profiler.specs import check_batch_size, parse_input_shapes

    if args.batch_size is not None and args.batch_sizes:
        raise UsageError(
            "--batch-size and --batch-sizes exclude each other: --batch-sizes "
            "profiles every batch size it lists. Received: --batch-size "
            f"{args.batch_size} --batch-sizes {args.batch_sizes}."
        )
    if args.batch_size is None:
        args.batch_size = DEFAULT_BATCH_SIZE
    try:
        check_batch_size(args.batch_size)
    except UsageError as e:
        raise UsageError(
            f"--batch-size must be a positive integer. Received: {args.batch_size}."
        ) from e
    args.depth = _depth(args.depth)
    if args.min_repeats is None:  # the user asked for no minimum: never more than --repeats
        args.min_repeats = max(1, min(DEFAULT_MIN_REPEATS, args.repeats))
    args.input_shapes = parse_input_shapes(args.input_shape)
    if args.seq_len is not None and args.seq_len < 1:
        raise UsageError(f"--seq-len must be a positive integer. Received: {args.seq_len}.")
    for flag, value, low in (
        ("--repeats", args.repeats, 1),
        ("--min-repeats", args.min_repeats, 1),
        ("--warmup", args.warmup, 0),
        ("--step-stats-runs", args.step_stats_runs, 0),
        ("--callback-samples", args.callback_samples, 0),
    ):
        if value < low:
            raise UsageError(f"{flag} must be at least {low}. Received: {value}.")
    if args.min_repeats > args.repeats:
        raise UsageError(
            f"--min-repeats ({args.min_repeats}) must not exceed --repeats ({args.repeats})."
        )
    for flag, value in (("--tolerance", args.tolerance), ("--time-budget", args.time_budget)):
        if not value > 0:
            raise UsageError(f"{flag} must be a positive number. Received: {value}.")
    if args.output:
        check_output_folder("--output", args.output)
    validate_research(args)
    kind = resolve_source(args.model)
    if args.dtype_policy and kind == "file":
        raise UsageError(
            "--dtype-policy builds a keras.applications model in that policy; a "
            "model file keeps the dtype policies it was saved with. Received: "
            f"--dtype-policy {args.dtype_policy} with the file {args.model!r}."
        )
    if args.no_safe_mode and kind != "file":
        raise UsageError(
            "--no-safe-mode applies to loading a model file. Received: "
            f"--no-safe-mode with the application name {args.model!r}."
        )


def run(args) -> int:
    """Profile, render and write; returns the exit code."""
    from submodel_profiler.loading import import_custom_objects, load_model
    from submodel_profiler.profiler import profile_model
    from submodel_profiler.renderers import render
    from submodel_profiler.timing import TimingSettings

    shapes = args.input_shapes
    build_shape = None
    if shapes:
        build_shape = next(iter(shapes.values())) if isinstance(shapes, dict) else shapes[0]
    started = time.perf_counter()
    custom = import_custom_objects(args.custom_objects)
    settings = TimingSettings(
        warmup=args.warmup,
        min_repeats=args.min_repeats,
        max_repeats=args.repeats,
        tolerance=args.tolerance,
        budget_s=args.time_budget,
    )
    loaded = load_model(
        args.model,
        input_shape=build_shape,
        custom_objects=custom,
        dtype_policy=args.dtype_policy,
        safe_mode=not args.no_safe_mode,
    )
    progress = sys.stderr.isatty() if args.progress is None else args.progress
    if args.batch_sizes:
        return run_sweep(args, loaded, settings, progress)
    loading_s = time.perf_counter() - started
    report = profile_model(
        loaded.model,
        batch_size=args.batch_size,
        **_profile_options(args, loaded, settings, progress),
    )
    phases = {"loading": loading_s, **report.settings.phases}
    report = dataclasses.replace(
        report, settings=dataclasses.replace(report.settings, phases=phases)
    )
    if args.verbose:
        spent = "   ".join(f"{name} {s:.2f} s" for name, s in phases.items())
        print(f"phases: {spent}", file=sys.stderr)
    text = render(report, args.format, top=args.top, sort=args.sort, columns=args.columns)
    if args.plot:
        from submodel_profiler.plots import write_plot

        write_plot(report, args.plot)
    if args.trace:
        from submodel_profiler.renderers.trace import render_trace

        _write(render_trace(report), args.trace)
    _write(text, args.output)
    return exit_code(report)


def _profile_options(args, loaded, settings, progress: bool) -> dict:
    """The keyword arguments of profile_model (and profile_sweep) the flags set."""
    return {
        "input_shapes": args.input_shapes,
        "seq_len": args.seq_len,
        "timing": not args.no_timing,
        "timing_settings": settings,
        "source": loaded.source,
        "progress": progress,
        "step_stats_runs": args.step_stats_runs,
        "expand_nested": args.expand_nested,
        "callback_samples": args.callback_samples,
        "counting": args.counting,
        "depth": args.depth,
        "trace": bool(args.trace),
        "pass_": args.pass_,
        "optimizer": args.optimizer,
    }


def exit_code(report) -> int:
    """130 interrupted; else 1 if rows that completed disagree with the whole graph (or float ops
    went unclaimed); else 3 partial (some rows failed); else 1 if Σ rows misses the whole
    graph; else 0."""
    if report.status == "interrupted":
        return EXIT_INTERRUPTED
    t = report.totals
    if (
        report.cross_check.mismatched_rows
        or t.unattributed_flops
        or t.unattributed_tf_flops
        or t.unattributed_macs
        or t.unattributed_op_bytes
    ):
        return EXIT_CROSS_CHECK_FAILED
    if report.status == "partial":
        return EXIT_PARTIAL
    return EXIT_OK if report.cross_check.counts_exact else EXIT_CROSS_CHECK_FAILED


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:1] == ["compare"]:
        return compare_main(argv[1:])
    args = build_parser().parse_args(argv)
    try:
        validate(args)
        if not args.verbose:
            from submodel_profiler.tf_logging import import_tensorflow_quietly

            import_tensorflow_quietly()
        return run(args)
    except UsageError as e:
        print(f"error: {_usage_message(e, argv)}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("interrupted (Ctrl-C) before a report could be written.", file=sys.stderr)
        return EXIT_INTERRUPTED
    except Exception as e:  # a crash: say where, keep the traceback for --debug
        return _crash(e, args.debug)


def _usage_message(error: UsageError, argv) -> str:
    """The paragraph after `error:`; inputs with free dims get the user's command completed."""
    from submodel_profiler.specs import FreeDimsError

    return error.for_command(argv) if isinstance(error, FreeDimsError) else str(error)


def _crash(error: Exception, debug: bool) -> int:
    """One paragraph on stderr naming the phase and layer (ProfilingError) and exit code 4."""
    import traceback

    from submodel_profiler.errors import ProfilingError, describe

    what = str(error) if isinstance(error, ProfilingError) else f"with {describe(error)}"
    print(
        f"crash: the profiler failed {what}. This is not a float-op disagreement (exit code "
        "1) nor bad input (exit code 2); no report was written. "
        + (
            "The traceback follows."
            if debug
            else "Run again with --debug for the full "
            "traceback, and please report it with the model if it is not yours to fix."
        ),
        file=sys.stderr,
    )
    if debug:
        traceback.print_exception(error)
    return EXIT_CRASH


# --- research outputs: --top/--sort, --plot, --batch-sizes, and the compare subcommand ---------


def _add_research_arguments(p: argparse.ArgumentParser) -> None:
    from submodel_profiler.summaries import SORT_KEYS

    out = p.add_argument_group("research outputs (docs/outputs.md: reading the results)")
    out.add_argument(
        "--top",
        type=int,
        metavar="N",
        help="table only: show the first N rows (after --sort); the per-type "
        "summary and totals still cover every row",
    )
    out.add_argument(
        "--wide",
        action="store_true",
        help="table only: every column (attached ghost ops, whole-graph float ops, "
        "%% flops, op bytes, param bytes, each row's static peak, GFLOP/s, %% peak, GB/s, "
        "%% roof, each timing method, fusion flags); the default shows what a reader needs "
        "first, in about 190 characters",
    )
    out.add_argument(
        "--columns",
        metavar="KEY,KEY,...",
        help="table only: these columns, in this order; keys: "
        f"{', '.join(COLUMN_KEYS)} (default: {','.join(DEFAULT_COLUMNS)})",
    )
    out.add_argument(
        "--sort",
        choices=SORT_KEYS,
        default="order",
        help="table only: row order; flops, time (isolated median) and params "
        "sort largest first (default: order, execution order)",
    )
    out.add_argument(
        "--plot",
        metavar="PATH.png",
        help="also write a figure (per-row time and float ops, float ops vs time "
        "with the peak, timing methods side by side); needs matplotlib: "
        'pip install -e ".[plot]"',
    )
    out.add_argument(
        "--trace",
        metavar="PATH.json",
        help="also write a Chrome trace (Perfetto, chrome://tracing): the whole model's "
        "step-stats run, each row a slice with its nodes inside and the bytes in use as a "
        "counter, and the isolated rows laid end to end; needs timing and step stats",
    )
    out.add_argument(
        "--batch-sizes",
        metavar="N,N,...",
        help="profile once per batch size, e.g. 1,8,32 (replaces --batch-size); "
        "the table shows float ops and µs per sample per batch size, the "
        "JSON holds one report per batch size",
    )


def validate_research(args) -> None:
    """Checks of --top, --sort, --plot and --batch-sizes; raise UsageError naming the flag."""
    from submodel_profiler.sweep import parse_batch_sizes

    if args.top is not None and args.top < 1:
        raise UsageError(f"--top must be at least 1. Received: {args.top}.")
    if args.sort == "time" and args.no_timing:
        raise UsageError("--sort time needs timing. Received: --no-timing.")
    if (args.top is not None or args.sort != "order") and args.format != "table":
        raise UsageError(
            f"--top and --sort shape the table only. Received: --format {args.format}."
        )
    args.batch_sizes = parse_batch_sizes(args.batch_sizes) if args.batch_sizes else None
    args.columns = _table_columns(args)
    if args.plot:
        from submodel_profiler.plots import check_plot_path, require_matplotlib

        if args.batch_sizes:
            raise UsageError(
                "--plot draws a single report; it cannot be combined with --batch-sizes."
            )
        check_plot_path(args.plot)
        require_matplotlib()
    if args.trace:
        _check_trace(args)


def _check_trace(args) -> None:
    """--trace needs a single timed report with step stats, and a .json path."""
    if args.batch_sizes:
        raise UsageError("--trace writes a single report's trace; not with --batch-sizes.")
    if args.no_timing or args.step_stats_runs == 0:
        given = "--no-timing" if args.no_timing else "--step-stats-runs 0"
        raise UsageError(
            f"--trace lays out the whole model's step-stats run, which needs timing and step "
            f"stats. Received: {given}."
        )
    if not args.trace.endswith(".json"):
        raise UsageError(
            f"--trace writes the Chrome Trace Event Format as JSON: give a .json path. "
            f"Received: {args.trace!r}."
        )
    check_output_folder("--trace", args.trace)


def _depth(text: str):
    """--depth as profile_model takes it: a positive int or "all"."""
    if text == "all":
        return text
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise UsageError(f"--depth must be a positive integer or all. Received: {text!r}.")
    return value


def _table_columns(args) -> tuple:
    """The table's column keys from --columns / --wide (default: renderers.DEFAULT_COLUMNS)."""
    from submodel_profiler.renderers import COLUMN_KEYS, DEFAULT_COLUMNS, WIDE_COLUMNS

    if (args.columns or args.wide) and args.format != "table":
        raise UsageError(
            f"--columns and --wide shape the table only; JSON and CSV hold every "
            f"field. Received: --format {args.format}."
        )
    if args.columns and args.wide:
        raise UsageError("Use either --columns or --wide. Received: both.")
    if args.wide:
        return WIDE_COLUMNS
    if not args.columns:
        return DEFAULT_COLUMNS
    keys = tuple(k.strip() for k in args.columns.split(",") if k.strip())
    unknown = [k for k in keys if k not in COLUMN_KEYS]
    if unknown or not keys:
        raise UsageError(
            f"--columns takes keys from: {', '.join(COLUMN_KEYS)}. Received: {args.columns!r}."
        )
    return keys


def run_sweep(args, loaded, settings, progress: bool) -> int:
    """Profile once per batch size, render the sweep, write it; returns the worst exit code."""
    from submodel_profiler.renderers import render_sweep
    from submodel_profiler.sweep import profile_sweep

    sweep = profile_sweep(
        loaded.model,
        args.batch_sizes,
        **_profile_options(args, loaded, settings, progress),
    )
    _write(render_sweep(sweep, args.format, top=args.top, sort=args.sort), args.output)
    codes = [exit_code(r) for r in sweep.reports]
    for code in (EXIT_INTERRUPTED, EXIT_CROSS_CHECK_FAILED, EXIT_PARTIAL):
        if code in codes:
            return code
    return EXIT_OK


def _write(text: str, output: str | None) -> None:
    if output:
        with open(output, "w", encoding="utf-8") as f:
            f.write(text)
    else:
        sys.stdout.write(text)


def build_compare_parser() -> argparse.ArgumentParser:
    from submodel_profiler.renderers import COMPARE_FORMATS

    p = argparse.ArgumentParser(
        prog="python -m submodel_profiler compare",
        description="Compare two JSON reports (written by --format json) row by row: float ops "
        "and every timing method, with deltas (B − A) and ratios (B / A). Rows are "
        "matched by (name, call_index); rows present in only one report are listed.",
        epilog="exit codes: 0 success; 2 a file that cannot be read, is not a single report, "
        "or has an unknown schema_version.",
    )
    p.add_argument("a", metavar="A.json", help="the baseline report")
    p.add_argument("b", metavar="B.json", help="the report compared with it")
    p.add_argument(
        "--format",
        choices=COMPARE_FORMATS,
        default="table",
        help="table (default) or json (per-row and total a, b, delta, ratio)",
    )
    p.add_argument("--output", metavar="PATH", help="write to PATH instead of stdout")
    from submodel_profiler.compare import MATCH_MODES

    p.add_argument(
        "--match",
        choices=MATCH_MODES,
        default="name",
        help="pair rows by (name, call_index) (default), or by execution order and "
        "type: for the same architecture built in one process twice, where "
        "Keras' per-process name counter renamed its layers",
    )
    return p


def compare_main(argv) -> int:
    """`python -m submodel_profiler compare A.json B.json`; returns the exit code."""
    from submodel_profiler.compare import compare_reports, read_report
    from submodel_profiler.renderers import render_comparison

    args = build_compare_parser().parse_args(argv)
    try:
        if args.output:
            check_output_folder("--output", args.output)
        comparison = compare_reports(
            read_report(args.a), read_report(args.b), args.a, args.b, match=args.match
        )
    except UsageError as e:
        print(f"error: {e}", file=sys.stderr)
        return EXIT_USAGE
    _write(render_comparison(comparison, args.format), args.output)
    return EXIT_OK
