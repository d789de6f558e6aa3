"""submodel_profiler: per-layer float ops and isolated times of Keras models, cross-checked.

A multiply-add counts as 2 float ops. `flops` follows the counting convention a report names
(`settings.counting`: "complete" by default, or "tf", TensorFlow's profiler alone); rows also
carry `tf_flops` and `macs` (counting.py states the conventions).
"""

from submodel_profiler.errors import UsageError
from submodel_profiler.profiler import profile_model
from submodel_profiler.report import SCHEMA_VERSION, LayerRow, Report, TimeStats
from submodel_profiler.timing import TimingSettings

__version__ = "0.1.0"

__all__ = [
    "SCHEMA_VERSION",
    "LayerRow",
    "LayerTimingCallback",
    "Report",
    "TimeStats",
    "TimingSettings",
    "UsageError",
    "profile_model",
    "__version__",
]


def __getattr__(name: str):
    # LayerTimingCallback subclasses keras.callbacks.Callback, so importing it imports TF;
    # loaded on first use so that `import submodel_profiler` (and CLI validation) stays fast.
    if name == "LayerTimingCallback":
        from submodel_profiler.callback import LayerTimingCallback

        return LayerTimingCallback
    raise AttributeError(f"module 'submodel_profiler' has no attribute {name!r}")
