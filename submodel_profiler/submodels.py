"""The sub-model method: for each row, a standalone `keras.Model` with exactly the row's inputs.

The sub-model reuses the user's layer objects (so their weights), calls them on fresh
`keras.Input`s of the row's static input specs, and adds the row's attached ghost ops. Calling a
layer symbolically appends a node to that layer's history; those histories are restored as
soon as the sub-model exists, so the user's model is left as it was.
"""

from __future__ import annotations

import contextlib
import functools
import re
from dataclasses import dataclass

from submodel_profiler.flops import GraphFlops, count_graph_flops
from submodel_profiler.graph_walk import RowPlan, call_node
from submodel_profiler.memory import activation_peak
from submodel_profiler.tracing import trace_call


@dataclass(frozen=True)
class SubModel:
    """A row's standalone model and the float ops of its traced graph."""

    model: object  # keras.Model
    flops: GraphFlops  # of model(x, training=False) traced with static specs
    peak_activation_bytes: int | None = None  # static liveness peak of that graph (memory.py)

    def call(self, *xs):
        """`model(list(xs), training=False)`, as traced when counted; called inside another
        function, its ops are created there (the timing method needs that)."""
        return self.model(list(xs), training=False)


def build_submodel(row: RowPlan, input_specs) -> object:
    """A `keras.Model` computing exactly `row`, with inputs of the given static specs."""
    import keras

    inputs = [
        keras.Input(batch_shape=tuple(spec.shape), dtype=spec.dtype.name) for spec in input_specs
    ]
    # Keras refuses scope names with "/", "[" or spaces (row paths have them: block[1]/dense).
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"submodel_{row.name}_{row.call_index}")
    operations = [node.operation for node in row.nodes] or [row.operation]
    with _node_history_restored(operations):
        if row.source == "call_site":
            try:
                outputs = _call_as_recorded(row.operation, row.call_template, inputs)
            except Exception as direct:
                try:  # e.g. a layer returning None among its outputs (keras-hub's T5 attention)
                    wrapper = _tensor_outputs_layer()(row.operation, row.call_template)
                    outputs = wrapper(inputs)
                except Exception:
                    raise direct from None
            return keras.Model(inputs, outputs, name=name)
        values = {id(t): x for t, x in zip(row.input_tensors, inputs)}
        for node in row.nodes:
            call_node(node, values)
        outputs = [values[id(t)] for t in row.output_tensors]
        return keras.Model(inputs, outputs, name=name)


@functools.cache
def _tensor_outputs_layer():
    """The TensorOutputs layer class (defined once Keras is imported)."""
    import keras

    class TensorOutputs(keras.layers.Layer):
        """Calls `layer` on its recorded arguments (the tensors filled in) and returns the
        tensors among its outputs, flattened, in the order the whole-graph trace lists them.
        For call sites Keras cannot call symbolically as they are: their outputs hold a
        None, or their own `compute_output_spec` refuses the recorded arguments."""

        def __init__(self, layer, call_template, **kwargs):
            super().__init__(name=f"{layer.name}_tensor_outputs", **kwargs)
            self.layer = layer
            self.call_template = call_template

        def call(self, tensors):
            from keras import tree

            outputs = _call_as_recorded(self.layer, self.call_template, tensors)
            return [t for t in tree.flatten(outputs) if t is not None]

    return TensorOutputs


def _call_as_recorded(layer, call_template, tensors):
    """`layer` called on its recorded arguments, `tensors` filled in for the recorded ones."""
    from submodel_profiler.call_recorder import fill_template

    args, kwargs = fill_template(call_template, list(tensors))
    return layer(*args, **_without_none_defaults(layer, kwargs))


def _without_none_defaults(layer, kwargs: dict) -> dict:
    """`kwargs` less those passed as None where None is the default of `layer.call`: the same
    call, and one a layer's own `compute_output_spec` may not accept (keras-hub's
    CachedMultiHeadAttention is called with `cache=None`; MultiHeadAttention's spec refuses it)."""
    import inspect

    try:
        params = inspect.signature(layer.call).parameters
    except (TypeError, ValueError):
        return kwargs
    return {
        k: v
        for k, v in kwargs.items()
        if not (v is None and k in params and params[k].default is None)
    }


@contextlib.contextmanager
def _node_history_restored(operations):
    """Undo the inbound/outbound nodes that symbolic calls add to these operations."""
    ops = {id(op): op for op in operations}.values()
    saved = [(op, list(op._inbound_nodes), list(op._outbound_nodes)) for op in ops]
    try:
        yield
    finally:
        for op, inbound, outbound in saved:
            op._inbound_nodes[:] = inbound
            op._outbound_nodes[:] = outbound


def profile_submodel(row: RowPlan, input_specs, outputs_used=()) -> SubModel:
    """Build, trace and count the float ops of `row`'s sub-model; only the outputs the model
    uses (`outputs_used`, one bool per output; all when empty) make work count as run."""
    model = build_submodel(row, input_specs)
    concrete = trace_call(model, input_specs, structure=list(range(len(input_specs))))  # a list
    graph = concrete.graph
    return SubModel(
        model, count_graph_flops(graph, outputs_used), activation_peak(graph).peak_bytes
    )
