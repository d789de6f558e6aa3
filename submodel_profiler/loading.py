"""Turn what the user named (a model file or a `keras.applications` name) into a Keras model.

Applications are always built with `weights=None`: the profiler never downloads anything.
"""

from __future__ import annotations

import difflib
import os
import re
from dataclasses import dataclass

MODEL_FILE_SUFFIXES = (".keras", ".h5", ".hdf5")

# Spatial size each application documents as its default (`default_size` in
# keras.applications). Built without weights, several applications leave the
# spatial dims free, so we pin them here unless the user passes --input-shape.
_DEFAULT_SIZES = {
    "InceptionV3": 299,
    "InceptionResNetV2": 299,
    "Xception": 299,
    "NASNetLarge": 331,
    "EfficientNetB1": 240,
    "EfficientNetB2": 260,
    "EfficientNetB3": 300,
    "EfficientNetB4": 380,
    "EfficientNetB5": 456,
    "EfficientNetB6": 528,
    "EfficientNetB7": 600,
    "EfficientNetV2B1": 240,
    "EfficientNetV2B2": 260,
    "EfficientNetV2B3": 300,
    "EfficientNetV2S": 384,
    "EfficientNetV2M": 480,
    "EfficientNetV2L": 480,
}
_FALLBACK_SIZE = 224


@dataclass(frozen=True)
class LoadedModel:
    """A model plus a description of where it came from."""

    model: object  # keras.Model
    source: str  # "file:<path>" or "application:<Name>"


def application_names() -> list[str]:
    """Names of the model constructors in `keras.applications` (e.g. `MobileNetV3Large`)."""
    import keras

    names = []
    for name in dir(keras.applications):
        attr = getattr(keras.applications, name)
        if name[:1].isupper() and callable(attr):
            names.append(name)
    return sorted(names)


def default_input_shape(application: str) -> tuple[int, int, int]:
    """The documented default input shape (H, W, C) of a `keras.applications` model."""
    size = _DEFAULT_SIZES.get(application, _FALLBACK_SIZE)
    return (size, size, 3)


def resolve_source(spec: str) -> str:
    """Classify `spec` as a file or an application name without importing TensorFlow.

    A path that exists wins over a name. Returns "file" or "application".

    Raises:
        UsageError: `spec` looks like a model file but does not exist.
    """
    from submodel_profiler.errors import UsageError

    if os.path.exists(spec):
        if os.path.isdir(spec):
            raise UsageError(
                f"Expected a model file ({', '.join(MODEL_FILE_SUFFIXES)}) or a "
                f"keras.applications name. Received: a directory, {spec!r}."
            )
        return "file"
    if spec.lower().endswith(MODEL_FILE_SUFFIXES) or os.sep in spec:
        raise UsageError(f"Model file not found. Received: {spec!r}.")
    return "application"


def load_model(
    spec: str,
    input_shape: tuple[int, ...] | None = None,
    custom_objects: dict | None = None,
    dtype_policy: str | None = None,
    safe_mode: bool = True,
) -> LoadedModel:
    """Load a `.keras`/`.h5` file or build a `keras.applications` model.

    Args:
        spec: a path to a model file, or an application name such as "MobileNetV3Large".
        input_shape: for applications, the per-sample input shape (H, W, C); defaults to the
            application's documented default size.
        custom_objects: name -> class/function for custom layers in a model file
            (see `import_custom_objects`).
        dtype_policy: a Keras dtype policy name ("mixed_float16", "bfloat16", ...) to build an
            application with; model files keep the policies they were saved with.
        safe_mode: Keras' safe mode for model files; False executes Python code stored in the
            file (a Lambda layer's function): only for files you trust.

    Raises:
        UsageError: the file is missing or unreadable, or the name is not an application.
    """
    if resolve_source(spec) == "file":
        model = _load_file(spec, custom_objects, safe_mode)
        return LoadedModel(model, f"file:{os.path.abspath(spec)}")
    return LoadedModel(_build_application(spec, input_shape, dtype_policy), f"application:{spec}")


def import_custom_objects(specs) -> dict:
    """Import what `--custom-objects` names: "module:attr" (one object) or "module" (all the
    objects it registers with `keras.saving.register_keras_serializable` on import).

    Returns the name -> object dict to pass as `custom_objects`.

    Raises:
        UsageError: the module cannot be imported or lacks the attribute.
    """
    import importlib

    from submodel_profiler.errors import UsageError

    objects = {}
    for spec in specs or ():
        module_name, _, attr = spec.partition(":")
        try:
            module = importlib.import_module(module_name)
        except Exception as e:
            raise UsageError(
                f"--custom-objects: could not import module {module_name!r} ({_first_line(e)}). "
                f"Received: {spec!r}; the module must be importable (on PYTHONPATH)."
            ) from e
        if attr:
            if not hasattr(module, attr):
                raise UsageError(
                    f"--custom-objects: module {module_name!r} has no {attr!r}. Received: {spec!r}."
                )
            objects[attr] = getattr(module, attr)
    return objects


def _load_file(path: str, custom_objects: dict | None = None, safe_mode: bool = True):
    import keras

    from submodel_profiler import legacy
    from submodel_profiler.errors import UsageError

    objects = {**legacy_repairs(), **(custom_objects or {})}
    if _written_by_keras_2(path):
        raise UsageError(
            f"Could not load {path!r}: it is a .keras file written by Keras 2 (tf.keras 2.x or "
            "tf_keras), a format Keras 3 cannot read. Load it with tf_keras and save it as "
            ".h5 (model.save('model.h5')): this tool reads Keras 2 .h5 files, TF ops on "
            "Keras tensors included."
        )
    try:
        if path.lower().endswith((".h5", ".hdf5")):
            model = legacy.load_h5(path, objects, safe_mode)
            if model is not None:
                return model
        return keras.saving.load_model(
            path, custom_objects=objects, compile=False, safe_mode=safe_mode
        )
    except legacy.LegacyRefusal as e:
        raise UsageError(f"Could not load {path!r}: {e}") from e
    except Exception as e:  # Keras raises many types for unreadable files.
        refusal = _refusal(path, e)
        if refusal:
            raise UsageError(refusal) from e
        missing = re.search(r"Could not locate (?:class|function) '([^']+)'", str(e))
        if missing:
            name = missing.group(1)
            raise UsageError(
                f"Could not load {path!r}: it uses the custom object {name!r}, which is not "
                f"available. Pass --custom-objects MODULE:{name} (or a MODULE that registers it "
                "with keras.saving.register_keras_serializable), with MODULE importable."
            ) from e
        raise UsageError(
            f"Could not load {path!r} as a Keras model. Keras said: {_first_line(e)}"
        ) from e


# Keras 2 layers Keras 3 has no class for. legacy.py rebuilds them in the Keras 2 .h5 files it
# rewrites; anywhere else (inside a custom model class) Keras 3 meets them and is refused.
_UNLOADABLE = {
    "TFOpLambda": "a TensorFlow function called on a Keras tensor in Keras 2 (tf.nn.relu(x), "
    "x + 1 outside a layer) where this tool cannot rebuild it (inside a custom model class). "
    "Rebuild the model with Keras 3, with keras.ops or a layer in place of the op",
    "SlicingOpLambda": "a tensor slice (x[:, 0]) taken outside a layer in Keras 2 where this "
    "tool cannot rebuild it (inside a custom model class). Rebuild the model with Keras 3",
}


def _written_by_keras_2(path: str) -> bool:
    """True for a `.keras` zip whose metadata names Keras 2 (tf_keras writes them too)."""
    import json
    import zipfile

    if not path.lower().endswith(".keras") or not zipfile.is_zipfile(path):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            metadata = json.loads(archive.read("metadata.json"))
    except (KeyError, ValueError, OSError):
        return False
    return str(metadata.get("keras_version", "")).startswith("2.")


def legacy_repairs() -> dict:
    """Custom objects that read Keras 2 configs Keras 3 rejects: `DepthwiseConv2D` saved by
    tf.keras 2.x carries `groups` (always 1 there), which Keras 3's constructor refuses."""
    import keras

    class DepthwiseConv2D(keras.layers.DepthwiseConv2D):
        @classmethod
        def from_config(cls, config):
            config = dict(config)
            if config.pop("groups", 1) != 1:
                raise ValueError("a DepthwiseConv2D with groups != 1 cannot be read")
            return keras.layers.DepthwiseConv2D.from_config(config)

    return {"DepthwiseConv2D": DepthwiseConv2D}


def _refusal(path: str, error: Exception) -> str | None:
    """A clear message for the load failures we know: Keras 2-only layers, safe mode."""
    text = str(error)
    for layer, why in _UNLOADABLE.items():
        if layer in text:
            return f"Could not load {path!r}: it holds a {layer} layer, {why}."
    if "safe_mode" in text:
        return (
            f"Could not load {path!r}: it holds a Lambda layer (Python code stored in the "
            "file), which Keras' safe mode refuses to run. If you trust the file, pass "
            "--no-safe-mode (API: load_model(..., safe_mode=False)): it executes that code. "
            f"Keras said: {_first_line(error)}"
        )
    return None


def _build_application(name: str, input_shape: tuple[int, ...] | None, dtype_policy=None):
    import keras

    from submodel_profiler.errors import UsageError

    names = application_names()
    if name not in names:
        close = difflib.get_close_matches(name, names, n=3, cutoff=0.5)
        hint = f" Did you mean: {', '.join(close)}?" if close else ""
        raise UsageError(
            f"{name!r} is neither an existing file nor a keras.applications model name.{hint}"
        )
    shape = tuple(input_shape) if input_shape else default_input_shape(name)
    constructor = getattr(keras.applications, name)
    previous = keras.config.dtype_policy()
    try:
        if dtype_policy:
            keras.config.set_dtype_policy(dtype_policy)
        return constructor(weights=None, input_shape=shape)
    except ValueError as e:
        raise UsageError(
            f"Could not build {name} with input shape {shape} and dtype policy "
            f"{dtype_policy or previous.name!r}. Keras said: {_first_line(e)}"
        ) from e
    finally:
        keras.config.set_dtype_policy(previous)


def _first_line(error: BaseException) -> str:
    text = str(error).strip()
    return text.splitlines()[0] if text else type(error).__name__
