"""Exceptions raised by submodel_profiler.

`UsageError` is what a user can fix (a bad flag, a missing file, a model that
cannot be read); the CLI turns it into a one-paragraph message and exit code 2.
"""

from __future__ import annotations

import os


class UsageError(ValueError):
    """Bad user input: an argument, a model path or a model the profiler cannot use."""


def check_output_folder(flag: str, path: str) -> None:
    """Raise UsageError unless the folder `path` would be written into exists."""
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{flag}: the directory {folder!r} does not exist. Received: {path!r}.")


class ProfilingError(RuntimeError):
    """A failure that is neither bad input nor a disagreement: a crash, with where it happened.

    `phase` says what the profiler was doing ("tracing the whole model"), `layer` names the layer
    being run when known; the original exception is the `__cause__`.
    """

    def __init__(self, phase: str, cause: BaseException, layer: str | None = None):
        self.phase, self.layer = phase, layer
        where = f"while {phase}" + (f", in layer {layer!r}" if layer else "")
        super().__init__(f"{where}: {describe(cause)}")


# Opening lines that say where, not what: TF's graph errors, Keras' layer-call wrapper.
_TF_PREAMBLE = (
    "Graph execution error",
    "Detected at node",
    'File "',
    "[[{{node",
    "Exception encountered when calling",
)


# Keras' layer-call errors end by listing the arguments the call received.
_KERAS_ARGS = ("Arguments received by", "•")


def describe(error: BaseException, limit: int = 300) -> str:
    """`Type: first line of the message`, cut to `limit` characters (TF's messages carry whole
    graph dumps after the first line)."""
    import re

    plain = re.sub(r"\x1b\[[0-9;]*m", "", str(error))  # Keras bolds words with ANSI codes
    lines = [line.strip() for line in plain.strip().splitlines()]
    # TF's graph errors open with "Graph execution error:" and the Python stack of the node.
    useful = [line for line in lines if line and not line.startswith(_TF_PREAMBLE + _KERAS_ARGS)]
    if useful and useful[0] == "in user code:":  # tf.function: the Python stack, then the error
        useful = useful[-1:]
    text = useful[0] if useful else (lines[0] if lines else "")
    if len(text) > limit:
        text = text[: limit - 1] + "…"
    return f"{type(error).__name__}: {text}" if text else type(error).__name__
