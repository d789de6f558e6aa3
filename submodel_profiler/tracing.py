"""Trace `model(inputs, training=False)` with fully static input specs: the one way every
method traces a model (the whole model's reference, each sub-model, a subclassed model)."""

from __future__ import annotations


def trace_call(model, specs, structure=None):
    """Concrete function of `model(inputs, training=False)` for the static `specs`.

    `structure` is the nesting the model takes its inputs in (a Functional model's
    `_inputs_struct`: a dict, a list, ...), filled with the flat tensors in order; without it a
    single input is passed as a tensor and several as a list.
    """
    import tensorflow as tf
    from keras import tree

    def call(*xs):
        if structure is not None:
            inputs = tree.pack_sequence_as(structure, list(xs))
        else:
            inputs = xs[0] if len(xs) == 1 else list(xs)
        return model(inputs, training=False)

    return tf.function(call).get_concrete_function(*specs)
