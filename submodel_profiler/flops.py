"""Count float ops in a TensorFlow graph with TF's own profiler.

Counting convention (stated once, used everywhere): these are the float ops TensorFlow's
profiler (`tf.compat.v1.profiler`, `ProfileOptionBuilder.float_operation()`) registers for
each op type. A multiply-add counts as 2 float ops, so a Conv2D counts 2·K²·Cin·Cout·Hout·Wout.
Op types with no registered count (Relu, Sigmoid, Erf, FusedBatchNormV3, ...) count 0: every
figure is a lower bound, and `GraphFlops.uncounted_ops` names the op types that were skipped.

TF's profiler also counts nothing inside function-call nodes (`PartitionedCall`,
`StatefulPartitionedCall`: Keras 3 runs grouped convolutions in one). Their bodies are taken
from the graph's function library, rebuilt with the call's static input shapes, profiled the
same way and added to the call node, so a call node's count is its whole body's.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass, field

COUNTING_CONVENTION = (
    "Float ops are counted by TensorFlow's profiler: a multiply-add counts as 2 float ops. "
    "Op types TF does not count (e.g. Relu, Sigmoid, FusedBatchNormV3) add 0, so counts are lower "
    "bounds; rows marked * contain such ops."
)

# Op types that move, reshape, read or route data and do no arithmetic. They are neither
# counted nor reported as uncounted.
NON_ARITHMETIC_OPS = frozenset(
    """
    Placeholder Const Identity IdentityN NoOp ReadVariableOp VarHandleOp AssignVariableOp
    Reshape Shape ShapeN Size Rank Squeeze ExpandDims StridedSlice Slice ConcatV2 Concat Pack
    Unpack Transpose Pad PadV2 MirrorPad Fill Range GatherV2 GatherNd Gather Tile Split SplitV
    StopGradient PreventGradient BroadcastTo BroadcastArgs ZerosLike OnesLike Cast Bitcast
    Snapshot DepthToSpace SpaceToDepth ResizeNearestNeighbor Select SelectV2 Where Enter Exit
    Merge Switch NextIteration LoopCond _Arg _Retval EnsureShape CheckNumerics Assert
    """.split()
)


# Op types that call a function from the graph's library with their inputs as its arguments.
# TF's profiler counts nothing inside them (Keras 3 runs grouped convolutions in such a call), so
# their bodies are counted separately and added to the call node. Other function-calling ops
# (If, While, Case, ...) stay uncounted and are reported under their own type.
CALL_OP_TYPES = frozenset({"PartitionedCall", "StatefulPartitionedCall"})

# The profiler's notice (on stderr) that it skipped ops whose shapes are not fully defined.
_INCOMPLETE_SHAPES_NOTICE = "no flops stats due to incomplete shapes"


@dataclass(frozen=True)
class GraphFlops:
    """Float ops of one graph: the profiler's total and its per-node split.

    `per_node` maps graph node names to float ops (nodes with 0 are omitted); a function-call
    node (`CALL_OP_TYPES`) carries the float ops of its function body, nested calls included.
    `total` is the sum of `per_node`.
    `uncounted_nodes` maps the names of arithmetic nodes TF's profiler assigns no float-op
    count to, to their op type; a call node whose body could not be counted is one of them.
    `uncounted_in_calls` maps the name of a call node whose body was counted to the uncounted
    op types inside that body ({op type: count}), so filtering by outer node names finds them.
    """

    total: int
    per_node: dict
    uncounted_nodes: dict
    uncounted_in_calls: dict = field(default_factory=dict)

    def flops_of(self, names) -> int:
        """Float ops of the named nodes."""
        return sum(self.per_node.get(name, 0) for name in names)

    def uncounted_ops(self, names=None) -> dict:
        """Per op type, how many uncounted nodes there are (among `names`, if given).

        Uncounted ops inside a counted call's body are included when the call node is.
        """
        nodes, inner = self.uncounted_nodes, self.uncounted_in_calls
        counts: Counter = Counter()
        for name in (nodes.keys() | inner.keys()) if names is None else names:
            if name in nodes:
                counts[nodes[name]] += 1
            if name in inner:
                counts.update(inner[name])
        return dict(sorted(counts.items()))


def count_graph_flops(graph) -> GraphFlops:
    """Profile `graph` with TF's float-op profiler, function-call bodies included; prints nothing.

    Shapes in `graph` must be fully defined: TF counts 0 for ops with unknown dims (they are
    then reported in `uncounted_nodes`). The body of each `CALL_OP_TYPES` node is looked up in
    the graph's function library, rebuilt with the call's static input shapes, profiled the same
    way (recursively) and added to the call node.
    """
    with quiet_tf():
        return _count(graph, _FunctionLibrary(graph), active=())


def _count(graph, library: _FunctionLibrary, active: tuple) -> GraphFlops:
    """`count_graph_flops` of `graph`, with `active` the names of the enclosing function bodies."""
    total, per_node, incomplete_shapes = _profile(graph)
    uncounted = uncounted_nodes(graph, per_op=incomplete_shapes)
    in_calls = {}
    for name in [n for n, op_type in uncounted.items() if op_type in CALL_OP_TYPES]:
        body = _call_body(graph.get_operation_by_name(name), library, active)
        if body is None:
            continue  # Stays uncounted under its call type.
        del uncounted[name]
        if body.flops:
            per_node[name] = per_node.get(name, 0) + body.flops
            total += body.flops
        if body.uncounted:
            in_calls[name] = body.uncounted
    return GraphFlops(total, per_node, uncounted, in_calls)


def _profile(graph):
    """(total, {node name: float ops}, whether some op had incomplete shapes) from TF's profiler."""
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
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


def uncounted_nodes(graph, per_op: bool = False) -> dict:
    """Names (and op types) of the arithmetic nodes TF's profiler has no float-op count for.

    By default one node per op type is asked (fast); `per_op=True` asks every node, which also
    finds nodes of a counted type skipped for incomplete shapes.
    """
    from tensorflow.python.framework import ops as tf_ops

    registered: dict = {}
    found = {}
    for op in graph.get_operations():
        if op.type in NON_ARITHMETIC_OPS:
            continue
        if per_op:
            counted = _has_flops_statistic(tf_ops, graph, op)
        else:
            if op.type not in registered:
                registered[op.type] = _has_flops_statistic(tf_ops, graph, op)
            counted = registered[op.type]
        if not counted:
            found[op.name] = op.type
    return found


def _has_flops_statistic(tf_ops, graph, op) -> bool:
    try:
        return tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value is not None
    except Exception:  # A registered statistic that fails on this node counts as uncounted.
        return False


@dataclass(frozen=True)
class _Body:
    """Float ops of one function body for one set of argument specs, nested calls included."""

    flops: int
    uncounted: dict  # {op type: count}


# Counted bodies by (digest of the body and the functions it calls, argument specs). Function
# names are left out of the digest, so identical bodies traced in different graphs share an
# entry (a Keras grouped conv traced for its sub-model and again for the whole model).
_BODY_CACHE: dict = {}
_BODY_CACHE_SIZE = 4096


def _call_body(op, library: _FunctionLibrary, active: tuple) -> _Body | None:
    """Float ops of the body a call node runs, or None if the body cannot be counted."""
    name = op.get_attr("f").name
    functions = library.closure(name)
    if functions is None or name in active:  # Missing from the library, or recursive.
        return None
    fdef = functions[0]
    if len(fdef.signature.input_arg) != len(op.inputs):
        return None
    specs = tuple(_arg_spec(t) for t in op.inputs)
    key = (_digest(functions), specs)
    if key not in _BODY_CACHE:
        try:
            body_graph = _body_graph(functions, op.inputs)
        except Exception:  # Any failure to rebuild the body leaves the call uncounted.
            return None
        flops = _count(body_graph, library, active + (name,))
        if len(_BODY_CACHE) >= _BODY_CACHE_SIZE:
            _BODY_CACHE.clear()
        _BODY_CACHE[key] = _Body(flops.total, flops.uncounted_ops())
    return _BODY_CACHE[key]


def _arg_spec(tensor) -> tuple:
    """(dtype, static shape, handle data): what the body's shapes depend on."""
    from tensorflow.python.ops import handle_data_util

    shape = tuple(tensor.shape.as_list()) if tensor.shape.rank is not None else None
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


def _body_graph(functions, call_inputs):
    """A graph of the body `functions[0]` with placeholders shaped like `call_inputs`.

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
        library.library.function.extend(functions)
        importer.import_graph_def(library, name="")  # Nested calls need their functions.
        args = {}
        for i, (arg, tensor) in enumerate(zip(fdef.signature.input_arg, call_inputs)):
            placeholder = tf.compat.v1.placeholder(tensor.dtype, tensor.shape, name=f"arg_{i}")
            if tensor.dtype in (tf.resource, tf.variant):
                data = handle_data_util.get_resource_handle_data(tensor)
                handle_data_util.set_handle_data(placeholder, data)
            args[f"{arg.name}:0"] = placeholder
        graph_def, _ = function_def_to_graph.function_def_to_graph_def(fdef)
        importer.import_graph_def(graph_def, input_map=args, name="body")
    return graph


class _FunctionLibrary:
    """The FunctionDefs of a graph's library by name, read only when a call node needs it."""

    def __init__(self, graph):
        self._graph = graph
        self._functions = None

    def closure(self, name: str) -> list | None:
        """FunctionDef `name` first, then every function it calls (transitively); None if
        `name` or a function it calls is not in the library."""
        if self._functions is None:
            library = self._graph.as_graph_def().library
            self._functions = {f.signature.name: f for f in library.function}
        found, todo = {}, [name]
        while todo:
            fname = todo.pop()
            if fname in found:
                continue
            if fname not in self._functions:
                return None
            found[fname] = fdef = self._functions[fname]
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


@contextlib.contextmanager
def quiet_tf():
    """Silence TF's Python logger, the profiler's deprecation notices and stdout for a block."""
    from tensorflow.python.util import deprecation

    was_printing = deprecation._PRINT_DEPRECATION_WARNINGS
    deprecation._PRINT_DEPRECATION_WARNINGS = False
    try:
        with tf_warnings_silenced(), contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        deprecation._PRINT_DEPRECATION_WARNINGS = was_printing


@contextlib.contextmanager
def tf_warnings_silenced():
    """TF's Python logger at ERROR for a block: the profiler creates many tf.functions on
    purpose, and TF's "triggered tf.function retracing" notices would only mislead users."""
    import tensorflow as tf

    logger = tf.get_logger()
    level = logger.level
    logger.setLevel("ERROR")
    try:
        yield
    finally:
        logger.setLevel(level)
