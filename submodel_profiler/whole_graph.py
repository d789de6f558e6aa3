"""The whole-graph method: trace the whole model once with static shapes, count its float ops,
and split them per row.

The split is right by construction: every graph op created while a row's nodes run is recorded
as belonging to that row. Node names are never parsed (Keras and TF uniquify name scopes, so
`conv_1` may appear as `conv_1_2` and ghost ops as `Add_6`).

Where it can (`trace_once`: a functional model whose rows are its own nodes), the one trace is
`model(x, training=False)` itself, Keras' own call, with the model's node loop replaced for the
trace by a copy of Keras' that notes the ops of each node: that graph's totals (float ops in both
conventions, MACs, op bytes) are the reference the rows' sub-models must add up to, and its
split is theirs row by row. Otherwise (rows inside nested models or expanded composite layers,
a row failing to trace, a model with a loop of its own) the model is traced node by node
(`trace_rows`, exactly as `Functional.call` runs it) for the split, and again the ordinary way
for the reference.

A row whose layer fails while traced does not sink the trace of a functional model: the row
keeps the error (`WholeGraph.row_errors`), zeros of its outputs' static shapes stand in for its
outputs so the later rows still trace, and the reference trace (which fails the same way) is
left out (`reference_error`). Only when nothing can stand in (an output shape not static past the
batch dimension, a dtype zeros cannot be made of) is the failure a crash (`ProfilingError`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

from submodel_profiler.call_recorder import (
    CallRecorder,
    Expansion,
    add_inline_row,
    layers_within,
    site_rows,
    sublayers,
)
from submodel_profiler.counting import Count
from submodel_profiler.errors import ProfilingError, describe
from submodel_profiler.flops import GraphFlops, count_graph_flops, live_nodes
from submodel_profiler.graph_walk import (
    RowPlan,
    RowTrace,
    bind,
    call_node,
    functional_graph,
    graph_of,
    keras_loop,
    outputs_used,
)
from submodel_profiler.patching import replace_attribute, wrapped_calls
from submodel_profiler.report import row_label
from submodel_profiler.tracing import concrete_function, input_structure, trace_call


@dataclass(frozen=True)
class WholeGraph:
    """The instrumented trace's counts split per row, and the reference count of `model(x)`."""

    row_traces: dict  # RowPlan.key -> RowTrace, of the report's rows (the leaves)
    instrumented: GraphFlops  # counts of the trace run node by node (op names -> rows)
    reference: GraphFlops | None  # counts of the ordinary trace of model(x, training=False)
    instrumented_function: object  # ConcreteFunction traced node by node
    rows: tuple = ()  # the report's rows (RowPlans, execution order)
    parents: tuple = ()  # RowPlans of the layers and nested models expanded into rows
    parent_traces: dict = field(default_factory=dict)  # their RowTraces (all their ops)
    row_errors: dict = field(default_factory=dict)  # row key -> why its layer failed to trace
    reference_error: str | None = None  # why model(x) could not be traced (reference is None)
    traced_once: bool = False  # the instrumented trace is model(x)'s own (`of_one_trace`)
    reference_function: object = None  # ConcreteFunction of model(x, training=False), or None

    @property
    def complete(self) -> bool:
        """Whether every row traced: the instrumented graph is the model's own computation."""
        return not self.row_errors

    def trace(self, key):
        """The RowTrace of a row or of an expanded parent."""
        return self.row_traces[key] if key in self.row_traces else self.parent_traces[key]

    def row_count(self, key) -> Count:
        """Float ops (both conventions) and MACs the whole graph attributes to a row."""
        return self.instrumented.count_of(self.trace(key).op_names)

    def row_uncounted(self, key, counting: str) -> dict:
        """{op type: n} of the row's ops without a count in `counting`."""
        return self.instrumented.uncounted_ops(self.trace(key).op_names, counting)

    def row_notes(self, key) -> tuple:
        """How the row's loops and branches were counted."""
        return self.instrumented.notes_of(self.trace(key).op_names)

    def row_graph_digest(self, key) -> str:
        """Digest of the graph ops the row created, names replaced by positions, and of which
        of its outputs are used: equal for rows whose traced computations are identical (their
        weights' values aside) and count alike (a row whose outputs nothing that runs reads
        counts nothing as run)."""
        import hashlib

        graph = self.instrumented_function.graph
        trace = self.trace(key)
        ops = sorted(
            (graph.get_operation_by_name(n) for n in trace.op_names),
            key=lambda op: op._id,
        )  # creation order
        position = {op.name: i for i, op in enumerate(ops)}
        digest = hashlib.sha256(repr(trace.outputs_used).encode())
        for op in ops:
            inputs = [
                (position[t.op.name], t.value_index)
                if t.op.name in position
                else (t.dtype.name, str(t.shape))
                for t in op.inputs
            ]
            attrs = sorted(
                (k, _attr_text(v)) for k, v in op.node_def.attr.items() if not k.startswith("_")
            )
            outputs = [str(t.shape) for t in op.outputs]
            digest.update(repr((op.type, inputs, attrs, outputs)).encode())
        return digest.hexdigest()

    def node_owner(self) -> dict:
        """Graph node name of the instrumented trace -> key of the row that created it."""
        return {name: key for key, trace in self.row_traces.items() for name in trace.op_names}

    def node_phase(self) -> dict | None:
        """Graph node name -> "forward" or "backward" (a training step's; None at inference)."""
        return None

    def row_dependencies(self) -> list:
        """For each row (execution order), the indices of the earlier rows whose ops produce a
        tensor or a control input that its ops read: the model's DAG at row level, from the
        graph itself (a row reading only the model's inputs or weights depends on none).

        Seen through: ops of no row, and those of inline rows (an expanded layer's own ops,
        such as a transformer block's residual adds, one row that comes after its sublayers
        but runs between them): a row reading one of them depends on the rows that produce
        what that op reads, and so on up."""
        graph = self.instrumented_function.graph
        owner = self.node_owner()
        index = {row.key: i for i, row in enumerate(self.rows) if row.source != "inline"}
        index_of = {name: index[key] for name, key in owner.items() if key in index}
        through: dict = {}  # op name -> the rows producing what it reads, seen through

        def rows_read(op) -> set:
            stack = [op]
            while stack:  # depth first, without recursion: graphs are deep
                top = stack[-1]
                if top.name in through:
                    stack.pop()
                    continue
                pending = [
                    p for p in _read(top) if p.name not in index_of and p.name not in through
                ]
                if pending:
                    stack.extend(pending)
                    continue
                stack.pop()
                found = set()
                for p in _read(top):
                    found |= {index_of[p.name]} if p.name in index_of else through[p.name]
                through[top.name] = found
            return through[op.name]

        deps = []
        for i, row in enumerate(self.rows):
            found = set()
            for name in self.row_traces[row.key].op_names:
                found |= rows_read(graph.get_operation_by_name(name))
            deps.append({j for j in found if j < i})
        return deps


def _read(op) -> tuple:
    """The ops whose tensors or control outputs `op` reads."""
    return (*(t.op for t in op.inputs), *op.control_inputs)


def _attr_text(value) -> str:
    """An op attribute as text; a function attribute by kind only (its name is per trace)."""
    if value.HasField("func"):
        return "<function>"
    return value.SerializeToString(deterministic=True).hex()


def trace_rows(
    model,
    rows: list[RowPlan],
    input_specs: list,
    depth: int = 1,
    nested: tuple = (),
    training: bool = False,
    wrap=None,
    row_scopes: bool = False,
):
    """Trace the model node by node; return (concrete function, Expansion of the rows,
    {row key: error} of the rows whose layer failed while traced).

    Every graph op created while a row's nodes run belongs to that row. With `depth` > 1, a
    composite layer's row (its `call` calls other layers) is traced with those layers' calls
    recorded and replaced by their rows (`call_recorder.site_rows`) plus an inline row for the
    ops it runs itself; `nested` are the RowPlans of nested models `plan_rows` already expanded:
    they become parents, traced over their rows' ops. Layers run with `training`; `wrap(run)`,
    when given, is the function traced instead of the node-by-node forward pass `run` (the
    training step: forward under a gradient tape, then the backward; training.py). With
    `row_scopes`, each row's nodes run in a name scope of their own (`row<i>`), so every op of
    a row, a ghost op's too, has a name scope no other row's ops have (TF names the gradient
    ops of a forward op after its name scope).
    """
    import tensorflow as tf

    graph_model = functional_graph(model)
    batch = input_specs[0].shape[0] if input_specs else None
    traces: dict = {}
    recorded: dict = {}  # row key -> recorded call sites of a composite layer
    row_errors: dict = {}  # row key -> why it failed (zeros stood in for its outputs)
    outputs: list = []
    nones: dict = {}  # row key -> positions of its inputs that were None (RowPlan.none_inputs)
    failed: list = []  # (layer name, exception): tf.function re-raises it wrapped

    def run(*xs):
        graph = tf.compat.v1.get_default_graph()
        outputs.clear()
        values = {id(t): x for t, x in zip(graph_model.inputs, xs)}
        created = {row.key: [] for row in rows}
        # a nested model's parent row is traced once its last row ran: a later call of an
        # enclosing model rebinds the tensors of its graph
        inside = {p.key: [r for r in rows if r.name.startswith(p.label + "/")] for p in nested}
        ends: dict = {}
        for parent in nested:
            ends.setdefault(inside[parent.key][-1].key, []).append(parent)
        for index, row in enumerate(rows):
            bind(row.bind_before, values)
            for node in row.nodes:
                start = len(graph.get_operations())
                scope = tf.name_scope(f"row{index}") if row_scopes else contextlib.nullcontext()
                try:
                    with scope:
                        recorded[row.key] = _call_recording(row, node, values, depth, training)
                except Exception as e:
                    created[row.key].extend(graph.get_operations()[start:])
                    if not _stand_in(row, values, batch):  # later rows cannot be traced
                        failed.append((row.name, e))
                        raise
                    row_errors[row.key] = f"failed when traced: {describe(e)}"
                    break
                created[row.key].extend(graph.get_operations()[start:])
            # now: a nested model's next call binds its tensors to other values
            traces[row.key] = _trace(row, values, created[row.key])
            nones[row.key] = _none_positions(values, row.input_tensors)
            outputs.append((row.key, _tensors(values, row.output_tensors)))
            bind(row.bind_after, values)
            for parent in ends.get(row.key, ()):
                ops = [op for r in inside[parent.key] for op in created[r.key]]
                traces[parent.key] = _trace(parent, values, ops)
                nones[parent.key] = _none_positions(values, parent.input_tensors)
                outputs.append((parent.key, _tensors(values, parent.output_tensors)))
        return [values[id(t)] for t in graph_model.outputs]

    try:
        concrete = concrete_function(wrap(run) if wrap else run, input_specs)
    except Exception as e:
        if not failed:
            raise
        name, cause = failed[-1]
        raise ProfilingError("tracing the whole model", cause, name) from e
    tree = _expansion(concrete, rows, traces, outputs, nones, recorded, depth, nested)
    return concrete, tree, row_errors


def _expansion(concrete, rows, traces, outputs, nones, recorded, depth, nested) -> Expansion:
    """The report's rows from a finished trace: each row's RowTrace told which of its outputs
    are used, and composite rows expanded (`_expand_rows`)."""
    # consumers, and which nodes run, are known once the whole trace exists
    live = live_nodes(concrete.graph)
    for key, tensors in outputs:
        used = outputs_used(tensors, traces[key].op_names, live)
        traces[key] = dataclasses.replace(traces[key], outputs_used=used)
    rows, nested = _with_none_inputs(rows, nones), _with_none_inputs(nested, nones)
    return _expand_rows(rows, traces, recorded, depth, nested, live)


def trace_once(model, rows: list[RowPlan], input_specs: list, depth: int = 1, nested: tuple = ()):
    """`model(x, training=False)` traced the ordinary way, Keras' own call, with the model's
    node loop replaced for the trace by a copy of Keras' (`graph_walk.keras_loop`) that notes
    the graph ops each node creates: the per-row split and the reference in one trace. Returns
    (concrete function, Expansion of the rows), or None where `trace_rows` must trace node by
    node instead: rows inside nested models or composite rows to expand (their nodes and calls
    are not the model's own), a row that is not exactly some of the model's nodes, a model
    whose call does not run Keras' loop once over all of them, or any failure (a row that fails
    to trace gets its stand-in there). Ops a model's `call` runs around the loop (a Functional
    subclass's own math, Keras' input adjustments) belong to no row, as they did when only the
    reference trace had them: they are counted in the totals, as unattributed.
    """
    import tensorflow as tf

    if nested or any(r.source != "functional" or r.bind_before or r.bind_after for r in rows):
        return None
    if any(is_composite(r, depth) for r in rows):
        return None
    graph_model = functional_graph(model)
    row_of = {id(node): row for row in rows for node in row.nodes}
    if len(row_of) != sum(len(r.nodes) for r in rows):
        return None  # a node in two rows
    created: dict = {row.key: [] for row in rows}
    runs: list = []  # the loop's values, id(KerasTensor) -> value, once per run

    def around(node, run, values):
        graph = tf.compat.v1.get_default_graph()
        if not runs or runs[-1] is not values:
            runs.append(values)
        row = row_of.get(id(node))
        if row is None:  # a node of no row: its ops would be nobody's
            raise _NotOneTrace(node)
        start = len(graph.get_operations())
        run()
        created[row.key].extend(graph.get_operations()[start:])

    loop = keras_loop(graph_model, around=around)
    if loop is None:
        return None
    undo = replace_attribute(graph_model, "_run_through_graph", loop)
    try:
        concrete = trace_reference(model, input_specs)
    except Exception:
        return None
    finally:
        undo()
    if len(runs) != 1:
        return None  # the model's call ran Keras' loop more than once, or never
    values = runs[0]
    if any(id(t) not in values for r in rows for node in r.nodes for t in node.outputs):
        return None  # a row's node did not run
    traces = {r.key: _trace(r, values, created[r.key]) for r in rows}
    nones = {r.key: _none_positions(values, r.input_tensors) for r in rows}
    outputs = [(r.key, _tensors(values, r.output_tensors)) for r in rows]
    return concrete, _expansion(concrete, rows, traces, outputs, nones, {}, depth, ())


class _NotOneTrace(Exception):
    """The model's loop ran a node no row has (`trace_once` leaves it to `trace_rows`)."""


def _stand_in(row: RowPlan, values: dict, batch) -> bool:
    """Give a failed row's outputs zeros of their static shapes (batch pinned); False when a
    shape is not static past the batch dimension or no zeros can be made (their dtype).

    The zeros depend on the row's inputs through `Shape` ops (data movement, no float ops),
    so the rows that feed the failed row still count as used and live, as in the model.
    """
    import tensorflow as tf

    shapes = []
    for t in row.output_tensors:
        shape = list(t.shape)
        if shape and shape[0] is None:
            shape[0] = batch
        if any(d is None for d in shape):
            return False
        shapes.append(shape)
    inputs = [values[id(t)] for t in row.input_tensors if id(t) in values]
    try:
        shapes_of_inputs = [tf.raw_ops.Shape(input=x) for x in inputs if isinstance(x, tf.Tensor)]
        with tf.control_dependencies(shapes_of_inputs):  # tf.shape would fold into a constant
            zeros = [
                tf.identity(tf.zeros(shape, t.dtype))
                for t, shape in zip(row.output_tensors, shapes)
            ]
    except Exception:
        return False
    for t, value in zip(row.output_tensors, zeros):
        values[id(t)] = value
    return True


def _trace(row: RowPlan, values: dict, ops) -> RowTrace:
    """What the trace saw of `row`; a `None` among its inputs or outputs (legal in Keras: a
    layer returning `(x, None)`) carries no tensor and no spec."""
    inputs = _tensors(values, row.input_tensors)
    return RowTrace(
        input_specs=tuple(_spec(x) for x in inputs),
        output_specs=tuple(_spec(x) for x in _tensors(values, row.output_tensors)),
        op_names=frozenset(op.name for op in ops),
        input_names=tuple(getattr(x, "name", None) for x in inputs),
    )


def _tensors(values: dict, keras_tensors) -> list:
    """The values standing for `keras_tensors`, less those that are None (or that the call
    did not return: Keras leaves them out too)."""
    return [values[id(t)] for t in keras_tensors if values.get(id(t)) is not None]


def _none_positions(values: dict, keras_tensors) -> tuple:
    return tuple(i for i, t in enumerate(keras_tensors) if values.get(id(t)) is None)


def _with_none_inputs(rows, nones: dict) -> list:
    """`rows` with `none_inputs` set where the trace found None among a row's inputs."""
    return [
        dataclasses.replace(r, none_inputs=nones[r.key]) if nones.get(r.key) else r for r in rows
    ]


def is_composite(row: RowPlan, depth: int) -> bool:
    """A row to expand at `depth`: one layer call whose layer holds other layers."""
    return (
        row.depth < depth
        and row.kind == "layer"
        and len(row.nodes) == 1
        and graph_of(row.operation) is None
        and bool(sublayers(row.operation))
    )


def _call_recording(row: RowPlan, node, values: dict, depth: int, training: bool = False):
    """Run `node`; for a composite row, with its sublayers' calls recorded (their sites)."""
    if not is_composite(row, depth):
        call_node(node, values, training)
        return None
    levels = depth - row.depth
    recorder = CallRecorder(max_depth=levels)
    with wrapped_calls(layers_within(sublayers(row.operation), levels), recorder.wrap):
        call_node(node, values, training)
    return recorder.roots


def _expand_rows(rows, traces, recorded, depth, nested, live=None) -> Expansion:
    """The report's rows: composite rows replaced by their call sites' rows and inline row
    (`live`: the nodes of the trace that run, for the call sites' `outputs_used`)."""
    out = Expansion(parents=list(nested), parent_traces={p.key: traces[p.key] for p in nested})
    for row in rows:
        sites = recorded.get(row.key)
        graph = sites[0].graph if sites else None
        if not sites or any(site.graph is not graph for site in sites):
            out.rows.append(row)
            out.traces[row.key] = traces[row.key]
            continue
        out.parents.append(row)
        out.parent_traces[row.key] = traces[row.key]
        site_rows(sites, row.label + "/", row.depth + 1, depth, row.label, out, live)
        add_inline_row(
            out, row.label + "/", traces[row.key].op_names, sites, row.depth + 1, row.label
        )
    return out


def _spec(tensor):
    import tensorflow as tf

    return tf.TensorSpec(tensor.shape, tensor.dtype)


def trace_reference(model, input_specs: list):
    """Concrete function of `model(x, training=False)`, traced the ordinary way."""
    structure = input_structure(functional_graph(model))
    flat = list(range(len(input_specs)))  # a list of leaves: the inputs as a list
    return trace_call(model, input_specs, flat if structure is None else structure)


def of_one_trace(concrete, tree: Expansion) -> WholeGraph:
    """The WholeGraph of a trace that is `model(x)`'s own, split per row (`tree`): its counts
    are the reference too."""
    counts = count_graph_flops(concrete.graph)
    return WholeGraph(
        row_traces=tree.traces,
        instrumented=counts,
        reference=counts,
        instrumented_function=concrete,
        rows=tuple(tree.rows),
        parents=tuple(tree.parents),
        parent_traces=tree.parent_traces,
        traced_once=True,
        reference_function=concrete,
    )


def profile_whole_graph(
    model, rows: list[RowPlan], input_specs: list, depth: int = 1, nested: tuple = ()
) -> WholeGraph:
    """Run the whole-graph method: instrumented trace, per-row split, reference total (one
    trace of `model(x)` where `trace_once` can split it, two otherwise)."""
    once = trace_once(model, rows, input_specs, depth, nested)
    if once is not None:
        return of_one_trace(*once)
    concrete, tree, row_errors = trace_rows(model, rows, input_specs, depth, nested)
    reference, reference_error = None, None
    try:
        reference = trace_reference(model, input_specs)
    except Exception as e:
        if not row_errors:
            raise
        failed = ", ".join(row_label(*key) for key in row_errors)
        reference_error = f"model(x) could not be traced (row {failed} failed): {describe(e)}"
    return WholeGraph(
        row_traces=tree.traces,
        instrumented=count_graph_flops(concrete.graph),
        reference=None if reference is None else count_graph_flops(reference.graph),
        instrumented_function=concrete,
        rows=tuple(tree.rows),
        parents=tuple(tree.parents),
        parent_traces=tree.parent_traces,
        row_errors=row_errors,
        reference_error=reference_error,
        reference_function=reference,
    )
