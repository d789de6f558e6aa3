"""`profile_model`: the pipeline model → graph walk → sub-models → measurements → Report.

This module wires the methods together; each method lives in its own module
(`whole_graph`, `submodels`, `timing`). Nothing here prints; progress goes to stderr via tqdm
only when asked for.
"""

from __future__ import annotations

import contextlib
import dataclasses
import gc
import sys
import time
from dataclasses import dataclass, field

from submodel_profiler.bandwidth import HostStream, measure_bandwidth
from submodel_profiler.counting import COUNTINGS, DEFAULT_COUNTING, ZERO, Count
from submodel_profiler.cross_checks import OtherMethods, cross_check, gpu_visible, other_methods
from submodel_profiler.derived import add_derived_fields
from submodel_profiler.environment import collect_environment
from submodel_profiler.errors import ProfilingError, UsageError, describe
from submodel_profiler.footprint import (
    NOT_MEASURED,
    measured_memory,
    specs_bytes,
    static_memory,
    step_bytes_accessed,
    weight_bytes,
)
from submodel_profiler.graph_walk import UNLIMITED, RowPlan, graph_of, plan_rows
from submodel_profiler.heap import release_freed_memory
from submodel_profiler.host_stream import usable_cores
from submodel_profiler.methods import CROSS_CHECK_METHODS, ISOLATED, sum_present, total_us
from submodel_profiler.report import (
    STEP_STATS_SPLIT,
    LayerRow,
    ModelInfo,
    ParentRow,
    Report,
    Settings,
    TensorInfo,
    Totals,
    median_us,
    row_label,
)
from submodel_profiler.roofline import arithmetic_intensity
from submodel_profiler.specs import (
    check_batch_size,
    check_subclassed_seq_len,
    input_name,
    resolve_input_specs,
)
from submodel_profiler.subclassed import subclassed_input_specs, trace_subclassed
from submodel_profiler.submodels import SubModel, profile_submodel
from submodel_profiler.tf_logging import tf_warnings_silenced
from submodel_profiler.throughput import compute_dtype
from submodel_profiler.throughput import measure_peak as measure_machine_peak
from submodel_profiler.timing import (
    Segment,
    SegmentTimer,
    TimeStats,
    TimingSettings,
    integer_input_bound,
)
from submodel_profiler.tracing import imported_call, inference_call, input_structure, model_call
from submodel_profiler.training import (
    WholeStep,
    check_pass,
    check_trainable,
    optimizer_counts,
    profile_submodel_step,
    profile_whole_step,
    resolve_optimizer,
    step_wrapper,
    trace_subclassed_step,
    update_segment,
)
from submodel_profiler.whole_graph import WholeGraph, profile_whole_graph


@dataclass(frozen=True)
class _RowResult:
    """The sub-model measured for a row (shared by identical rows), or why it failed."""

    submodel: SubModel | None
    representative: tuple  # key of the row whose sub-model this is
    error: str | None = None  # without the row's name: a shared result serves several rows


def _fewer_collections(profile):
    """`profile` with the objects alive when it starts (TensorFlow, Keras, the model, the
    caller's) left out of Python's full garbage collections (`gc.freeze`) until it returns.
    A full collection scans every tracked object, and a profile makes millions more (graphs,
    ops, sub-models): the collections took 1.6 s of a ResNet152V2 profile, 0.9 s with this.
    A caller that froze objects itself is left as it is."""
    import functools

    @functools.wraps(profile)
    def wrapper(*args, **kwargs):
        if gc.get_freeze_count():
            return profile(*args, **kwargs)
        gc.freeze()
        try:
            return profile(*args, **kwargs)
        finally:
            gc.unfreeze()

    return wrapper


@_fewer_collections
def profile_model(
    model,
    batch_size: int = 1,
    input_shapes=None,
    *,
    seq_len: int | None = None,
    timing: bool = True,
    timing_settings: TimingSettings = TimingSettings(),
    source: str | None = None,
    progress: bool = False,
    step_stats_runs: int = 5,
    callback_samples: int = 2,
    expand_nested: bool = False,
    measure_peak: bool = True,
    counting: str = DEFAULT_COUNTING,
    depth: int | str = 1,
    trace: bool = False,
    pass_: str = "inference",
    optimizer=None,
    measured_bandwidth=None,
) -> Report:
    """Profile `model` layer by layer with the sub-model and whole-graph methods.

    Args:
        model: a built Functional or Sequential Keras model.
        batch_size: batch dimension every graph is traced and timed with.
        input_shapes: per-sample shapes, one per model input, for inputs with free dims.
        seq_len: the sequence length of every input whose only free dim is the one right after
            the batch and that `input_shapes` does not name (docs/models.md#inputs).
        timing: measure isolated times (otherwise float ops only).
        timing_settings: repeats, tolerance and budget of the timing method.
        source: where the model came from, recorded in the report.
        progress: show progress bars on stderr.
        step_stats_runs: traced runs of the whole model for TF's per-node step stats, as
            optimized and unfused (0 skips both); only with timing.
        callback_samples: eager executions timed by LayerTimingCallback, after one untimed
            (0 skips); only with timing. 2, not 3 or 5: the rows' Spearman against it did not
            move (docs/performance.md) and each eager pass costs several compiled ones.
        expand_nested: replace each nested Functional/Sequential model by rows for its own
            layers, named by path (`backbone/conv`; `backbone[1]/conv` for its second call),
            at every level (as `depth="all"` does for nested models).
        measure_peak: time a large float32 matmul for the machine's peak float ops per second
            (environment.peak_flop_per_s, rows' peak_fraction); only with timing.
        counting: what `flops` means: "complete" (TF's count where TF has one, our rules for
            the rest; counting.py) or "tf" (TF's profiler only). Rows and totals carry
            `tf_flops` and `macs` either way.
        depth: how deep rows go (1: the model's own layers; "all": no limit). Down to `depth`,
            a layer whose `call` calls other layers (a composite layer, Keras'
            MultiHeadAttention, a nested model) is replaced by one row per sublayer call site,
            named by path (`encoder/attention/query`), and one inline row for the ops it runs
            itself; the replaced layer is profiled too and reported in `report.parents`.
        trace: keep the whole model's step-stats run as `report.timeline` (its executed nodes
            in time and the bytes in use), which `renderers.render_trace` writes as a Chrome
            trace; only with timing and step stats.
        pass_: what each row measures: "inference" (model(x, training=False)) or "train" (one
            training step: the forward with training=True, the backward of a loss with respect
            to every trainable weight; training.py). In "train", rows' flops, macs, op bytes
            and times are the step's, split into forward_* and backward_*, with the saved
            activations, and a `(loss)` and a `(gradient aggregation)` row.
        optimizer: with pass_="train", the optimizer whose update rows also count and time
            (`optimizer_flops`, `optimizer_time_us`: each row's for the weights it owns, timed
            on copies of them, beside one update of all of them): a keras.optimizers name
            ("adam") or instance; default: the one the model was compiled with, if any.
        measured_bandwidth: this machine's memory bandwidth (`bandwidth.measure_bandwidth`),
            measured already (to profile many models, measure it once and pass it to each);
            None: measured at the end, beside the peak.

    Returns:
        A Report; a multiply-add is 2 float ops in both conventions.

    Raises:
        UsageError: the model or the shapes cannot be profiled (free dims, wrong shapes, a
            `seq_len` that fills no input, ...), `counting` is not one of COUNTINGS, or
            `pass_="train"` on a model without trainable weights or float outputs.
    """
    if counting not in COUNTINGS:
        raise UsageError(f"counting must be one of {COUNTINGS}. Received: counting={counting!r}.")
    train = check_pass(pass_) == "train"
    levels = check_depth(depth)
    check_model(model, expand_nested)
    if train:
        check_trainable(model)
    update = resolve_optimizer(model, optimizer, train)
    clock = Phases()
    if graph_of(model) is not None:
        specs = resolve_input_specs(model, batch_size, input_shapes, seq_len)
        nested: list = []
        with _phase("walking the layer graph"), clock("walk"):
            planned = plan_rows(model, expand_nested=expand_nested, depth=levels, parents=nested)
        with _phase("tracing the whole model"), clock("whole_graph"):
            profile = profile_whole_step if train else profile_whole_graph
            whole = profile(model, planned, specs, levels, tuple(nested))
    else:
        check_batch_size(batch_size)
        check_subclassed_seq_len(model, seq_len)
        specs = subclassed_input_specs(model, batch_size, input_shapes)
        with _phase("tracing the subclassed model"), clock("whole_graph"):
            whole = (trace_subclassed_step if train else trace_subclassed)(model, specs, levels)
    rows, parents = list(whole.rows), list(whole.parents)
    # The STREAM child allocates and touches its arrays while the rows are counted.
    host = None
    if timing and measure_peak and measured_bandwidth is None and not gpu_visible():
        host = HostStream(timing_settings)
    try:
        if timing:
            # What tracing left behind (Keras' scratch graphs; the second, ordinary trace where
            # there is one, of which only the counts are kept) is reference cycles: freed now,
            # and handed back, it leaves timing's peak lower.
            gc.collect()
            release_freed_memory()
        timed, others = _Timing(), OtherMethods()
        int_high = integer_input_bound(model)
        with tf_warnings_silenced():
            timer = SegmentTimer(timing_settings, int_high=int_high)
            whole_group = []
            if timing:
                # The whole model's optimizing, the timing's longest single part, runs in the
                # background while the sub-models are built and counted (which time nothing).
                with clock("timing"):
                    whole_group = _whole_model_group(model, whole, specs)
                    timer.compile_ahead(whole_group)
            with clock("submodels"):
                results, interrupted = _profile_submodels(rows + parents, whole, progress)
            timed = _Timing(interrupted=interrupted)
            owned = _owned_trainable_weights(rows) if update is not None else {}
            if timing and not interrupted:
                with _phase("timing the rows"), clock("timing"):
                    if host is not None:
                        host.ready()  # no page faults beside the timed runs
                    timed = _time_rows(
                        results,
                        whole,
                        timer,
                        whole_group,
                        progress,
                        _update_segments(update, owned),
                    )
                    # The timing functions' graphs are reference cycles, which only a full
                    # collection frees; freed now, the cross-checks and the matmul peak reuse their
                    # memory (MobileNetV3Large's peak 836-847 MB against 877, for 0.12 s).
                    gc.collect()
                    release_freed_memory()
            if timing and not timed.interrupted:
                try:
                    samples = 0 if train else callback_samples
                    with clock("cross_checks"):  # its methods' own: step_stats, callback
                        others = other_methods(
                            model,
                            whole,
                            specs,
                            step_stats_runs,
                            samples,
                            int_high,
                            timeline=trace,
                            phases=clock,
                        )
                    if train and callback_samples:
                        errors = {**others.errors, "callback": TRAIN_CALLBACK}
                        others = dataclasses.replace(others, errors=errors)
                except KeyboardInterrupt:  # Ctrl-C during the cross-checks: keep what was timed
                    timed = dataclasses.replace(timed, interrupted=True)
        updates = None  # the optimizer's update per row (training step with an optimizer)
        if update is not None:
            with _phase("counting the optimizer's update"), clock("optimizer"):
                updates = optimizer_counts(update, owned)
        counted_params: set = set()  # ids of layers whose weights a row already counts
        layers = tuple(
            _layer_row(
                row, whole, results[row.key], timed, others, counting, counted_params, updates
            )
            for row in rows
        )
        with clock("memory"):
            measured = _measured_memory(model, others, specs, int_high) if timing else {}
            memory = {**static_memory(whole, layers), **measured, **_prediction(whole, layers)}
        if timing and not measured and (step_stats_runs or gpu_visible()):  # could not be read
            others = dataclasses.replace(others, errors={**others.errors, "memory": NOT_MEASURED})
        optimizer_totals = {}
        if updates is not None:
            optimizer_totals = _optimizer_totals(update, updates, counting, layers, timed)
        parent_params: set = set()
        parent_rows = tuple(
            _parent_row(p, layers, results[p.key], timed, counting, parent_params) for p in parents
        )
        if timed.whole_error:
            others = dataclasses.replace(
                others, errors={**others.errors, "whole_model": timed.whole_error}
            )
        if timed.update_errors:  # the rows' counts stand: only their update's time is missing
            failed = "; ".join(
                f"{'all weights' if k == 'whole' else row_label(*k)}: {e}"
                for k, e in timed.update_errors.items()
            )
            others = dataclasses.replace(others, errors={**others.errors, "optimizer": failed})
        if whole.reference_error:
            others = dataclasses.replace(
                others, errors={"whole_graph": whole.reference_error, **others.errors}
            )
        report = Report(
            model=_model_info(model, source, batch_size, specs),
            environment=collect_environment(),
            settings=dataclasses.replace(
                _settings(timing, timing_settings, timed.overhead_us, counting),
                depth=depth,
                pass_name=pass_,
            ),
            layers=layers,
            totals=dataclasses.replace(
                _totals(layers, whole, timed.whole_time, counting),
                **memory,
                **_step_totals(whole, layers, counting, timed),
                **optimizer_totals,
            ),
            cross_check=cross_check(
                layers, whole.reference and whole.reference.total, others, counting, parent_rows
            ),
            status=_status((*layers, *parent_rows), timed.interrupted),
            parents=parent_rows,
            timeline=_timeline(others) if trace else None,
        )
        peak = bandwidth = None
        if timing and measure_peak and report.status != "interrupted":
            with clock("machine"):
                peak, bandwidth, errors = measure_machine(
                    timing_settings, compute_dtype(layers), measured_bandwidth, host
                )
            errors = {**report.cross_check.method_errors, **errors}
            report = dataclasses.replace(
                report, cross_check=dataclasses.replace(report.cross_check, method_errors=errors)
            )
        settings = dataclasses.replace(report.settings, phases=dict(clock.seconds))
        return add_derived_fields(dataclasses.replace(report, settings=settings), peak, bandwidth)
    finally:
        if host is not None:
            host.close()


class Phases:
    """Seconds spent in each named phase of a profile (`settings.phases`), accumulated:
    `with phases("timing"): ...`."""

    def __init__(self):
        self.seconds: dict = {}

    @contextlib.contextmanager
    def __call__(self, name: str):
        start = time.perf_counter()
        try:
            yield
        finally:
            self.seconds[name] = self.seconds.get(name, 0.0) + time.perf_counter() - start


def measure_machine(
    settings: TimingSettings, dtype: str, bandwidth=None, host: HostStream | None = None
) -> tuple:
    """(matmul peak, memory bandwidth, {method: error}) of this machine (the bandwidth only if
    not given; on the host by `host`, a STREAM child started ahead, where one is); a
    measurement that fails or that Ctrl-C stops is None with its error, never a lost report."""
    peak = None
    errors = {}
    with tf_warnings_silenced():  # the measurement creates a tf.function
        try:
            peak = measure_machine_peak(settings, dtype=dtype)
        except Exception as e:
            errors["peak"] = describe(e)
    if bandwidth is None:
        try:
            bandwidth, more = measure_memory_bandwidth(settings, host)
        except KeyboardInterrupt:
            more = {"bandwidth": "not measured: interrupted (Ctrl-C)"}
        errors.update(more)
    return peak, bandwidth, errors


def measure_memory_bandwidth(settings: TimingSettings, host: HostStream | None = None) -> tuple:
    """(memory bandwidth, {}) of this machine (`bandwidth.measure_bandwidth`), or (None,
    {"bandwidth": why not}) if it failed; Ctrl-C raises KeyboardInterrupt."""
    with tf_warnings_silenced():  # the measurement creates tf.functions
        try:
            bandwidth = measure_bandwidth(settings, host=host)
        except Exception as e:
            return None, {"bandwidth": describe(e)}
    if bandwidth is None:
        return None, {"bandwidth": "not measured: a STREAM kernel took no measurable time"}
    return bandwidth, {}


def check_depth(depth) -> int:
    """The number of levels `depth` asks for ("all": no limit).

    Raises:
        UsageError: not a positive integer nor "all".
    """
    if depth == "all":
        return UNLIMITED
    if isinstance(depth, bool) or not isinstance(depth, int) or depth < 1:
        raise UsageError(f"depth must be a positive integer or 'all'. Received: depth={depth!r}.")
    return depth


def check_model(model, expand_nested: bool) -> None:
    """Refuse what profile_model cannot profile, before any TensorFlow work.

    Raises:
        UsageError: `model` is not a Keras model, is an unbuilt Sequential, or is subclassed while
            `expand_nested` asks for nested Functional models to be expanded.
    """
    import keras

    if not isinstance(model, keras.Model):
        raise UsageError(
            f"profile_model expects a keras.Model (Functional, Sequential or "
            f"subclassed). Received: {model!r:.80} (of type {type(model).__name__})."
        )
    if isinstance(model, keras.Sequential) and graph_of(model) is None:
        raise UsageError(
            f"The Sequential model {model.name!r} is not built: it has no input "
            "shape yet. Start it with keras.Input(shape) or call model.build("
            "(None, ...)) first. Received: an unbuilt Sequential."
        )
    if graph_of(model) is None and expand_nested:
        raise UsageError(
            f"--expand-nested (expand_nested=True) expands nested Functional "
            f"models, and {type(model).__name__} is a subclassed model: its rows "
            "are already its layers' call sites. Received: expand_nested=True."
        )


@contextlib.contextmanager
def _phase(name: str):
    """Turn an unexpected exception into a ProfilingError naming `name` (a crash, told apart
    from bad input and from a float-op disagreement)."""
    try:
        yield
    except (UsageError, ProfilingError, KeyboardInterrupt):
        raise
    except Exception as e:
        raise ProfilingError(name, e) from e


def _progress_bar(items, enabled: bool, desc: str):
    from tqdm.auto import tqdm

    return tqdm(items, desc=desc, disable=not enabled, file=sys.stderr, leave=False, unit="row")


def _profile_submodels(rows: list[RowPlan], whole: WholeGraph, progress: bool):
    """Build and count one sub-model per distinct computation; identical rows share it.

    Returns ({row key: _RowResult}, interrupted): after Ctrl-C the rows not reached carry an
    error saying so.
    """
    results: dict = {}
    try:
        _build_submodels(rows, whole, progress, results)
    except KeyboardInterrupt:
        for row in rows:
            if row.key not in results:
                results[row.key] = _RowResult(
                    None, row.key, "interrupted (Ctrl-C) before its sub-model was built"
                )
        return results, True
    return results, False


def _build_submodels(rows: list[RowPlan], whole: WholeGraph, progress: bool, results: dict):
    by_signature: dict = {}
    for row in _progress_bar(rows, progress, "sub-models"):
        if row.source == "inline":  # ops written in a subclassed model's call: not isolable
            results[row.key] = _RowResult(None, row.key)
            continue
        if row.key in whole.row_errors:  # its layer failed in the whole model's trace
            results[row.key] = _RowResult(None, row.key, whole.row_errors[row.key])
            continue
        specs = whole.trace(row.key).input_specs
        signature = computation_signature(row, specs)
        earlier = by_signature.get(signature) if signature is not None else None
        # Equal configs are not enough (a custom layer's behaviour may not be in its config):
        # the traced graphs must be identical too.
        if earlier is not None and whole.row_graph_digest(row.key) == whole.row_graph_digest(
            earlier
        ):
            results[row.key] = results[earlier]
            continue
        try:
            used = whole.trace(row.key).outputs_used
            result = _RowResult(_profile_row(row, whole, specs, used), row.key)
        except Exception as e:  # One failing row must not sink the run.
            result = _RowResult(None, row.key, describe(e))
        results[row.key] = result
        if signature is not None:
            by_signature[signature] = row.key


def _profile_row(row: RowPlan, whole: WholeGraph, specs, used) -> SubModel:
    """The row's sub-model, counted as the whole graph runs it: its inference, or its
    training step with the input gradients the whole step needs from it."""
    if isinstance(whole, WholeStep):
        needs = whole.gradient_inputs.get(row.key, ())
        return profile_submodel_step(row, specs, used, needs, whole.trace(row.key).output_specs)
    return profile_submodel(row, specs, used)


# The callback times eager forward calls of `layer.call`: nothing of a training step's backward.
TRAIN_CALLBACK = (
    "skipped: the callback times each layer's forward call at inference, not a training "
    "step; the train pass is cross-checked with the whole step and TF's step stats"
)


def computation_signature(row: RowPlan, specs) -> str | None:
    """A key equal for rows that may compute the same thing on the same input specs, else None.

    Two rows match when every node has the same class, the same config apart from its name,
    the same non-tensor arguments, and the inputs have the same shapes and dtypes. Rows share a
    sub-model only when, in addition, their traced graphs are identical
    (`WholeGraph.row_graph_digest`).
    """
    from keras import KerasTensor

    parts = [tuple((tuple(s.shape), s.dtype.name) for s in specs)]
    if row.source == "call_site":  # a subclassed model's call site
        parts.append(repr(row.call_template))
    for node in row.nodes or [_StandIn(row.operation)]:
        try:
            config = dict(node.operation.get_config())
        except Exception:
            return None
        config.pop("name", None)
        args = (
            None
            if node.arguments is None
            else node.arguments.convert(lambda x: "<tensor>" if isinstance(x, KerasTensor) else x)
        )
        parts.append((type(node.operation).__qualname__, repr(sorted(config.items())), repr(args)))
    return repr(parts)


@dataclass(frozen=True)
class _Timing:
    """Isolated times per representative row key, the whole model's, the subtracted overhead."""

    times: dict = field(default_factory=dict)
    whole_time: TimeStats | None = None
    overhead_us: float | None = None
    interrupted: bool = False
    errors: dict = field(default_factory=dict)  # representative row key -> why timing failed
    whole_error: str | None = None  # why timing the whole model failed
    # train pass: each step's forward part (row key), the whole step's (forward and loss)
    forward_times: dict = field(default_factory=dict)
    whole_forward_time: TimeStats | None = None
    # with an optimizer: its update of each row's own weights (row key), of all the weights
    update_times: dict = field(default_factory=dict)
    whole_update_time: TimeStats | None = None
    update_errors: dict = field(default_factory=dict)  # row key or "whole" -> why it failed


def _status(layers, interrupted: bool) -> str:
    if interrupted:
        return "interrupted"
    return "partial" if any(r.error for r in layers) else "complete"


@dataclass(frozen=True)
class _StandIn:
    """A node-like view of a subclassed row's layer, for `computation_signature`."""

    operation: object
    arguments: object = None


def _whole_model_group(model, whole: WholeGraph, specs) -> list:
    """The timing group of the whole model (or training step): one segment, none if the
    whole model was not traced.

    It runs inline like the rows, never its counted concrete function called: that measured 6%
    faster than the same model traced inline (MobileNetV3Large, 8 alternations), which would
    bias additivity. The reference trace's graph imported inline measured as the trace
    (paired ratio 0.99-1.01 on three applications) and saves tracing the model again."""
    if whole.reference is None:
        return []
    train = isinstance(whole, WholeStep)
    if train:
        call = step_wrapper(model, {})(model_call(model, input_structure(model), training=True))
    elif whole.reference_function is not None:
        call = imported_call(whole.reference_function)
    else:
        call = inference_call(model, input_structure(model))
    return [Segment(call, tuple(specs), train)]


def _time_rows(
    results: dict,
    whole: WholeGraph,
    timer: SegmentTimer,
    whole_model: list,
    progress: bool,
    updates: _Updates | None = None,
) -> _Timing:
    """Time every distinct row's sub-model and the whole model (`whole_model`, its group, maybe
    compiled ahead by `timer`) side by side (timing.py); with an optimizer, its `updates` too,
    the rows' and the whole one each in a group of its own."""
    updates = updates or _Updates()
    keys = [k for k, r in results.items() if r.submodel is not None and r.representative == k]
    parent_keys = {p.key for p in whole.parents}
    row_keys = [k for k in keys if k not in parent_keys]
    parents = [k for k in keys if k in parent_keys]
    keys = row_keys + parents  # parents (large graphs) in a group of their own

    traced = whole.reference is not None
    train = isinstance(whole, WholeStep)

    def segments(group):  # a training step split where its forward ends
        return [Segment(results[k].submodel.call, whole.trace(k).input_specs, train) for k in group]

    bar = _progress_bar(None, progress, "timing")
    bar.unit = "sample"

    def report(done, total):
        bar.total, bar.n = total, done
        bar.refresh()

    update_keys = list(updates.rows)
    whole_update = [] if updates.whole is None else [updates.whole]
    try:
        groups = [segments(row_keys), segments(parents), whole_model]
        groups += [list(updates.rows.values()), whole_update]
        stats = timer.time(groups, progress=report)
    finally:
        bar.close()
    row_stats, parent_stats, model_stats, update_stats, whole_stats = stats
    times = {k: s for k, s in zip(keys, row_stats + parent_stats) if s is not None}
    errors = {
        (row_keys, parents)[group][i]: error
        for (group, i), error in timer.errors.items()
        if group < 2
    }
    whole_error = timer.errors.get((2, 0)) if traced else f"not timed: {whole.reference_error}"
    whole_time = model_stats[0] if model_stats else None
    forward_times = {
        (row_keys, parents)[g][i]: s for (g, i), s in timer.first_parts.items() if g < 2
    }
    update_errors = dict(updates.errors)
    for (group, i), error in timer.errors.items():
        if group >= 3:  # 3: a row's update, 4: the whole update
            update_errors[update_keys[i] if group == 3 else "whole"] = error
    update_errors = _shared(update_errors, updates.same)
    return _Timing(
        times,
        whole_time,
        timer.overhead_us,
        timer.interrupted,
        errors,
        whole_error,
        forward_times,
        whole_forward_time=timer.first_parts.get((2, 0)),
        update_times=_shared(
            {k: s for k, s in zip(update_keys, update_stats) if s is not None}, updates.same
        ),
        whole_update_time=whole_stats[0] if whole_stats else None,
        update_errors=update_errors,
    )


@dataclass(frozen=True)
class _Updates:
    """Segments timing the optimizer's update of each row's own weights and of all of them at
    once (`training.update_segment`), and why one could not be made ({row key or "whole": ...})."""

    rows: dict = field(default_factory=dict)  # row key -> Segment
    whole: Segment | None = None
    errors: dict = field(default_factory=dict)
    # row key -> the row in `rows` whose weights have the same shapes and dtypes: the same
    # update, timed once
    same: dict = field(default_factory=dict)


def _shared(values: dict, same: dict) -> dict:
    """`values` (by row key) with each row of `same` given its representative's value."""
    return {**values, **{k: values[r] for k, r in same.items() if r in values}}


def _update_segments(optimizer, owned: dict) -> _Updates:
    """The `_Updates` of `optimizer` for `owned` ({row key: trainable weights}); empty without
    an optimizer. A segment that cannot be made costs its time only, never the profile."""
    if optimizer is None:
        return _Updates()
    groups, same, first = {}, {}, {}
    for key, weights in owned.items():
        if weights:
            signature = tuple((tuple(w.shape), str(w.dtype)) for w in weights)
            same[key] = first.setdefault(signature, key)
            if same[key] == key:
                groups[key] = weights
    everything = [w for ws in owned.values() for w in ws]
    if everything:
        groups["whole"] = everything
    segments, errors = {}, {}
    for key, weights in groups.items():
        try:
            segments[key] = update_segment(optimizer, weights)
        except Exception as e:
            errors[key] = describe(e)
    whole = segments.pop("whole", None)
    return _Updates(segments, whole, errors, {k: v for k, v in same.items() if k != v})


def _layer_row(
    row: RowPlan,
    whole: WholeGraph,
    result: _RowResult,
    timed: _Timing,
    others: OtherMethods,
    counting: str,
    counted_params: set,
    updates=None,
) -> LayerRow:
    trace = whole.row_traces[row.key]
    same_as = None if result.representative == row.key else row_label(*result.representative)
    fused_into = others.in_graph.fused_into.get(row.key) if others.in_graph else None
    whole_count = whole.row_count(row.key)
    count = _sub_model_count(row, result.submodel, whole_count)
    flops = None if count is None else count.of(counting)
    params, param_bytes = _params(row, counted_params)
    input_bytes = output_bytes = accessed = None  # an inline row has no inputs of its own
    if row.source != "inline":
        input_bytes = specs_bytes(trace.input_specs)
        output_bytes = specs_bytes(trace.output_specs)
        if input_bytes is not None and output_bytes is not None:
            accessed = input_bytes + output_bytes + weight_bytes(row)
    step = _step_fields(row, whole, result, timed, counting)
    step.update(_step_stats_split(row, whole, others))
    if updates is not None:
        step["optimizer_flops"] = updates.rows.get(row.key, ZERO).of(counting)
        step["optimizer_time_us"] = timed.update_times.get(row.key)
    accessed = step.pop("bytes_accessed", accessed)  # a training step: its own (footprint.py)
    return LayerRow(
        name=row.name,
        type=row.type,
        kind=row.kind,
        call_index=row.call_index,
        ghost_ops=row.ghost_ops,
        input_shapes=tuple(tuple(s.shape) for s in trace.input_specs),
        input_dtypes=tuple(s.dtype.name for s in trace.input_specs),
        output_shapes=tuple(tuple(s.shape) for s in trace.output_specs),
        output_dtypes=tuple(s.dtype.name for s in trace.output_specs),
        params=params,
        depth=row.depth,
        parent=row.parent,
        flops=flops,
        whole_graph_flops=whole_count.of(counting),
        tf_flops=None if count is None else count.tf_flops,
        whole_graph_tf_flops=whole_count.tf_flops,
        macs=None if count is None else count.macs,
        whole_graph_macs=whole_count.macs,
        op_bytes=None if count is None else count.op_bytes,
        whole_graph_op_bytes=whole_count.op_bytes,
        param_bytes=param_bytes,
        input_bytes=input_bytes,
        output_bytes=output_bytes,
        bytes_accessed=accessed,
        arithmetic_intensity=arithmetic_intensity(flops, accessed),
        peak_activation_bytes=_row_peak(row, result),
        measured_peak_bytes=others.unfused.row_peak_bytes.get(row.key) if others.unfused else None,
        time_us=timed.times.get(result.representative),
        error=_row_error(row, result, timed),
        uncounted_ops=whole.row_uncounted(row.key, counting),
        count_notes=whole.row_notes(row.key) if counting == "complete" else (),
        same_as=same_as,
        in_graph_time_us=others.in_graph.times_us.get(row.key) if others.in_graph else None,
        unfused_time_us=others.unfused.times_us.get(row.key) if others.unfused else None,
        fused_into=None if fused_into is None else row_label(*fused_into),
        callback_time_us=others.callback.get(row.key),
        **step,
    )


def _step_fields(row: RowPlan, whole, result: _RowResult, timed: _Timing, counting: str) -> dict:
    """A train-pass row's forward/backward split, saved activations and forward time ({} at
    inference)."""
    if not isinstance(whole, WholeStep):
        return {}
    whole_forward = whole.row_forward_count(row.key)
    sub = result.submodel
    if row.source == "inline":
        step, forward = whole.row_count(row.key), whole_forward
    elif sub is not None:
        step, forward = sub.flops.total, sub.forward
    else:
        step = forward = None
    backward = None if step is None else step - forward
    forward_time = timed.forward_times.get(result.representative)
    step_time = timed.times.get(result.representative)
    ratio = None  # also for a row whose backward does nothing (no input or weight gradient)
    works = backward is not None and (backward.flops or backward.op_bytes)
    if works and forward_time and step_time and forward_time.median > 0:
        ratio = (step_time.median - forward_time.median) / forward_time.median
    trace = whole.row_traces[row.key]
    accessed = None
    if row.source != "inline":
        accessed = step_bytes_accessed(row, trace, whole.gradient_inputs.get(row.key, ()))
    return {
        "bytes_accessed": accessed,
        "forward_flops": None if forward is None else forward.of(counting),
        "whole_graph_forward_flops": whole_forward.of(counting),
        "forward_tf_flops": None if forward is None else forward.tf_flops,
        "whole_graph_forward_tf_flops": whole_forward.tf_flops,
        "forward_macs": None if forward is None else forward.macs,
        "whole_graph_forward_macs": whole_forward.macs,
        "backward_flops": None if backward is None else backward.of(counting),
        "backward_tf_flops": None if backward is None else backward.tf_flops,
        "backward_macs": None if backward is None else backward.macs,
        "saved_activation_bytes": whole.saved_activation_bytes.get(row.key),
        "forward_time_us": forward_time,
        "backward_time_ratio": ratio,
    }


def _step_stats_split(row: RowPlan, whole, others: OtherMethods) -> dict:
    """A train-pass row's step-stats times split into forward and backward ({} at inference;
    None where the mode did not run or gave the row no time of its own)."""
    if not isinstance(whole, WholeStep):
        return {}
    fields = {}
    for name, mode, phase in STEP_STATS_SPLIT:
        times = getattr(others, mode)
        split = None if times is None else times.phase_us.get(row.key)
        fields[name] = None if split is None else split[phase]
    return fields


def _step_totals(whole, layers, counting: str, timed: _Timing) -> dict:
    """The train pass's totals ({} at inference): Σ rows' splits, the distinct saved bytes, the
    whole step's forward time."""
    if not isinstance(whole, WholeStep):
        return {}

    def total(name):
        values = [getattr(r, name) for r in layers]
        return None if any(v is None for v in values) else sum(values)

    return {
        "forward_flops": total("forward_flops"),
        "forward_tf_flops": total("forward_tf_flops"),
        "forward_macs": total("forward_macs"),
        "backward_flops": total("backward_flops"),
        "backward_tf_flops": total("backward_tf_flops"),
        "backward_macs": total("backward_macs"),
        "saved_activation_bytes": whole.saved_activation_total_bytes,
        "forward_time_us": sum_present(median_us(r.forward_time_us) for r in layers),
        "whole_forward_time_us": timed.whole_forward_time,
        **{name: sum_present(getattr(r, name) for r in layers) for name, *_ in STEP_STATS_SPLIT},
    }


def _owned_trainable_weights(rows) -> dict:
    """{row key: trainable weights} of each layer's first row (a shared layer's weights are
    updated once, as `_params` counts them once)."""
    seen, groups = set(), {}
    for row in rows:
        if row.kind == "layer" and id(row.operation) not in seen:
            seen.add(id(row.operation))
            groups[row.key] = list(getattr(row.operation, "trainable_weights", ()))
    return groups


def _optimizer_totals(optimizer, updates, counting: str, layers, timed: _Timing) -> dict:
    """The totals' optimizer figures: one update of every weight, and what of it no row has;
    Σ rows' update medians beside one update of all the weights, timed alike."""
    rows_total = sum(c.of(counting) for c in updates.rows.values())
    return {
        "optimizer": type(optimizer).__name__,
        "optimizer_flops": updates.whole.of(counting),
        "unattributed_optimizer_flops": updates.whole.of(counting) - rows_total,
        "optimizer_time_us": sum_present(median_us(r.optimizer_time_us) for r in layers),
        "whole_optimizer_time_us": timed.whole_update_time,
    }


def _row_error(row: RowPlan, result: _RowResult, timed: _Timing) -> str | None:
    """Why the row (or its shared sub-model) failed, named after this row."""
    if result.error is not None:
        return f"{row.label}: {result.error}"
    error = timed.errors.get(result.representative)
    return None if error is None else f"{row.label}: its sub-model failed when run: {error}"


def _parent_row(
    plan: RowPlan, layers, result: _RowResult, timed: _Timing, counting: str, counted_params: set
) -> ParentRow:
    """An expanded layer: its own sub-model's counts and time beside its rows' sums (None when
    one of its rows could not be counted: no sum to compare)."""
    prefix = plan.label + "/"
    inside = [r for r in layers if r.label.startswith(prefix)]
    complete = all(r.flops is not None for r in inside)
    count = None if result.submodel is None else result.submodel.flops.total
    time = timed.times.get(result.representative)
    rows_time = _timed_total(inside)
    return ParentRow(
        name=plan.name,
        type=plan.type,
        call_index=plan.call_index,
        depth=plan.depth,
        parent=plan.parent,
        params=_params(plan, counted_params)[0],
        rows=len(inside),
        flops=None if count is None else count.of(counting),
        tf_flops=None if count is None else count.tf_flops,
        macs=None if count is None else count.macs,
        rows_flops=sum(r.flops for r in inside) if complete else None,
        rows_tf_flops=sum(r.tf_flops for r in inside) if complete else None,
        rows_macs=sum(r.macs for r in inside) if complete else None,
        op_bytes=None if count is None else count.op_bytes,
        rows_op_bytes=sum(r.op_bytes for r in inside) if complete else None,
        time_us=time,
        rows_time_us=rows_time,
        additivity=_additivity(rows_time, time),
        error=_row_error(plan, result, timed),
    )


def _sub_model_count(row: RowPlan, sub, whole_count: Count) -> Count | None:
    if row.source == "inline":  # not isolable: its counts are its whole-graph counts
        return whole_count
    return None if sub is None else sub.flops.total


def _params(row: RowPlan, counted: set) -> tuple[int, int]:
    """(parameters, their bytes) of the row's layer, on the first row of that layer object only
    (shared weights count once, also under different paths: `block/dense`, `block[1]/dense`)."""
    if row.kind != "layer" or id(row.operation) in counted:
        return 0, 0
    counted.add(id(row.operation))
    if not row.operation.built:
        return 0, 0
    return int(row.operation.count_params()), weight_bytes(row)


def _row_peak(row: RowPlan, result: _RowResult) -> int | None:
    """The static activation peak of the row's own sub-model (None: not isolable, or failed)."""
    if row.source == "inline" or result.submodel is None:
        return None
    return result.submodel.peak_activation_bytes


def _measured_memory(model, others: OtherMethods, specs, int_high: int) -> dict:
    """footprint.measured_memory of this run: the unfused step stats, or one call on a GPU."""
    from submodel_profiler.timing import random_inputs

    gpu = others.unfused is None and gpu_visible()
    call = inference_call(model, input_structure(model)) if gpu else None
    inputs = random_inputs(specs, int_high=int_high) if gpu else ()
    return measured_memory(others.unfused, gpu, call, inputs)


def _prediction(whole: WholeGraph, layers) -> dict:
    """The whole model's time predicted from the rows (schedule.py): their isolated medians
    list-scheduled along the row DAG on the executor's inter-op threads, and the critical path;
    {} without times, or where a row failed in the trace (its graph is not the model's)."""
    if not whole.complete or not any(r.time_us for r in layers) or isinstance(whole, WholeStep):
        return {}  # a training step's DAG runs backwards too: rows are not its nodes
    import tensorflow as tf

    from submodel_profiler.schedule import predict

    # 0 is TF's default: one inter-op thread per schedulable core
    threads = tf.config.threading.get_inter_op_parallelism_threads() or usable_cores()
    durations = [r.time_median_us or 0.0 for r in layers]  # inline rows have no time: 0
    p = predict(durations, whole.row_dependencies(), threads)
    return {
        "predicted_whole_us": p.scheduled_us,
        "critical_path_us": p.critical_path_us,
        "predicted_threads": p.threads,
    }


def _timeline(others: OtherMethods):
    """The unfused step-stats run's timeline (every traced node runs, as in the rows), else the
    optimized one's."""
    for times in (others.unfused, others.in_graph):
        if times is not None and times.timeline is not None:
            return times.timeline
    return None


def _additivity(parts_us: float | None, whole: TimeStats | None) -> float | None:
    """Σ the parts' isolated medians ÷ the whole's isolated median; None without both."""
    if parts_us is None or whole is None or whole.median <= 0:
        return None
    return parts_us / whole.median


def _timed_total(layers) -> float | None:
    """Σ the rows' isolated medians, or None when a row that should have one has none (an
    additivity over some of the parts would mislead); inline rows have none by definition."""
    if any(r.time_us is None for r in layers if r.kind != "inline"):
        return None
    return total_us(ISOLATED, layers)


def _totals(layers, whole: WholeGraph, whole_time: TimeStats | None, counting: str) -> Totals:
    time_us = total_us(ISOLATED, layers)
    reference = whole.reference.total if whole.reference is not None else None

    def whole_and_unattributed(of, row_whole) -> tuple:
        if reference is None:  # model(x) could not be traced
            return None, None
        if not whole.complete:  # a row failed in the trace: its work is in no row's split
            return of(reference), None
        return of(reference), of(reference) - sum(row_whole(r) for r in layers)

    whole_flops, unattributed_flops = whole_and_unattributed(
        lambda c: c.of(counting), lambda r: r.whole_graph_flops
    )
    whole_tf, unattributed_tf = whole_and_unattributed(
        lambda c: c.tf_flops, lambda r: r.whole_graph_tf_flops
    )
    whole_macs, unattributed_macs = whole_and_unattributed(
        lambda c: c.macs, lambda r: r.whole_graph_macs
    )
    whole_bytes, unattributed_bytes = whole_and_unattributed(
        lambda c: c.op_bytes, lambda r: r.whole_graph_op_bytes
    )
    return Totals(
        **{m.field: total_us(m, layers) for m in CROSS_CHECK_METHODS},
        flops=sum(r.flops or 0 for r in layers),
        whole_graph_flops=whole_flops,
        unattributed_flops=unattributed_flops,
        tf_flops=sum(r.tf_flops or 0 for r in layers),
        whole_graph_tf_flops=whole_tf,
        unattributed_tf_flops=unattributed_tf,
        macs=sum(r.macs or 0 for r in layers),
        whole_graph_macs=whole_macs,
        unattributed_macs=unattributed_macs,
        op_bytes=sum(r.op_bytes or 0 for r in layers),
        whole_graph_op_bytes=whole_bytes,
        unattributed_op_bytes=unattributed_bytes,
        time_us=time_us,
        whole_model_time_us=whole_time,
        additivity=_additivity(_timed_total(layers), whole_time),
    )


def _model_info(model, source, batch_size: int, specs) -> ModelInfo:
    graph = graph_of(model)
    inputs = graph.inputs if graph is not None else specs
    return ModelInfo(
        name=model.name,
        source=source or "python",
        batch_size=batch_size,
        inputs=tuple(
            TensorInfo(input_name(t) if t is not s else f"input_{i}", tuple(s.shape), s.dtype.name)
            for i, (t, s) in enumerate(zip(inputs, specs))
        ),
        params=int(model.count_params()),
    )


def _settings(timing: bool, s: TimingSettings, loop_us, counting: str) -> Settings:
    return Settings(
        timing=timing,
        counting=counting,
        warmup=s.warmup,
        min_repeats=s.min_repeats,
        max_repeats=s.max_repeats,
        tolerance=s.tolerance,
        budget_s=s.budget_s,
        overhead_us=loop_us,
    )
