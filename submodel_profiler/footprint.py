"""A row's bytes and the model's memory, as the report holds them (docs/counting.md, "Bytes";
docs/timing.md, "Memory").

Row figures from static specs and the layer's weights: `weight_bytes` (what a call reads),
`specs_bytes` (inputs, outputs). Whole-model figures: `static_memory` (the liveness peak of the
whole-graph trace, memory.py) and `measured_memory` (the allocator's peak: the step-stats run's
allocation records on a CPU, the device's memory stats on a GPU). Nothing here prints.
"""

from __future__ import annotations

import math

from submodel_profiler.memory import activation_peak, device_peak_bytes, peak_row
from submodel_profiler.report import row_label

# How the measured peak is taken on each platform (totals.measured_peak_method).
CPU_PEAK_METHOD = (
    "CPU: bytes allocated by the kernels of the whole model's step-stats run (unfused), from "
    "its allocation records; inputs and weights, allocated before the run, are not in it"
)
GPU_PEAK_METHOD = "GPU: get_memory_info peak after reset_memory_stats, one inference call"
NOT_MEASURED = (
    "not measured: on a CPU the peak comes from the step-stats run's allocation records (none: "
    "step stats skipped or recorded no allocation), on a GPU from get_memory_info"
)


def weight_bytes(row, trainable: bool = False) -> int:
    """Bytes of the weights a row's layer reads (its trainable ones only, with `trainable`), at
    their dtypes, each variable once (every call of a shared layer reads them); 0 for a ghost op
    or an inline row. # row: RowPlan"""
    import tensorflow as tf

    if row.kind != "layer" or not getattr(row.operation, "built", False):
        return 0
    weights = row.operation.trainable_weights if trainable else row.operation.weights
    distinct = {id(w): w for w in weights}.values()
    return sum(math.prod(w.shape) * tf.as_dtype(w.dtype).size for w in distinct)


def step_bytes_accessed(row, trace, needs_gradient) -> int | None:
    """A training step's row as one fused kernel: its forward's inputs, outputs and weights,
    then the upstream gradient it reads (its outputs' size), the input gradients it writes (of
    the inputs that need one) and its trainable weights' gradients. # row: RowPlan"""
    forward = [specs_bytes(trace.input_specs), specs_bytes(trace.output_specs)]
    needed = [s for s, n in zip(trace.input_specs, needs_gradient) if n]
    backward = [specs_bytes(trace.output_specs), specs_bytes(needed)]
    if any(b is None for b in forward + backward):
        return None
    return sum(forward) + weight_bytes(row) + sum(backward) + weight_bytes(row, trainable=True)


def specs_bytes(specs) -> int | None:
    """Bytes of tensors of these specs at their dtypes, batch included; None when a shape is not
    static (a loop variable that grows). # specs: tf.TensorSpec, batch pinned"""
    if any(d is None for s in specs for d in s.shape):
        return None
    return sum(math.prod(s.shape) * s.dtype.size for s in specs)


def static_memory(whole, layers) -> dict:
    """Totals of the model's static memory: params and Σ bytes accessed over the rows; the
    activation peak at inference of the whole-graph trace (whose ops map to rows), the row
    running at the peak, and params + peak (torchinfo's estimated total size). The peak fields
    are left out where a row failed in the trace (it is not the model's). # whole: WholeGraph"""
    figures = {
        "param_bytes": sum(r.param_bytes for r in layers),
        "bytes_accessed": sum(r.bytes_accessed or 0 for r in layers),
    }
    if not whole.complete:
        return figures
    liveness = activation_peak(whole.instrumented_function.graph)
    key = peak_row(liveness, whole.node_owner())
    return {
        **figures,
        "peak_activation_bytes": liveness.peak_bytes,
        "peak_row": None if key is None else row_label(*key),
        "estimated_total_bytes": figures["param_bytes"] + liveness.peak_bytes,
    }


def measured_memory(unfused, gpu: bool, call, inputs) -> dict:
    """The allocator's peak for the whole model: on a CPU from the unfused step-stats run
    (`step_stats.InGraphTimes`, or None), on a GPU (`gpu`) from the device's memory stats around
    `call(*inputs)`; {} where neither could be read."""
    if unfused is not None and unfused.peak_bytes is not None:
        return {"measured_peak_bytes": unfused.peak_bytes, "measured_peak_method": CPU_PEAK_METHOD}
    if gpu:
        peak = device_peak_bytes(call, *inputs)
        if peak is not None:
            return {"measured_peak_bytes": peak, "measured_peak_method": GPU_PEAK_METHOD}
    return {}
