"""Activation memory of a TensorFlow graph: static liveness, and the device's measured peak.

The liveness rule (`activation_peak`):

- Order: ops run in the graph's creation order (`graph.get_operations()`, the order Keras ran
  the layers). TF's executor may run independent ops in another order, so the peak is the peak
  of this order, not a bound over every schedule.
- Which ops run: those some root depends on through data or control inputs (`flops._live`):
  the `roots` given, else a FuncGraph's outputs and control outputs; in a graph without
  declared outputs every op runs. Ops that do not run hold nothing.
- Lifetimes: an op's outputs are allocated when it runs and freed once their last reader (in
  that order) has run; an output nobody reads is freed right after its op. Graph inputs
  (placeholders other than captured values) are live from the first op until their last
  reader. Graph outputs (a FuncGraph's `outputs`, and the outputs of the `roots` given) live
  until the end. While an op runs, its inputs and its outputs are all live.
- Aliases: an op in `ALIASING_OPS` allocates nothing: its output shares its input's buffer
  (IdentityN: output i shares input i's) and extends that buffer's life to its own last reader.
- Weights are not activations: resource and variant tensors, `ReadVariableOp` outputs,
  placeholders of captured values, and the outputs of any other op (a graph input or a
  function call aside) none of whose data inputs is an activation: `Const`, and what is
  computed from weights and constants only (an inference BatchNormalization's folded scale).
  These count in neither figure, except that `weight_bytes` holds the bytes of the distinct
  variables a running `ReadVariableOp` reads (one per resource handle, from the read's static
  shape); variables read only inside function bodies are not in it. Variant tensors can hold
  activations (the TensorLists of a Keras RNN's loop): those are not counted either.
- Bytes: a buffer holds elements × dtype size of its static shape (the allocating tensor's,
  else the first alias's that is fully defined). A buffer of unknown size (an unknown dim, or
  a string dtype) is left out and counted in `unknown_tensors`.
- Function calls (`PartitionedCall`, `StatefulPartitionedCall`, `While`, `If`, `Case`, ...)
  are one op: their inputs are read and their outputs allocated; transients inside their
  bodies are not counted.
"""

from __future__ import annotations

from dataclasses import dataclass

from submodel_profiler.counting import (
    ALIASING_OPS,
    BRANCH_OP_TYPES,
    CALL_OP_TYPES,
    WHILE_OP_TYPES,
    static_bytes,
)
from submodel_profiler.flops import _graph_roots, _live

# Op types whose output i is (or may be) input i's buffer, viewed again: they allocate nothing.
# Tensors of these dtypes are handles (variables, tensor lists), never activations.
_HANDLE_DTYPES = frozenset({"resource", "variant"})
# Ops that run a function body (or bodies): their outputs are activations whatever they read.
_FUNCTION_OPS = CALL_OP_TYPES | WHILE_OP_TYPES | BRANCH_OP_TYPES


@dataclass(frozen=True)
class Liveness:
    """Static activation memory of one graph, by the rule in this module's docstring (bytes).

    `live_bytes` maps the name of every op that runs (in run order) to the activation bytes
    live while it runs; `peak_bytes` is their maximum, first reached while `peak_op` runs
    (None when no activation byte is ever live). `weight_bytes`: the distinct variables read,
    counted apart. `unknown_tensors`: activation buffers left out for want of a static size.
    """

    peak_bytes: int
    peak_op: str | None
    live_bytes: dict
    weight_bytes: int
    unknown_tensors: int = 0


@dataclass
class _Buffer:
    """One allocation: its size (None: unknown), and the run steps it is live over."""

    nbytes: int | None
    start: int
    end: int


def activation_peak(graph, roots=None) -> Liveness:
    """The activation bytes live while each op of `graph` runs, and their peak; prints nothing.

    `graph`: a `tf.Graph` or `FuncGraph` with static shapes. `roots`: names of the ops whose
    results are needed (default: a FuncGraph's outputs and control outputs; every op of a
    graph without them). Raises KeyError when a root names no op of `graph`.
    """
    for name in roots or ():
        graph.get_operation_by_name(name)  # KeyError names the missing op
    live = _live(graph, _graph_roots(graph) if roots is None else list(roots))
    ops = [op for op in graph.get_operations() if live is None or op.name in live]
    outputs = _graph_output_names(graph, roots)
    captured = {t.name for t in getattr(graph, "internal_captures", ())}
    buffers, weight_bytes = _buffers(ops, outputs, captured)
    live_bytes = _sweep(ops, buffers)
    peak_op = max(live_bytes, key=live_bytes.get, default=None)
    peak = live_bytes[peak_op] if peak_op is not None else 0
    unknown = sum(1 for b in buffers if b.nbytes is None)
    return Liveness(peak, peak_op if peak else None, live_bytes, weight_bytes, unknown)


def _graph_output_names(graph, roots) -> set:
    """Names of the tensors that live until the end: a FuncGraph's outputs, the roots'."""
    names = {t.name for t in getattr(graph, "outputs", None) or () if t is not None}
    for name in roots or ():
        names.update(t.name for t in graph.get_operation_by_name(name).outputs)
    return names


def _buffers(ops, outputs: set, captured: set):
    """(activation buffers, weight bytes) of the ops that run, each buffer's life as the steps
    of `ops` it is live over (inclusive)."""
    last = len(ops) - 1
    weights: set = set()
    buffer_of: dict = {}  # activation tensor name -> its _Buffer
    buffers: list = []
    variables: dict = {}  # resource tensor name -> bytes read
    for step, op in enumerate(ops):
        data = list(op.inputs)
        for t in data:
            if t.name in buffer_of:
                buffer_of[t.name].end = max(buffer_of[t.name].end, step)
        if op.type == "ReadVariableOp":
            variables.setdefault(op.inputs[0].name, static_bytes(op.outputs[0]) or 0)
        for i, out in enumerate(op.outputs):
            if _is_weight(op, i, data, weights, captured):
                weights.add(out.name)
                continue
            source = _aliased_input(op, i)
            if source is not None and source.name in buffer_of:
                buffer = buffer_of[source.name]
                if buffer.nbytes is None:
                    buffer.nbytes = static_bytes(out)
            else:
                start = 0 if op.type == "Placeholder" else step
                buffer = _Buffer(static_bytes(out), start, step)
                buffers.append(buffer)
            buffer_of[out.name] = buffer
            if out.name in outputs:
                buffer.end = last
    return buffers, sum(variables.values())


def _is_weight(op, i: int, inputs, weights: set, captured: set) -> bool:
    """Whether output `i` of `op` is a weight, by the module docstring's rule."""
    tensor = op.outputs[i]
    if tensor.dtype.name in _HANDLE_DTYPES or op.type == "ReadVariableOp":
        return True
    if op.type == "Placeholder":
        return tensor.name in captured
    if op.type in _FUNCTION_OPS:
        return False
    source = _aliased_input(op, i)
    if source is not None:
        return source.name in weights
    return all(t.name in weights for t in inputs)


def _aliased_input(op, i: int):
    """The input whose buffer output `i` of an aliasing op shares, else None."""
    if op.type not in ALIASING_OPS or not op.inputs:
        return None
    j = i if op.type == "IdentityN" else 0
    return op.inputs[j] if j < len(op.inputs) else None


def _sweep(ops, buffers) -> dict:
    """{op name: bytes of the buffers live at its step}, by a difference array over steps."""
    delta = [0] * (len(ops) + 1)
    for b in buffers:
        if b.nbytes:
            delta[b.start] += b.nbytes
            delta[b.end + 1] -= b.nbytes
    live_bytes, running = {}, 0
    for step, op in enumerate(ops):
        running += delta[step]
        live_bytes[op.name] = running
    return live_bytes


def peak_row(liveness: Liveness, owner: dict):
    """The row key (`owner`: op name -> row key) of the op at the peak; None when no op is at
    the peak or no row owns it."""
    return None if liveness.peak_op is None else owner.get(liveness.peak_op)


def row_peaks(liveness: Liveness, owner: dict) -> dict:
    """{row key: the most bytes live (the whole graph's, in context) while one of the row's ops
    runs}, rows in the order their first op runs; rows none of whose ops run are left out."""
    peaks: dict = {}
    for name, nbytes in liveness.live_bytes.items():
        row = owner.get(name)
        if row is not None:
            peaks[row] = max(peaks.get(row, 0), nbytes)
    return peaks


def device_peak_bytes(fn, *args, device: str = "GPU:0") -> int | None:
    """The device allocator's peak bytes while `fn(*args)` runs on `device`, outputs fetched.

    Resets the device's memory statistics, runs `fn(*args)` under `tf.device(device)`, waits
    for the outputs (`.numpy()` on each tensor) and returns `get_memory_info(device)["peak"]`:
    the high-water mark since the reset, which includes what the device already held (weights,
    inputs). None when `device` does not exist or keeps no allocator statistics: TF raises
    ValueError for both ("No matching devices found for 'GPU:0'"; on "CPU:0", "Cannot reset
    memory stats for device 'CPU:0'" and "Allocator stats not available"); `fn` is not run
    then. None on a CPU device in any case: some TF builds and machines keep CPU statistics
    that stay at 0 (seen on an AVX-512 BF16 EPYC), and the CPU path reads the step-stats
    allocation records instead. Errors raised by `fn` propagate.
    """
    import tensorflow as tf

    if "CPU" in device.upper():
        return None
    try:
        tf.config.experimental.reset_memory_stats(device)
    except ValueError:
        return None
    with tf.device(device):
        result = fn(*args)
    for value in tf.nest.flatten(result):
        if hasattr(value, "numpy"):
            value.numpy()
    return int(tf.config.experimental.get_memory_info(device)["peak"])
