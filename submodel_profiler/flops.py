"""Count float ops in a TensorFlow graph with TF's own profiler.

Counting convention (stated once, used everywhere): these are the float ops TensorFlow's
profiler (`tf.compat.v1.profiler`, `ProfileOptionBuilder.float_operation()`) registers for
each op type. A multiply-add counts as 2 float ops, so a Conv2D counts 2·K²·Cin·Cout·Hout·Wout.
Op types with no registered count (Relu, Sigmoid, Erf, FusedBatchNormV3, ...) count 0: every
figure is a lower bound, and `GraphFlops.uncounted_ops` names the op types that were skipped.
"""

from __future__ import annotations

import contextlib
import io
from collections import Counter
from dataclasses import dataclass

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


@dataclass(frozen=True)
class GraphFlops:
    """Float ops of one graph: the profiler's total and its per-node split.

    `per_node` maps graph node names to float ops (nodes with 0 are omitted);
    `uncounted_nodes` maps the names of arithmetic nodes TF's profiler assigns no float-op
    count to, to their op type.
    """

    total: int
    per_node: dict
    uncounted_nodes: dict

    def flops_of(self, names) -> int:
        """Float ops of the named nodes."""
        return sum(self.per_node.get(name, 0) for name in names)

    def uncounted_ops(self, names=None) -> dict:
        """Per op type, how many uncounted nodes there are (among `names`, if given)."""
        nodes = self.uncounted_nodes
        types = nodes.values() if names is None else (nodes[n] for n in names if n in nodes)
        return dict(sorted(Counter(types).items()))


def count_graph_flops(graph) -> GraphFlops:
    """Profile `graph` with TF's float-op profiler; prints nothing.

    Shapes in `graph` must be fully defined: TF silently counts 0 for ops with unknown dims.
    """
    from tensorflow.python.profiler import model_analyzer
    from tensorflow.python.profiler.option_builder import ProfileOptionBuilder

    options = (
        ProfileOptionBuilder(ProfileOptionBuilder.float_operation())
        .with_empty_output()
        .build()
    )
    with quiet_tf():
        proto = model_analyzer.profile(graph, options=options)
        uncounted = uncounted_nodes(graph)
    per_node = {}
    stack = [proto]
    while stack:
        node = stack.pop()
        if node.float_ops:
            per_node[node.name] = int(node.float_ops)
        stack.extend(node.children)
    return GraphFlops(int(proto.total_float_ops), per_node, uncounted)


def uncounted_nodes(graph) -> dict:
    """Names (and op types) of the arithmetic nodes TF's profiler has no float-op count for."""
    from tensorflow.python.framework import ops as tf_ops

    registered: dict = {}
    found = {}
    for op in graph.get_operations():
        if op.type in NON_ARITHMETIC_OPS:
            continue
        if op.type not in registered:
            registered[op.type] = _has_flops_statistic(tf_ops, graph, op)
        if not registered[op.type]:
            found[op.name] = op.type
    return found


def _has_flops_statistic(tf_ops, graph, op) -> bool:
    try:
        return tf_ops.get_stats_for_node_def(graph, op.node_def, "flops").value is not None
    except Exception:  # A registered statistic that fails on this node counts as uncounted.
        return False


@contextlib.contextmanager
def quiet_tf():
    """Silence TF's Python logger and the profiler's deprecation notices for a block."""
    import tensorflow as tf
    from tensorflow.python.util import deprecation

    logger = tf.get_logger()
    level = logger.level
    was_printing = deprecation._PRINT_DEPRECATION_WARNINGS
    logger.setLevel("ERROR")
    deprecation._PRINT_DEPRECATION_WARNINGS = False
    try:
        with contextlib.redirect_stdout(io.StringIO()):
            yield
    finally:
        logger.setLevel(level)
        deprecation._PRINT_DEPRECATION_WARNINGS = was_printing
