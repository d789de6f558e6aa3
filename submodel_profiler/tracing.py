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
