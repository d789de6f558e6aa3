"""Walk a Keras functional graph in execution order and decide what each report row holds.

A row is one call site of a layer, or one "ghost" operation: a Keras op that is not a layer
(`x + 3.0`, `x * (1 / 6)`, a residual `a + b`). Keras 3 keeps ghost ops in
`model.operations` but not in `model.layers`. Ghost ops on the single input/output path of an
activation layer are attached to that layer's row (MobileNetV3's hard-sigmoid
`ReLU(6.)(x + 3.) * (1/6)` is one row); every other ghost op is a row of its own.

Everything here is pure bookkeeping over Keras' `Node` objects; nothing is traced.
"""

from __future__ import annotations

import functools
from collections import defaultdict
from dataclasses import dataclass, field


@dataclass(frozen=True)
class RowPlan:
    """What one report row covers: one or more Keras nodes run back to back.

    `nodes` are in execution order: attached ghost ops before the main node, the main node,
    attached ghost ops after it. The row's inputs are the first node's input tensors; its
    outputs are the last node's output tensors.
    """

    name: str
    type: str
    kind: str  # "layer" or "op"
    call_index: int
    operation: object = field(repr=False)
    nodes: tuple = field(repr=False)
    ghost_ops: tuple[str, ...] = ()
    # With expanded nested models: (inner KerasTensor, outer KerasTensor) pairs whose values
    # must be bound before this row runs (the nested model's inputs) and after it (the outer
    # node's outputs, from the nested model's outputs).
    bind_before: tuple = field(default=(), repr=False)
    bind_after: tuple = field(default=(), repr=False)
    # Subclassed models have no nodes: the recorded (args, kwargs) of the call site, tensors
    # replaced by call_recorder.TensorSlot (see call_recorder.py).
    call_template: object = field(default=None, repr=False)
    depth: int = 1  # 1: a layer of the model itself; n: inside n - 1 enclosing layers/models
    parent: str | None = None  # label of the enclosing layer or nested model, if any
    # Set by the whole-graph trace (functional rows): positions in `input_tensors` whose value
    # was None when traced (a layer's `None` output another layer takes). They carry no tensor:
    # they have no input spec, and the row's sub-model passes None there.
    none_inputs: tuple = ()

    @property
    def key(self) -> tuple[str, int]:
        return (self.name, self.call_index)

    @property
    def label(self) -> str:
        """`name`, or `name[k]` for the k-th call site (k > 0), as report rows are labelled."""
        from submodel_profiler.report import row_label

        return row_label(self.name, self.call_index)

    @property
    def source(self) -> str:
        """Where the row comes from: "functional" (Keras nodes of a layer graph), "call_site"
        (a subclassed model's recorded layer call) or "inline" (ops a subclassed model's
        `call` runs itself). Only functional rows have Keras nodes and tensors."""
        if self.kind == "inline":
            return "inline"
        return "functional" if self.nodes else "call_site"

    @property
    def input_tensors(self) -> list:
        """Distinct KerasTensors the row consumes, in argument order (functional rows only)."""
        return unique_tensors(self._functional_nodes()[0].arguments.keras_tensors)

    @property
    def output_tensors(self) -> list:
        """KerasTensors the row produces (functional rows only)."""
        return list(self._functional_nodes()[-1].outputs)

    def _functional_nodes(self) -> tuple:
        if not self.nodes:
            raise TypeError(
                f"Row {self.name!r} is a {self.source} row: it has no Keras nodes, "
                "so no input or output KerasTensors; its specs are in its RowTrace."
            )
        return self.nodes


@dataclass(frozen=True)
class RowTrace:
    """What a trace saw for one row: static shapes and the graph ops it created."""

    input_specs: tuple  # tf.TensorSpec per distinct input tensor, batch pinned
    output_specs: tuple
    op_names: frozenset
    # Per output: does anything outside the row use it (a later row, a model output)? A
    # sub-model counts only the work its used outputs need, as the whole graph does.
    outputs_used: tuple = ()
    # Names of the graph tensors behind `input_specs` (the training step asks which of them
    # the backward needs a gradient for).
    input_names: tuple = ()


def outputs_used(tensors, op_names, live=None) -> tuple:
    """For each graph tensor a row outputs: whether an op outside the row that runs consumes
    it (`live`: the names of the graph's nodes that run, `flops.live_nodes`; None: every
    consumer runs). A tensor the graph did not make (an eager constant a layer returns) has no
    consumers here: unused."""
    used = []
    for t in tensors:
        try:
            consumers = t.consumers()
        except (AttributeError, NotImplementedError):  # eager: not a node of this graph
            consumers = []
        used.append(
            any(c.name not in op_names and (live is None or c.name in live) for c in consumers)
        )
    return tuple(used)


def unique_tensors(tensors) -> list:
    seen, out = set(), []
    for t in tensors:
        if id(t) not in seen:
            seen.add(id(t))
            out.append(t)
    return out


def graph_of(model):
    """The Functional object that owns a Keras model's graph of layers (a Sequential delegates
    to one), or None: not a model, a subclassed model, or an unbuilt Sequential."""
    import keras

    if not isinstance(model, keras.Model):
        return None
    graph = getattr(model, "_functional", None) if isinstance(model, keras.Sequential) else model
    return graph if hasattr(graph, "_nodes_by_depth") else None


def functional_graph(model):
    """`graph_of(model)`, for a model that must have one.

    Raises:
        UsageError: the model has no functional graph (an unbuilt Sequential or a subclassed model).
    """
    from submodel_profiler.errors import UsageError

    graph = graph_of(model)
    if graph is None:
        raise UsageError(
            "The model must be a built Functional or Sequential Keras model with a graph of "
            f"layers. Received: model={getattr(model, 'name', model)!r} "
            f"(of type {type(model).__name__})."
        )
    return graph


def execution_order(graph) -> list:
    """The graph's computing nodes in the order Keras runs them (deepest first)."""
    available = {id(t) for t in graph.inputs}
    ordered = []
    for depth in sorted(graph._nodes_by_depth, reverse=True):
        for node in graph._nodes_by_depth[depth]:
            if not node.operation or node.is_input:
                continue
            if any(id(t) not in available for t in node.input_tensors):
                continue  # Not reachable from the inputs; Keras skips it too.
            ordered.append(node)
            available.update(id(t) for t in node.outputs)
    return ordered


# SHA-256 of the source of the Keras loop `keras_loop` copies (keras 3.15.1: ops/function.py,
# `Function._run_through_graph`): another Keras' loop, even of the same signature, is not copied.
COPIED_LOOP_SHA256 = "5647b6f0591c07aad94eed31cd55cd95e55ed20e258b44503c8e891a8503be08"


def keras_loop(graph, release: bool = False, around=None):
    """A copy of Keras' `Function._run_through_graph` for `graph`, to set as its instance
    attribute: the same nodes, in the same order, called with the same arguments.

    With `release`, a tensor is dropped once the last node reading it has run (Keras keeps
    every node's outputs until the call returns; the graph's outputs are kept). With
    `around(node, run, values)`, each node is run by `around`, which calls `run()` (the node's
    call; its outputs are in `values`, id(KerasTensor) -> value, once it returns) and may note
    what happened meanwhile. The order and the read counts are the graph's, found once.

    None when `graph` is not a Keras functional graph, its class or instance replaced Keras'
    loop (theirs must run), or this Keras' loop is not the one copied here (its source differs:
    `COPIED_LOOP_SHA256`).
    """
    import keras
    from keras.src.ops.function import Function

    own = getattr(type(graph), "_run_through_graph", None)
    if own is not Function._run_through_graph or "_run_through_graph" in vars(graph):
        return None
    if not _is_the_copied_loop(own):
        return None
    operation_for = getattr(graph, "_get_operation_for_node", lambda node: node.operation)
    nodes = execution_order(graph)  # Keras' order, the nodes it would skip left out
    reads: dict[int, int] = defaultdict(int)  # id(tensor) -> nodes reading it, outputs once more
    for t in (*(t for node in nodes for t in node.input_tensors), *graph.outputs):
        reads[id(t)] += 1

    def run_through_graph(inputs, operation_fn=lambda op: op, call_fn=None):
        uses = dict(reads)
        values = {id(x): y for x, y in zip(graph.inputs, keras.tree.flatten(inputs))}
        for node in nodes:

            def run(node=node):
                args, kwargs = node.arguments.fill_in(values)
                if call_fn is not None:
                    outputs = call_fn(operation_fn(node.operation), *args, **kwargs)
                else:
                    outputs = operation_fn(operation_for(node))(*args, **kwargs)
                values.update(zip(map(id, node.outputs), keras.tree.flatten(outputs)))

            # as Keras: a node whose inputs an earlier call did not return is skipped
            if all(id(x) in values for x in node.input_tensors):
                if around is None:
                    run()
                else:
                    around(node, run, values)
            if release:
                for t in node.input_tensors:
                    uses[id(t)] -= 1
                    if uses[id(t)] == 0:
                        values.pop(id(t), None)
        missing = [i for i, x in enumerate(graph.outputs) if id(x) not in values]
        if missing:
            path = keras.tree.flatten_with_path(graph._outputs_struct)[missing[0]][0]
            raise ValueError(
                f"Output with path `{'.'.join(map(str, path))}` is not connected to `inputs`"
            )
        outputs = [values[id(x)] for x in graph.outputs]
        return keras.tree.pack_sequence_as(graph._outputs_struct, outputs)

    return run_through_graph


@functools.cache
def _is_the_copied_loop(loop) -> bool:
    import hashlib
    import inspect

    try:
        source = inspect.getsource(loop)
    except (OSError, TypeError):  # no source to compare: not known to be the copied loop
        return False
    return hashlib.sha256(source.encode()).hexdigest() == COPIED_LOOP_SHA256


def is_ghost(operation) -> bool:
    """True for Keras ops that run in the graph but are not layers (`x + 3.0`)."""
    import keras

    return not isinstance(operation, keras.layers.Layer)


def is_activation(operation) -> bool:
    import keras

    return isinstance(
        operation,
        (
            keras.layers.Activation,
            keras.layers.ReLU,
            keras.layers.LeakyReLU,
            keras.layers.PReLU,
            keras.layers.ELU,
            keras.layers.Softmax,
        ),
    )


def plan_rows(
    model, expand_nested: bool = False, depth: int = 1, parents: list | None = None
) -> list[RowPlan]:
    """One RowPlan per layer call site and per ghost op not attached to an activation, in
    execution order.

    A nested Functional/Sequential model is replaced by rows for its own layers, named by the
    path of its call (`backbone/conv`; `backbone[1]/conv` for its second call): with
    `expand_nested` at every level, else down to `depth` levels (depth 1: not at all). The
    RowPlans of the replaced nested models are appended to `parents` when given.
    """
    levels = UNLIMITED if expand_nested else depth
    return _plan_graph(functional_graph(model), "", levels, 1, None, parents)


UNLIMITED = 10**6  # --depth all


def _plan_graph(graph, prefix: str, levels: int, depth: int, parent, parents) -> list[RowPlan]:
    nodes = execution_order(graph)
    ghosts = _GhostAttachment(nodes, graph.outputs)
    call_counts: dict[int, int] = defaultdict(int)
    rows = []
    for node in nodes:
        if id(node) in ghosts.absorbed:
            continue
        op = node.operation
        call_index = call_counts[id(op)]
        before, after = ghosts.chains.get(id(node), ((), ()))
        row = RowPlan(
            name=prefix + op.name,
            type=type(op).__name__,
            kind="op" if is_ghost(op) else "layer",
            call_index=call_index,
            operation=op,
            nodes=(*before, node, *after),
            ghost_ops=tuple(n.operation.name for n in (*before, *after)),
            depth=depth,
            parent=parent,
        )
        call_counts[id(op)] += 1
        if depth < levels and graph_of(op) is not None:
            at = None if parents is None else len(parents)
            inner = _expand(node, row, levels, parents)
            if inner:
                rows.extend(inner)
                if parents is not None:
                    parents.insert(at, row)  # outermost first, before its inner parents
                continue
        rows.append(row)
    return rows


def _expand(node, row: RowPlan, levels: int, parents) -> list[RowPlan]:
    """Rows of the nested model called at `node` (planned as `row`), bound to the outer
    graph's tensors."""
    import dataclasses

    op = node.operation
    graph = graph_of(op)
    outer_inputs = unique_tensors(node.arguments.keras_tensors)
    if len(outer_inputs) != len(graph.inputs) or len(node.outputs) != len(graph.outputs):
        return []
    rows = _plan_graph(graph, f"{row.label}/", levels, row.depth + 1, row.label, parents)
    if not rows:
        return []
    bind_in = tuple(zip(graph.inputs, outer_inputs))
    bind_out = tuple(zip(node.outputs, graph.outputs))
    rows[0] = dataclasses.replace(rows[0], bind_before=bind_in + rows[0].bind_before)
    rows[-1] = dataclasses.replace(rows[-1], bind_after=rows[-1].bind_after + bind_out)
    return rows


def bind(pairs, tensor_values: dict) -> None:
    """Give each first KerasTensor of `pairs` the value of the second, its rank adjusted as a
    Functional model adjusts its inputs' (`_adjust_input_rank`): a value one dim short of a
    target whose last dim is 1 gains that dim, one dim too many of size 1 loses it (a nested
    model with an Input of shape (1,) called on a (batch,) tensor)."""
    for target, source in pairs:
        tensor_values[id(target)] = _rank_adjusted(tensor_values[id(source)], target.shape)


def _rank_adjusted(value, shape):
    import tensorflow as tf

    rank = getattr(getattr(value, "shape", None), "rank", None)
    if rank is None or rank == len(shape):
        return value
    if rank == len(shape) + 1 and value.shape[-1] == 1:
        return tf.squeeze(value, axis=-1)
    if rank == len(shape) - 1 and shape[-1] == 1:
        return tf.expand_dims(value, axis=-1)
    return value


class _GhostAttachment:
    """Finds ghost ops on an activation's exclusive input/output path.

    `chains[id(activation_node)] = (ghost nodes before, ghost nodes after)`;
    `absorbed` holds the ids of ghost nodes that belong to some activation's row.
    """

    def __init__(self, nodes, model_outputs):
        self.producer = {}
        self.consumers = defaultdict(list)
        for node in nodes:
            for t in node.outputs:
                self.producer[id(t)] = node
            for t in unique_tensors(node.input_tensors):
                self.consumers[id(t)].append(node)
        self.outputs = {id(t) for t in model_outputs}
        self.chains = {}
        self.absorbed = set()
        for node in nodes:
            if not is_ghost(node.operation) and is_activation(node.operation):
                if _sole_input(node) is not None and len(node.outputs) == 1:
                    self._attach(node)

    def _attachable_ghost(self, node) -> bool:
        return (
            node is not None
            and is_ghost(node.operation)
            and id(node) not in self.absorbed
            and _sole_input(node) is not None
            and len(node.outputs) == 1
        )

    def _exclusive(self, tensor, consumer) -> bool:
        """True if `consumer` is the only user of `tensor` and it is not a model output."""
        return id(tensor) not in self.outputs and self.consumers[id(tensor)] == [consumer]

    def _attach(self, activation):
        before, current = [], activation
        while True:
            tensor = _sole_input(current)
            producer = self.producer.get(id(tensor))
            if not (self._attachable_ghost(producer) and self._exclusive(tensor, current)):
                break
            before.insert(0, producer)
            current = producer
        after, current = [], activation
        while True:
            tensor = current.outputs[0]
            users = self.consumers[id(tensor)]
            nxt = users[0] if len(users) == 1 else None
            if not (self._attachable_ghost(nxt) and self._exclusive(tensor, nxt)):
                break
            after.append(nxt)
            current = nxt
        if before or after:
            self.chains[id(activation)] = (tuple(before), tuple(after))
            self.absorbed.update(id(n) for n in (*before, *after))


def _sole_input(node):
    """The node's only input KerasTensor, or None if it has zero or several."""
    tensors = unique_tensors(node.arguments.keras_tensors)
    return tensors[0] if len(tensors) == 1 else None


def call_node(node, tensor_values: dict, training: bool = False):
    """Run one Keras node on concrete (or symbolic) values, the way Functional.call does.

    `tensor_values` maps id(KerasTensor) to the value standing for it; the node's outputs are
    added to it. Returns the flat list of outputs.
    """
    from keras import tree

    args, kwargs = node.arguments.fill_in(tensor_values)
    op = node.operation
    if "training" in getattr(op, "_call_context_args", ()):
        # as model(x, training=...) does (Keras' functional `operation_fn`): the model's value
        # overrides one the node recorded (a Dropout called with training=True)
        kwargs["training"] = bool(training)
    outputs = tree.flatten(op(*args, **kwargs))
    for t, value in zip(node.outputs, outputs):
        tensor_values[id(t)] = value
    return outputs
