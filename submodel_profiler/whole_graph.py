"""The whole-graph method: trace the whole model once with static shapes, count its float ops,
and split them per row.

The split is right by construction: the model is traced by running its Keras nodes one by one
(exactly as `Functional.call` does) inside one `tf.function`, and every graph op created while a
row's nodes run is recorded as belonging to that row. Node names are never parsed (Keras and TF
uniquify name scopes, so `conv_1` may appear as `conv_1_2` and ghost ops as `Add_6`).

The model is also traced the ordinary way, `model(x, training=False)`, and that graph's totals
(float ops in both conventions, MACs) are the reference the per-row split must add up to.
"""

from __future__ import annotations

from dataclasses import dataclass

from submodel_profiler.counting import Count
from submodel_profiler.errors import ProfilingError
from submodel_profiler.flops import GraphFlops, count_graph_flops
from submodel_profiler.graph_walk import RowPlan, bind, call_node, functional_graph
from submodel_profiler.tracing import trace_call


@dataclass(frozen=True)
class RowTrace:
    """What the instrumented trace saw for one row: static shapes and the graph ops it created."""

    input_specs: tuple  # tf.TensorSpec per distinct input tensor, batch pinned
    output_specs: tuple
    op_names: frozenset
    # Per output: does anything outside the row use it (a later row, a model output)? A
    # sub-model counts only the work its used outputs need, as the whole graph does.
    outputs_used: tuple = ()


def outputs_used(tensors, op_names) -> tuple:
    """For each graph tensor a row outputs: whether an op outside the row consumes it."""
    return tuple(any(c.name not in op_names for c in t.consumers()) for t in tensors)


@dataclass(frozen=True)
class WholeGraph:
    """The instrumented trace's counts split per row, and the reference count of `model(x)`."""

    row_traces: dict  # RowPlan.key -> RowTrace
    instrumented: GraphFlops  # counts of the trace run node by node (op names -> rows)
    reference: GraphFlops  # counts of the ordinary trace of model(x, training=False)
    instrumented_function: object  # ConcreteFunction traced node by node
    reference_function: object  # ConcreteFunction of model(x, training=False)

    def row_count(self, key) -> Count:
        """Float ops (both conventions) and MACs the whole graph attributes to a row."""
        return self.instrumented.count_of(self.row_traces[key].op_names)

    def row_uncounted(self, key, counting: str) -> dict:
        """{op type: n} of the row's ops without a count in `counting`."""
        return self.instrumented.uncounted_ops(self.row_traces[key].op_names, counting)

    def row_notes(self, key) -> tuple:
        """How the row's loops and branches were counted."""
        return self.instrumented.notes_of(self.row_traces[key].op_names)

    def row_graph_digest(self, key) -> str:
        """Digest of the graph ops the row created, names replaced by positions: equal for rows
        whose traced computations are identical (their weights' values aside)."""
        import hashlib

        graph = self.instrumented_function.graph
        ops = sorted((graph.get_operation_by_name(n) for n in self.row_traces[key].op_names),
                     key=lambda op: op._id)  # creation order  # fmt: skip
        position = {op.name: i for i, op in enumerate(ops)}
        digest = hashlib.sha256()
        for op in ops:
            inputs = [(position[t.op.name], t.value_index) if t.op.name in position
                      else (t.dtype.name, str(t.shape)) for t in op.inputs]  # fmt: skip
            attrs = sorted((k, _attr_text(v)) for k, v in op.node_def.attr.items()
                           if not k.startswith("_"))  # fmt: skip
            outputs = [str(t.shape) for t in op.outputs]
            digest.update(repr((op.type, inputs, attrs, outputs)).encode())
        return digest.hexdigest()

    def node_owner(self) -> dict:
        """Graph node name of the instrumented trace -> key of the row that created it."""
        return {name: key for key, trace in self.row_traces.items() for name in trace.op_names}


def _attr_text(value) -> str:
    """An op attribute as text; a function attribute by kind only (its name is per trace)."""
    if value.HasField("func"):
        return "<function>"
    return value.SerializeToString(deterministic=True).hex()


def trace_rows(model, rows: list[RowPlan], input_specs: list):
    """Trace the model node by node; return (concrete function, {row key: RowTrace})."""
    import tensorflow as tf

    graph_model = functional_graph(model)
    traces: dict = {}

    def run(*xs):
        graph = tf.compat.v1.get_default_graph()
        values = {id(t): x for t, x in zip(graph_model.inputs, xs)}
        created = {row.key: [] for row in rows}
        for row in rows:
            bind(row.bind_before, values)
            for node in row.nodes:
                start = len(graph.get_operations())
                try:
                    call_node(node, values)
                except Exception as e:  # name the layer: the trace of every row needs it
                    failed.append((row.name, e))
                    raise
                created[row.key].extend(graph.get_operations()[start:])
            bind(row.bind_after, values)
        for row in rows:
            traces[row.key] = RowTrace(
                input_specs=tuple(_spec(values[id(t)]) for t in row.input_tensors),
                output_specs=tuple(_spec(values[id(t)]) for t in row.output_tensors),
                op_names=frozenset(op.name for op in created[row.key]),
            )
        outputs[:] = [(row.key, [values[id(t)] for t in row.output_tensors]) for row in rows]
        return [values[id(t)] for t in graph_model.outputs]

    outputs: list = []
    failed: list = []  # (layer name, exception): tf.function re-raises it wrapped
    try:
        concrete = tf.function(run).get_concrete_function(*input_specs)
    except Exception as e:
        if not failed:
            raise
        name, cause = failed[-1]
        raise ProfilingError("tracing the whole model", cause, name) from e
    for key, tensors in outputs:  # consumers are known once the whole trace exists
        trace = traces[key]
        traces[key] = RowTrace(trace.input_specs, trace.output_specs, trace.op_names,
                               outputs_used(tensors, trace.op_names))  # fmt: skip
    return concrete, traces


def _spec(tensor):
    import tensorflow as tf

    return tf.TensorSpec(tensor.shape, tensor.dtype)


def trace_reference(model, input_specs: list):
    """Concrete function of `model(x, training=False)`, traced the ordinary way."""
    structure = getattr(functional_graph(model), "_inputs_struct", None)
    flat = list(range(len(input_specs)))  # a list of leaves: the inputs as a list
    return trace_call(model, input_specs, flat if structure is None else structure)


def profile_whole_graph(model, rows: list[RowPlan], input_specs: list) -> WholeGraph:
    """Run the whole-graph method: instrumented trace, per-row split, reference total."""
    concrete, traces = trace_rows(model, rows, input_specs)
    reference = trace_reference(model, input_specs)
    return WholeGraph(
        row_traces=traces,
        instrumented=count_graph_flops(concrete.graph),
        reference=count_graph_flops(reference.graph),
        instrumented_function=concrete,
        reference_function=reference,
    )
