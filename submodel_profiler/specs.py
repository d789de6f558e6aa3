"""Static input specs: every dimension known, the batch pinned.

TF's profiler silently counts 0 float ops for ops whose shapes are unknown, so the profiler only
ever traces with complete shapes. This module is where user-given shapes are checked.
"""

from __future__ import annotations

from submodel_profiler.errors import UsageError


def parse_shape(text: str) -> tuple[int, ...]:
    """Parse a per-sample shape such as "224,224,3" (also "224x224x3" or "(224, 224, 3)").

    Raises:
        UsageError: the text is not a comma-separated list of positive integers.
    """
    cleaned = text.strip().strip("()[]").replace("x", ",")
    parts = [p.strip() for p in cleaned.split(",") if p.strip()]
    try:
        dims = tuple(int(p) for p in parts)
    except ValueError:
        dims = ()
    if not dims or any(d <= 0 for d in dims):
        raise UsageError(
            "--input-shape takes the per-sample shape as positive integers separated by commas, "
            f"without the batch dimension, e.g. --input-shape 224,224,3. Received: {text!r}."
        )
    return dims


def parse_input_shapes(texts):
    """Parse repeated --input-shape values: all positional ("224,224,3") -> list of shapes in
    input order, or all named ("image=224,224,3") -> {input name: shape}; None if none given.

    Raises:
        UsageError: a malformed shape, or named and positional values mixed.
    """
    if not texts:
        return None
    named = ["=" in t for t in texts]
    if any(named) and not all(named):
        raise UsageError(
            "--input-shape values must be all positional (224,224,3) or all named "
            f"(NAME=224,224,3). Received: {', '.join(texts)}."
        )
    if not any(named):
        return [parse_shape(t) for t in texts]
    pairs = [t.split("=", 1) for t in texts]
    return {name.strip(): parse_shape(shape) for name, shape in pairs}


def input_name(tensor) -> str:
    """The InputLayer's name (`image`), not the KerasTensor's (`keras_tensor_3`)."""
    history = getattr(tensor, "_keras_history", None)
    return history.operation.name if history is not None else tensor.name


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(
            f"The batch size must be a positive integer. Received: batch_size={batch_size!r}."
        )
    return batch_size


def resolve_input_specs(model, batch_size: int, input_shapes=None) -> list:
    """One fully static tf.TensorSpec per model input, batch pinned to `batch_size`.

    Args:
        model: a Functional or Sequential Keras model.
        batch_size: the batch dimension to trace with.
        input_shapes: optional per-sample shapes, one per model input in order, or a dict
            {input name: shape}; they fill the dims the model leaves free and must agree with
            the dims it fixes.

    Raises:
        UsageError: dims are left undefined, or the given shapes do not fit the model's inputs.
    """
    import tensorflow as tf

    from submodel_profiler.graph_walk import functional_graph

    check_batch_size(batch_size)
    inputs = functional_graph(model).inputs
    given_shapes = _shapes_in_input_order(inputs, input_shapes)
    specs = []
    for tensor, given in zip(inputs, given_shapes):
        dims = _per_sample_dims(tensor, given)
        batch = tensor.shape[0]
        if batch is not None and batch != batch_size:
            raise UsageError(
                f"Input {input_name(tensor)!r} has a fixed batch size of {batch}. "
                f"Received: batch_size={batch_size}."
            )
        specs.append(tf.TensorSpec((batch_size, *dims), tensor.dtype, name=_safe_name(tensor.name)))
    return specs


def _shapes_in_input_order(inputs, input_shapes) -> list:
    if not input_shapes:
        return [None] * len(inputs)
    if isinstance(input_shapes, dict):
        names = [input_name(t) for t in inputs]
        unknown = sorted(set(input_shapes) - set(names))
        if unknown:
            raise UsageError(
                f"--input-shape names an input the model does not have: {', '.join(unknown)}. "
                f"The model's inputs are: {_describe(inputs)}."
            )
        return [tuple(input_shapes[n]) if n in input_shapes else None for n in names]
    if len(input_shapes) != len(inputs):
        raise UsageError(
            f"The model has {len(inputs)} input(s) ({_describe(inputs)}); pass one --input-shape "
            f"per input, in order. Received: {len(input_shapes)} --input-shape value(s)."
        )
    return [tuple(s) for s in input_shapes]


def _per_sample_dims(tensor, given):
    model_dims = tuple(tensor.shape[1:])
    if given is None:
        if any(d is None for d in model_dims):
            raise UsageError(
                f"Input {input_name(tensor)!r} has shape {_fmt(tensor.shape)} with undefined "
                "dimensions, "
                "and TF's profiler silently skips ops of unknown shape. Pass the per-sample shape "
                "with --input-shape (e.g. --input-shape 224,224,3), or input_shapes= in the API."
            )
        return model_dims
    if len(given) != len(model_dims) or any(
        m is not None and m != g for m, g in zip(model_dims, given)
    ):
        raise UsageError(
            f"Input {input_name(tensor)!r} expects a per-sample shape matching {_fmt(model_dims)}. "
            f"Received: --input-shape {','.join(map(str, given))}."
        )
    return given


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name) or "input"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _describe(inputs) -> str:
    return ", ".join(f"{input_name(t)} {_fmt(t.shape)}" for t in inputs)
