"""TF's own per-node execution statistics of the whole model, attributed to rows.

The instrumented concrete function of `whole_graph` (whose graph node names map to rows) is
rebuilt as a standalone `tf.Graph` with the same node names, run in a `tf.compat.v1.Session`
with step tracing, and the kernel time of every executed node (`NodeExecStats`:
op_end_rel - op_start_rel, recorded in nanoseconds, reported in microseconds) is summed per row.
One warm-up run comes first (grappler runs then, and it returns the executed graph); each of
the `runs` traced runs that follow gives one sum per row, and the median is reported. Medians do
not add up: the row medians plus the unattributed median equal the sum of every executed node's
kernel time only for one run.
Software tracing suffices on CPU (FULL_TRACE would start a profiler session per run for the
same node statistics); on a GPU it records kernel launches, not kernel durations.

Weights. By default a captured variable that the graph only reads becomes a `Placeholder` of its
value's dtype (ReadVariableOp → Identity), fed on every run with a view of the variable's
buffer: TF wraps an aligned NumPy array without copying it and never writes into memory it
does not own, so the session holds no second copy of the weights (240 MB on ResNet152V2) and
needs no assigning run (its own grappler pass). Grappler cannot fold a fed value, as it cannot
fold a variable's when TF runs `model(x)`. A variable the graph also writes (a training step's
BatchNormalization moving statistics, a seed generator's state) stays a variable: its resource
placeholder becomes a `VarHandleOp` of the same name, assigned once per session.
`freeze_weights=True` makes every weight a `Const` (ReadVariableOp → Identity, as
`convert_variables_to_constants_v2` does, same node names, without its slow inlining pass);
grappler then also folds weight values: BN scales are multiplied into convolution filters, and
adds of all-zero biases (every bias of a `weights=None` model) are removed, so what fuses then
depends on the weights' values.

Modes. `optimized=True` runs TF's default grappler and graph optimizations: the remapper fuses
e.g. Conv2D + BiasAdd + Relu into one `_FusedConv2D` carrying the name of the pattern's last
node; the arithmetic optimizer rewrites add trees into nodes with derived names.
`optimized=False` turns grappler off and the graph optimizer down to L0 (no constant folding,
no common-subexpression elimination), so every traced node runs as traced.

Node names. An executed node keeps its traced name or carries one derived from it
(`original_name`: `ConstantFolding/x_recip`, `x/merged_input`, `scope/ArithmeticOptimizer/
AddOpsRewrite_Leaf_1_Add`); a ":suffix" in a step-stats name is cut off. Nodes that map to no
row (`_SOURCE`, `_arg_*`, `_retval_*`, the output `Identity`, unmatched grappler nodes) are
unattributed: counted and timed, never dropped.

Fusion. A row is covered when one of its data-path nodes (nodes that depend on a model input;
weight reads and weight-only arithmetic are not) still runs as a node doing work (not a Const,
`NOT_WORK_OPS`), by name or by derived name. A row with none is `fused_into` the row owning the
running node the fewest data edges downstream of its nodes in the traced graph (ties: the
earliest row). Grappler names a fused node after the pattern's last node, so the first
surviving node downstream is the one that now computes the row's output; when a node was
simply removed (an add of zeros, an identity) it is the node that now reads its input. The
nodes of a fused row that still run (its weight reads) are timed with the row it is fused
into. A row with no running node downstream is `eliminated`, its time unattributed. Rows
without any graph op (Keras 3 Dropout at inference) are absent from `node_owner` and reported
nowhere.

Forward and backward. For a training step, `node_phase` (traced node name -> "forward" or
"backward", `WholeStep.node_phase()`: the split the counts use) splits each row's time in two:
an executed node's time goes to its row's part of the phase of the traced node it stands for.
Each row's split is that of the run whose row total is the median (the mean of the two middle
runs for an even count), so a row's two parts add up to its median.

Timeline and memory. Of the traced runs, the one whose total (every executed node's kernel time)
is the median (the lower one for an even number of runs) is also kept as a `report.Timeline`:
every executed node with its executor thread (`thread_id`; TF 2.21 records 0 for every node,
concurrent ones included), start (`all_start`, from the run's earliest node start) and wall
time (`all_end_rel`), labelled with the row the times above give it (None: unattributed). Its
memory comes from the same software trace, no higher trace level: each node's
`AllocatorMemoryUsed.allocation_records` (alloc_micros, alloc_bytes; a negative size is a
free) are the allocations its kernel made through the CPU device's allocators, with their frees
up to the end of the step. Their running sum in time order is the bytes in use by the run's own
kernels (the fed inputs and the weights, allocated before the run, are not in it;
`allocator_bytes_in_use` stays 0: TF's CPU allocator keeps no stats by default, FULL_TRACE
included). Records have microsecond resolution; records of one microsecond keep the order of
their nodes' starts. `peak_bytes` is the sum's maximum, `row_peak_bytes[row]` its maximum while
one of the row's nodes ran (from the microsecond it started to its end). Without any record
they are None and {}, never 0.
"""

from __future__ import annotations

import bisect
import re
from collections import defaultdict, deque
from dataclasses import dataclass, field

import numpy as np

from submodel_profiler.report import Timeline, TimelineSlice, row_label

# Executed op types that only hold or route values: a derived node of one of these types (a
# weight folded into `x/merged_input`) does not keep a row covered.
NOT_WORK_OPS = frozenset(
    {
        "Const",
        "HostConst",
        "VarHandleOp",
        "NoOp",
        "_Arg",
        "_Retval",
        "Placeholder",
        "_Send",
        "_Recv",
        "_HostSend",
        "_HostRecv",
    }
)
# Path segments grappler inserts into the names of nodes it creates (ConstantFolding/x,
# scope/ArithmeticOptimizer/AddOpsRewrite_x).
_GRAPPLER_SEGMENT = re.compile(r"^[A-Z]\w*(Optimizer|Folding|Remapper)$")
_NAME_BOUNDARY = "/_-:"
# A fed tensor runs as the session's argument "_arg_<placeholder>_<output>_<index>".
_SESSION_ARGUMENT = re.compile(r"^_arg_(.+)_\d+_\d+$")


@dataclass(frozen=True)
class InGraphTimes:
    """Per-row kernel times of one whole-model execution mode (microseconds, medians over runs).

    `times_us[row]` sums the row's executed nodes and those of the rows fused into it;
    `fused_into[row]` names the covered row that now does a row's work; `eliminated` rows have
    no executed node left and none downstream. `unattributed_us` times the executed nodes of no
    row (and of eliminated rows); `unattributed_nodes` counts their distinct names over all runs.
    `timeline`, `peak_bytes` and `row_peak_bytes` come from one run, the one whose total is the
    median (module docstring); their bytes are those in use by the run's own kernels, None (and
    {}) where the trace recorded no allocation.
    """

    times_us: dict  # row key -> µs
    fused_into: dict  # row key -> row key
    eliminated: tuple
    unattributed_us: float
    unattributed_nodes: int
    timeline: Timeline | None = None  # the median run's executed nodes and bytes in use
    peak_bytes: int | None = None  # max bytes in use by the median run's kernels
    row_peak_bytes: dict = field(default_factory=dict)  # row key -> max bytes while it ran
    # a training step's rows: row key -> (forward µs, backward µs), adding up to times_us
    phase_us: dict = field(default_factory=dict)


@dataclass(frozen=True)
class StandaloneGraph:
    """A concrete function rebuilt as a session-runnable graph, node names unchanged."""

    graph: object  # tf.Graph
    graph_def: object  # GraphDef as traced, weights as Placeholder, VarHandleOp or Const
    feeds: tuple  # tensor names, one per function argument, in order
    fetches: tuple  # tensor names of the function's outputs
    init_feeds: dict  # assign-op input tensor name -> np.ndarray (written variables only)
    init_op: str | None  # name of the op assigning the written variables, None if there are none
    weight_feeds: dict = field(default_factory=dict)  # fed weight tensor name -> np.ndarray


def standalone_graph(concrete_function, freeze_weights: bool = False) -> StandaloneGraph:
    """Rebuild `concrete_function` as a graph whose captures are fed, variables or constants
    (module docstring, "Weights").

    Raises:
        ValueError: a captured resource is not one of the function's variables.
    """
    import tensorflow as tf

    graph_def = concrete_function.graph.as_graph_def()
    values = _capture_values(concrete_function)
    fed = _replace_captures(graph_def, values, freeze_weights)
    runnable = type(graph_def)()
    runnable.CopyFrom(graph_def)
    init_feeds, init_op = {}, None
    written = {k: v for k, v in values.items() if v[1] and k not in fed}
    if written and not freeze_weights:
        init_feeds, init_op = _add_assign_nodes(runnable, written)
    graph = tf.Graph()
    with graph.as_default():
        tf.graph_util.import_graph_def(runnable, name="")
    count = len(concrete_function.inputs) - len(concrete_function.captured_inputs)
    return StandaloneGraph(
        graph=graph,
        graph_def=graph_def,
        feeds=tuple(t.name for t in concrete_function.inputs[:count]),
        fetches=tuple(t.name for t in concrete_function.outputs),
        init_feeds=init_feeds,
        init_op=init_op,
        weight_feeds={f"{name}:0": values[name][0] for name in fed},
    )


def _capture_values(concrete_function) -> dict:
    """Placeholder node name -> (value as np.ndarray, is_variable) for every capture."""
    import tensorflow as tf

    # np.asarray views a CPU tensor's buffer, where .numpy() copies it (0.56 s and 240 MB for
    # ResNet152V2's weights); a variable assigned later gets a new buffer, never this one.
    variables = {id(v.handle): v for v in concrete_function.variables}
    values = {}
    captures = zip(concrete_function.graph.internal_captures, concrete_function.captured_inputs)
    for placeholder, captured in captures:
        name = placeholder.op.name
        if captured.dtype != tf.resource:
            values[name] = (np.asarray(captured), False)
        elif id(captured) in variables:
            values[name] = (np.asarray(variables[id(captured)].read_value()), True)
        else:
            raise ValueError(
                "Step statistics need every captured resource to be a variable of the function. "
                f"Received: a capture {name!r} of type {type(captured).__name__} that is not."
            )
    return values


def _replace_captures(graph_def, values: dict, freeze: bool) -> set:
    """Turn capture placeholders into Const, Placeholder (a read-only variable's value, fed) or
    VarHandleOp nodes of the same name, in place; returns the names of the fed ones."""
    import tensorflow as tf

    written = _written_resources(graph_def, values)
    by_value, fed = set(), set()
    for node in graph_def.node:
        if node.name not in values:
            continue
        value, is_variable = values[node.name]
        node.ClearField("attr")
        node.attr["dtype"].type = tf.as_dtype(value.dtype).as_datatype_enum
        if freeze or not is_variable:
            node.op = "Const"
            node.attr["value"].tensor.CopyFrom(tf.make_tensor_proto(value))
            by_value.add(node.name)
        elif node.name not in written:
            node.op = "Placeholder"
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
            by_value.add(node.name)
            fed.add(node.name)
        else:
            node.op = "VarHandleOp"
            node.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
            node.attr["shared_name"].s = node.name.encode()
    for node in graph_def.node:
        if node.op == "ReadVariableOp" and _source_name(node.input[0]) in by_value:
            dtype = node.attr["dtype"].type
            node.op = "Identity"
            node.ClearField("attr")
            node.attr["T"].type = dtype
    return fed


def _written_resources(graph_def, values: dict) -> set:
    """Names of the variable captures some node uses other than by ReadVariableOp (an assign,
    a ResourceGather, a function call): they must stay variables."""
    used = set()
    for node in graph_def.node:
        if node.op == "ReadVariableOp":
            continue
        for name in node.input:
            source = _source_name(name)
            if source in values and values[source][1]:
                used.add(source)
    return used


def _add_assign_nodes(graph_def, values: dict):
    """Add nodes assigning every variable from a fed value; returns (feeds, init op name).

    Built as NodeDefs (not Python ops), which is several times faster for hundreds of weights.
    """
    import tensorflow as tf

    names = {n.name for n in graph_def.node}
    prefix = next(
        f"step_stats_init_{i}"
        for i in range(len(names) + 1)
        if not any(n.startswith(f"step_stats_init_{i}") for n in names)
    )
    init = graph_def.node.add(name=prefix, op="NoOp")
    feeds = {}
    for i, (name, (value, is_variable)) in enumerate(values.items()):
        if not is_variable:
            continue
        dtype = tf.as_dtype(value.dtype).as_datatype_enum
        fed = graph_def.node.add(name=f"{prefix}/value_{i}", op="Placeholder")
        fed.attr["dtype"].type = dtype
        fed.attr["shape"].shape.CopyFrom(tf.TensorShape(value.shape).as_proto())
        assign = graph_def.node.add(name=f"{prefix}/assign_{i}", op="AssignVariableOp")
        assign.input.extend([name, fed.name])
        assign.attr["dtype"].type = dtype
        init.input.append(f"^{assign.name}")
        feeds[f"{fed.name}:0"] = value
    return feeds, prefix


def _source_name(tensor_name: str) -> str:
    """Node name of a GraphDef input ("^ctrl", "node:1" and "node" all give "node")."""
    return tensor_name.lstrip("^").split(":")[0]


def session_config(optimized: bool):
    """ConfigProto: TF's defaults, or (optimized=False) grappler off and graph optimizer at L0."""
    from tensorflow.core.protobuf import config_pb2

    config = config_pb2.ConfigProto()
    if not optimized:
        config.graph_options.rewrite_options.disable_meta_optimizer = True
        options = config.graph_options.optimizer_options
        options.opt_level = config_pb2.OptimizerOptions.L0
        options.do_constant_folding = False
        options.do_common_subexpression_elimination = False
        options.do_function_inlining = False
    return config


def run_traced(standalone: StandaloneGraph, inputs: list, optimized: bool, runs: int):
    """Warm up once, then trace `runs` runs; returns (executed node name -> op type, step stats).

    Raises:
        ValueError: the number of inputs is not the number of function arguments.
    """
    import tensorflow as tf
    from tensorflow.core.protobuf import config_pb2

    if len(inputs) != len(standalone.feeds):
        raise ValueError(
            f"The function takes {len(standalone.feeds)} input(s) ({', '.join(standalone.feeds)}). "
            f"Received: {len(inputs)} input(s)."
        )
    feed = {name: np.asarray(x) for name, x in zip(standalone.feeds, inputs)}
    feed.update(standalone.weight_feeds)
    fetches = list(standalone.fetches)
    config = session_config(optimized)
    with tf.compat.v1.Session(graph=standalone.graph, config=config) as session:
        if standalone.init_op is not None:
            session.run(standalone.init_op, standalone.init_feeds)
        warm = config_pb2.RunMetadata()
        session.run(fetches, feed, config_pb2.RunOptions(output_partition_graphs=True), warm)
        traced = config_pb2.RunOptions(trace_level=config_pb2.RunOptions.SOFTWARE_TRACE)
        stats = []
        for _ in range(runs):
            metadata = config_pb2.RunMetadata()
            session.run(fetches, feed, traced, metadata)
            stats.append(metadata.step_stats)
    executed = {n.name: n.op for g in warm.partition_graphs for n in g.node}
    return executed, stats


def node_times_us(step_stats) -> dict:
    """Node name -> kernel time in µs, summed over the node's executions.

    A name carrying a ":suffix" is cut at the colon (TF node names never contain one).
    """
    times: dict = defaultdict(float)
    for device in step_stats.dev_stats:
        for stats in device.node_stats:
            times[stats.node_name.split(":")[0]] += _kernel_us(stats)
    return dict(times)


def _kernel_us(s) -> float:
    """Kernel time of one NodeExecStats, op_end_rel - op_start_rel, µs.

    The nanosecond fields are used, the microsecond ones where those are unset.
    """
    if s.all_start_nanos or s.op_end_rel_nanos:
        return max(s.op_end_rel_nanos - s.op_start_rel_nanos, 0) / 1e3
    return float(max(s.op_end_rel_micros - s.op_start_rel_micros, 0))


def original_name(name: str, traced_names) -> str | None:
    """The traced node an executed node name stands for, or None.

    In order: the name itself; for a session's argument the placeholder it feeds (a fed
    weight's is in its layer's scope); for names with a grappler segment
    (`ConstantFolding/x/y_recip`, `scope/ArithmeticOptimizer/AddOpsRewrite_Leaf_1_Add`) the
    longest traced name prefixing what follows it, then `scope/tail` for every "_"-separated
    tail; finally the longest traced name prefixing the name at a boundary (`x/merged_input`,
    `x-TransposeNHWCToNCHW-...`).
    """
    if name in traced_names:
        return name
    argument = _SESSION_ARGUMENT.match(name)
    if argument:
        return argument.group(1) if argument.group(1) in traced_names else None
    segments = name.split("/")
    marks = [i for i, s in enumerate(segments) if _GRAPPLER_SEGMENT.match(s)]
    if marks:
        scope, rest = "/".join(segments[: marks[0]]), "/".join(segments[marks[0] + 1 :])
        found = _longest_prefix(rest, traced_names)
        if found is not None:
            return found
        pieces = rest.split("_")
        for i in range(len(pieces)):
            candidate = "_".join(pieces[i:])
            candidate = f"{scope}/{candidate}" if scope else candidate
            if candidate in traced_names:
                return candidate
    return _longest_prefix(name, traced_names)


def _longest_prefix(name: str, traced_names) -> str | None:
    """Longest traced name that `name` starts with, followed by a boundary character."""
    for end in range(len(name) - 1, 0, -1):
        if name[end] in _NAME_BOUNDARY and name[:end] in traced_names:
            return name[:end]
    return None


def data_path(graph_def, feeds) -> set:
    """Names of the nodes that depend on a fed input through data edges (feeds included)."""
    consumers = _consumers(graph_def)
    reached = {_source_name(f) for f in feeds}
    queue = deque(reached)
    while queue:
        for user in consumers.get(queue.popleft(), ()):
            if user not in reached:
                reached.add(user)
                queue.append(user)
    return reached


def _consumers(graph_def) -> dict:
    """Node name -> names of the nodes reading one of its outputs (data edges only)."""
    users = defaultdict(list)
    for node in graph_def.node:
        for tensor in node.input:
            if not tensor.startswith("^"):
                users[_source_name(tensor)].append(node.name)
    return users


@dataclass(frozen=True)
class _Attribution:
    """Which traced node each executed node stands for, and the rows' fate in this execution."""

    traced_of: dict  # executed node name -> traced node name or None
    fused_into: dict  # row key -> covered row key
    eliminated: tuple


def attribute(graph_def, feeds, node_owner: dict, executed: dict) -> _Attribution:
    """Map executed nodes to traced nodes; find covered, fused and eliminated rows."""
    traced_names = {n.name for n in graph_def.node}
    traced_of = {name: original_name(name, traced_names) for name in executed}
    path = data_path(graph_def, feeds)
    running = {traced_of[n] for n, op in executed.items() if op not in NOT_WORK_OPS} - {None}
    row_nodes = defaultdict(set)
    for name, key in node_owner.items():
        row_nodes[key].add(name)
    order = {key: i for i, key in enumerate(row_nodes)}
    consumers = _consumers(graph_def)
    fused_into, eliminated = {}, []
    for key, names in row_nodes.items():
        own = (names & path) or names  # a row computing from weights alone: all its nodes
        if own & running:
            continue
        target = _nearest_running_row(own, running, consumers, node_owner, order)
        if target is None:
            eliminated.append(key)
        else:
            fused_into[key] = target
    return _Attribution(traced_of, fused_into, tuple(eliminated))


def _nearest_running_row(start, running, consumers, node_owner, order):
    """Row owning the running node(s) fewest data edges downstream of `start`; ties: earliest."""
    frontier, seen = set(start), set(start)
    while frontier:
        nxt = {u for n in frontier for u in consumers.get(n, ()) if u not in seen}
        seen |= nxt
        rows = {node_owner[n] for n in nxt & running if n in node_owner}
        if rows:
            return min(rows, key=order.__getitem__)
        frontier = {n for n in nxt if n not in running}
    return None


def in_graph_times(
    function,
    node_owner: dict,
    inputs: list,
    optimized: bool,
    runs: int = 5,
    *,
    freeze_weights: bool = False,
    node_phase: dict | None = None,
    timeline: bool = True,
) -> InGraphTimes:
    """Per-row kernel times (µs) of the whole model as TF's executor runs it.

    Args:
        function: the instrumented ConcreteFunction of `whole_graph`, or a `StandaloneGraph`
            built from it (build one with `standalone_graph` to share it between both modes).
        node_owner: traced node name -> row key (`WholeGraph.node_owner()`).
        inputs: one tensor or array per function argument.
        optimized: TF's default optimizations (True) or none that merge nodes (False).
        runs: traced runs after the warm-up; the median is reported.
        freeze_weights: weights as constants instead of variables (ignored for a StandaloneGraph).
        node_phase: a training step's traced node name -> "forward" or "backward": each row's
            time split in two (`phase_us`; module docstring).
        timeline: also keep the median run's timeline (`--trace`; about 0.2 s a mode on
            MobileNetV3Large), else `timeline` is None.

    Raises:
        ValueError: `runs` < 1, wrong number of inputs, or a capture that is not a variable.
    """
    if runs < 1:
        raise ValueError(f"At least one traced run is needed. Received: runs={runs!r}.")
    standalone = function
    if not isinstance(function, StandaloneGraph):
        standalone = standalone_graph(function, freeze_weights)
    executed, stats = run_traced(standalone, inputs, optimized, runs)
    for step in stats:  # Step-stats names absent from the executed graph (_SOURCE, ...).
        for name in node_times_us(step):
            executed.setdefault(name, "")
    found = attribute(standalone.graph_def, standalone.feeds, node_owner, executed)
    per_run = [_row_sums(step, found, node_owner, node_phase) for step in stats]
    keys = _ordered({k for run in per_run for k in run[0]}, node_owner)
    kept = stats[median_run(per_run)]
    memory = bytes_in_use(kept)
    kept_timeline = (
        run_timeline(kept, executed, found, node_owner, optimized, memory) if timeline else None
    )
    return InGraphTimes(
        times_us={k: _median([run[0].get(k, 0.0) for run in per_run]) for k in keys},
        fused_into=found.fused_into,
        eliminated=found.eliminated,
        unattributed_us=_median([run[1] for run in per_run]),
        unattributed_nodes=len(set().union(*(run[2] for run in per_run))),
        timeline=kept_timeline,
        peak_bytes=max(memory.in_use) if memory.in_use else None,
        row_peak_bytes=row_peaks(kept, memory, found, node_owner) if memory.in_use else {},
        phase_us={k: median_split(per_run, k) for k in keys} if node_phase else {},
    )


def _row_of(name: str, found: _Attribution, node_owner: dict):
    """Row key an executed node's time goes to (its row, or the row that row is fused into);
    None for a node of no row or of an eliminated row."""
    key = node_owner.get(found.traced_of.get(name))
    key = found.fused_into.get(key, key)
    return None if key in found.eliminated else key


def _row_sums(step_stats, found: _Attribution, node_owner: dict, node_phase: dict | None = None):
    """One run: (row key -> µs, unattributed µs, unattributed node names, row key ->
    [forward µs, backward µs] by `node_phase`, {} without it)."""
    times = node_times_us(step_stats)
    sums: dict = defaultdict(float)
    phases: dict = defaultdict(lambda: [0.0, 0.0])
    unattributed, names = 0.0, set()
    for name, us in times.items():
        key = _row_of(name, found, node_owner)
        if key is None:
            unattributed += us
            names.add(name)
            continue
        sums[key] += us
        if node_phase is not None:
            backward = node_phase.get(found.traced_of.get(name)) == "backward"
            phases[key][int(backward)] += us
    return dict(sums), unattributed, names, dict(phases)


def median_split(per_run, key) -> tuple:
    """(forward µs, backward µs) of row `key` from the run whose row total is the median, or
    the mean of the two middle runs' for an even count: the parts add up to the row's median
    (`_median` of its totals). `per_run`: `_row_sums` results with phases."""
    totals = [run[0].get(key, 0.0) for run in per_run]
    order = sorted(range(len(totals)), key=totals.__getitem__)
    middle = order[(len(order) - 1) // 2 : len(order) // 2 + 1]
    parts = [per_run[i][3].get(key, (0.0, 0.0)) for i in middle]
    return tuple(float(np.mean([p[phase] for p in parts])) for phase in (0, 1))


def median_run(per_run) -> int:
    """Index of the run whose total (rows plus unattributed, µs) is the median; the lower of the
    two middle runs for an even count. `per_run`: `_row_sums` results."""
    totals = [sum(run[0].values()) + run[1] for run in per_run]
    order = sorted(range(len(totals)), key=totals.__getitem__)
    return order[(len(order) - 1) // 2]


def _node_stats(step_stats):
    """Every NodeExecStats of a run, with its device name."""
    return [(d.device, s) for d in step_stats.dev_stats for s in d.node_stats]


def _interval_ns(s) -> tuple:
    """(start, end) of one NodeExecStats in ns since the epoch: all_start, all_start +
    all_end_rel. The nanosecond fields are used, the microsecond ones where those are unset."""
    if s.all_start_nanos:
        return s.all_start_nanos, s.all_start_nanos + max(s.all_end_rel_nanos, 0)
    start = s.all_start_micros * 1000
    return start, start + max(s.all_end_rel_micros, 0) * 1000


def run_timeline(
    step_stats, executed: dict, found, node_owner: dict, optimized: bool, memory=None
) -> Timeline:
    """One run's executed nodes as a `Timeline`, by start, each slice labelled with the row its
    time goes to, and its bytes in use (`memory`: the run's `bytes_in_use`, read if None).
    `executed`: node name -> op type ("" for names the executed graph lacks, e.g. _SOURCE)."""
    nodes = _node_stats(step_stats)
    origin = min((_interval_ns(s)[0] for _, s in nodes), default=0)
    slices = []
    for _, s in nodes:
        name = s.node_name.split(":")[0]
        key = _row_of(name, found, node_owner)
        start, end = _interval_ns(s)
        slices.append(
            TimelineSlice(
                node=name,
                op=executed.get(name, ""),
                row=None if key is None else row_label(*key),
                thread=int(s.thread_id),
                start_us=(start - origin) / 1e3,
                dur_us=(end - start) / 1e3,
            )
        )
    slices.sort(key=lambda t: (t.start_us, t.thread))
    memory = bytes_in_use(step_stats) if memory is None else memory
    in_use = tuple(((t * 1000 - origin) / 1e3, b) for t, b in zip(memory.micros, memory.in_use))
    mode = "in_graph" if optimized else "unfused"
    return Timeline(mode=mode, slices=tuple(slices), memory=in_use)


@dataclass(frozen=True)
class BytesInUse:
    """A run's allocation records in time order: their µs since the epoch, and the bytes in use
    by the run's kernels after each."""

    micros: tuple
    in_use: tuple


def bytes_in_use(step_stats) -> BytesInUse:
    """The running sum of every allocation record of the CPU device's allocators, in time
    order; records of one microsecond in the order of their nodes' starts."""
    records = []
    nodes = sorted(_node_stats(step_stats), key=lambda n: _interval_ns(n[1])[0])
    for device, s in nodes:
        if "CPU" not in device.rsplit("device:", 1)[-1].upper():
            continue
        for memory in s.memory:
            records.extend((r.alloc_micros, r.alloc_bytes) for r in memory.allocation_records)
    records.sort(key=lambda r: r[0])  # stable: ties keep node order
    in_use = np.cumsum([b for _, b in records], dtype=np.int64) if records else ()
    return BytesInUse(tuple(int(t) for t, _ in records), tuple(int(b) for b in in_use))


def row_peaks(step_stats, memory: BytesInUse, found, node_owner: dict) -> dict:
    """Row key -> the most bytes in use while one of the row's nodes ran: the value in effect
    at the microsecond the node started and after every record until it ended."""
    peaks: dict = {}
    for _, s in _node_stats(step_stats):
        key = _row_of(s.node_name.split(":")[0], found, node_owner)
        if key is None:
            continue
        start, end = _interval_ns(s)
        first = bisect.bisect_left(memory.micros, start // 1000)
        last = bisect.bisect_right(memory.micros, end // 1000)
        during = memory.in_use[first:last]
        before = memory.in_use[first - 1] if first > 0 else 0
        peaks[key] = max(peaks.get(key, 0), before, *during)
    return _ordered_dict(peaks, node_owner)


def _ordered_dict(values: dict, node_owner: dict) -> dict:
    return {k: values[k] for k in _ordered(values, node_owner)}


def _ordered(keys, node_owner: dict) -> list:
    """`keys` in row order (the order rows first appear in `node_owner`)."""
    order = {}
    for key in node_owner.values():
        order.setdefault(key, len(order))
    return sorted(keys, key=order.__getitem__)


def _median(values) -> float:
    return float(np.median(values)) if len(values) else 0.0
