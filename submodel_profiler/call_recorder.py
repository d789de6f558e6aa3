"""Record layer calls while a model is traced: the one recorder behind subclassed models and
`--depth`.

`CallRecorder.wrap` is handed to `patching.wrapped_calls`, which replaces each layer's `call`
for the duration of a trace and restores every one in a `finally`. Each call becomes a
`CallSite`: which layer ran, on which arguments, what it returned, the graph ops it created (its
children's included), and the calls made inside it, down to `max_depth` levels. `site_rows`
turns a tree of sites into report rows: a site is expanded into its children plus an inline row
for the ops it runs itself, until the depth limit or a leaf.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from submodel_profiler.graph_walk import RowPlan, RowTrace, outputs_used

INLINE_NAME = "(inline ops)"


@dataclass(frozen=True)
class TensorSlot:
    """Placeholder for the index-th distinct tensor argument of a recorded call."""

    index: int


@dataclass
class CallSite:
    """One recorded layer call (mutable while the trace runs)."""

    layer: object
    args: tuple
    kwargs: dict
    depth: int  # 1: called by the traced code itself
    graph: object  # the graph the call ran in (a loop body has its own)
    outputs: object = None
    ops: list = field(default_factory=list)  # graph ops created during the call
    children: list = field(default_factory=list)

    def expandable(self) -> bool:
        """Whether there are children to expand into, all run in this call's graph (a call
        inside a loop body is counted through the loop node, so its parent stays one row)."""
        return bool(self.children) and all(c.graph is self.graph for c in self.children)


class CallRecorder:
    """Records the calls of the layers whose `call` it wraps, as a tree up to `max_depth`."""

    def __init__(self, max_depth: int = 1):
        self.max_depth = max_depth
        self.roots: list[CallSite] = []
        self._stack: list[CallSite] = []

    def wrap(self, layer, original):
        """The recording replacement of `layer.call` (`original`)."""

        def recorded_call(*args, **kwargs):
            import tensorflow as tf

            if len(self._stack) >= self.max_depth:
                return original(*args, **kwargs)
            graph = tf.compat.v1.get_default_graph()
            start = len(graph.get_operations())
            site = CallSite(layer, args, kwargs, len(self._stack) + 1, graph)
            (self._stack[-1].children if self._stack else self.roots).append(site)
            self._stack.append(site)
            try:
                site.outputs = original(*args, **kwargs)
            finally:
                self._stack.pop()
            site.ops = graph.get_operations()[start:]
            return site.outputs

        return recorded_call


def sublayers(layer) -> list:
    """The layers `layer` tracks directly (its attributes and lists of layers)."""
    try:
        return list(layer._flatten_layers(include_self=False, recursive=False))
    except AttributeError:
        return []


def layers_within(layers, levels: int) -> list:
    """The distinct layers among `layers` and their sublayers, `levels` levels deep."""
    found, frontier = {}, list(layers)
    for _ in range(max(levels, 0)):
        if not frontier:
            break
        nxt = []
        for layer in frontier:
            if id(layer) not in found:
                found[id(layer)] = layer
                nxt.extend(sublayers(layer))
        frontier = nxt
    return list(found.values())


def template(structure):
    """Replace the distinct tensors in `structure` by TensorSlots; return (template, tensors)."""
    import tensorflow as tf

    tensors, slots = [], {}

    def slot(value):
        if isinstance(value, tf.Tensor) and not isinstance(value, tf.Variable):
            if id(value) not in slots:
                slots[id(value)] = TensorSlot(len(tensors))
                tensors.append(value)
            return slots[id(value)]
        return value

    return tf.nest.map_structure(slot, structure), tensors


def fill_template(recorded, values):
    """The recorded (args, kwargs) with each TensorSlot replaced by values[slot.index]."""
    import tensorflow as tf

    return tf.nest.map_structure(
        lambda v: values[v.index] if isinstance(v, TensorSlot) else v, recorded
    )


@dataclass
class Expansion:
    """Rows (leaves, in call order) and the expanded parents of a tree of call sites."""

    rows: list = field(default_factory=list)  # RowPlans
    traces: dict = field(default_factory=dict)  # row key -> RowTrace
    parents: list = field(default_factory=list)  # RowPlans of the expanded sites
    parent_traces: dict = field(default_factory=dict)


def site_rows(
    sites,
    prefix: str,
    depth: int,
    max_depth: int,
    parent: str | None,
    into: Expansion | None = None,
    live=None,
) -> Expansion:
    """Rows for recorded call sites at `depth`, named `prefix + layer name` (`[k]` for the
    k-th call of a name). A site with children in its own graph is expanded while
    `depth < max_depth`: its children's rows, then an inline row for the ops it runs itself.
    `live`: the names of the traced graph's nodes that run (`flops.live_nodes`), for which
    outputs are used; None: every consumer counts."""
    out = Expansion() if into is None else into
    counts: dict = {}
    for site in sites:
        name = prefix + site.layer.name
        index = counts.get(name, 0)
        counts[name] = index + 1
        row, trace = _site_row(site, name, index, depth, parent, live)
        if depth < max_depth and site.expandable():
            out.parents.append(row)
            out.parent_traces[row.key] = trace
            site_rows(site.children, row.label + "/", depth + 1, max_depth, row.label, out, live)
            add_inline_row(
                out, row.label + "/", trace.op_names, site.children, depth + 1, row.label
            )
        else:
            out.rows.append(row)
            out.traces[row.key] = trace
    return out


def add_inline_row(
    out: Expansion, prefix: str, op_names, children, depth: int, parent: str | None
) -> None:
    """The row of the ops a call ran itself (its `op_names` less its children's), if any."""
    claimed = {op.name for site in children for op in site.ops}
    own = frozenset(op_names) - claimed
    if not own:
        return
    row = RowPlan(
        prefix + INLINE_NAME, "inline ops", "inline", 0, None, nodes=(), depth=depth, parent=parent
    )
    out.rows.append(row)
    out.traces[row.key] = RowTrace((), (), own)


def _site_row(site: CallSite, name: str, index: int, depth: int, parent, live=None):
    import tensorflow as tf

    recorded, tensors = template((site.args, site.kwargs))
    flat = [t for t in tf.nest.flatten(site.outputs) if isinstance(t, tf.Tensor)]
    names = frozenset(op.name for op in site.ops)
    row = RowPlan(
        name,
        type(site.layer).__name__,
        "layer",
        index,
        site.layer,
        nodes=(),
        call_template=recorded,
        depth=depth,
        parent=parent,
    )
    trace = RowTrace(
        input_specs=tuple(tf.TensorSpec(t.shape, t.dtype) for t in tensors),
        output_specs=tuple(tf.TensorSpec(t.shape, t.dtype) for t in flat),
        op_names=names,
        outputs_used=outputs_used(flat, names, live),
        input_names=tuple(getattr(t, "name", None) for t in tensors),  # eager: none
    )
    return row, trace
