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

INLINE_NAME = "(inline ops)"


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
        """Children to expand into, all run in this call's graph (a call inside a loop body
        is counted through the loop node, so its parent stays one row)."""
        return bool(self.children) and all(
            c.graph is self.graph and c.expandable_or_leaf() for c in self.children
        )

    def expandable_or_leaf(self) -> bool:
        return not self.children or all(c.graph is self.graph for c in self.children)


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
        nxt = []
        for layer in frontier:
            if id(layer) not in found:
                found[id(layer)] = layer
                nxt.extend(sublayers(layer))
        frontier = nxt
    return list(found.values())
