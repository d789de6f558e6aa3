"""`LayerTimingCallback`: wall time of every real layer execution during `model.predict`.

This is the in-context method: layers are timed where they run, inside the whole model, one
call at a time, rather than cut out into sub-models (`submodels`, `timing`). Each top-level
layer's `call` is replaced by a timed wrapper (an instance attribute, removed again when
predict ends) that records

    sync();  t0 = clock();  outputs = call(...);  sync();  t1 = clock()

The first `sync()` waits for work queued by earlier layers, the second for this layer's own
work, so on a GPU the clock never stops before the layer finished (`sync_devices`; a no-op
without a GPU). Times are per execution, in microseconds, overheads included: each one holds
the layer's eager op dispatch as well as its kernels.

Eager execution is what makes these times real. Under Keras' compiled `predict` a layer's
Python `call` runs only while `tf.function` traces, so a naive wrapper records one trace-time
entry per layer and nothing of the executions. Keras 3's TF trainer builds `predict_function`
before `on_predict_begin` and reads `model.predict_function` at every batch, so
`on_predict_begin` sets `model.run_eagerly = True`, rebuilds the step with
`make_predict_function(force=True)` and installs it behind a guard; `on_predict_end` puts the
user's `run_eagerly` and `predict_function` back. Whatever could break that is refused with
`EagerTimingError` rather than recorded:

* `fit` / `evaluate` (their steps are not rebuilt), a distribution strategy, a backend other
  than TensorFlow, or a rebuilt step that is still a `tf.function`: refused in `*_begin`.
* A layer call inside the step while TensorFlow traces (`tf.executing_eagerly()` is false,
  e.g. another callback wrapped the step in a `tf.function`): refused at record time.
* A batch that did not run through the guarded step (another callback replaced
  `model.predict_function`): refused at the end of that batch. (Defining
  `on_predict_batch_end` makes Keras run batch-end callbacks synchronously.)

Call sites: a layer shared by several nodes runs several times per forward pass. Executions are
numbered by their order within one forward pass (each call of the model's own `call` starts
one): `call_index` k is the layer's k-th call, which is Keras' execution order and therefore
the `call_index` of `graph_walk.plan_rows`. By default only top-level calls are timed: a layer
called from inside a timed layer adds to that layer's time and gets no entry of its own. The
calls made inside the calls named in `expanded` (row labels: `block`, `block[1]`,
`block/attention`) are timed too, under the path `label/sublayer` and numbered per path: the
rows of `--depth` and `--expand-nested` (`call_recorder.site_rows`, `graph_walk.plan_rows`),
which the profiler passes. An expanded call's own time holds its children's timing, so it is
not reported. Ghost ops (Keras ops that are not layers) and InputLayers are not timed.

Restoration: `on_predict_end` restores everything, and the guarded step restores before
re-raising any error of the model itself. An error raised elsewhere during predict (the data
pipeline, another callback) skips `on_predict_end`; use the callback as a context manager
(`with LayerTimingCallback() as cb: model.predict(..., callbacks=[cb])`), call `restore()`,
or let the next `on_predict_begin` restore first. `callback_times` does the first.

Memory: Keras' eager functional pass keeps every layer's output until the model's call returns
(ResNet152V2: 288 MiB at batch 1, which TF's CPU allocator keeps once freed). While predict
runs, each functional graph's `_run_through_graph` (the model's, a nested model's, a
Sequential's) is `releasing_run`: the same nodes in the same order, each intermediate tensor
dropped after its last use. The timed calls are the same calls; only their outputs die sooner.

Nothing is stored on the user's layers; the measurements live on the callback.
"""

from __future__ import annotations

import functools
import time
from collections import defaultdict
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass

import keras
import tensorflow as tf

from submodel_profiler.call_recorder import layers_within, sublayers
from submodel_profiler.errors import UsageError
from submodel_profiler.graph_walk import graph_of, keras_loop
from submodel_profiler.patching import Patches
from submodel_profiler.report import TimeStats, row_label
from submodel_profiler.tracing import input_structure, pack_inputs

US_PER_S = 1e6


class EagerTimingError(RuntimeError):
    """Real executions cannot be timed here: the step is traced, or may be."""


@dataclass(frozen=True)
class Execution:
    """One timed execution of a layer's `call`."""

    layer: str  # layer name; for a call inside an expanded call, its path ("block/dense")
    call_index: int  # order of this call of the layer within its forward pass
    time_us: float  # wall time in microseconds


def no_sync() -> None:
    """Device sync for hosts without a GPU: eager CPU ops have finished when they return."""


def default_sync() -> Callable[[], None]:
    """The sync to run around each timed call: `sync_devices` with a GPU, else a no-op.

    Raises:
        EagerTimingError: a GPU is present but this TensorFlow cannot synchronize it.
    """
    if not tf.config.list_logical_devices("GPU"):
        return no_sync
    sync = getattr(getattr(tf.test, "experimental", None), "sync_devices", None)
    if sync is None:
        raise EagerTimingError(
            "Timing layers on a GPU needs a device sync before the clock is read, and "
            "`tf.test.experimental.sync_devices` is missing. Pass `sync=` explicitly. "
            f"Received: tensorflow {tf.__version__}."
        )
    return sync


def releasing_run(graph) -> Callable | None:
    """`graph._run_through_graph` that frees every intermediate tensor after its last use.

    Keras' own (`keras.src.ops.function.Function`) keeps each node's outputs in one dict until
    the call returns, so an eager forward pass holds every layer's output at once: 288 MiB for
    ResNet152V2 at batch 1, whose memory TF's CPU allocator keeps once freed. This one
    (`graph_walk.keras_loop`) runs the same nodes in the same order with the same arguments and
    drops a tensor once the last node reading it has run (the graph's outputs are kept), so the
    timed calls are the same calls. A nested model timed as one row pays the loop's bookkeeping
    inside its time (about 1% of an eager pass of 600 nodes). None, and the loop in place is
    kept, when Keras' loop is not the one copied there (`keras_loop` says when).
    """
    return keras_loop(graph, release=True)


def functional_graphs(model) -> list:
    """The functional graphs of the model and of every model within it (a Sequential's is the
    Functional it runs)."""
    layers = [model, *model._flatten_layers(include_self=False)]
    return [g for g in map(graph_of, layers) if g is not None]


def timed_layers(model) -> list:
    """The model's top-level layers that get timed: all but InputLayers."""
    return [layer for layer in model.layers if not isinstance(layer, keras.layers.InputLayer)]


def refusal_reason(model) -> str | None:
    """Why predict's step cannot be made eager for `model`, or None when it can."""
    if keras.backend.backend() != "tensorflow":
        return f"it needs the TensorFlow backend. Received: backend={keras.backend.backend()!r}"
    if not hasattr(model, "make_predict_function") or not hasattr(model, "run_eagerly"):
        return f"it needs a Keras Model. Received: model of type {type(model).__name__}"
    if not tf.executing_eagerly():
        return "predict must be called eagerly, not inside a tf.function"
    default_strategy = tf.distribute.get_strategy()
    if tf.distribute.has_strategy() or model.distribute_strategy is not default_strategy:
        return (
            "distribution strategies run the step per replica and may compile it. "
            f"Received: strategy of type {type(model.distribute_strategy).__name__}"
        )
    return None


def is_compiled(fn) -> bool:
    """True for a `tf.function` (anything that has concrete functions)."""
    return isinstance(fn, tf.types.experimental.PolymorphicFunction) or hasattr(
        fn, "get_concrete_function"
    )


class LayerTimingCallback(keras.callbacks.Callback):
    """Records the wall time of each top-level layer execution during `model.predict`.

    Args:
        clock: returns the time in seconds; `time.perf_counter` unless a test fakes it. Read
            exactly twice per timed execution.
        sync: waits until queued device work finished; `default_sync()` when None.
        expanded: labels of layer calls (`name`, `name[k]`, `parent/name`) whose own sublayer
            calls are timed too, each under the path `label/sublayer`; empty: top level only.

    After `model.predict(x, batch_size=1, callbacks=[cb])` on N samples every timed layer has
    N times per call site. The results of the last predict stay readable after it returns.

    Raises:
        EagerTimingError: (from the hooks, out of `fit`, `evaluate` or `predict`) the step
            cannot be guaranteed to run eagerly, or a layer call was traced.
    """

    def __init__(
        self,
        clock: Callable[[], float] = time.perf_counter,
        sync: Callable[[], None] | None = None,
        expanded: Collection[str] = (),
    ):
        super().__init__()
        self._clock = clock
        self._sync = default_sync() if sync is None else sync
        self._expanded = frozenset(expanded)
        self._executions: list[Execution] = []
        self._undo = Patches()
        self._site_counts: dict[str, int] = defaultdict(int)
        self._in_step = False
        self._step_ran = False
        self._stack: list[str] = []  # labels of the timed calls running, outermost first

    # ----- results -----------------------------------------------------------------------

    @property
    def executions(self) -> tuple[Execution, ...]:
        """Every timed execution of the last predict, in execution order."""
        return tuple(self._executions)

    @property
    def times_us(self) -> dict[str, list[float]]:
        """Layer name -> microseconds of each of its executions, all call sites, in order."""
        times: dict[str, list[float]] = {}
        for e in self._executions:
            times.setdefault(e.layer, []).append(e.time_us)
        return times

    @property
    def site_times_us(self) -> dict[tuple[str, int], list[float]]:
        """(layer name, call_index) -> microseconds of each execution of that call site."""
        times: dict[tuple[str, int], list[float]] = {}
        for e in self._executions:
            times.setdefault((e.layer, e.call_index), []).append(e.time_us)
        return times

    def summary(self, skip: int = 0) -> dict[tuple[str, int], TimeStats]:
        """Per call site: median/min/max/iqr in microseconds; `repeats` is the count.

        The first `skip` executions of each call site (warm-up) are left out; a call site
        with no execution left is absent.
        """
        return {
            site: TimeStats.from_samples(times[skip:])
            for site, times in self.site_times_us.items()
            if len(times) > skip
        }

    # ----- restoring ---------------------------------------------------------------------

    @property
    def installed(self) -> bool:
        """True while the model is patched (between predict's begin and end)."""
        return bool(self._undo)

    def restore(self) -> None:
        """Put back every patched attribute and `run_eagerly`; safe to call any time."""
        self._in_step = False
        self._stack = []
        self._undo.restore()

    def __enter__(self) -> LayerTimingCallback:
        return self

    def __exit__(self, *exc_info) -> None:
        self.restore()

    # ----- Keras hooks -------------------------------------------------------------------

    def on_predict_begin(self, logs=None) -> None:
        self.restore()  # Left patched by an earlier predict that raised outside the model.
        self._executions = []
        reason = refusal_reason(self.model)
        if reason is not None:
            raise EagerTimingError(f"LayerTimingCallback cannot time real executions: {reason}.")
        try:
            self._install(self.model)
        except BaseException:
            self.restore()
            raise

    def on_predict_batch_begin(self, batch, logs=None) -> None:
        self._step_ran = False

    def on_predict_batch_end(self, batch, logs=None) -> None:
        if not self._step_ran:
            self._refuse(
                f"batch {batch} did not run through the eager step installed by "
                "LayerTimingCallback (did another callback replace `model.predict_function`?)"
            )

    def on_predict_end(self, logs=None) -> None:
        self.restore()

    def on_train_begin(self, logs=None) -> None:
        raise EagerTimingError(
            "LayerTimingCallback only times `model.predict`: the steps of `fit` may be compiled. "
            "Received: fit."
        )

    def on_test_begin(self, logs=None) -> None:
        raise EagerTimingError(
            "LayerTimingCallback only times `model.predict`: the steps of `evaluate` may be "
            "compiled. Received: evaluate."
        )

    # ----- patching ----------------------------------------------------------------------

    def _install(self, model) -> None:
        """Make predict's step eager and time every top-level layer (and the layers inside
        the expanded calls); record how to undo."""
        saved_run_eagerly = model.run_eagerly
        model.run_eagerly = True
        self._undo.add(lambda: setattr(model, "run_eagerly", saved_run_eagerly))
        self._undo.replace(model, "call", self._forward_pass(model.call))
        top = timed_layers(model)
        levels = max((label.count("/") + 1 for label in self._expanded), default=0)
        inner = layers_within([s for layer in top for s in sublayers(layer)], levels)
        patched: set = set()
        for layer in (*top, *inner):
            if id(layer) in patched or isinstance(layer, keras.layers.InputLayer):
                continue
            patched.add(id(layer))
            self._undo.replace(layer, "call", self._timed(layer.name, layer.call))
        for graph in functional_graphs(model):
            run = releasing_run(graph)
            if run is not None:
                self._undo.replace(graph, "_run_through_graph", run)
        self._undo.replace(model, "predict_function", model.predict_function)
        model.make_predict_function(force=True)
        step = model.predict_function
        if is_compiled(step):
            raise EagerTimingError(
                "LayerTimingCallback cannot time real executions: the rebuilt predict step is "
                f"still a tf.function. Received: {type(step).__name__}."
            )
        object.__setattr__(model, "predict_function", self._guarded(step))

    def _guarded(self, step: Callable) -> Callable:
        """Predict's eager step, marking where timing happens and restoring on error."""

        @tf.autograph.experimental.do_not_convert
        def guarded_step(data):
            if not tf.executing_eagerly():
                self._refuse("the predict step is being traced by a tf.function")
            self._in_step = self._step_ran = True
            try:
                return step(data)
            except BaseException:
                self.restore()
                raise
            finally:
                self._in_step = False

        return guarded_step

    def _forward_pass(self, call: Callable) -> Callable:
        """The model's `call`: each top-level call starts a forward pass (call_index 0)."""

        @tf.autograph.experimental.do_not_convert
        @functools.wraps(call)
        def forward_pass(*args, **kwargs):
            if not self._stack:
                self._site_counts = defaultdict(int)
            return call(*args, **kwargs)

        return forward_pass

    def _timed(self, name: str, call: Callable) -> Callable:
        """`call` timed when it runs inside the predict step at top level or directly inside
        an expanded call (then under the path `label/name`)."""

        @tf.autograph.experimental.do_not_convert
        @functools.wraps(call)
        def timed_call(*args, **kwargs):
            if not self._in_step or (self._stack and self._stack[-1] not in self._expanded):
                return call(*args, **kwargs)
            if not tf.executing_eagerly():
                self._refuse(f"layer {name!r} is being traced, not executed")
            path = f"{self._stack[-1]}/{name}" if self._stack else name
            call_index = self._site_counts[path]
            self._site_counts[path] += 1
            self._stack.append(row_label(path, call_index))
            try:
                self._sync()
                t0 = self._clock()
                outputs = call(*args, **kwargs)
                self._sync()
                t1 = self._clock()
            finally:
                self._stack.pop()
            self._executions.append(Execution(path, call_index, (t1 - t0) * US_PER_S))
            return outputs

        return timed_call

    def _refuse(self, reason: str) -> None:
        self.restore()
        raise EagerTimingError(f"LayerTimingCallback refuses to record: {reason}.")


def repeated_batches(inputs: Sequence, count: int, structure=None):
    """A dataset yielding the same batch `count` times, shaped for `predict` (x only): the
    flat `inputs` nested as `structure` (a dict of named inputs, ...), lists as tuples (tf.data
    would stack a list into one tensor)."""
    x = keras.tree.lists_to_tuples(pack_inputs(inputs, structure))
    return tf.data.Dataset.from_tensors((x,)).repeat(count)


def callback_times(
    model,
    inputs: Sequence,
    samples: int,
    *,
    warmup: int = 1,
    clock: Callable[[], float] = time.perf_counter,
    sync: Callable[[], None] | None = None,
    expanded: Collection[str] = (),
) -> dict[tuple[str, int], TimeStats]:
    """Times of each layer call site, executed eagerly inside `model.predict`.

    Args:
        model: a built Keras model (TensorFlow backend).
        inputs: one tensor per model input, batch dimension already pinned; every execution
            runs on this batch.
        samples: executions kept per call site.
        warmup: executions run first and left out (first-call costs).
        clock, sync, expanded: as for `LayerTimingCallback`.

    Returns:
        (layer name, call_index) -> TimeStats in microseconds with `repeats == samples`.

    Raises:
        UsageError: `samples` < 1, `warmup` < 0 or no inputs.
        EagerTimingError: the model's predict step cannot be guaranteed to run eagerly.
    """
    if not isinstance(samples, int) or isinstance(samples, bool) or samples < 1:
        raise UsageError(f"samples must be an int >= 1. Received: samples={samples!r}.")
    if not isinstance(warmup, int) or isinstance(warmup, bool) or warmup < 0:
        raise UsageError(f"warmup must be an int >= 0. Received: warmup={warmup!r}.")
    if len(inputs) == 0:
        raise UsageError("inputs must hold one tensor per model input. Received: inputs=[].")
    with LayerTimingCallback(clock=clock, sync=sync, expanded=expanded) as cb:
        batches = repeated_batches(inputs, warmup + samples, input_structure(model))
        model.predict(batches, verbose=0, callbacks=[cb])
    return cb.summary(skip=warmup)
