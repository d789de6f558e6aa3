"""Subclassed models (`keras.Model` subclasses wired in `call`): no functional graph to walk.

The model is traced once, the ordinary way, with each top-level layer's `call` temporarily
wrapped (restored in a `finally`) to record every call site: its arguments (tensors become
placeholders of the recorded static specs) and the graph ops created while it ran. A row per call
site is profiled like any other row: a sub-model is built by calling the layer on fresh
`keras.Input`s with the recorded argument structure. Ops written inline in `call` (outside any
layer) belong to one "(inline ops)" row (`kind: "inline"`): they cannot be isolated, so that
row's float ops are its whole-graph count, and the rows still sum to the whole graph.
"""

from __future__ import annotations

from dataclasses import dataclass

from submodel_profiler.errors import UsageError
from submodel_profiler.flops import count_graph_flops
from submodel_profiler.graph_walk import RowPlan
from submodel_profiler.patching import wrapped_calls
from submodel_profiler.tracing import trace_call
from submodel_profiler.whole_graph import RowTrace, WholeGraph, outputs_used

INLINE_ROW = "(inline ops)"


@dataclass(frozen=True)
class TensorSlot:
    """Placeholder for the index-th distinct tensor argument of a recorded call."""

    index: int


def subclassed_input_specs(model, batch_size: int, input_shapes) -> list:
    """Static specs for a subclassed model: its inputs are only known from --input-shape."""
    import tensorflow as tf

    if not input_shapes or isinstance(input_shapes, dict):
        raise UsageError(
            f"{type(model).__name__} is a subclassed model without symbolic inputs: pass the "
            "per-sample shape of each input, in order, with --input-shape (e.g. "
            f"--input-shape 32,32,3), or input_shapes=[...] in the API. Received: {input_shapes!r}."
        )
    return [tf.TensorSpec((batch_size, *shape), tf.float32) for shape in input_shapes]


def trace_subclassed(model, specs) -> tuple[list[RowPlan], WholeGraph]:
    """Trace `model(x)` once, recording layer call sites; the rows and the whole-graph split."""

    recorder = _Recorder()
    with wrapped_calls(model.layers, recorder.wrap):
        concrete = trace_call(model, specs)
    flops = count_graph_flops(concrete.graph)
    rows, traces = recorder.rows_and_traces(concrete.graph)
    return rows, WholeGraph(
        row_traces=traces,
        instrumented=flops,
        reference=flops,
        instrumented_function=concrete,
        reference_function=concrete,
    )


class _Recorder:
    """Records each outermost call of the layers whose `call` it wraps (`patching.wrapped_calls`
    restores them)."""

    def __init__(self):
        self.sites: list = []  # (layer, args, kwargs, outputs, ops)
        self._depth = 0

    def wrap(self, layer, original):
        def recorded_call(*args, **kwargs):
            import tensorflow as tf

            if self._depth:
                return original(*args, **kwargs)
            graph = tf.compat.v1.get_default_graph()
            start = len(graph.get_operations())
            self._depth += 1
            try:
                outputs = original(*args, **kwargs)
            finally:
                self._depth -= 1
            self.sites.append((layer, args, kwargs, outputs, graph.get_operations()[start:]))
            return outputs

        return recorded_call

    def rows_and_traces(self, graph):
        import tensorflow as tf

        rows, traces, counts, claimed = [], {}, {}, set()
        for layer, args, kwargs, outputs, ops in self.sites:
            index = counts.get(layer.name, 0)
            counts[layer.name] = index + 1
            template, tensors = _template((args, kwargs))
            row = RowPlan(layer.name, type(layer).__name__, "layer", index, layer, nodes=(),
                          call_template=template)  # fmt: skip
            names = frozenset(op.name for op in ops)
            claimed |= names
            flat = tf.nest.flatten(outputs)
            traces[row.key] = RowTrace(
                input_specs=tuple(tf.TensorSpec(t.shape, t.dtype) for t in tensors),
                output_specs=tuple(tf.TensorSpec(t.shape, t.dtype) for t in flat),
                op_names=names,
                outputs_used=outputs_used(flat, names),
            )
            rows.append(row)
        inline = RowPlan(INLINE_ROW, "inline ops", "inline", 0, None, nodes=())
        traces[inline.key] = RowTrace((), (), frozenset(op.name for op in graph.get_operations()) - claimed)
        return rows + [inline], traces


def _template(structure):
    """Replace the distinct tensors in `structure` by TensorSlots; return (template, tensors)."""
    import tensorflow as tf

    tensors, slots = [], {}

    def slot(value):
        if isinstance(value, (tf.Tensor, tf.Variable)) and not isinstance(value, tf.Variable):
            if id(value) not in slots:
                slots[id(value)] = TensorSlot(len(tensors))
                tensors.append(value)
            return slots[id(value)]
        return value

    return tf.nest.map_structure(slot, structure), tensors


def fill_template(template, values):
    """The recorded (args, kwargs) with each TensorSlot replaced by values[slot.index]."""
    import tensorflow as tf

    return tf.nest.map_structure(
        lambda v: values[v.index] if isinstance(v, TensorSlot) else v, template
    )
