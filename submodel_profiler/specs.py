"""Static input specs: every dimension known, the batch pinned.

TF's profiler silently counts 0 float ops for ops whose shapes are unknown, so the profiler only
ever traces with complete shapes. This module is where user-given shapes are checked, where
--seq-len (`seq_len=`) fills the sequence inputs (`is_sequence_input`), and where inputs left
with free dims are refused all at once (`FreeDimsError`, with a command line that runs).
"""

from __future__ import annotations

import shlex

from submodel_profiler.errors import UsageError

SEQ_AXIS = 1  # the sequence axis of a (batch, seq, ...) input: right after the batch
SUGGESTED_SEQ_LEN = 128  # the refusal's example, capped by the model's max_sequence_length
SUGGESTED_IMAGE = (224, 224, 3)  # the refusal's example for a (batch, H, W, C) input
PROG = "python -m submodel_profiler"


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


def check_seq_len(seq_len) -> int | None:
    """`seq_len` as given (None: not given).

    Raises:
        UsageError: it is not a positive integer.
    """
    if seq_len is not None and (
        isinstance(seq_len, bool) or not isinstance(seq_len, int) or seq_len < 1
    ):
        raise UsageError(
            "The sequence length must be a positive integer (--seq-len N, seq_len=N in the "
            f"API). Received: seq_len={seq_len!r}."
        )
    return seq_len


def check_subclassed_seq_len(model, seq_len) -> None:
    """A subclassed model has no symbolic inputs for `seq_len` to fill: refuse it."""
    if check_seq_len(seq_len) is not None:
        raise UsageError(
            f"--seq-len (seq_len=) fills the free sequence dim of a model's symbolic inputs; "
            f"{type(model).__name__} is a subclassed model without any: give each input's shape "
            f"with --input-shape (input_shapes=[...]). Received: seq_len={seq_len}."
        )


def is_sequence_input(tensor) -> bool:
    """The --seq-len rule: an input whose only free per-sample dim is the sequence axis, the one
    right after the batch: (batch, seq) token ids, segment ids and padding masks, and (batch,
    seq, features...) inputs whose features are fixed. Any dtype."""
    free = [axis for axis, d in enumerate(tensor.shape) if d is None and axis > 0]
    return free == [SEQ_AXIS]


def resolve_input_specs(model, batch_size: int, input_shapes=None, seq_len=None) -> list:
    """One fully static tf.TensorSpec per model input, batch pinned to `batch_size`.

    Args:
        model: a Functional or Sequential Keras model.
        batch_size: the batch dimension to trace with.
        input_shapes: optional per-sample shapes, one per model input in order, or a dict
            {input name: shape}; they fill the dims the model leaves free and must agree with
            the dims it fixes.
        seq_len: optional sequence length, given to every input without a shape in
            `input_shapes` whose only free dim is the sequence axis (`is_sequence_input`).

    Raises:
        UsageError: dims are left undefined (FreeDimsError, listing every such input), the given
            shapes do not fit the model's inputs, or `seq_len` is not a positive integer or
            would fill no input.
    """
    import tensorflow as tf

    from submodel_profiler.graph_walk import functional_graph

    check_batch_size(batch_size)
    check_seq_len(seq_len)
    inputs = functional_graph(model).inputs
    given_shapes = _with_seq_len(inputs, _shapes_in_input_order(inputs, input_shapes), seq_len)
    for tensor, given in zip(inputs, given_shapes):
        if given is not None:
            _check_given(tensor, given)
    free = [t for t, g in zip(inputs, given_shapes) if g is None and None in t.shape[1:]]
    if free:
        raise FreeDimsError(model, free, input_shapes)
    specs = []
    for tensor, given in zip(inputs, given_shapes):
        dims = tuple(tensor.shape[1:]) if given is None else given
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


def _with_seq_len(inputs, given_shapes, seq_len) -> list:
    """`given_shapes` with `seq_len` filled in for the sequence inputs that have no shape yet.

    Raises:
        UsageError: `seq_len` fills no input (a flag that would be ignored).
    """
    if seq_len is None:
        return given_shapes
    filled = [
        (seq_len, *t.shape[SEQ_AXIS + 1 :]) if g is None and is_sequence_input(t) else g
        for t, g in zip(inputs, given_shapes)
    ]
    if filled == given_shapes:
        raise UsageError(
            "--seq-len (seq_len=) gives its length to every input whose only free dim is the one "
            "right after the batch and that --input-shape does not name; this model has no such "
            f"input, so it would be ignored. The model's inputs are: {_describe(inputs)}. "
            f"Received: seq_len={seq_len}."
        )
    return filled


def _check_given(tensor, given) -> None:
    model_dims = tuple(tensor.shape[1:])
    if len(given) != len(model_dims) or any(
        m is not None and m != g for m, g in zip(model_dims, given)
    ):
        raise UsageError(
            f"Input {input_name(tensor)!r} expects a per-sample shape matching {_fmt(model_dims)}. "
            f"Received: --input-shape {','.join(map(str, given))}."
        )


class FreeDimsError(UsageError):
    """Inputs left with free dims: each listed with its dtype and shape, and what to pass.

    `str(error)` names the API's keywords (`seq_len=`, `input_shapes=`); `for_command(argv)` is
    the CLI's message, ending with the user's command line completed by the flags that work.
    """

    def __init__(self, model, free, input_shapes=None):
        self.seq_len, self.capped = _suggested_seq_len(model)
        self.listing = ", ".join(f"{input_name(t)}: {_dtype_name(t)} {_fmt(t.shape)}" for t in free)
        self.flags, keywords = [], []
        if any(is_sequence_input(t) for t in free):
            self.flags += ["--seq-len", str(self.seq_len)]
            keywords.append(f"seq_len={self.seq_len}")
        named = {
            input_name(t): _example_shape(t, self.seq_len) for t in free if not is_sequence_input(t)
        }
        for name, shape in named.items():
            self.flags += ["--input-shape", f"{name}={','.join(map(str, shape))}"]
        if named:
            keywords.append(f"input_shapes={named!r}" + (" (with yours)" if input_shapes else ""))
        super().__init__(
            self._message() + f" Pass {' and '.join(keywords)} to profile_model{self._why()}."
        )

    def for_command(self, argv) -> str:
        """The CLI's message: `argv` (the arguments after the program) completed, last."""
        command = f"{PROG} {shlex.join([*argv, *self.flags])}"
        return self._message() + f" This runs{self._why()}: {command}"

    def _message(self) -> str:
        return (
            "Every input dim must be known, since TF's profiler silently counts 0 float ops for "
            f"ops of unknown shape; these inputs have free dims: {self.listing}. --seq-len N "
            "(seq_len=N) gives N to every input whose only free dim is the one right after the "
            "batch (token ids, segment ids, masks); --input-shape NAME=SHAPE (input_shapes=) "
            "gives one input its per-sample shape and wins over --seq-len."
        )

    def _why(self) -> str:
        if self.capped and "--seq-len" in self.flags:
            return f" ({self.seq_len}: the longest sequence the model takes)"
        return ""


def _suggested_seq_len(model) -> tuple:
    """(SUGGESTED_SEQ_LEN or the model's longest supported sequence when shorter: a keras-hub
    backbone's `max_sequence_length`, a PositionEmbedding's `sequence_length`; whether capped)."""
    from submodel_profiler.call_recorder import layers_within, sublayers
    from submodel_profiler.graph_walk import UNLIMITED

    limits = [getattr(model, "max_sequence_length", None)]
    everything = layers_within(sublayers(model), UNLIMITED)
    limits += [getattr(layer, "sequence_length", None) for layer in everything]
    ints = [n for n in limits if isinstance(n, int) and not isinstance(n, bool) and n > 0]
    n = min([SUGGESTED_SEQ_LEN, *ints])
    return n, n < SUGGESTED_SEQ_LEN


def _example_shape(tensor, seq_len: int) -> tuple:
    """A per-sample shape for the refusal: 224×224×3 for (batch, H, W, C), `seq_len` on the
    sequence axis otherwise; fixed dims kept."""
    dims = tuple(tensor.shape[1:])
    if len(dims) == len(SUGGESTED_IMAGE):
        return tuple(SUGGESTED_IMAGE[i] if d is None else d for i, d in enumerate(dims))
    return tuple(seq_len if d is None else d for d in dims)


def _dtype_name(tensor) -> str:
    dtype = tensor.dtype
    return getattr(dtype, "name", None) or str(dtype)


def _safe_name(name: str) -> str:
    return "".join(c if c.isalnum() or c in "_." else "_" for c in name) or "input"


def _fmt(shape) -> str:
    return "(" + ", ".join("None" if d is None else str(d) for d in shape) + ")"


def _describe(inputs) -> str:
    return ", ".join(f"{input_name(t)} {_fmt(t.shape)}" for t in inputs)
