"""The report: plain frozen dataclasses that round-trip to JSON.

The JSON layout is a versioned contract (`SCHEMA_VERSION`); docs/schema.md documents every key.
Measuring code builds a `Report`; renderers turn it into text; nothing here prints.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass, field

# 2: `flops` follows `settings.counting` ("complete" by default; version 1 reports held TF's
# profiler count, now `tf_flops`); rows and totals carry `tf_flops` and `macs`.
# 3: bytes beside float ops (rows' and totals' `*_bytes`, the roofline, the memory peaks);
# `mismatched_rows` also names rows whose op bytes differ, `bytes_exact` says whether they agree.
# 4: the training step (`settings.pass_name`; rows' and totals' forward_*/backward_* splits,
# saved activations, forward times).
SCHEMA_VERSION = 4
READABLE_SCHEMA_VERSIONS = (1, 2, 3, 4)

# A training step's step-stats times split per row (LayerRow and Totals fields, µs): (field,
# step-stats mode: the OtherMethods attribute, phase: 0 its forward ops, 1 its gradient ops).
STEP_STATS_SPLIT = (
    ("unfused_forward_time_us", "unfused", 0),
    ("unfused_backward_time_us", "unfused", 1),
    ("in_graph_forward_time_us", "in_graph", 0),
    ("in_graph_backward_time_us", "in_graph", 1),
)


@dataclass(frozen=True)
class TimeStats:
    """Summary of per-execution times in microseconds (overhead subtracted)."""

    median: float
    min: float
    max: float
    iqr: float
    repeats: int  # timed executions

    @classmethod
    def from_samples(cls, samples_us) -> TimeStats:
        import numpy as np

        a = np.asarray(samples_us, dtype=float)
        q1, med, q3 = np.percentile(a, [25, 50, 75])
        return cls(float(med), float(a.min()), float(a.max()), float(q3 - q1), len(a))


def row_label(name: str, call_index: int) -> str:
    """Display name of a row: `name`, or `name[k]` for the k-th call site (k > 0)."""
    return name if call_index == 0 else f"{name}[{call_index}]"


@dataclass(frozen=True)
class TensorInfo:
    name: str
    shape: tuple
    dtype: str


@dataclass(frozen=True)
class ModelInfo:
    name: str
    source: str
    batch_size: int
    inputs: tuple  # of TensorInfo
    params: int = 0


@dataclass(frozen=True)
class Environment:
    python: str
    tensorflow: str
    keras: str
    platform: str
    device: str
    intra_op_threads: int = 0  # 0: TensorFlow's default (one per core)
    inter_op_threads: int = 0
    # Attainable float ops per second of this machine: a large float32 matmul timed in-graph like
    # the rows (throughput.py); None without timing.
    peak_flop_per_s: float | None = None
    peak_method: str | None = None  # how the peak was measured
    # Attainable memory bandwidth: STREAM-style copy and triad timed in-graph (bandwidth.py);
    # None without timing.
    peak_bytes_per_s: float | None = None
    bandwidth_method: str | None = None


@dataclass(frozen=True)
class Settings:
    timing: bool
    warmup: int
    min_repeats: int
    max_repeats: int
    tolerance: float
    budget_s: float
    counting: str = "complete"  # what `flops` means: "complete" or "tf" (counting.py)
    depth: int | str = 1  # how deep rows go into composite layers ("all": no limit)
    timing_method: str = (
        "in-graph: all segments in one tf.while_loop, each warmed then bracketed by "
        "tf.timestamp; per-segment overhead of an empty body subtracted"
    )
    overhead_us: float | None = None  # the subtracted per-segment overhead
    # seconds spent in each phase of the profile (loading, walk, whole_graph, submodels,
    # timing, cross_checks, memory, machine); --verbose prints them
    phases: dict = field(default_factory=dict)
    # what a row measures: "inference" (model(x, training=False)) or "train" (one training
    # step: the forward with training=True, then the backward; training.py)
    pass_name: str = "inference"


def median_us(stats: TimeStats | None) -> float | None:
    """The median of a time's statistics (µs), or None without them."""
    return None if stats is None else stats.median


@dataclass(frozen=True)
class LayerRow:
    """One report row: a layer call site, or a ghost op that is not attached to an activation.

    `flops` is the sub-model's float-op count in `settings.counting`, `tf_flops` TF's profiler
    count and `macs` its multiply-accumulates; `whole_graph_*` are the same figures as the
    whole graph's trace attributes them to this row. `time_us` is the sub-model's isolated time.
    `same_as` names the row whose sub-model was measured when this row's computation is
    identical (same layer config and input specs).
    """

    name: str
    type: str
    kind: str  # "layer", "op" (a Keras op that is not a layer) or "inline" (ops of a call)
    call_index: int
    ghost_ops: tuple = ()
    input_shapes: tuple = ()
    input_dtypes: tuple = ()  # per input, as traced (a mixed-precision model's compute dtype)
    output_shapes: tuple = ()
    params: int = 0
    flops: int | None = None
    whole_graph_flops: int | None = None
    tf_flops: int | None = None  # TF's profiler, as the seed method counts
    whole_graph_tf_flops: int | None = None
    macs: int | None = None  # multiply-accumulates of contraction ops
    whole_graph_macs: int | None = None
    output_dtypes: tuple = ()  # per output, as traced
    # Bytes (docs/counting.md, "Bytes"). op_bytes: every executed op's inputs read and outputs
    # written, as the sub-model's graph counts them; whole_graph_op_bytes: the same as the whole
    # graph attributes them to this row.
    op_bytes: int | None = None
    whole_graph_op_bytes: int | None = None
    param_bytes: int = 0  # the layer's weights at their dtypes (a shared layer's on its first row)
    input_bytes: int | None = None  # the row's inputs, batch included, at the traced dtypes
    output_bytes: int | None = None  # the row's outputs, likewise
    # the row as one fused kernel: inputs + outputs + the weights it reads, once
    bytes_accessed: int | None = None
    arithmetic_intensity: float | None = None  # flops / bytes_accessed
    peak_activation_bytes: int | None = None  # static peak of the row's own sub-model (memory.py)
    # the CPU allocator's bytes in use while the row's nodes ran in the whole model (step stats)
    measured_peak_bytes: int | None = None
    time_us: TimeStats | None = None
    error: str | None = None
    # {op type: n} of arithmetic ops without a count in settings.counting: flops is a lower bound
    uncounted_ops: dict = field(default_factory=dict)
    count_notes: tuple = ()  # how loops and branches were counted ("While: body × 16 ...")
    same_as: str | None = None
    in_graph_time_us: float | None = None  # TF step stats, whole model as optimized
    unfused_time_us: float | None = None  # TF step stats, whole model without node-merging rewrites
    fused_into: str | None = None  # as optimized, this row's work runs in that row's node
    callback_time_us: TimeStats | None = None  # LayerTimingCallback, eager predict
    # flops / isolated median time (a rate); None where flops is a lower bound (uncounted_ops)
    flop_per_s: float | None = None
    peak_fraction: float | None = None  # flop_per_s / environment.peak_flop_per_s
    # "fused_into" (its work runs inside a neighbour's node, as optimized) or "isolated_slower"
    # (isolated median ≥ FUSION_RATIO × its in-graph time); None when not flagged (fusion.py).
    fusion_flag: str | None = None
    isolated_over_in_graph: float | None = None  # time_us.median / in_graph_time_us
    bytes_per_s: float | None = None  # bytes_accessed / isolated median time (a rate)
    bound: str | None = None  # "memory" or "compute": intensity against the ridge point
    roofline_fraction: float | None = None  # flop_per_s / min(peak, intensity × peak B/s)
    depth: int = 1  # 1: a layer of the model; n: inside n - 1 expanded layers (--depth)
    parent: str | None = None  # label of the expanded layer this row is part of
    # The training step (settings.pass_name "train"; None at inference): flops, tf_flops, macs,
    # op_bytes and time_us above are then the whole step's (forward + backward); these split it.
    forward_flops: int | None = None  # the forward with training=True (settings.counting)
    whole_graph_forward_flops: int | None = None
    forward_tf_flops: int | None = None
    whole_graph_forward_tf_flops: int | None = None
    forward_macs: int | None = None
    whole_graph_forward_macs: int | None = None
    backward_flops: int | None = None  # flops - forward_flops: the gradient ops'
    backward_tf_flops: int | None = None
    backward_macs: int | None = None
    # forward tensors the row's gradient ops read, kept alive from the forward to the backward
    saved_activation_bytes: int | None = None
    forward_time_us: TimeStats | None = None  # the isolated step's forward part, same runs
    # (time_us.median - forward_time_us.median) / forward_time_us.median: backward ÷ forward
    backward_time_ratio: float | None = None
    # TF's step stats of the whole step, this row's time split into its forward ops' and its
    # gradient ops' (µs; they add up to unfused_time_us and in_graph_time_us)
    unfused_forward_time_us: float | None = None
    unfused_backward_time_us: float | None = None
    in_graph_forward_time_us: float | None = None
    in_graph_backward_time_us: float | None = None
    # the optimizer's update of the weights this row owns (train pass with an optimizer): its
    # float ops, and its isolated time on copies of those weights (None: the row owns none)
    optimizer_flops: int | None = None
    optimizer_time_us: TimeStats | None = None

    @property
    def label(self) -> str:
        """Display name: `name`, or `name[k]` for the k-th call of a shared layer (k > 0)."""
        return row_label(self.name, self.call_index)

    @property
    def time_median_us(self) -> float | None:
        """Median isolated time in µs, or None when the row was not timed."""
        return median_us(self.time_us)

    @property
    def callback_median_us(self) -> float | None:
        """Median callback (eager) time in µs, or None."""
        return median_us(self.callback_time_us)

    @property
    def flops_match(self) -> bool:
        """The sub-model's float ops (both conventions) and MACs equal the whole graph's."""
        return (
            self.flops is not None
            and self.flops == self.whole_graph_flops
            and self.tf_flops == self.whole_graph_tf_flops
            and self.macs == self.whole_graph_macs
            and self.forward_flops == self.whole_graph_forward_flops
            and self.forward_tf_flops == self.whole_graph_forward_tf_flops
            and self.forward_macs == self.whole_graph_forward_macs
        )

    @property
    def counts_differ(self) -> bool:
        """Both counts exist and differ (a row that failed has nothing to compare)."""
        return (
            self.flops is not None and self.whole_graph_flops is not None and not self.flops_match
        )

    @property
    def bytes_differ(self) -> bool:
        """The sub-model's op bytes and the whole graph's both exist and differ."""
        return (
            self.op_bytes is not None
            and self.whole_graph_op_bytes is not None
            and self.op_bytes != self.whole_graph_op_bytes
        )


@dataclass(frozen=True)
class ParentRow:
    """A layer (or nested model) expanded into rows by --depth: its own sub-model's counts and
    isolated time beside the sums of its rows (those whose label starts with `label/`).

    `counts_match`: the parent's sub-model float ops (both conventions) and MACs equal the sums
    of its rows. `additivity` = rows_time_us / time_us.median.
    """

    name: str
    type: str
    call_index: int
    depth: int
    parent: str | None = None
    params: int = 0
    rows: int = 0  # report rows inside it
    flops: int | None = None
    tf_flops: int | None = None
    macs: int | None = None
    rows_flops: int | None = None  # None when a row inside could not be counted
    rows_tf_flops: int | None = None
    rows_macs: int | None = None
    op_bytes: int | None = None
    rows_op_bytes: int | None = None
    time_us: TimeStats | None = None
    rows_time_us: float | None = None  # Σ its rows' isolated medians
    additivity: float | None = None
    error: str | None = None

    @property
    def label(self) -> str:
        return row_label(self.name, self.call_index)

    @property
    def counts_match(self) -> bool:
        return (
            self.flops == self.rows_flops
            and self.tf_flops == self.rows_tf_flops
            and self.macs == self.rows_macs
        )

    @property
    def bytes_differ(self) -> bool:
        """Its own op bytes and its rows' sum both exist and differ."""
        return (
            self.op_bytes is not None
            and self.rows_op_bytes is not None
            and self.op_bytes != self.rows_op_bytes
        )

    @property
    def counts_differ(self) -> bool:
        """Its own counts and its rows' sums both exist and differ."""
        return self.flops is not None and self.rows_flops is not None and not self.counts_match


@dataclass(frozen=True)
class Totals:
    flops: int  # Σ rows' sub-model float ops (settings.counting)
    # float ops of the ordinary trace of model(x); None when a row's layer failed to trace
    whole_graph_flops: int | None
    unattributed_flops: int | None  # whole_graph_flops - Σ rows' whole-graph float ops
    tf_flops: int | None = None  # the same three in TF's profiler convention
    whole_graph_tf_flops: int | None = None
    unattributed_tf_flops: int | None = None
    macs: int | None = None  # the same three for multiply-accumulates
    whole_graph_macs: int | None = None
    unattributed_macs: int | None = None
    time_us: float | None = None  # Σ rows' median isolated times
    whole_model_time_us: TimeStats | None = None
    additivity: float | None = None  # time_us / whole_model_time_us.median
    in_graph_time_us: float | None = None  # Σ rows, as optimized (step stats)
    unfused_time_us: float | None = None  # Σ rows, unfused (step stats)
    callback_time_us: float | None = None  # Σ rows' median callback times
    # whole_graph_flops / whole_model_time_us.median; None when some op is uncounted
    flop_per_s: float | None = None
    peak_fraction: float | None = None  # flop_per_s / environment.peak_flop_per_s
    op_bytes: int | None = None  # Σ rows' sub-model op bytes
    whole_graph_op_bytes: int | None = None  # op bytes of the ordinary trace of model(x)
    unattributed_op_bytes: int | None = None  # whole_graph_op_bytes - Σ rows' whole-graph
    param_bytes: int | None = None  # Σ rows: the model's weights, each once
    bytes_accessed: int | None = None  # Σ rows
    # the whole model at inference, static (memory.py): activation bytes live at the peak, the
    # row running then, and params + that peak (torchinfo's "estimated total size")
    peak_activation_bytes: int | None = None
    peak_row: str | None = None
    estimated_total_bytes: int | None = None
    measured_peak_bytes: int | None = None  # the allocator's peak, whole model
    measured_peak_method: str | None = None  # how it was measured
    # The rows' isolated medians list-scheduled along the model's DAG on `predicted_threads`
    # inter-op threads (schedule.py), and the longest path (unlimited threads), µs
    predicted_whole_us: float | None = None
    critical_path_us: float | None = None
    predicted_threads: int | None = None
    # The training step (None at inference): Σ rows' forward and backward counts, the distinct
    # bytes the backward reads from the forward, and Σ rows' forward medians (µs)
    forward_flops: int | None = None
    forward_tf_flops: int | None = None
    forward_macs: int | None = None
    backward_flops: int | None = None
    backward_tf_flops: int | None = None
    backward_macs: int | None = None
    saved_activation_bytes: int | None = None
    forward_time_us: float | None = None
    whole_forward_time_us: TimeStats | None = None  # the whole step's forward and loss
    # Σ rows' step-stats splits (µs)
    unfused_forward_time_us: float | None = None
    unfused_backward_time_us: float | None = None
    in_graph_forward_time_us: float | None = None
    in_graph_backward_time_us: float | None = None
    # With an optimizer (train pass): its class, one update of every weight, and what of it no
    # row has (the optimizer's own per-step ops: its iteration counter)
    optimizer: str | None = None
    optimizer_flops: int | None = None
    unattributed_optimizer_flops: int | None = None
    # Σ rows' update medians (µs), and one update of every weight timed the same way
    optimizer_time_us: float | None = None
    whole_optimizer_time_us: TimeStats | None = None


@dataclass(frozen=True)
class TypeSummary:
    """The rows of one layer type (or op type, kind "op") together; shares are of the totals."""

    type: str
    kind: str  # "layer" or "op"
    count: int  # rows
    flops: int  # Σ rows' sub-model float ops
    flops_share: float  # flops / totals.flops (0 when the total is 0)
    macs: int = 0  # Σ rows' MACs
    macs_share: float = 0.0  # macs / totals.macs
    time_us: float | None = None  # Σ rows' median isolated times, µs
    time_share: float | None = None  # time_us / totals.time_us
    flop_per_s: float | None = None  # flops / time_us
    bytes_accessed: int | None = None  # Σ rows' bytes_accessed
    op_bytes: int | None = None  # Σ rows' op bytes
    arithmetic_intensity: float | None = None  # flops / bytes_accessed


@dataclass(frozen=True)
class CrossCheck:
    """Verdict of the float-op cross-check between the sub-model and whole-graph methods.

    `flops_exact`: every row's float ops (both conventions) and MACs equal the whole graph's,
    the rows sum exactly to the whole graph in all three, and every expanded layer's own
    sub-model was built and equals its rows' sums. Exact is not complete: rows in
    `lower_bound_rows` hold op types no rule counts (`uncounted_ops`), so their float ops and
    the totals are lower bounds.
    """

    flops_exact: bool
    mismatched_rows: tuple = ()  # labels of rows whose counts differ
    # labels of rows that could not be counted (see their error); `label/`: an expanded layer
    # whose own sub-model could not be built
    failed_rows: tuple = ()
    lower_bound_rows: tuple = ()  # labels of rows with uncounted ops
    uncounted_ops: dict = field(default_factory=dict)  # {op type: n} over all rows
    # every row's op bytes equal the whole graph's and the rows sum exactly to it (None: not
    # counted, a version 2 report)
    bytes_exact: bool | None = None
    # Spearman correlation of rows' isolated times with each other method's times
    # (keys: "unfused", "in_graph", "callback"; None where fewer than 3 rows have both).
    rank_correlation: dict = field(default_factory=dict)
    method_errors: dict = field(default_factory=dict)  # timing method -> why it did not run
    # Per step-stats mode ("in_graph", "unfused"): what TF's step stats could not attribute:
    # {unattributed_us, unattributed_nodes, eliminated_rows}.
    step_stats: dict = field(default_factory=dict)

    @property
    def counts_exact(self) -> bool:
        """Float ops, MACs and (where counted) op bytes all agree: the verdict's OK."""
        return self.flops_exact and self.bytes_exact is not False


@dataclass(frozen=True)
class TimelineSlice:
    """One executed node of the whole model's traced step-stats run, for `--trace`."""

    node: str  # the executed node's name
    op: str  # its op type
    row: str | None  # label of the row owning it; None: unattributed
    thread: int  # executor thread id
    start_us: float  # from the run's first node start, µs
    dur_us: float  # wall time of the node (all_end_rel), µs


@dataclass(frozen=True)
class Timeline:
    """The whole model's step-stats run laid out in time (`--trace`): which run, its executed
    nodes, and the CPU allocator's bytes in use over time."""

    mode: str  # "unfused" or "in_graph": which step-stats run this is
    slices: tuple = ()  # of TimelineSlice, by start
    memory: tuple = ()  # of (ts_us, bytes in use): the allocator's records, by time


@dataclass(frozen=True)
class Report:
    model: ModelInfo
    environment: Environment
    settings: Settings
    layers: tuple  # of LayerRow
    totals: Totals
    cross_check: CrossCheck
    schema_version: int = SCHEMA_VERSION
    summary_by_type: tuple = ()  # of TypeSummary, by float ops, descending (summaries.py)
    # "complete"; "partial" when some rows failed (see layers[].error); "interrupted" when
    # Ctrl-C stopped timing early (times hold the samples taken so far).
    status: str = "complete"
    parents: tuple = ()  # of ParentRow: the layers --depth expanded, outermost first
    timeline: Timeline | None = None  # the whole model's step-stats run in time (--trace)

    def to_dict(self) -> dict:
        return _plain(dataclasses.asdict(self))

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_dict(cls, data: dict) -> Report:
        """Rebuild a report from `to_dict()` output.

        Raises:
            ValueError: the data has another schema version.
        """
        version = data.get("schema_version")
        if version not in READABLE_SCHEMA_VERSIONS:
            raise ValueError(
                f"Only schema_version {READABLE_SCHEMA_VERSIONS} reports can be read. "
                f"Received: schema_version={version!r}."
            )
        if version == 1:
            data = _from_version_1(data)
        model = _known(ModelInfo, data["model"])
        model["inputs"] = tuple(
            TensorInfo(**{**_known(TensorInfo, t), "shape": tuple(t["shape"])})
            for t in model["inputs"]
        )
        totals = _known(Totals, data["totals"])
        totals["whole_model_time_us"] = _stats(totals.get("whole_model_time_us"))
        totals["whole_optimizer_time_us"] = _stats(totals.get("whole_optimizer_time_us"))
        totals["whole_forward_time_us"] = _stats(totals.get("whole_forward_time_us"))
        check = {
            k: tuple(v) if isinstance(v, list) else v
            for k, v in _known(CrossCheck, data["cross_check"]).items()
        }
        return cls(
            model=ModelInfo(**model),
            environment=Environment(**_known(Environment, data["environment"])),
            settings=Settings(**_known(Settings, data["settings"])),
            layers=tuple(_row(r) for r in data["layers"]),
            totals=Totals(**totals),
            cross_check=CrossCheck(**check),
            schema_version=SCHEMA_VERSION,
            summary_by_type=tuple(
                TypeSummary(**_known(TypeSummary, t)) for t in data.get("summary_by_type", ())
            ),
            status=data.get("status", "complete"),
            parents=tuple(_parent(p) for p in data.get("parents", ())),
            timeline=_timeline(data.get("timeline")),
        )

    @classmethod
    def from_json(cls, text: str) -> Report:
        return cls.from_dict(json.loads(text))


def _from_version_1(data: dict) -> dict:
    """A version 1 report in version 2 terms: its `flops` were TF's profiler count."""
    data = {**data, "settings": {**data["settings"], "counting": "tf"}}
    data["layers"] = [
        {
            **r,
            "tf_flops": r.get("flops"),
            "ghost_ops": r.get("fused_ops", ()),
            "whole_graph_tf_flops": r.get("whole_graph_flops"),
        }
        for r in data["layers"]
    ]
    t = data["totals"]
    data["totals"] = {
        **t,
        "tf_flops": t.get("flops"),
        "whole_graph_tf_flops": t.get("whole_graph_flops"),
        "unattributed_tf_flops": t.get("unattributed_flops"),
    }
    return data


def _known(cls, data: dict) -> dict:
    """The keys of `data` that `cls` has fields for: a newer report (same schema_version, more
    keys) still reads."""
    names = {f.name for f in dataclasses.fields(cls)}
    return {k: v for k, v in data.items() if k in names}


def _stats(data):
    return None if data is None else TimeStats(**_known(TimeStats, data))


def _row(data: dict) -> LayerRow:
    row = _known(LayerRow, data)
    row["ghost_ops"] = tuple(row.get("ghost_ops", ()))
    row["input_shapes"] = tuple(tuple(s) for s in row.get("input_shapes", ()))
    row["output_shapes"] = tuple(tuple(s) for s in row.get("output_shapes", ()))
    row["time_us"] = _stats(row.get("time_us"))
    row["callback_time_us"] = _stats(row.get("callback_time_us"))
    row["forward_time_us"] = _stats(row.get("forward_time_us"))
    row["optimizer_time_us"] = _stats(row.get("optimizer_time_us"))
    row["input_dtypes"] = tuple(row.get("input_dtypes", ()))
    row["output_dtypes"] = tuple(row.get("output_dtypes", ()))
    row["count_notes"] = tuple(row.get("count_notes", ()))
    return LayerRow(**row)


def _parent(data: dict) -> ParentRow:
    row = _known(ParentRow, data)
    row["time_us"] = _stats(row.get("time_us"))
    return ParentRow(**row)


def _plain(value):
    """Tuples to lists, recursively, so the dict is what json.loads gives back."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _timeline(data) -> Timeline | None:
    if data is None:
        return None
    return Timeline(
        mode=data["mode"],
        slices=tuple(TimelineSlice(**_known(TimelineSlice, x)) for x in data.get("slices", ())),
        memory=tuple(tuple(m) for m in data.get("memory", ())),
    )
