"""Patch once, restore always: patching.py on plain objects and Keras layers."""

from __future__ import annotations

import pytest

from submodel_profiler.patching import Patches, replace_attribute, wrapped_calls


class Thing:
    def call(self, x):
        return x + 1


def test_replace_attribute_undo_deletes_what_the_instance_did_not_hold():
    thing = Thing()
    undo = replace_attribute(thing, "call", lambda x: x * 10)
    assert thing.call(2) == 20 and "call" in vars(thing)
    undo()
    assert "call" not in vars(thing) and thing.call(2) == 3


def test_patches_restore_last_first():
    thing, seen = Thing(), []
    patches = Patches()
    patches.replace(thing, "value", 1)
    patches.add(lambda: seen.append(getattr(thing, "value", None)))
    patches.replace(thing, "value", 2)
    patches.restore()
    assert seen == [1] and not hasattr(thing, "value") and not patches


def test_wrapped_calls_restores_everything_when_wrapping_fails_half_way():
    things = [Thing(), Thing(), Thing()]

    def wrap(thing, call):
        if thing is things[2]:
            raise RuntimeError("cannot wrap the third")
        return lambda x: call(x) * 100

    with pytest.raises(RuntimeError), wrapped_calls(things, wrap):
        pass  # never reached: entering fails on the third
    assert all("call" not in vars(t) and t.call(1) == 2 for t in things)


def test_wrapped_calls_restores_keras_layers_after_an_error_in_the_block(keras):
    layers = [keras.layers.Dense(2), keras.layers.ReLU()]
    originals = [vars(layer).get("call") for layer in layers]
    with pytest.raises(ValueError), wrapped_calls(layers, lambda layer, call: call):
        assert all("call" in vars(layer) for layer in layers)
        raise ValueError("the block fails")
    assert [vars(layer).get("call") for layer in layers] == originals
