"""The training step, layer by layer (`profile_model(..., pass_="train")`, `--pass train`).

The whole step is the model's forward pass with `training=True` under a gradient tape, a loss,
and `tape.gradient` of the loss with respect to every trainable weight, traced once with
static shapes (node by node for a functional model, as the inference trace is; with its layer
calls recorded for a subclassed one). Every op of that graph lands in exactly one row:

- a forward op in the row whose nodes created it, as for inference;
- a gradient op in the row of the forward ops it differentiates. The tape records the name
  scope each forward op was created in, and TF creates that op's gradient ops under
  `gradient_tape/<that scope>/`. Each row's nodes run in a name scope of their own
  (`trace_rows(row_scopes=True)`), so every scope the forward created belongs to one row;
  a gradient op goes to the row of the longest forward scope its name starts with. Scopes are
  looked up among those the trace recorded per row, never parsed into layer names;
- the loss and its gradient in the `(loss)` row;
- an op the tape adds itself (a sum of the gradients of a tensor read by several ops, zeros
  for an output no gradient reaches) in the one row its inputs' gradient ops, or else its
  consumers, belong to; where they belong to several rows (a tensor read by several rows:
  a residual connection's sum) or none (the seed), in the `(gradient aggregation)` row.

The loss is Σ over the model's float outputs of sum(y · G), G a fixed random tensor of the
output's shape: its gradient with respect to each output is G, so the backward of every row is
the one any loss would give it, and a row's sub-model reproduces it exactly by seeding its
outputs with fixed random gradients (`output_gradients`). A row's sub-model also asks for the
gradients the whole step needs from it: its trainable weights', and its inputs' when they
depend on a trainable weight (none for the first convolution, nor for integer ids).
"""

from __future__ import annotations

import contextlib
import dataclasses
from dataclasses import dataclass, field

from submodel_profiler.counting import ALIASING_OPS, ZERO, Count, static_bytes
from submodel_profiler.flops import count_graph_flops
from submodel_profiler.graph_walk import RowPlan, RowTrace
from submodel_profiler.memory import activation_peak
from submodel_profiler.submodels import SubModel, build_submodel
from submodel_profiler.tracing import concrete_function
from submodel_profiler.whole_graph import WholeGraph

PASSES = ("inference", "train")
LOSS_ROW = "(loss)"
AGGREGATION_ROW = "(gradient aggregation)"
GRADIENT_SCOPE = "gradient_tape/"
_LOSS_SCOPE = "training_loss"
_SEED = 0


@dataclass(frozen=True)
class WholeStep(WholeGraph):
    """The whole training step split per row: `row_traces` hold each row's forward and
    gradient ops; `forward_ops` the forward ones alone (row or parent key -> op names)."""

    forward_ops: dict = field(default_factory=dict)
    saved_activation_bytes: dict = field(default_factory=dict)  # row key -> bytes
    saved_activation_total_bytes: int | None = None  # distinct tensors over all rows
    gradient_inputs: dict = field(default_factory=dict)  # row key -> bool per input

    def row_forward_count(self, key) -> Count:
        return self.instrumented.count_of(self.forward_ops.get(key, ()))

    def node_phase(self) -> dict:
        """Node name -> "forward" (a row's forward ops, the loss) or "backward" (every other
        op of a row: its gradient ops and what `attribute_backward` gave it), for every node of
        `node_owner()`: the split the forward and backward counts use."""
        return {
            name: "forward" if name in self.forward_ops.get(key, ()) else "backward"
            for name, key in self.node_owner().items()
        }


@dataclass(frozen=True)
class StepSubModel(SubModel):
    """A row's sub-model run as a training step: `flops` counts forward and backward,
    `forward` the forward (training mode) alone; `call` runs the step (the timed segment, split
    where the forward ends: `timing.Segment.split`)."""

    forward: Count = ZERO
    needs_gradient: tuple = ()  # per input: whether its gradient is computed
    seeds: tuple = ()  # per output: the upstream gradient (None: the output gets none)
    used: tuple = ()  # per output: whether the whole model uses it

    def call(self, *xs, split=None):
        return _sub_step(self.model, self.needs_gradient, self.seeds, self.used)(*xs, split=split)


def check_pass(pass_: str) -> str:
    from submodel_profiler.errors import UsageError

    if pass_ not in PASSES:
        raise UsageError(f"pass_ must be one of {PASSES}. Received: pass_={pass_!r}.")
    return pass_


def check_trainable(model) -> None:
    """Refuse a model the training step has nothing to differentiate in: no trainable weight,
    or (a functional model) no float output for a loss."""
    from submodel_profiler.errors import UsageError
    from submodel_profiler.graph_walk import graph_of

    if not model.trainable_weights:
        raise UsageError(
            f"The model {model.name!r} has no trainable weights, so a training step computes "
            "no gradient: profile it with --pass inference, or make some layers trainable "
            "(layer.trainable = True). Received: --pass train."
        )
    graph = graph_of(model)
    if graph is not None and not any(_is_float(t.dtype) for t in graph.outputs):
        raise UsageError(NO_FLOAT_OUTPUT)


NO_FLOAT_OUTPUT = (
    "The model has no float output a loss can be computed on (its outputs are integers or "
    "strings), so a training step has no gradient to compute: profile it with --pass "
    "inference. Received: --pass train."
)


def _is_float(dtype) -> bool:
    import tensorflow as tf

    dtype = tf.as_dtype(dtype)
    return dtype.is_floating or dtype.is_complex


# --- the whole step ---------------------------------------------------------------------------


def _seed_values(specs, seed: int = _SEED) -> list:
    """A fixed random upstream gradient per spec (None for non-float outputs)."""
    import numpy as np

    rng = np.random.default_rng(seed)
    values = []
    for spec in specs:
        if spec.dtype.is_floating and spec.shape.is_fully_defined():
            values.append(rng.standard_normal(spec.shape.as_list()).astype(spec.dtype.name))
        else:
            values.append(None)
    return values


def step_wrapper(model, marks: dict):
    """`wrap(forward)` for the tracing hooks: the forward under a tape, the loss, the backward;
    `marks` receives the op counts where the forward and the loss end. A timed step is split
    after the loss (`timing.Segment.split`): its backward starts from a seed held back until
    then."""
    import tensorflow as tf
    from keras import tree

    def wrap(forward):
        def step(*xs, split=None):
            graph = tf.compat.v1.get_default_graph()
            _without_shape_memo(graph)
            with tf.GradientTape() as tape:
                outputs = [y for y in tree.flatten(forward(*xs)) if y is not None]
                marks["forward"] = len(graph.get_operations())
                with tf.name_scope(_LOSS_SCOPE):
                    loss = _loss(outputs)
            marks["loss"] = len(graph.get_operations())
            weights = list(model.trainable_weights)
            seed = None if split is None else split([loss], [tf.ones_like(loss)])
            try:
                grads = tape.gradient(loss, weights, output_gradients=seed)
            except LookupError as e:  # "gradient registry has no entry for: MatrixLogarithm"
                op_type = str(e).strip().split()[-1]
                found = [op.name for op in graph.get_operations() if op.type == op_type]
                marks["no_gradient"] = (op_type, found)
                raise
            marks["end"] = len(graph.get_operations())  # then only the function's outputs
            return [loss, *(g for g in grads if g is not None)]

        return step

    return wrap


class _NoMemo(dict):
    """A dict that keeps nothing."""

    def __setitem__(self, key, value):
        pass


def _without_shape_memo(graph) -> None:
    """Turn off the memo TF's reduction gradients keep per graph (`_reduced_shape_cache`): the
    first gradient of a reduction of a given shape creates shape ops, later ones reuse them,
    so a row's backward would differ between the whole step (where an earlier row may have
    made them) and its sub-model. Without it, every reduction's gradient makes its own: dead
    ops folded at trace time, which only TF's convention counts (it counts every node)."""
    graph._reduced_shape_cache = _NoMemo()


@contextlib.contextmanager
def scoped_custom_gradients():
    """While traced, the gradients of `tf.custom_gradient` functions (TF's `silu`, Keras'
    custom ops) are created under `gradient_tape/<the forward's name scope>/`, as TF does for
    every registered gradient: custom_gradient records its op on the tape without a scope, so
    its backward ops would carry no sign of the row they differentiate."""
    from tensorflow.python.eager import record
    from tensorflow.python.framework import ops

    original = record.record_operation

    def record_operation(op_type, outputs, inputs, backward_function, *args, **kwargs):
        scope = ops.get_name_scope()

        def backward(*grads, **grad_kwargs):
            with ops.name_scope(f"{GRADIENT_SCOPE}{scope}/" if scope else GRADIENT_SCOPE):
                return backward_function(*grads, **grad_kwargs)

        return original(op_type, outputs, inputs, backward, *args, **kwargs)

    record.record_operation = record_operation
    try:
        yield
    finally:
        record.record_operation = original


def _loss(outputs):
    """Σ over the float outputs of sum(y · G), G fixed random (module docstring)."""
    import tensorflow as tf

    terms = []
    for y, seed in zip(outputs, _seed_values([tf.TensorSpec(y.shape, y.dtype) for y in outputs])):
        if seed is not None:
            terms.append(tf.reduce_sum(y * tf.constant(seed)))
    if not terms:
        from submodel_profiler.errors import UsageError

        raise UsageError(NO_FLOAT_OUTPUT)
    return tf.add_n(terms) if len(terms) > 1 else terms[0]


def profile_whole_step(model, rows, input_specs, depth: int = 1, nested: tuple = ()) -> WholeStep:
    """The whole-graph method on the training step of a functional model."""
    from submodel_profiler.graph_walk import functional_graph
    from submodel_profiler.tracing import input_structure, trace_call
    from submodel_profiler.whole_graph import trace_rows

    marks: dict = {}
    wrap = step_wrapper(model, marks)
    with scoped_custom_gradients(), _refusing_missing_gradients(marks, rows):
        concrete, tree, row_errors = trace_rows(
            model, rows, input_specs, depth, nested, training=True, wrap=wrap, row_scopes=True
        )
        structure = input_structure(functional_graph(model))
        flat = list(range(len(input_specs)))
        reference = trace_call(  # marks of its own: `marks` are the instrumented trace's
            model,
            input_specs,
            flat if structure is None else structure,
            training=True,
            wrap=step_wrapper(model, {}),
        )
    base = WholeGraph(
        row_traces=tree.traces,
        instrumented=None,
        reference=count_graph_flops(reference.graph),
        instrumented_function=concrete,
        rows=tuple(tree.rows),
        parents=tuple(tree.parents),
        parent_traces=tree.parent_traces,
        row_errors=row_errors,
    )
    return split_step(base, model, marks)


def trace_subclassed_step(model, specs, depth: int = 1) -> WholeStep:
    """The whole-graph method on the training step of a subclassed model."""
    from submodel_profiler.subclassed import trace_subclassed

    marks: dict = {}
    with scoped_custom_gradients(), _refusing_missing_gradients(marks):
        wrap = step_wrapper(model, marks)
        base = trace_subclassed(model, specs, depth, training=True, wrap=wrap)
    return split_step(dataclasses.replace(base, reference=None), model, marks)


@contextlib.contextmanager
def _refusing_missing_gradients(marks: dict, rows=()):
    """A trace that failed because an op has no gradient in TF becomes a clear refusal naming
    the rows whose layers run it (a functional row's ops are under its `row<i>` scope)."""
    from submodel_profiler.errors import UsageError

    try:
        yield
    except Exception as e:
        if "no_gradient" not in marks:
            raise
        op_type, names = marks["no_gradient"]
        scopes = {f"row{i}": row.label for i, row in enumerate(rows)}
        where = sorted({scopes.get(n.split("/")[0], n) for n in names}) or ["an unknown layer"]
        raise UsageError(
            f"The training step cannot be traced: TensorFlow defines no gradient for {op_type}, "
            f"which {', '.join(where)} runs. Profile the model with --pass inference, or give "
            "that computation a gradient (tf.custom_gradient). Received: --pass train."
        ) from e


def split_step(base: WholeGraph, model, marks: dict) -> WholeStep:
    """Attribute every op of the traced step to one row (module docstring)."""
    graph = base.instrumented_function.graph
    ops = graph.get_operations()
    forward_names = {op.name for op in ops[: marks["forward"]]}
    loss_names = {op.name for op in ops[marks["forward"] : marks["loss"]]}
    backward = ops[marks["loss"] : marks["end"]]
    forward_ops = {}
    for key, trace in {**base.row_traces, **base.parent_traces}.items():
        forward_ops[key] = frozenset(trace.op_names & forward_names)
    loss_key, aggregation_key = (LOSS_ROW, 0), (AGGREGATION_ROW, 0)
    owner_of = {name: key for key in base.row_traces for name in forward_ops[key]}
    owner_of.update(dict.fromkeys(loss_names, loss_key))
    backward_owner = attribute_backward(backward, owner_of)
    owned: dict = {key: set(forward_ops[key]) for key in base.row_traces}
    owned[loss_key], owned[aggregation_key] = set(loss_names), set()
    differentiates: dict = {}  # backward op name -> its row (the aggregation row's: none)
    for name, key in backward_owner.items():
        owned[aggregation_key if key is None else key].add(name)
        if key is not None:
            differentiates[name] = key
    traces = {
        key: dataclasses.replace(trace, op_names=frozenset(owned[key]))
        for key, trace in base.row_traces.items()
    }
    traces[loss_key] = RowTrace((), (), frozenset(owned[loss_key]))
    traces[aggregation_key] = RowTrace((), (), frozenset(owned[aggregation_key]))
    parent_traces = {}
    for key, trace in base.parent_traces.items():
        inside = {
            k for k in base.row_traces if forward_ops[k] and forward_ops[k] <= forward_ops[key]
        }
        gradients = {g for g, k in differentiates.items() if k in inside}
        parent_traces[key] = dataclasses.replace(trace, op_names=trace.op_names | gradients)
    extra = tuple(
        RowPlan(name, kind_type, "inline", 0, None, nodes=())
        for name, kind_type in ((LOSS_ROW, "training loss"), (AGGREGATION_ROW, "gradient sums"))
    )
    instrumented = count_graph_flops(graph)
    dependent = weight_dependent(graph, model, forward_names)
    saved, total = saved_activations(graph, traces, forward_names | loss_names, differentiates)
    return WholeStep(
        row_traces=traces,
        instrumented=instrumented,
        reference=base.reference if base.reference is not None else instrumented,
        instrumented_function=base.instrumented_function,
        rows=(*base.rows, *extra),
        parents=base.parents,
        parent_traces=parent_traces,
        row_errors=base.row_errors,
        reference_error=base.reference_error,
        forward_ops={**forward_ops, loss_key: frozenset(loss_names)},
        saved_activation_bytes=saved,
        saved_activation_total_bytes=total,
        gradient_inputs={
            key: tuple(name is not None and name in dependent for name in trace.input_names)
            for key, trace in {**base.row_traces, **base.parent_traces}.items()
        },
    )


def attribute_backward(backward_ops, owner_of: dict) -> dict:
    """{backward op name: row key or None (the aggregation row)} by the module's rules:
    gradient ops by the longest forward name scope they start with; the tape's own ops by
    their inputs' producers, else their consumers, when those belong to one row."""
    scope_owner: dict = {}
    for name, key in owner_of.items():
        scope = name.rpartition("/")[0]
        scope_owner[scope] = key if scope_owner.get(scope, key) == key else _SHARED
    found: dict = {}
    pending = []
    for op in backward_ops:
        key = _scope_row(op.name, scope_owner)
        if key is None:
            pending.append(op)
        else:
            found[op.name] = key
    undecided = []
    for op in pending:  # creation order: producers first
        rows = {found[t.op.name] for t in op.inputs if t.op.name in found}
        if rows:
            found[op.name] = _single(rows)
        else:
            undecided.append(op)
    for op in reversed(undecided):  # then consumers, for what reads no backward tensor
        found[op.name] = _single(
            {found[c.name] for t in op.outputs for c in t.consumers() if c.name in found}
        )
    return {name: None if key is _SHARED else key for name, key in found.items()}


_SHARED = object()  # a forward scope with ops of several rows; an op of the aggregation row


def _scope_row(name: str, scope_owner: dict):
    """The row of the longest forward scope `name` starts with, under `gradient_tape/`."""
    if not name.startswith(GRADIENT_SCOPE):
        return None
    parts = name[len(GRADIENT_SCOPE) :].split("/")
    for end in range(len(parts) - 1, 0, -1):
        key = scope_owner.get("/".join(parts[:end]))
        if key is not None:
            return None if key is _SHARED else key
    return None


def _single(keys: set):
    """The one row among `keys`, else _SHARED (several rows, the aggregation row, or none)."""
    return next(iter(keys)) if len(keys) == 1 else _SHARED


def saved_activations(graph, traces: dict, forward_names: set, differentiates: dict):
    """({row key: bytes of the forward tensors its gradient ops read}, bytes of the distinct
    such tensors over all rows): the activations the step keeps alive for the backward.
    Weights, constants and the tape's own tensors are not activations; an alias (Identity,
    Reshape) counts as the tensor it aliases."""
    per_row, everything = {}, {}
    for key, trace in traces.items():
        seen = {}
        for name in trace.op_names:
            if name not in differentiates:
                continue
            for t in graph.get_operation_by_name(name).inputs:
                source = _unaliased(t)
                if source.op.name in forward_names and _is_activation(source):
                    seen[source.name] = static_bytes(source) or 0
        per_row[key] = sum(seen.values())
        everything.update(seen)
    return per_row, sum(everything.values())


def _unaliased(tensor):
    while tensor.op.type in ALIASING_OPS and tensor.op.inputs:
        tensor = tensor.op.inputs[0]
    return tensor


def _is_activation(tensor) -> bool:
    import tensorflow as tf

    if tensor.dtype in (tf.resource, tf.variant, tf.string):
        return False
    return tensor.op.type not in ("Const", "ReadVariableOp", "VarHandleOp", "Placeholder") or (
        tensor.op.type == "Placeholder" and not _is_capture(tensor)
    )


def _is_capture(tensor) -> bool:
    graph = tensor.graph
    return any(internal is tensor for internal in getattr(graph, "internal_captures", ()))


def weight_dependent(graph, model, forward_names: set) -> set:
    """Names of the forward float tensors computed from a trainable weight through ops with a
    gradient: the row inputs the whole step computes a gradient for."""
    from tensorflow.python.framework import ops as tf_ops

    handles = set()
    for weight in model.trainable_weights:
        variable = getattr(weight, "value", weight)
        handle = getattr(variable, "handle", None)
        if handle is not None:
            handles.add(id(handle))
    todo = [
        internal for external, internal in graph.captures if id(external) in handles
    ]  # the weights' placeholders in this graph
    found: set = set()
    while todo:
        tensor = todo.pop()
        for consumer in tensor.consumers():
            if consumer.name not in forward_names:
                continue
            try:
                differentiable = tf_ops.get_gradient_function(consumer) is not None
            except LookupError:
                differentiable = False
            if consumer.type == "ReadVariableOp":
                differentiable = True
            if not differentiable:
                continue
            for out in consumer.outputs:
                if out.name not in found and (out.dtype.is_floating or out.dtype.is_complex):
                    found.add(out.name)
                    todo.append(out)
    return found


# --- a row's sub-model as a training step -----------------------------------------------------


def _sub_step(model, needs_grad, seeds, used, marks: dict | None = None):
    """`step(*xs)`: the sub-model's forward in training mode under a tape, then the gradients
    of its trainable weights and of the inputs that need one, its outputs seeded with `seeds`;
    returns the used outputs and the gradients."""
    import tensorflow as tf
    from keras import tree

    def step(*xs, split=None):
        graph = tf.compat.v1.get_default_graph()
        _without_shape_memo(graph)
        with tf.GradientTape() as tape:
            watched = [x for x, n in zip(xs, needs_grad) if n]
            for x in watched:
                tape.watch(x)
            ys = tree.flatten(model(list(xs), training=True))
        if marks is not None:
            marks["forward"] = len(graph.get_operations())
        pairs = [(y, s) for y, s in zip(ys, seeds) if s is not None and y is not None]
        sources = [*model.trainable_weights, *watched]
        upstream = [tf.constant(s) for _, s in pairs]
        if split is not None:  # the backward waits for the whole forward, as in the whole step
            upstream = split([y for y in ys if y is not None], upstream)
        grads = []
        if pairs and sources:
            grads = tape.gradient([y for y, _ in pairs], sources, output_gradients=upstream)
        if marks is not None:
            marks["end"] = len(graph.get_operations())
        kept = [y for y, u in zip(ys, used) if y is not None and u]
        return [*kept, *(g for g in grads if g is not None)]

    return step


def profile_submodel_step(
    row: RowPlan, input_specs, outputs_used=(), needs_grad=(), output_specs=()
) -> StepSubModel:
    """Build `row`'s sub-model and count its training step, forward and backward."""
    model = build_submodel(row, input_specs)
    used = tuple(outputs_used) or (True,) * len(output_specs)
    seeds = tuple(value if u else None for value, u in zip(_seed_values(output_specs), used))
    marks: dict = {}
    step = _sub_step(model, tuple(needs_grad), seeds, used, marks)
    with scoped_custom_gradients():
        concrete = concrete_function(step, input_specs)
    graph = concrete.graph
    flops = count_graph_flops(graph)
    forward_names = {op.name for op in graph.get_operations()[: marks["forward"]]}
    return StepSubModel(
        model=model,
        flops=flops,
        peak_activation_bytes=activation_peak(graph).peak_bytes,
        forward=flops.count_of(forward_names),
        needs_gradient=tuple(needs_grad),
        seeds=seeds,
        used=used,
    )


# --- the optimizer's update -------------------------------------------------------------------


def resolve_optimizer(model, optimizer, train: bool):
    """The optimizer whose update a train pass counts: `optimizer` (a keras.optimizers name or
    instance), else the one the model was compiled with, else None (not counted).

    Raises:
        UsageError: an optimizer for the inference pass, or a name Keras does not know.
    """
    import keras

    from submodel_profiler.errors import UsageError

    if optimizer is not None and not train:
        raise UsageError(
            "An optimizer's update is part of a training step: pass --pass train with "
            f"--optimizer (pass_='train' with optimizer=). Received: optimizer={optimizer!r}."
        )
    if not train:
        return None
    if optimizer is None:
        return getattr(model, "optimizer", None)
    if isinstance(optimizer, str):
        try:
            return keras.optimizers.get(optimizer)
        except ValueError as e:
            raise UsageError(
                f"Unknown optimizer {optimizer!r}: give a keras.optimizers name such as sgd, "
                f"adam, adamw or rmsprop. Keras said: {str(e).splitlines()[0]}"
            ) from e
    return optimizer


@dataclass(frozen=True)
class OptimizerCounts:
    """Float ops of one update: per row (its own weights), the whole model's at once, and the
    optimizer's own per-step ops (its iteration counter), which no row has."""

    rows: dict  # row key -> Count
    whole: Count
    own: Count


def optimizer_counts(optimizer, groups: dict) -> OptimizerCounts:
    """Count `optimizer`'s update of each group of weights ({row key: weights}), each with a
    fresh optimizer of the same config. An update is per weight plus a few per-step ops; those
    are measured as 2 · update(1 scalar) − update(2 scalars) and taken out of every row, so the
    rows plus them must equal one update of all the weights (the cross-check)."""
    import keras

    probes = [keras.Variable(0.0), keras.Variable(0.0)]
    one, two = _update_count(optimizer, probes[:1]), _update_count(optimizer, probes)
    own = Count(*(2 * a - b for a, b in zip(dataclasses.astuple(one), dataclasses.astuple(two))))
    rows = {key: _update_count(optimizer, ws) - own for key, ws in groups.items() if ws}
    everything = [w for ws in groups.values() for w in ws]
    whole = _update_count(optimizer, everything) if everything else ZERO
    return OptimizerCounts(rows, whole, own)


def update_segment(optimizer, weights):
    """A `timing.Segment` applying one update of a fresh optimizer of `optimizer`'s config to
    copies of `weights` (same shapes, dtypes and values), the gradients its inputs: timing it
    leaves the model's weights and `optimizer` as they were. The copies and the fresh
    optimizer's state change with every run, which costs what the first run costs (an update's
    work does not depend on the values). Returns the copies' new values, read after the update.
    """
    import keras
    import tensorflow as tf

    from submodel_profiler.timing import Segment

    copies = [
        keras.Variable(tf.identity(getattr(w, "value", w)), dtype=w.dtype, trainable=True)
        for w in weights
    ]
    fresh = _fresh(optimizer)
    fresh.build(copies)

    def update(*grads):
        fresh.apply(list(grads), copies)
        return [c.value for c in copies]

    return Segment(update, tuple(tf.TensorSpec(w.shape, w.dtype) for w in weights))


def _update_count(optimizer, weights) -> Count:
    import tensorflow as tf

    fresh = _fresh(optimizer)
    fresh.build(weights)
    specs = [tf.TensorSpec(w.shape, w.dtype) for w in weights]
    graph = concrete_function(lambda *g: fresh.apply(list(g), weights), specs)
    return count_graph_flops(graph.graph).total


def _fresh(optimizer):
    """A new optimizer of `optimizer`'s config, with state of its own: counting and timing an
    update never touch the model's optimizer."""
    return type(optimizer).from_config(optimizer.get_config())
