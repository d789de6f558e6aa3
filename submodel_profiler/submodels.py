"""The sub-model method: for each row, a standalone `keras.Model` with exactly the row's inputs.

The sub-model reuses the user's layer objects (so their weights) and makes the row's call on
fresh inputs of the row's static input specs: its nodes run one by one, attached ghost ops
included, as the whole-graph trace runs them (`graph_walk.call_node`), or a recorded call site
is called on its recorded arguments. It is a small subclassed `keras.Model` (`RowModel`) that
makes that call on concrete tensors when traced, never symbolically: so a row the whole model
can run is a row its sub-model can run, whatever Keras' symbolic call would refuse or change (a
`compute_output_spec` that does not take `training`, a `compute_output_shape` that names fewer
outputs than `call` returns, an output computed from weights alone, `None` among the outputs).
No Keras node is added to the user's layers, so the user's model is left as it was.
"""

from __future__ import annotations

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


def build_submodel(row: RowPlan, input_specs=()) -> object:
    """A `keras.Model` computing exactly `row`: called on a list of tensors of the row's input
    specs (as many as `input_specs`, the whole-graph trace's; none for a row computed from
    weights alone), it returns the tensors the row's call returns, flattened, without the
    `None`s, in the order the whole-graph trace lists the row's outputs.

    The row's layers (their weights) are tracked by the model, so `model.trainable_weights`
    are theirs.
    """
    # Keras refuses scope names with "/", "[" or spaces (row paths have them: block[1]/dense).
    name = re.sub(r"[^A-Za-z0-9_.-]", "_", f"submodel_{row.name}_{row.call_index}")
    if row.source == "call_site":
        run = functools.partial(_run_call_site, row)
    else:
        run = functools.partial(_run_nodes, row)
    operations = [node.operation for node in row.nodes] or [row.operation]
    return _row_model_class()(run, operations, _recorded_variables(row), name=name)


def _recorded_variables(row: RowPlan) -> list:
    """The weights a recorded call takes as arguments (`self.lookup(self.position_ids)`):
    they are the row's weights too."""
    import keras
    import tensorflow as tf

    if row.call_template is None:
        return []
    found = [v for v in tf.nest.flatten(row.call_template) if isinstance(v, keras.Variable)]
    return list({id(v): v for v in found}.values())


def _run_nodes(row: RowPlan, tensors, training: bool = False):
    """A functional row's nodes run on `tensors` (its inputs, None at `row.none_inputs`), its
    layers in training mode or not."""
    given = iter(tensors)
    values = {
        id(t): None if i in row.none_inputs else next(given)
        for i, t in enumerate(row.input_tensors)
    }
    for node in row.nodes:
        call_node(node, values, training)
    return [values.get(id(t)) for t in row.output_tensors]


def _run_call_site(row: RowPlan, tensors, training: bool = False):
    """A recorded call site called on its recorded arguments, `tensors` filled in (`training`
    passed on where the layer takes it, as Keras passes a model's on)."""
    from submodel_profiler.call_recorder import fill_template

    args, kwargs = fill_template(row.call_template, list(tensors))
    if training and "training" in getattr(row.operation, "_call_context_args", ()):
        kwargs["training"] = True
    return row.operation(*args, **kwargs)


@functools.cache
def _row_model_class():
    """The RowModel class (defined once Keras is imported)."""
    import keras

    class RowModel(keras.Model):
        """`run(inputs)` as a model: the tensors among its outputs, flattened (tf.nest's order,
        as the whole-graph trace flattens a call's outputs; `None`s and other values left
        out). Inputs are passed to `run` as they come (no cast to this model's dtype policy:
        the row's layers cast for themselves, as in the whole model)."""

        def __init__(self, run, operations, variables=(), **kwargs):
            super().__init__(autocast=False, **kwargs)
            self._convert_input_args = False
            self._allow_non_tensor_positional_args = True
            self._run = run
            # tracked, so the model's weights are the row's layers' (a ghost op has none) and
            # those its call takes as arguments
            self.row_layers = [op for op in operations if isinstance(op, keras.layers.Layer)]
            self.row_variables = list(variables)

        def call(self, inputs, training=None):
            import tensorflow as tf

            outputs = tf.nest.flatten(self._run(list(inputs), bool(training)))
            return [t for t in outputs if isinstance(t, tf.Tensor)]

    return RowModel


def profile_submodel(row: RowPlan, input_specs, outputs_used=()) -> SubModel:
    """Build, trace and count the float ops of `row`'s sub-model; only the outputs the model
    uses (`outputs_used`, one bool per output; all when empty) make work count as run."""
    model = build_submodel(row, input_specs)
    concrete = trace_call(model, input_specs, structure=list(range(len(input_specs))))  # a list
    graph = concrete.graph
    return SubModel(
        model, count_graph_flops(graph, outputs_used), activation_peak(graph).peak_bytes
    )
