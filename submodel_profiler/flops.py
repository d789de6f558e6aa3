"""Count float ops and MACs in a TensorFlow graph: TF's profiler plus our rules (counting.py).

Per node, four figures (`counting.Count`): `tf_flops`, exactly TF's profiler (the seed method:
`model_analyzer.profile` with `ProfileOptionBuilder.float_operation()`); `flops` in the complete
convention (TF's number where TF registers one, our rules elsewhere); `macs`; `op_bytes`, what
the node reads and writes (`counting.op_bytes`; function, loop and branch nodes: their bodies',
as for float ops).

Function bodies are counted by rebuilding them from the graph's function library with the
caller's static input shapes:
- `PartitionedCall`/`StatefulPartitionedCall` (Keras 3 runs grouped convolutions in one): the
  body's counts, in both conventions (TF's profiler itself counts nothing inside a call).
- `While`/`StatelessWhile`: body × static trip count + cond × (trip count + 1), complete
  convention only; a loop without a static trip count stays uncounted, with the reason in
  `notes`. TF counts no loop (its `tf_flops` is 0, the op uncounted in that convention).
- `If`/`Case`: the largest branch by complete float ops, marked in `notes`.

The complete convention counts only the nodes that run: those some graph output or control
output depends on (TF prunes the rest; Keras RNNs trace one step outside their loop only to learn
its output shapes). TF's convention counts every node, as TF's profiler does.
"""

from __future__ import annotations

import contextlib
import io
import math
from collections import Counter
from dataclasses import dataclass, field

from submodel_profiler.counting import (
    BRANCH_OP_TYPES,
    CALL_OP_TYPES,
    NON_ARITHMETIC_OPS,
    WHILE_OP_TYPES,
    ZERO,
    Count,
    op_bytes,
    op_macs,
    rule_flops,
)
from submodel_profiler.tf_logging import quiet_tf

# The profiler's notice (on stderr) that it skipped ops whose shapes are not fully defined.
_INCOMPLETE_SHAPES_NOTICE = "no flops stats due to incomplete shapes"


@dataclass(frozen=True)
class GraphFlops:
    """Float ops (both conventions) and MACs of one graph, per node.

    `per_node` maps node names to a `Count` (nodes counting nothing are omitted); a function
    node carries its bodies' counts. `total` is the sum of `per_node`.
    `uncounted` / `tf_uncounted` map node names to {op type: n}: the arithmetic ops without a
    count in the complete / tf convention (for a function node, the ones inside its bodies).
    `notes` maps node names to remarks on how a node was counted (loops, branches).
    """

    total: Count
    per_node: dict
    uncounted: dict = field(default_factory=dict)
    tf_uncounted: dict = field(default_factory=dict)
    notes: dict = field(default_factory=dict)

    def count_of(self, names) -> Count:
        """Counts of the named nodes, summed."""
        total = ZERO
        for name in names:
            total = total + self.per_node.get(name, ZERO)
        return total

    def uncounted_ops(self, names=None, counting: str = "complete") -> dict:
        """Per op type, how many ops have no count in `counting` (among `names`, if given)."""
        table = self.tf_uncounted if counting == "tf" else self.uncounted
        counts: Counter = Counter()
        for name in table if names is None else names:
            counts.update(table.get(name, {}))
        return dict(sorted(counts.items()))

    def notes_of(self, names=None) -> tuple:
        """The distinct notes of the named nodes (all nodes when None), sorted."""
        found = set()
        for name in self.notes if names is None else names:
            found.update(self.notes.get(name, ()))
        return tuple(sorted(found))


@dataclass(frozen=True)
class _Node:
    """One node's count, what it leaves uncounted in each convention, and notes."""

    count: Count = ZERO
    uncounted: dict = field(default_factory=dict)
    tf_uncounted: dict = field(default_factory=dict)
    notes: tuple = ()


def count_graph_flops(graph, outputs_used=()) -> GraphFlops:
    """Count `graph`'s float ops (both conventions) and MACs, function bodies included; prints
    nothing.

    Shapes in `graph` must be fully defined: ops with unknown dims are reported as uncounted.
    For a `FuncGraph`, nodes no output depends on are left out of the complete convention and
    the MACs; `outputs_used` (one bool per output) leaves out the outputs nobody uses, too.
    """
    with quiet_tf():
        return _count(graph, _FunctionLibrary(graph), (), _graph_roots(graph, outputs_used))


def live_nodes(graph, outputs_used=()) -> set | None:
    """Names of the nodes of `graph` that run: those its (used) outputs and control outputs
    depend on, the rule `count_graph_flops` counts by; None for a graph without declared
    outputs (every node runs)."""
    return _live(graph, _graph_roots(graph, outputs_used))


def _graph_roots(graph, outputs_used=()) -> list | None:
    """Names of the nodes a function graph must run (its used outputs and control outputs),
    or None for a graph without declared outputs (every node then counts as run)."""
    outputs = getattr(graph, "outputs", None)
    if outputs is None:
        return None
    used = list(outputs_used) or [True] * len(outputs)
    if len(used) != len(outputs):  # structure we cannot line up: everything counts
        used = [True] * len(outputs)
    roots = [t.op.name for t, u in zip(outputs, used) if t is not None and u]
    return roots + [op.name for op in getattr(graph, "control_outputs", ())]


def _live(graph, roots) -> set | None:
    """Names of the nodes `roots` depend on (data and control inputs); None: all."""
    if roots is None:
        return None
    seen, todo = set(), [graph.get_operation_by_name(r) for r in roots if _has_op(graph, r)]
    while todo:
        op = todo.pop()
        if op.name in seen:
            continue
        seen.add(op.name)
        todo.extend(t.op for t in op.inputs)
        todo.extend(op.control_inputs)
    return seen


def _has_op(graph, name: str) -> bool:
    try:
        graph.get_operation_by_name(name)
    except KeyError:
        return False
    return True


def _count(graph, library: _FunctionLibrary, active: tuple, roots) -> GraphFlops:
    """`count_graph_flops` of `graph`, with `active` the names of the enclosing function bodies
    and `roots` the nodes whose dependencies run."""
    _, tf_per_node, incomplete_shapes = _profile(graph)
    live = _live(graph, roots)
    registered: dict = {}
    per_node, uncounted, tf_uncounted, notes = {}, {}, {}, {}
    total = ZERO
    for op in graph.get_operations():
        runs = live is None or op.name in live
        if op.type in NON_ARITHMETIC_OPS:
            node = _moved(op) if runs else _Node()
        else:
            if incomplete_shapes:
                is_registered = _has_flops_statistic(graph, op)
            else:
                if op.type not in registered:
                    registered[op.type] = _has_flops_statistic(graph, op)
                is_registered = registered[op.type]
            node = _count_node(op, tf_per_node.get(op.name, 0), is_registered, library, active)
            if not runs:  # never runs: TF's convention only
                node = _Node(Count(0, node.count.tf_flops, 0), {}, node.tf_uncounted)
        if node.count:
            per_node[op.name] = node.count
            total = total + node.count
        if node.uncounted:
            uncounted[op.name] = node.uncounted
        if node.tf_uncounted:
            tf_uncounted[op.name] = node.tf_uncounted
        if node.notes:
            notes[op.name] = node.notes
    return GraphFlops(total, per_node, uncounted, tf_uncounted, notes)


def _count_node(op, tf_flops: int, is_registered: bool, library, active: tuple) -> _Node:
    """The counts of one arithmetic node."""
    if op.type in CALL_OP_TYPES:
        body = _function_count(op.get_attr("f").name, op.inputs, library, active)
        if body is None:
            return _Node(uncounted={op.type: 1}, tf_uncounted={op.type: 1})
        return body
    if op.type in WHILE_OP_TYPES:
        return _while_count(op, library, active)
    if op.type in BRANCH_OP_TYPES:
        return _branch_count(op, library, active)
    macs = op_macs(op)
    moved = _moved(op)
    if is_registered:
        count, uncounted, tf_uncounted = Count(tf_flops, tf_flops, macs), {}, {}
    elif (flops := rule_flops(op)) is None:
        count, uncounted, tf_uncounted = Count(0, 0, macs), {op.type: 1}, {op.type: 1}
    else:
        count, uncounted, tf_uncounted = Count(flops, 0, macs), {}, {op.type: 1}
    return _Node(count + moved.count, uncounted, tf_uncounted, moved.notes)


def _moved(op) -> _Node:
    """The op bytes of one op that is not a function call (`counting.op_bytes`), with a note
    when a shape is not static and its bytes are left out."""
    moved = op_bytes(op)
    if moved is None:
        return _Node(notes=(f"op bytes: {op.type} has a shape that is not static, not counted",))
    return _Node(Count(op_bytes=moved))


def _while_count(op, library, active: tuple) -> _Node:
    """A loop: body × trip count + cond × (trip count + 1), complete convention only."""
    unknown = {op.type: 1}
    # Loop variables take the loop's declared shapes (its outputs'), not their first
    # iteration's: a variable that grows has unknown dims there, and its ops stay uncounted.
    shapes = [t.shape for t in op.outputs]
    body = _function_count(op.get_attr("body").name, op.inputs, library, active, shapes)
    cond = _function_count(op.get_attr("cond").name, op.inputs, library, active, shapes)
    if body is None or cond is None:
        note = f"{op.type}: its body could not be rebuilt, so it is not counted"
        return _Node(uncounted=unknown, tf_uncounted=unknown, notes=(note,))
    trips = trip_count(op, library)
    if trips is None:
        note = f"{op.type}: trip count not static, its body is not counted"
        return _Node(uncounted=unknown, tf_uncounted=unknown, notes=(note,))
    count = Count(
        flops=body.count.flops * trips + cond.count.flops * (trips + 1),
        tf_flops=0,  # TF's profiler counts no loop
        macs=body.count.macs * trips + cond.count.macs * (trips + 1),
        op_bytes=body.count.op_bytes * trips + cond.count.op_bytes * (trips + 1),
    )
    inner = Counter(body.uncounted) + Counter(cond.uncounted) if trips else Counter()
    note = f"{op.type}: body × {trips} iterations (static trip count)"
    return _Node(count, dict(inner), unknown, (note, *body.notes, *cond.notes))


def _branch_count(op, library, active: tuple) -> _Node:
    """If/Case: the branch with the most complete float ops (an upper bound of what runs)."""
    unknown = {op.type: 1}
    if op.type in ("If", "StatelessIf"):
        names = [op.get_attr("then_branch").name, op.get_attr("else_branch").name]
    else:
        names = [f.name for f in op.get_attr("branches")]
    branches = [_function_count(name, op.inputs[1:], library, active) for name in names]
    if any(b is None for b in branches):
        note = f"{op.type}: a branch could not be rebuilt, so it is not counted"
        return _Node(uncounted=unknown, tf_uncounted=unknown, notes=(note,))
    largest = max(branches, key=lambda b: (b.count.flops, b.count.macs))
    note = f"{op.type}: largest of {len(branches)} branches counted"
    return _Node(
        Count(largest.count.flops, 0, largest.count.macs, largest.count.op_bytes),
        largest.uncounted,
        unknown,
        (note, *largest.notes),
    )


def _profile(graph):
    """(total, {node name: float ops}, whether some op had incomplete shapes) from TF's profiler."""
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation()).with_empty_output().build()
    )
    notices = io.StringIO()
    with contextlib.redirect_stderr(notices):
        proto = model_analyzer.profile(graph, options=options)
    per_node = {}
    stack = [proto]
    while stack:
        node = stack.pop()
        if node.float_ops:
            per_node[node.name] = int(node.float_ops)
        stack.extend(node.children)
    return int(proto.total_float_ops), per_node, _INCOMPLETE_SHAPES_NOTICE in notices.getvalue()


def _has_flops_statistic(graph, op) -> bool:
    """Whether TF's profiler has a float-op count for this node."""
    from tensorflow.python.framework import ops as tf_ops

    try:
        return tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value is not None
    except Exception:  # A registered statistic that fails on this node counts as uncounted.
        return False


# Counted bodies by (digest of the body and the functions it calls, argument specs). Function
# names are left out of the digest, so identical bodies traced in different graphs share an
# entry (a Keras grouped conv traced for its sub-model and again for the whole model).
_BODY_CACHE: dict = {}
_BODY_CACHE_SIZE = 4096


def _function_count(
    name: str, inputs, library: _FunctionLibrary, active: tuple, shapes=None
) -> _Node | None:
    """Counts of function `name` run on `inputs` (with `shapes`, if given, instead of the
    inputs' static shapes), or None if it cannot be rebuilt."""
    functions = library.closure(name)
    if functions is None or name in active:  # Missing from the library, or recursive.
        return None
    fdef = functions[0]
    if len(fdef.signature.input_arg) != len(inputs):
        return None
    shapes = [t.shape for t in inputs] if shapes is None else list(shapes)
    specs = tuple(_arg_spec(t, shape) for t, shape in zip(inputs, shapes))
    key = (_digest(functions), specs)
    if key not in _BODY_CACHE:
        try:
            body_graph, roots = _body_graph(functions, inputs, shapes)
        except Exception:  # Any failure to rebuild the body leaves the call uncounted.
            return None
        counted = _count(body_graph, library, active + (name,), roots)
        if len(_BODY_CACHE) >= _BODY_CACHE_SIZE:
            _BODY_CACHE.clear()
        _BODY_CACHE[key] = _Node(
            counted.total,
            counted.uncounted_ops(),
            counted.uncounted_ops(counting="tf"),
            counted.notes_of(),
        )
    return _BODY_CACHE[key]


def _arg_spec(tensor, shape) -> tuple:
    """(dtype, static shape, handle data): what the body's shapes depend on."""
    from tensorflow.python.ops import handle_data_util

    shape = tuple(shape.as_list()) if shape.rank is not None else None
    handle = b""
    if tensor.dtype.name in ("resource", "variant"):
        handle = handle_data_util.get_resource_handle_data(tensor).SerializeToString()
    return tensor.dtype.name, shape, handle


def _digest(functions) -> bytes:
    """Digest of a body and the functions it calls, ignoring the body's own name."""
    import hashlib

    root = type(functions[0])()
    root.CopyFrom(functions[0])
    root.signature.name = ""
    digest = hashlib.sha256(root.SerializeToString(deterministic=True))
    for fdef in functions[1:]:
        digest.update(fdef.SerializeToString(deterministic=True))
    return digest.digest()


_BODY_SCOPE = "body"


def _body_graph(functions, call_inputs, shapes):
    """A graph of the body `functions[0]` with placeholders of `call_inputs`' dtypes and of
    `shapes`, and the names of its nodes that must run (those its outputs and control outputs
    come from).

    Resource and variant arguments (variables, tensor lists) get the call input's handle data,
    so that reading a variable inside the body has a static shape.
    """
    import tensorflow as tf
    from tensorflow.core.framework import graph_pb2
    from tensorflow.python.framework import function_def_to_graph, importer
    from tensorflow.python.ops import handle_data_util

    fdef = functions[0]
    graph = tf.Graph()
    with graph.as_default():
        library = graph_pb2.GraphDef()
        # A GraphDef without versions reads as producer 0, for which TF treats scalar
        # placeholder shapes as unknown: keep this graph's versions.
        library.versions.CopyFrom(graph.graph_def_versions)
        library.library.function.extend(functions)
        importer.import_graph_def(library, name="")  # Nested calls need their functions.
        args = {}
        for i, (arg, tensor, shape) in enumerate(
            zip(fdef.signature.input_arg, call_inputs, shapes)
        ):
            placeholder = tf.compat.v1.placeholder(tensor.dtype, shape, name=f"arg_{i}")
            if tensor.dtype in (tf.resource, tf.variant):
                data = handle_data_util.get_resource_handle_data(tensor)
                handle_data_util.set_handle_data(placeholder, data)
            args[f"{arg.name}:0"] = placeholder
        graph_def, _ = function_def_to_graph.function_def_to_graph_def(fdef)
        importer.import_graph_def(graph_def, input_map=args, name=_BODY_SCOPE)
    returned = [ref.split(":")[0] for ref in fdef.ret.values()]
    roots = [f"{_BODY_SCOPE}/{name}" for name in [*returned, *fdef.control_ret.values()]]
    return graph, roots


class _FunctionLibrary:
    """The FunctionDefs of a graph's library by name, read only when a node needs it."""

    def __init__(self, graph):
        self._graph = graph
        self._functions = None

    def get(self, name: str):
        """FunctionDef `name`, or None."""
        if self._functions is None:
            library = self._graph.as_graph_def().library
            self._functions = {f.signature.name: f for f in library.function}
        return self._functions.get(name)

    def closure(self, name: str) -> list | None:
        """FunctionDef `name` first, then every function it calls (transitively); None if
        `name` or a function it calls is not in the library."""
        found, todo = {}, [name]
        while todo:
            fname = todo.pop()
            if fname in found:
                continue
            fdef = self.get(fname)
            if fdef is None:
                return None
            found[fname] = fdef
            todo.extend(_called_functions(fdef, self._functions))
        return list(found.values())


def _called_functions(fdef, functions: dict):
    """Names of the functions a FunctionDef's nodes call (function attrs, or as op types)."""
    for node in fdef.node_def:
        if node.op in functions:
            yield node.op
        for value in node.attr.values():
            if value.HasField("func"):
                yield value.func.name
            elif value.HasField("list"):
                yield from (f.name for f in value.list.func)


# --- static trip counts of While loops ---------------------------------------------------------

_COMPARISONS = {"Less": False, "LessEqual": True, "Greater": False, "GreaterEqual": True}
_PASS_THROUGH = frozenset({"Identity", "Squeeze", "StopGradient"})


def trip_count(op, library: _FunctionLibrary) -> int | None:
    """The static trip count of a While node, or None when it is not static.

    The loop's condition must be a conjunction (LogicalAnd) of comparisons, every one of which
    is read: `i < limit` or `i > limit` (≤ and ≥ alike, either operand order), while_v2's own
    `loop_counter < maximum_iterations` among them. A comparison is read when `i` is a loop
    variable with a constant-foldable start that the body steps by a constant (`i + c`,
    `i - c`) towards the limit, and `limit` is a constant, or a loop-invariant variable with a
    constant-foldable initial value. The trip count is the smallest of the comparisons' counts.
    A condition with any other term (data-dependent, `LogicalOr`, ...) is not static: reading
    only its counter would count iterations that may never run.
    """
    cond, body = library.get(op.get_attr("cond").name), library.get(op.get_attr("body").name)
    if cond is None or body is None or not cond.signature.output_arg:
        return None
    loop = _Loop(op, cond, body)
    bounds = loop.bounds(cond.ret[cond.signature.output_arg[0].name])
    return min(bounds) if bounds else None


class _Loop:
    """Reads a While node's cond and body FunctionDefs for `trip_count`."""

    def __init__(self, op, cond, body):
        self.op, self.cond, self.body = op, cond, body
        self.cond_args = [a.name for a in cond.signature.input_arg]
        self.cond_nodes = {n.name: n for n in cond.node_def}
        self.body_args = [a.name for a in body.signature.input_arg]
        self.body_nodes = {n.name: n for n in body.node_def}

    def bounds(self, ref: str, depth: int = 0) -> list | None:
        """The trip counts every comparison in the boolean `ref` (in cond) allows, or None
        when a term of the conjunction cannot be read."""
        node = self.cond_nodes.get(ref.split(":")[0])
        if node is None or depth > 32:
            return None
        inputs = [x for x in node.input if not x.startswith("^")]
        if node.op in _PASS_THROUGH:
            return self.bounds(inputs[0], depth + 1)
        if node.op == "LogicalAnd":
            left, right = (self.bounds(x, depth + 1) for x in inputs[:2])
            return None if left is None or right is None else left + right
        if node.op not in _COMPARISONS:
            return None
        a, b = inputs[:2]
        upward = node.op.startswith("Less")  # a < b: a counts up to b, or b counts down to a
        inclusive = _COMPARISONS[node.op]
        bound = self._bound(a, b, upward, inclusive)
        if bound is None:
            bound = self._bound(b, a, not upward, inclusive)
        return None if bound is None else [bound]

    def _bound(self, counter: str, limit: str, upward: bool, inclusive: bool) -> int | None:
        """Iterations while `counter` (<, ≤ if upward; >, ≥ if not) `limit` holds."""
        if counter not in self.cond_args:
            return None
        k = self.cond_args.index(counter)
        start, step, end = fold(self.op.inputs[k]), self._step(k), self._limit(limit)
        if start is None or step is None or end is None or step == 0 or (step > 0) != upward:
            return None
        span = (end - start) / step  # ≥ 0 when the loop runs at all
        count = math.floor(span) + 1 if inclusive else math.ceil(span)
        return max(0, int(count))

    def _limit(self, ref: str):
        if ref in self.cond_args:
            j = self.cond_args.index(ref)
            return fold(self.op.inputs[j]) if self._invariant(j) else None
        node = self.cond_nodes.get(ref.split(":")[0])
        return _const(node)

    def _body_output(self, k: int):
        """The body node (or arg name) that loop variable k's next value comes from."""
        ref = self.body.ret[self.body.signature.output_arg[k].name]
        for _ in range(32):
            name = ref.split(":")[0]
            node = self.body_nodes.get(name)
            if node is None or node.op not in _PASS_THROUGH:
                return node if node is not None else name
            ref = node.input[0]
        return None

    def _invariant(self, k: int) -> bool:
        return self._body_output(k) == self.body_args[k]

    def _step(self, k: int):
        """The constant loop variable k changes by per iteration (`i + c`, `c + i`, `i - c`)."""
        node = self._body_output(k)
        if node is None or isinstance(node, str) or node.op not in ("AddV2", "Add", "Sub"):
            return None
        a, b = node.input[0], node.input[1]
        arg = self.body_args[k]
        if node.op == "Sub":
            const = _const(self.body_nodes.get(b.split(":")[0])) if a == arg else None
            return None if const is None else -const
        other = b if a == arg else a if b == arg else None
        return None if other is None else _const(self.body_nodes.get(other.split(":")[0]))


def _const(node):
    """The scalar value of a Const NodeDef, else None."""
    if node is None or node.op != "Const":
        return None
    from tensorflow.python.framework import tensor_util

    value = tensor_util.MakeNdarray(node.attr["value"].tensor)
    return value.item() if value.size == 1 else None


_FOLDABLE_REDUCTIONS = {"Max": "max", "Min": "min", "Sum": "sum", "Prod": "prod"}


def fold(tensor, depth: int = 0):
    """The scalar value of a graph tensor computed from constants only, else None.

    TF's own folding (`tf.get_static_value`) first, then reductions of folded values (Keras
    RNNs bound their loops by `reduce_max` of the sequence length).
    """
    import numpy as np
    import tensorflow as tf

    try:
        value = tf.get_static_value(tensor)
    except Exception:  # some op types make TF's folder raise rather than give up
        value = None
    if value is None and tensor.op.type in _FOLDABLE_REDUCTIONS and depth < 8:
        data, axes = (fold_array(t, depth + 1) for t in tensor.op.inputs[:2])
        if data is not None and axes is not None:
            reduce = getattr(np, _FOLDABLE_REDUCTIONS[tensor.op.type])
            axis = tuple(int(a) for a in np.atleast_1d(axes))  # (): no axis reduced, as in TF
            value = reduce(np.asarray(data), axis=axis) if np.size(data) else None
    if value is None and tensor.op.type in WHILE_OP_TYPES and depth < 8:
        value = _loop_variable_after(tensor, depth)
    if value is None or np.size(value) != 1:
        return None
    return np.asarray(value).item()


def _loop_variable_after(tensor, depth: int):
    """The final value of a loop variable a While returns, when the body steps it by a
    constant from a constant start and the loop's trip count is static: start + step × trips.
    A While's gradient loops as many times as the forward loop, bounded by the forward loop's
    final counter, which this folds."""
    op = tensor.op
    library = _FunctionLibrary(op.graph)
    cond, body = library.get(op.get_attr("cond").name), library.get(op.get_attr("body").name)
    if cond is None or body is None:
        return None
    k = tensor.value_index
    start, step = fold(op.inputs[k], depth + 1), _Loop(op, cond, body)._step(k)
    trips = trip_count(op, library)
    if start is None or step is None or trips is None:
        return None
    return start + step * trips


def fold_array(tensor, depth: int = 0):
    """`tf.get_static_value`, with `fold` for scalars it cannot fold."""
    import tensorflow as tf

    try:
        value = tf.get_static_value(tensor)
    except Exception:
        value = None
    return value if value is not None else fold(tensor, depth)
