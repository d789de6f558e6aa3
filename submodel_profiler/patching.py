"""Patch once, restore always: every attribute this package replaces on a user's object.

`replace_attribute` returns the undo of one replacement; `Patches` collects undos and applies
them in reverse; `wrapped_calls` replaces layers' `call` for a block and restores every one in a
`finally`, also when wrapping fails half-way. Used by the subclassed-model recorder and the
timing callback.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable

_MISSING = object()


def replace_attribute(owner, name: str, value) -> Callable[[], None]:
    """Set `owner.name = value` as an instance attribute; return the function undoing it.

    Keras' attribute tracking is bypassed in both directions, so nothing else is recorded on
    `owner`. An attribute the instance did not hold (a method) is deleted again on undo.
    """
    before = vars(owner).get(name, _MISSING)
    object.__setattr__(owner, name, value)

    def undo() -> None:
        if before is _MISSING:
            if name in vars(owner):
                object.__delattr__(owner, name)
        else:
            object.__setattr__(owner, name, before)

    return undo


class Patches:
    """Undos of replacements, applied last first by `restore` (safe to call any time)."""

    def __init__(self):
        self._undo: list[Callable[[], None]] = []

    def replace(self, owner, name: str, value) -> None:
        """`replace_attribute`, its undo recorded."""
        self._undo.append(replace_attribute(owner, name, value))

    def add(self, undo: Callable[[], None]) -> None:
        self._undo.append(undo)

    def restore(self) -> None:
        undo, self._undo = self._undo, []
        for step in reversed(undo):
            step()

    def __bool__(self) -> bool:
        return bool(self._undo)


@contextlib.contextmanager
def wrapped_calls(layers: Iterable, wrap: Callable):
    """Each layer's `call` replaced by `wrap(layer, layer.call)` for the block; all restored on
    exit, also when `wrap` or a replacement fails half-way."""
    patches = Patches()
    try:
        for layer in layers:
            patches.replace(layer, "call", wrap(layer, layer.call))
        yield
    finally:
        patches.restore()
