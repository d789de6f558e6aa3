"""Subclassed models (`keras.Model` subclasses wired in `call`): no functional graph to walk.

The model is traced once, the ordinary way, with its layers' `call` temporarily wrapped
(`patching.wrapped_calls`, restored in a `finally`) to record every call site
(`call_recorder.CallRecorder`): its arguments (tensors become placeholders of the recorded static
specs) and the graph ops created while it ran. A row per call site is profiled like any other
row: a sub-model is built by calling the layer on fresh `keras.Input`s with the recorded argument
structure. Ops written inline in `call` (outside any layer) belong to one "(inline ops)" row
(`kind: "inline"`): they cannot be isolated, so that row's float ops are its whole-graph count,
and the rows still sum to the whole graph. With `depth` > 1, composite layers are expanded the
same way (`call_recorder.site_rows`).
"""

from __future__ import annotations

from submodel_profiler.call_recorder import (
    CallRecorder,
    Expansion,
    add_inline_row,
    layers_within,
    site_rows,
)
from submodel_profiler.errors import UsageError
from submodel_profiler.flops import live_nodes
from submodel_profiler.patching import wrapped_calls
from submodel_profiler.tracing import trace_call
from submodel_profiler.whole_graph import WholeGraph, of_one_trace


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


def trace_subclassed(model, specs, depth: int = 1, training: bool = False, wrap=None) -> WholeGraph:
    """Trace `model(x)` once, recording layer call sites (composite layers down to `depth`);
    the rows and the whole-graph split. `training` and `wrap` as for `tracing.trace_call`."""
    recorder = CallRecorder(max_depth=depth)
    with wrapped_calls(layers_within(model.layers, depth), recorder.wrap):
        concrete = trace_call(model, specs, training=training, wrap=wrap)
    # A model that builds its weights while traced is traced twice: keep the final trace's calls.
    sites = [site for site in recorder.roots if site.graph is concrete.graph]
    tree = site_rows(sites, "", 1, depth, None, Expansion(), live_nodes(concrete.graph))
    all_ops = [op.name for op in concrete.graph.get_operations()]
    add_inline_row(tree, "", all_ops, sites, 1, None)
    return of_one_trace(concrete, tree)
