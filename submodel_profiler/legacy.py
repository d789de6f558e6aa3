"""Read Keras 2 (tf.keras 2.x / `tf_keras`) `.h5` files that Keras 3 refuses as they are.

Three things stop Keras 3 on most such files, and `rewrite_config` repairs each in the
model config:

- layer names with a `/` (tf.keras 2's own MobileNetV3 names its layers `Conv/BatchNorm`),
  which Keras 3 refuses: `/` becomes `_`;
- the `TFOpLambda` / `SlicingOpLambda` layers tf.keras 2 inserts wherever a TensorFlow
  function is called on a Keras tensor (`x + 3.0` is `tf.__operators__.add`, `x[:, 0]` is
  `tf.__operators__.getitem`), which Keras 3 has no class for: each becomes an operation of
  ours, not a layer, that calls the recorded TF function with the recorded arguments, so
  the profiler treats it as the ghost op Keras 3 makes of `x + 3.0`;
- calls of a nested model (a backbone inside a model): tf_keras counts the model's own
  construction as its node 0, Keras 3 does not, so each reference drops by one.

Keras 3's own loader then reads a temporary `.h5` holding the rewritten config and a copy
of each layer's weights under the layer's new name (Keras refuses links between `.h5`
files), and the weights are checked to have reached the layers saved under those names.
"""

from __future__ import annotations

import functools
import json
import os
import tempfile

import keras

# tf_keras' serialised node data (tf_keras/src/engine/node.py): a tensor is
# [layer_name, node_index, tensor_index] (+ the call's kwargs on the first argument's tensors);
# a constant in the first argument is [_CONSTANT, -1, value, kwargs].
_CONSTANT = "_CONSTANT_VALUE"
_SLOT = "__tensor__"  # {"__tensor__": k} in a recorded call: the k-th tensor of the call
_OP_CLASSES = ("TFOpLambda", "SlicingOpLambda")
# Keras 2 op layers on ragged or sparse tensors, which Keras 3 does not have.
_REFUSED_CLASSES = {
    "ClassMethod": "a tf.RaggedTensor class method called on a Keras tensor",
    "InstanceMethod": "a method of a ragged or sparse Keras tensor",
    "InstanceProperty": "a property of a ragged or sparse Keras tensor",
}
_MODEL_CLASSES = ("Functional", "Model", "Sequential")
# TF functions that write files or run Python: called only with safe mode off.
_UNSAFE_PREFIXES = ("io.", "compat.v1.io.", "summary.", "compat.v1.summary.", "saved_model.")
_UNSAFE_NAMES = ("py_function", "numpy_function", "compat.v1.py_func")

_REBUILD = (
    "To profile it, rebuild the model with Keras 3, with keras.ops or a layer in place of "
    "that op, and copy the weights over (layer.set_weights)."
)


class LegacyRefusal(ValueError):
    """A Keras 2 file holds something that cannot be rebuilt in Keras 3; the message says
    what and what to do."""


def needs_rewrite(config: dict) -> bool:
    """True if a Keras 2 model config holds an op layer, a layer name with a `/` or a call of
    a nested model."""
    for layer in _layers(config):
        if layer.get("class_name") in (*_OP_CLASSES, *_REFUSED_CLASSES):
            return True
        if "/" in _name(layer):
            return True
        if layer.get("class_name") in _MODEL_CLASSES and needs_rewrite(layer):
            return True
        if _skips_first_node(layer) and layer.get("inbound_nodes"):
            return True  # a nested model, called
    return "/" in str(config.get("config", {}).get("name", ""))


def rewrite_config(config: dict, safe_mode: bool = True) -> tuple[dict, dict]:
    """A Keras 3-loadable copy of a Keras 2 model config, and {old name: new name} of the
    renamed top-level layers (the names the file's weight groups are under).

    Raises:
        LegacyRefusal: an op layer whose function is not in this TensorFlow, or (safe mode)
            writes files or runs Python, or a Keras 2 op layer on ragged or sparse tensors.
    """
    config = json.loads(json.dumps(config))  # a deep copy
    renames = _relink(config)
    names = {_name(layer) for layer in _layers(config)}
    for layer in _layers(config):
        kind = layer.get("class_name")
        if kind in _REFUSED_CLASSES:
            raise LegacyRefusal(
                f"it holds a {kind} layer ({layer['name']!r}), "
                f"{_REFUSED_CLASSES[kind]}, which Keras 3 cannot represent. {_REBUILD}"
            )
        if kind in _OP_CLASSES:
            _check_function(layer, safe_mode)
            _op_layer(layer, names)
        elif kind in _MODEL_CLASSES and "layers" in layer.get("config", {}):
            layer["config"] = rewrite_config(layer, safe_mode)[0]["config"]
    return config, renames


def load_h5(path: str, custom_objects: dict, safe_mode: bool):
    """The Keras 3 model of a Keras 2 `.h5` model file that needs rewriting; None if the file
    needs none (or is not a full model file), to be loaded the ordinary way.

    Raises:
        LegacyRefusal: what `rewrite_config` refuses.
    """
    import h5py

    with tempfile.TemporaryDirectory() as folder:
        shim = os.path.join(folder, "rewritten.h5")
        with h5py.File(path, "r") as f:
            raw = f.attrs.get("model_config")
            if raw is None or "model_weights" not in f:
                return None
            config = json.loads(raw.decode("utf-8") if hasattr(raw, "decode") else raw)
            if not needs_rewrite(config):
                return None
            config, renames = rewrite_config(config, safe_mode)
            _write_shim(shim, f, config, renames)
        model = keras.saving.load_model(
            shim,
            custom_objects={**custom_objects, **op_objects()},
            compile=False,
            safe_mode=safe_mode,
        )
        _check_weights_paired(model, shim)
    return model


def op_objects() -> dict:
    """Custom objects for the rewritten op layers: class name -> our operation class."""
    return {"TFOpLambda": TFOpLambda, "SlicingOpLambda": SlicingOpLambda}


def resolve_tf_function(name: str):
    """The public TensorFlow function tf.keras 2 recorded as `name` (`math.add`,
    `__operators__.getitem`, `compat.v1.shape`), or None if this TensorFlow has none."""
    import tensorflow as tf

    try:
        function = functools.reduce(getattr, name.split("."), tf)
    except AttributeError:
        return None
    return function if callable(function) else None


# --- the config rewrite ------------------------------------------------------------------


def _layers(config: dict) -> list:
    layers = config.get("config", {}).get("layers", [])
    return layers if isinstance(layers, list) else []


def _name(layer: dict) -> str:
    return str(layer.get("name") or layer.get("config", {}).get("name") or "")


def _relink(config: dict) -> dict:
    """Fix this level's layer names and the references to them, in place: a `/` becomes `_`
    (names made unique), and a call of a nested model is counted from 0, as Keras 3 counts it
    (tf_keras counts a model's own construction as its node 0). Returns {old: new name}."""
    inner = config.get("config", {})
    layers = _layers(config)
    renames = _new_names(layers)
    if "/" in str(inner.get("name", "")):
        inner["name"] = inner["name"].replace("/", "_")
    shifted = {_name(layer): layer["class_name"] for layer in layers if _skips_first_node(layer)}
    for layer in layers:
        old = _name(layer)
        if old in renames:
            if "name" in layer:  # Functional layer entries name the layer twice
                layer["name"] = renames[old]
            layer.setdefault("config", {})["name"] = renames[old]
        if "inbound_nodes" in layer:
            layer["inbound_nodes"] = _relink_refs(layer["inbound_nodes"], renames, shifted)
    # Keras 3 shifts the model outputs a nested Functional makes itself, not a Sequential's.
    sequential = {n for n, kind in shifted.items() if kind == "Sequential"}
    for key in ("input_layers", "output_layers"):
        if key in inner:
            inner[key] = _relink_refs(inner[key], renames, sequential)
    return renames


def _new_names(layers: list) -> dict:
    taken = {_name(layer) for layer in layers}
    renames = {}
    for layer in layers:
        old = _name(layer)
        if "/" not in old:
            continue
        new = base = old.replace("/", "_")
        k = 0
        while new in taken:
            k += 1
            new = f"{base}_{k}"
        taken.add(new)
        renames[old] = new
    return renames


def _skips_first_node(layer: dict) -> bool:
    """tf_keras' `_should_skip_first_node`, read from a layer's config: a nested model built
    on inputs (a Functional; a Sequential whose first layer is an InputLayer)."""
    kind = layer.get("class_name")
    if kind in ("Functional", "Model"):
        return True
    first = _layers(layer)[:1]
    return kind == "Sequential" and bool(first) and first[0].get("class_name") == "InputLayer"


def _is_ref(value) -> bool:
    """tf_keras' test for serialised node data: a 3- or 4-list starting with a string."""
    return isinstance(value, list) and len(value) in (3, 4) and isinstance(value[0], str)


def _relink_refs(value, renames: dict, shifted):
    if _is_ref(value):
        name, node = value[0], value[1]
        if name in shifted and isinstance(node, int) and node > 0:
            node -= 1
        head = [renames.get(name, name), node, value[2]]
        return head + [_relink_refs(value[3], renames, shifted)] if len(value) == 4 else head
    if isinstance(value, list):
        return [_relink_refs(v, renames, shifted) for v in value]
    if isinstance(value, dict):
        return {k: _relink_refs(v, renames, shifted) for k, v in value.items()}
    return value


def _op_layer(layer: dict, names: set) -> None:
    """Rewrite a tf_keras op layer in place: its recorded call, constants and one slot per
    tensor, goes into its config as `arguments`; its inbound nodes list only the tensors, in
    slot order (the op is called with them, as one list)."""
    calls = [_split_call(node, names) for node in layer.get("inbound_nodes", [])]
    if len({json.dumps(arguments, sort_keys=True) for arguments, _ in calls}) > 1:
        raise LegacyRefusal(
            f"its {layer['class_name']} layer {layer['name']!r} is called several times with "
            f"different arguments, which one Keras 3 operation cannot hold. {_REBUILD}"
        )
    layer["config"]["arguments"] = calls[0][0] if calls else {"args": [], "kwargs": {}}
    layer["inbound_nodes"] = [[[*ref, {}] for ref in refs] for _, refs in calls]


def _split_call(node_data, names: set) -> tuple[dict, list]:
    """One call of a tf_keras op layer: ({"args": [first argument], "kwargs": {...}} with
    each tensor replaced by a slot {"__tensor__": k}, [the k-th tensor's reference]). `name`
    is dropped, as tf_keras' TFOpLambda drops it."""
    refs, kwargs = [], {}

    def slot(ref):
        refs.append(list(ref[:3]))
        return {_SLOT: len(refs) - 1}

    def first(value):  # the first argument: tf_keras writes the call's kwargs on its tensors
        nonlocal kwargs
        if _is_ref(value) and (value[0] in names or value[0] == _CONSTANT):
            kwargs = value[3] if len(value) == 4 and value[3] else kwargs
            return _constant(value[2]) if value[0] == _CONSTANT else slot(value)
        if isinstance(value, list):
            return [first(v) for v in value]
        return _constant(value)

    def keyword(value):
        if _is_ref(value) and len(value) == 3 and value[0] in names:
            return slot(value)
        if isinstance(value, list):
            return [keyword(v) for v in _constant(value)]
        if isinstance(value, dict):
            return {k: keyword(v) for k, v in value.items()}
        return value

    args = [first(node_data)]
    kwargs = {k: keyword(v) for k, v in kwargs.items() if k != "name"}
    return {"args": args, "kwargs": kwargs}, refs


def _constant(value):
    """A recorded constant. Ragged and sparse constants (tf_keras writes them as
    [{"_TYPE": "COMPOSITE"}, json]) are refused."""
    if isinstance(value, list) and value[:1] == [{"_TYPE": "COMPOSITE"}]:
        raise LegacyRefusal(
            f"it holds an op layer with a ragged or sparse constant argument. {_REBUILD}"
        )
    return value


def _check_function(layer: dict, safe_mode: bool) -> None:
    name = layer.get("config", {}).get("function")
    where = f"its {layer['class_name']} layer {layer['name']!r} calls tf.{name}"
    if not isinstance(name, str) or resolve_tf_function(name) is None:
        raise LegacyRefusal(
            f"{where}, which this TensorFlow does not have (a function renamed or removed "
            f"since the file was written). {_REBUILD}"
        )
    if safe_mode and (name.startswith(_UNSAFE_PREFIXES) or name in _UNSAFE_NAMES):
        raise LegacyRefusal(
            f"{where}, which writes files or runs Python; safe mode refuses it. If you trust "
            "the file, pass --no-safe-mode (API: load_model(..., safe_mode=False))."
        )


# --- the operations ----------------------------------------------------------------------


class TFOpLambda(keras.Operation):
    """Calls the TensorFlow function tf.keras 2 recorded (`function`, e.g. `math.add`) with
    the recorded `arguments` ({"args": [...], "kwargs": {...}}, each tensor a slot
    {"__tensor__": k} filled from the tensors the op is called with). An operation, not a
    layer: it holds no weights, and the profiler treats it as a ghost op, like Keras 3's
    `x + 3.0`."""

    def __init__(self, function: str, arguments: dict, name: str | None = None, **kwargs):
        super().__init__(name=name)
        self.function, self.arguments = function, arguments
        self._fn = resolve_tf_function(function)
        if self._fn is None:
            raise ValueError(f"TensorFlow has no function tf.{function}")

    def call(self, tensors):
        tensors = list(tensors) if isinstance(tensors, (list, tuple)) else [tensors]
        args = _fill(self.arguments["args"], tensors)
        kwargs = _fill(self.arguments["kwargs"], tensors)
        return self._fn(*args, **kwargs)

    def get_config(self):
        return {"name": self.name, "function": self.function, "arguments": self.arguments}

    @classmethod
    def from_config(cls, config):
        return cls(**config)


class SlicingOpLambda(TFOpLambda):
    """TFOpLambda for `x[...]` and boolean masks: tf_keras recorded slices as {start, stop,
    step} dicts, turned back into slices here (its rule: a dict, alone or in a list, is a
    slice)."""

    def __init__(self, function: str, arguments: dict, name: str | None = None, **kwargs):
        super().__init__(function, _with_slices(arguments), name, **kwargs)


def _with_slices(arguments: dict) -> dict:
    def convert(value):
        if isinstance(value, dict) and set(value) == {"start", "stop", "step"}:
            return slice(value["start"], value["stop"], value["step"])
        if isinstance(value, (list, tuple)):
            return type(value)(convert(v) if isinstance(v, dict) else v for v in value)
        return value

    return {
        "args": [convert(a) for a in arguments["args"]],
        "kwargs": {k: convert(v) for k, v in arguments["kwargs"].items()},
    }


def _fill(value, tensors: list):
    """`value` with each slot {"__tensor__": k} replaced by tensors[k]."""
    if isinstance(value, dict):
        if set(value) == {_SLOT}:
            return tensors[value[_SLOT]]
        return {k: _fill(v, tensors) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return type(value)(_fill(v, tensors) for v in value)
    if isinstance(value, slice):
        return slice(*(_fill(v, tensors) for v in (value.start, value.stop, value.step)))
    return value


# --- the weights ---------------------------------------------------------------------------


def _write_shim(shim: str, original, config: dict, renames: dict) -> None:
    """A Keras 2 `.h5` holding the rewritten config and each layer's weights under its new
    name (copied: Keras refuses links in `.h5` files)."""
    import h5py

    weights = original["model_weights"]
    names = _read_names(weights, "layer_names")
    with h5py.File(shim, "w") as out:
        for key, value in original.attrs.items():
            if key != "model_config":
                out.attrs[key] = value
        out.attrs["model_config"] = json.dumps(config)
        group = out.create_group("model_weights")
        for key, value in weights.attrs.items():
            if not key.startswith("layer_names"):
                group.attrs[key] = value
        _write_names(group, "layer_names", [renames.get(n, n) for n in names])
        for name in names:
            _copy_weights(weights[name], group.create_group(renames.get(name, name)))
        if "top_level_model_weights" in weights:
            _copy_weights(
                weights["top_level_model_weights"], group.create_group("top_level_model_weights")
            )


def _copy_weights(source, target) -> None:
    """The datasets a layer's `weight_names` name, at the same paths under `target`."""
    names = _read_names(source, "weight_names")
    for key, value in source.attrs.items():
        if key.startswith("weight_names"):
            target.attrs[key] = value
    for name in names:
        target.create_dataset(name, data=source[name][()])


def _check_weights_paired(model, shim: str) -> None:
    """Keras reads `.h5` weights by position; make sure each weighted layer got the weights
    saved under its own name, and reload them by name otherwise."""
    import h5py

    with h5py.File(shim, "r") as f:
        group = f["model_weights"]
        saved = [
            n for n in _read_names(group, "layer_names") if _read_names(group[n], "weight_names")
        ]
    built = [layer.name for layer in model.layers if layer.weights]
    if saved != built:
        model.load_weights(shim, by_name=True)


# Keras splits a long name list over `name0`, `name1`, ... to stay under HDF5's 64 KiB header.
_HEADER_LIMIT = 64512


def _read_names(group, key: str) -> list[str]:
    def decode(values):
        return [v.decode("utf-8") if hasattr(v, "decode") else str(v) for v in values]

    if key in group.attrs:
        return decode(group.attrs[key])
    names, k = [], 0
    while f"{key}{k}" in group.attrs:
        names += decode(group.attrs[f"{key}{k}"])
        k += 1
    return names


def _write_names(group, key: str, names: list[str]) -> None:
    import numpy as np

    data = np.asarray([n.encode("utf-8") for n in names])
    chunks = 1
    while any(part.nbytes > _HEADER_LIMIT for part in np.array_split(data, chunks)):
        chunks += 1
    if chunks == 1:
        group.attrs[key] = data
        return
    for k, part in enumerate(np.array_split(data, chunks)):
        group.attrs[f"{key}{k}"] = part
