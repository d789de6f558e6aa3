"""Trace `model(inputs, training=False)` with fully static input specs: the one way every
method traces a model (the whole model's reference, each sub-model, a subclassed model)."""

from __future__ import annotations


def trace_call(model, specs, structure=None, training: bool = False, wrap=None):
    """Concrete function of `model(inputs, training=training)` for the static `specs`.

    `structure` is the nesting the model takes its inputs in (a Functional model's
    `_inputs_struct`: a dict, a list, ...), filled with the flat tensors in order; without it a
    single input is passed as a tensor and several as a list. `wrap(call)`, when given, is
    the function traced instead of the call itself (the training step wraps the forward pass).
    """
    call = model_call(model, structure, training)
    return concrete_function(wrap(call) if wrap else call, specs)


def concrete_function(fn, specs):
    """`tf.function(fn, autograph=False)`'s concrete function for the static `specs`.

    Without AutoGraph, and nothing is lost: Keras 3 calls every layer's `call` (a model's
    too) from its own `Layer.__call__`, which AutoGraph does not convert (`keras` is on its
    do-not-convert list), so under `model.predict` no user code is converted either (a layer
    with a Python `if` on a tensor fails there as here). AutoGraph would convert only this
    tool's own glue, at about 1 s per MobileNetV3Large profile.
    """
    import tensorflow as tf

    return tf.function(fn, autograph=False).get_concrete_function(*specs)


def inference_call(model, structure=None):
    """`f(*flat_inputs) = model(inputs, training=False)`, inputs nested as `structure` (see
    `pack_inputs`). Traced inside another function, its ops (weight reads included) are created
    there, under whatever control dependencies the caller set: the timing method needs that."""
    return model_call(model, structure, training=False)


def model_call(model, structure=None, training: bool = False):
    """`f(*flat_inputs) = model(inputs, training=training)` (see `inference_call`)."""

    def call(*xs):
        return model(pack_inputs(xs, structure), training=training)

    return call


def pack_inputs(xs, structure=None):
    """The flat tensors `xs` nested as `structure`; without one, a single input as a tensor
    and several as a list."""
    from keras import tree

    if structure is not None:
        return tree.pack_sequence_as(structure, list(xs))
    return xs[0] if len(xs) == 1 else list(xs)


def input_structure(model):
    """The nesting a Functional (or built Sequential) model takes its inputs in, or None."""
    from submodel_profiler.graph_walk import graph_of

    return getattr(graph_of(model), "_inputs_struct", None)


def imported_call(concrete_function):
    """`f(*flat_inputs)` running `concrete_function`'s graph inline where it is traced.

    The graph's nodes are imported into the calling graph (not called as a function), every
    node after a gate that is created under the caller's control dependencies: weight reads
    included, as `inference_call` traced there would, but without tracing the model again
    (docs/performance.md has the figures). The captures become the caller's captures of the
    same variables and constants. Returns the flat list of outputs.
    """
    import tensorflow as tf

    graph = concrete_function.graph
    count = len(concrete_function.inputs) - len(concrete_function.captured_inputs)
    arguments = [t.name for t in concrete_function.inputs[:count]]
    captures = [t.name for t in graph.internal_captures]
    outputs = [t.name for t in concrete_function.outputs]
    source = graph.as_graph_def()
    taken = {n.name for n in source.node}
    gate = next(
        f"gate_{i}" for i in range(len(taken) + 1) if not {f"gate_{i}", f"gate_{i}_in"} & taken
    )
    placeholders = {name.split(":")[0] for name in arguments + captures}
    graph_def = type(source)()
    graph_def.versions.CopyFrom(source.versions)
    graph_def.library.CopyFrom(source.library)
    for node in source.node:
        if node.name not in placeholders:  # fed through input_map instead
            copy = graph_def.node.add()
            copy.CopyFrom(node)
            copy.input.append(f"^{gate}")
    opened = graph_def.node.add(name=gate, op="Identity", input=[f"{gate}_in:0"])
    opened.attr["T"].type = tf.float32.as_datatype_enum

    def call(*xs):
        caller = tf.compat.v1.get_default_graph()
        values = [caller.capture(c) for c in concrete_function.captured_inputs]
        input_map = dict(zip(arguments, xs)) | dict(zip(captures, values))
        input_map[f"{gate}_in:0"] = tf.constant(0.0)  # after the caller's control inputs
        # The gate carries them; TF's importer applying them itself fails (it compares the
        # control inputs with input tensors by `==`, an elementwise op in TF 2).
        with caller.control_dependencies(None):
            return tf.graph_util.import_graph_def(
                graph_def, input_map, return_elements=outputs, name="imported"
            )

    return call
