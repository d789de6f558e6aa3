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


def check_batch_size(batch_size) -> int:
    if isinstance(batch_size, bool) or not isinstance(batch_size, int) or batch_size < 1:
        raise UsageError(f"The batch size must be a positive integer. Received: batch_size={batch_size!r}.")
    return batch_size


def resolve_input_specs(model, batch_size: int, input_shapes=None) -> list:
    """One fully static tf.TensorSpec per model input, batch pinned to `batch_size`.

    Args:
        model: a Functional or Sequential Keras model.
        batch_size: the batch dimension to trace with.
        input_shapes: optional per-sample shapes, one per model input in order; they fill the
            dims the model leaves free and must agree with the dims it fixes.

    Raises:
        UsageError: dims are left undefined, or the given shapes do not fit the model's inputs.
    """
    import tensorflow as tf

    from submodel_profiler.graph_walk import functional_graph

    check_batch_size(batch_size)
    inputs = functional_graph(model).inputs
    if input_shapes and len(input_shapes) != len(inputs):
        raise UsageError(
            f"The model has {len(inputs)} input(s) ({_describe(inputs)}); pass one --input-shape "
            f"per input, in order. Received: {len(input_shapes)} --input-shape value(s)."
        )
    specs = []
    for i, tensor in enumerate(inputs):
        given = tuple(input_shapes[i]) if input_shapes else None
        dims = _per_sample_dims(tensor, given)
        batch = tensor.shape[0]
        if batch is not None and batch != batch_size:
            raise UsageError(
                f"Input {tensor.name!r} has a fixed batch size of {batch}. "
                f"Received: batch_size={batch_size}."
            )
        specs.append(tf.TensorSpec((batch_size, *dims), tensor.dtype, name=_safe_name(tensor.name)))
    return specs


def _per_sample_dims(tensor, given):
    model_dims = tuple(tensor.shape[1:])
    if given is None:
        if any(d is None for d in model_dims):
            raise UsageError(
                f"Input {tensor.name!r} has shape {_fmt(tensor.shape)} with undefined dimensions, "
                "and TF's profiler silently skips ops of unknown shape. Pass the per-sample shape "
                "with --input-shape (e.g. --input-shape 224,224,3), or input_shapes= in the API."
            )
        return model_dims
    if len(given) != len(model_dims) or any(
        m is not None and m != g for m, g in zip(model_dims, given)
    ):
        raise UsageError(
            f"Input {tensor.name!r} expects a per-sample shape matching {_fmt(model_dims)}. "
            f"Received: --input-shape {','.join(map(str, given))}."
        )
    return given


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name) or "input"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _describe(inputs) -> str:
    return ", ".join(f"{t.name} {_fmt(t.shape)}" for t in inputs)
