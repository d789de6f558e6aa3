"""LayerTimingCallback: real executions only, exact counts, deterministic times, restoration."""

from __future__ import annotations

import weakref

import keras
import numpy as np
import pytest
import tensorflow as tf

from submodel_profiler.callback import (
    EagerTimingError,
    LayerTimingCallback,
    callback_times,
    default_sync,
    no_sync,
    releasing_run,
)
from submodel_profiler.errors import UsageError
from submodel_profiler.graph_walk import plan_rows

TICK_S = 0.001  # the fake clock advances this much per read
FLOAT_TOLERANCE_US = 1e-6  # rounding of (t1 - t0) * 1e6 with the fake clock's float seconds
N = 5


class FakeClock:
    """Advances `tick_s` per read; `advance()` lets a layer spend simulated time."""

    def __init__(self, tick_s: float = TICK_S):
        self.now = 0.0
        self.tick_s = tick_s
        self.reads = 0

    def __call__(self) -> float:
        self.reads += 1
        t = self.now
        self.now += self.tick_s
        return t

    def advance(self, seconds: float) -> None:
        self.now += seconds


class Spend(keras.layers.Layer):
    """Identity that spends `x.max()` milliseconds of fake-clock time (eager only)."""

    def __init__(self, clock, **kwargs):
        super().__init__(**kwargs)
        self.clock = clock

    def call(self, x):
        self.clock.advance(float(tf.reduce_max(x)) * 1e-3)
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


class FailOnLarge(keras.layers.Layer):
    """Identity that raises for inputs above 100 (eager only)."""

    def call(self, x):
        if float(tf.reduce_max(x)) > 100:
            raise ValueError("input too large")
        return x

    def compute_output_shape(self, input_shape):
        return input_shape


def small_model() -> keras.Model:
    """Dense -> ReLU -> Dense, plus a ghost op (`* 2.0`) that must not be timed."""
    x = keras.Input((3,), name="x")
    h = keras.layers.Dense(4, name="d1")(x)
    h = keras.layers.ReLU(name="relu")(h) * 2.0
    y = keras.layers.Dense(2, name="d2")(h)
    return keras.Model(x, y)


def samples(n: int = N, features: int = 3) -> np.ndarray:
    return np.ones((n, features), dtype="float32")


def is_patched(model) -> bool:
    layers = [model, *model._flatten_layers(include_self=False)]
    layers += [f for f in (getattr(x, "_functional", None) for x in layers) if f]
    return any(name in vars(x) for x in layers for name in ("call", "_run_through_graph"))


@pytest.mark.parametrize("run_eagerly", [False, True])
def test_predict_gives_one_time_per_sample_per_layer(run_eagerly):
    model = small_model()
    model.compile(run_eagerly=run_eagerly)
    cb = LayerTimingCallback()
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert list(cb.times_us) == ["d1", "relu", "d2"]  # no InputLayer, no ghost op
    assert all(len(times) == N for times in cb.times_us.values())
    assert all(t > 0 for times in cb.times_us.values() for t in times)
    stats = cb.summary()
    assert set(stats) == {("d1", 0), ("relu", 0), ("d2", 0)}
    assert all(s.repeats == N and s.min <= s.median <= s.max for s in stats.values())


def test_fake_clock_gives_exact_times():
    clock = FakeClock()
    x = keras.Input((3,), name="x")
    y = Spend(clock, name="spend")(keras.layers.Dense(3, name="d")(x))
    model = keras.Model(x, y)
    model.get_layer("d").set_weights([np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    data = np.full((N, 3), 7.0, dtype="float32")  # the identity Dense passes 7.0 to `spend`
    cb = LayerTimingCallback(clock=clock)
    model.predict(data, batch_size=1, verbose=0, callbacks=[cb])
    assert clock.reads == 2 * N * 2  # two reads per execution, two layers, nothing else
    assert cb.times_us["d"] == pytest.approx([TICK_S * 1e6] * N, abs=FLOAT_TOLERANCE_US)
    expected_spend_us = (TICK_S + 7.0e-3) * 1e6  # one tick + 7 ms spent inside the layer
    assert cb.times_us["spend"] == pytest.approx([expected_spend_us] * N, abs=FLOAT_TOLERANCE_US)
    assert cb.summary()[("spend", 0)].iqr == pytest.approx(0.0, abs=FLOAT_TOLERANCE_US)


def test_sync_runs_before_each_clock_read():
    events = []
    clock = FakeClock()
    cb = LayerTimingCallback(
        clock=lambda: events.append("clock") or clock(), sync=lambda: events.append("sync")
    )
    small_model().predict(samples(2), batch_size=1, verbose=0, callbacks=[cb])
    assert events == ["sync", "clock"] * (2 * 3 * 2)  # 2 reads × 3 layers × 2 samples


@pytest.mark.parametrize("gpu", [False, True])
def test_default_sync_waits_for_devices_only_with_a_gpu(monkeypatch, gpu):
    # Whether a GPU is visible and TF's device sync are both faked while the callback is made;
    # predict then runs on the real (CPU) devices with the recorded sync.
    events = []
    clock = FakeClock()
    with monkeypatch.context() as m:
        m.setattr(
            tf.config,
            "list_logical_devices",
            lambda kind=None: [object()] if gpu and kind == "GPU" else [],
        )
        m.setattr(tf.test.experimental, "sync_devices", lambda: events.append("sync"))
        cb = LayerTimingCallback(clock=lambda: events.append("clock") or clock())
    small_model().predict(samples(2), batch_size=1, verbose=0, callbacks=[cb])
    reads = ["clock"] * (2 * 3 * 2)  # 2 reads × 3 layers × 2 samples
    assert events == (["sync", "clock"] * len(reads) if gpu else reads)
    assert no_sync() is None  # the no-op does nothing and returns nothing


def test_a_gpu_without_device_sync_is_refused(monkeypatch):
    monkeypatch.setattr(tf.config, "list_logical_devices", lambda kind=None: [object()])
    monkeypatch.delattr(tf.test.experimental, "sync_devices")
    with pytest.raises(EagerTimingError, match="sync_devices"):
        default_sync()


@pytest.mark.parametrize("run_eagerly", [False, True])
def test_run_eagerly_calls_and_step_are_restored(run_eagerly):
    model = small_model()
    model.compile(run_eagerly=run_eagerly)
    model.predict(samples(1), verbose=0)  # builds the user's own predict_function
    step = model.predict_function
    cb = LayerTimingCallback()
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert model.run_eagerly is run_eagerly
    assert model.predict_function is step
    assert not is_patched(model)
    assert not cb.installed


def test_a_call_the_user_patched_is_put_back():
    model = small_model()
    layer = model.get_layer("d2")
    users_call = layer.call  # a bound method stored on the instance, as a user's patch would be
    object.__setattr__(layer, "call", users_call)
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[LayerTimingCallback()])
    assert vars(layer)["call"] is users_call


def test_restored_when_a_layer_raises_during_predict():
    x = keras.Input((3,), name="x")
    model = keras.Model(x, FailOnLarge(name="fail")(keras.layers.Dense(3, name="d")(x)))
    model.compile(run_eagerly=False)
    data = np.ones((4, 3), "float32")
    data[2] = 1000.0  # the third batch raises inside the model
    model.get_layer("d").set_weights([np.eye(3, dtype="float32"), np.zeros(3, "float32")])
    model.make_predict_function()  # the user's own compiled step, not traced yet
    step = model.predict_function
    cb = LayerTimingCallback()
    with pytest.raises(ValueError, match="input too large"):
        model.predict(data, batch_size=1, verbose=0, callbacks=[cb])
    assert model.run_eagerly is False
    assert model.predict_function is step
    assert not is_patched(model)
    assert len(cb.times_us["d"]) == 3  # what ran before the error is kept


class FailAfterFirstBatch(keras.callbacks.Callback):
    """An error outside the model: it skips Keras' `on_predict_end`."""

    def on_predict_batch_end(self, batch, logs=None):
        raise OSError("callback failed")


def test_context_manager_restores_when_predict_raises_outside_the_model():
    model = small_model()
    with pytest.raises(OSError, match="callback failed"):
        with LayerTimingCallback() as cb:
            model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb, FailAfterFirstBatch()])
            raise AssertionError("predict should have raised")
    assert model.run_eagerly is False
    assert not is_patched(model)
    assert {name: len(t) for name, t in cb.times_us.items()} == {"d1": 1, "relu": 1, "d2": 1}


def test_restore_and_next_predict_undo_what_a_failed_predict_left():
    model = small_model()
    cb = LayerTimingCallback()
    with pytest.raises(OSError):
        model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb, FailAfterFirstBatch()])
    assert cb.installed and is_patched(model)  # on_predict_end was skipped: the limitation
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert all(len(times) == N for times in cb.times_us.values())  # times reset per predict
    assert not is_patched(model) and model.run_eagerly is False
    with pytest.raises(OSError):
        model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb, FailAfterFirstBatch()])
    cb.restore()
    assert not is_patched(model) and model.run_eagerly is False


def test_naive_wrapper_under_compiled_predict_records_only_tracing():
    model = small_model()
    model.compile(run_eagerly=False)
    layer = model.get_layer("d1")
    original, entries = layer.call, []

    def naive(*args, **kwargs):
        entries.append(tf.executing_eagerly())
        return original(*args, **kwargs)

    layer.call = naive
    try:
        model.predict(samples(), batch_size=1, verbose=0)
    finally:
        del layer.call
    assert 1 <= len(entries) < N and not any(entries)  # trace-time entries, no executions

    cb = LayerTimingCallback()
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert len(cb.times_us["d1"]) == N


class WrapStepInTfFunction(keras.callbacks.Callback):
    """Runs after LayerTimingCallback and compiles its eager step again."""

    def on_predict_begin(self, logs=None):
        self.model.predict_function = tf.function(self.model.predict_function)


class ReplaceStep(keras.callbacks.Callback):
    """Runs after LayerTimingCallback and installs a fresh compiled step."""

    def on_predict_begin(self, logs=None):
        self.model.run_eagerly = False
        self.model.make_predict_function(force=True)


@pytest.mark.parametrize("saboteur", [WrapStepInTfFunction, ReplaceStep])
def test_compiled_step_is_refused_not_recorded(saboteur):
    model = small_model()
    model.compile(run_eagerly=False)
    cb = LayerTimingCallback()
    with pytest.raises(EagerTimingError, match="refuses to record"):
        model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb, saboteur()])
    assert cb.times_us == {}
    assert model.run_eagerly is False
    assert not is_patched(model)


def test_tracing_a_timed_layer_is_refused():
    model = small_model()
    cb = LayerTimingCallback()
    cb.set_model(model)
    cb.on_predict_begin()
    with pytest.raises(EagerTimingError, match="refuses to record"):
        tf.function(model.predict_function)([(tf.ones((1, 3)),)])
    assert not cb.installed and not is_patched(model)


def test_fit_and_evaluate_are_refused():
    model = small_model()
    model.compile(loss="mse")
    x, y = samples(2), np.zeros((2, 2), "float32")
    with pytest.raises(EagerTimingError, match="fit"):
        model.fit(x, y, verbose=0, callbacks=[LayerTimingCallback()])
    with pytest.raises(EagerTimingError, match="evaluate"):
        model.evaluate(x, y, verbose=0, callbacks=[LayerTimingCallback()])
    assert not is_patched(model) and model.run_eagerly is False


def test_distribution_strategy_is_refused():
    model = small_model()
    with tf.distribute.OneDeviceStrategy("/cpu:0").scope():
        with pytest.raises(EagerTimingError, match="distribution strateg"):
            model.predict(samples(), batch_size=1, verbose=0, callbacks=[LayerTimingCallback()])
    assert not is_patched(model)


def shared_layer_model(clock) -> keras.Model:
    """`spend` runs three times per forward pass: on a, on b and on its own output."""
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    spend = Spend(clock, name="spend")
    y = keras.layers.Add(name="add")([spend(a), spend(spend(b))])
    return keras.Model([a, b], y)


def test_shared_layer_call_sites_follow_plan_rows():
    clock = FakeClock()
    model = shared_layer_model(clock)
    cb = LayerTimingCallback(clock=clock)
    model.predict(
        [np.full((N, 3), 1.0), np.full((N, 3), 3.0)], batch_size=1, verbose=0, callbacks=[cb]
    )
    layer_rows = [r for r in plan_rows(model) if r.kind == "layer" and r.type != "InputLayer"]
    assert set(cb.site_times_us) == {row.key for row in layer_rows}
    assert len(cb.times_us["spend"]) == 3 * N
    spent_ms = {"a": 1.0, "b": 3.0, "spend": 3.0}  # spend(spend(b)) also sees 3.0
    for row in layer_rows:
        if row.name != "spend":
            continue
        source = row.input_tensors[0]._keras_history.operation.name
        expected_us = (TICK_S + spent_ms[source] * 1e-3) * 1e6
        assert cb.site_times_us[row.key] == pytest.approx([expected_us] * N, abs=FLOAT_TOLERANCE_US)


def test_call_index_restarts_each_forward_pass_with_steps_per_execution():
    model = small_model()
    model.compile(steps_per_execution=2)
    cb = LayerTimingCallback()
    model.predict(samples(4), batch_size=1, verbose=0, callbacks=[cb])
    assert {site: len(t) for site, t in cb.site_times_us.items()} == {
        ("d1", 0): 4,
        ("relu", 0): 4,
        ("d2", 0): 4,
    }


def test_nested_model_is_timed_as_one_layer():
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="in_d")], name="inner")
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="head")(inner(x)))
    cb = LayerTimingCallback()
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert {k: len(v) for k, v in cb.times_us.items()} == {"inner": N, "head": N}
    assert not is_patched(inner)


class SpendTwice(keras.layers.Layer):
    """A composite layer: `spend(spend(x) + 1)`, one sublayer called twice, one inline add."""

    def __init__(self, clock, **kwargs):
        super().__init__(**kwargs)
        self.spend = Spend(clock, name="spend")

    def call(self, x):
        return self.spend(self.spend(x) + 1.0)

    def compute_output_shape(self, input_shape):
        return input_shape


def composite_model(clock) -> keras.Model:
    x = keras.Input((3,), name="x")
    return keras.Model(x, keras.layers.Dense(2, name="head")(SpendTwice(clock, name="pair")(x)))


def test_expanded_calls_time_their_sublayer_calls_by_path():
    clock = FakeClock()
    model = composite_model(clock)
    cb = LayerTimingCallback(clock=clock, expanded=["pair"])
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    times = cb.site_times_us
    assert set(times) == {("pair", 0), ("pair/spend", 0), ("pair/spend", 1), ("head", 0)}
    # spend sees 1.0 then 1.0 + 1: one clock tick plus 1 ms, then plus 2 ms
    for k, spent_ms in ((0, 1.0), (1, 2.0)):
        expected_us = (TICK_S + spent_ms * 1e-3) * 1e6
        assert times[("pair/spend", k)] == pytest.approx([expected_us] * N, abs=FLOAT_TOLERANCE_US)
    # the parent's own clock reads enclose its children's two reads each
    expected_pair_us = (5 * TICK_S + 3e-3) * 1e6
    assert times[("pair", 0)] == pytest.approx([expected_pair_us] * N, abs=FLOAT_TOLERANCE_US)
    assert not is_patched(model) and "call" not in vars(model.get_layer("pair").spend)


def test_sublayer_calls_are_untimed_unless_their_caller_is_expanded():
    clock = FakeClock()
    model = composite_model(clock)
    cb = LayerTimingCallback(clock=clock, expanded=["head"])  # a leaf: nothing inside to time
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert set(cb.site_times_us) == {("pair", 0), ("head", 0)}
    expected_us = (TICK_S + 3e-3) * 1e6  # both of spend's calls inside pair's one reading
    assert cb.site_times_us[("pair", 0)] == pytest.approx([expected_us] * N, abs=FLOAT_TOLERANCE_US)


def test_expanded_nested_model_rows_follow_plan_rows():
    inner = keras.Sequential(
        [keras.Input((3,)), keras.layers.Dense(3, name="in_d"), keras.layers.ReLU(name="r")],
        name="inner",
    )
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="head")(inner(x)))
    parents: list = []
    rows = [r for r in plan_rows(model, expand_nested=True, parents=parents) if r.kind == "layer"]
    cb = LayerTimingCallback(expanded=[p.label for p in parents])
    model.predict(samples(), batch_size=1, verbose=0, callbacks=[cb])
    assert {row.key for row in rows} == {("inner/in_d", 0), ("inner/r", 0), ("head", 0)}
    assert {row.key for row in rows} | {("inner", 0)} == set(cb.site_times_us)
    assert not is_patched(inner)


def test_callback_times_feeds_named_inputs_as_the_model_takes_them():
    # a dict of inputs (keras-hub backbones take one): packed by name, not passed as a tuple
    ids = keras.Input((4,), name="ids")
    mask = keras.Input((2,), name="mask")
    joined = keras.layers.Concatenate(name="cat")([ids, mask])
    model = keras.Model({"mask": mask, "ids": ids}, keras.layers.Dense(1, name="d")(joined))
    flat = [tf.ones((1, 4)), tf.zeros((1, 2))]  # in the order of model.inputs
    assert [t.name for t in model.inputs] == ["ids", "mask"]
    times = callback_times(model, flat, samples=2, warmup=0)
    assert {site: stats.repeats for site, stats in times.items()} == {("cat", 0): 2, ("d", 0): 2}


def test_callback_times_keys_counts_and_values():
    clock = FakeClock()
    model = shared_layer_model(clock)
    inputs = [tf.fill((2, 3), 1.0), tf.fill((2, 3), 3.0)]  # batch dim pinned to 2
    times = callback_times(model, inputs, samples=4, warmup=2, clock=clock)
    assert set(times) == {("spend", 0), ("spend", 1), ("spend", 2), ("add", 0)}
    assert all(s.repeats == 4 for s in times.values())
    assert clock.reads == 2 * 4 * (4 + 2)  # 4 timed calls per pass, warm-up passes included
    assert times[("add", 0)].median == pytest.approx(TICK_S * 1e6, abs=FLOAT_TOLERANCE_US)
    assert not is_patched(model) and model.run_eagerly is False


def test_callback_times_single_input():
    times = callback_times(small_model(), [tf.ones((1, 3))], samples=3)
    assert {site: s.repeats for site, s in times.items()} == {
        ("d1", 0): 3,
        ("relu", 0): 3,
        ("d2", 0): 3,
    }


@pytest.mark.parametrize("kwargs", [{"samples": 0}, {"samples": 2.0}, {"samples": 2, "warmup": -1}])
def test_callback_times_rejects_bad_counts(kwargs):
    with pytest.raises(UsageError):
        callback_times(small_model(), [tf.ones((1, 3))], **kwargs)


class Alive:
    """Weak references to the outputs of `Step` layers, and how many lived at each call."""

    def __init__(self):
        self.outputs: list = []
        self.alive_at_call: list[int] = []


class Step(keras.layers.Layer):
    """`x + 1`, noting how many earlier Step outputs are still alive when it is called."""

    def __init__(self, alive, **kwargs):
        super().__init__(**kwargs)
        self.alive = alive

    def call(self, x):
        self.alive.alive_at_call.append(sum(ref() is not None for ref in self.alive.outputs))
        y = x + 1.0
        self.alive.outputs.append(weakref.ref(y))
        return y

    def compute_output_shape(self, input_shape):
        return input_shape


def test_each_layer_output_is_freed_after_its_last_use():
    # Keras' functional pass keeps all of them until the model returns (an eager ResNet152V2
    # pass held 288 MiB); the callback's pass holds only what a later layer still reads
    alive = Alive()
    x = keras.Input((3,), name="x")
    h = x
    for i in range(5):
        h = Step(alive, name=f"step{i}")(h)
    model = keras.Model(x, h)
    model.predict(samples(1), verbose=0, callbacks=[LayerTimingCallback()])
    assert alive.alive_at_call == [0, 1, 1, 1, 1]
    assert not is_patched(model)


def test_a_tensor_read_again_later_is_kept_until_then():
    alive = Alive()
    x = keras.Input((3,), name="x")
    first = Step(alive, name="first")(x)
    h = first
    for i in range(3):
        h = Step(alive, name=f"step{i}")(h)
    y = keras.layers.Add(name="skip")([h, first])  # `first` is read again here
    model = keras.Model(x, [y, keras.layers.Dense(2, name="head")(h)])
    model.predict(samples(1), verbose=0, callbacks=[LayerTimingCallback()])
    # first, step0 (first alive), step1 (first, step0's output), step2 (first, step1's)
    assert alive.alive_at_call == [0, 1, 2, 2]
    assert not is_patched(model)


def steps(alive, count: int, prefix: str) -> list:
    return [Step(alive, name=f"{prefix}{i}") for i in range(count)]


def test_nested_models_and_sequentials_free_their_outputs_too():
    alive = Alive()
    seq = keras.Sequential([keras.Input((3,)), *steps(alive, 4, "s")], name="seq")
    seq.predict(samples(1), verbose=0, callbacks=[LayerTimingCallback()])
    assert alive.alive_at_call == [0, 1, 1, 1]
    alive = Alive()
    inner_in = keras.Input((3,))
    h = inner_in
    for layer in steps(alive, 4, "in"):
        h = layer(h)
    inner = keras.Model(inner_in, h, name="inner")
    x = keras.Input((3,), name="x")
    model = keras.Model(x, keras.layers.Dense(2, name="head")(inner(x)))
    model.predict(samples(1), verbose=0, callbacks=[LayerTimingCallback()])
    assert alive.alive_at_call == [0, 1, 1, 1]
    assert not is_patched(model) and not is_patched(seq)


def test_a_loop_replaced_by_a_class_or_instance_is_kept():
    class OwnLoop(keras.Model):
        def _run_through_graph(self, *args, **kwargs):
            return super()._run_through_graph(*args, **kwargs)

    x = keras.Input((3,))
    own = OwnLoop(x, keras.layers.Dense(2)(x))
    assert releasing_run(own) is None
    plain = keras.Model(x, keras.layers.Dense(2)(x))
    assert releasing_run(plain) is not None
    object.__setattr__(plain, "_run_through_graph", plain._run_through_graph)
    assert releasing_run(plain) is None


def test_masked_sequences_give_the_users_outputs():
    ids = keras.Input((6,), dtype="int32", name="ids")
    h = keras.layers.Embedding(10, 4, mask_zero=True, name="emb")(ids)
    seq = keras.layers.LSTM(5, return_sequences=True, name="lstm")(h)
    y = keras.layers.GRU(3, name="gru")(keras.layers.Add(name="add")([seq, seq]))
    model = keras.Model(ids, y)
    batch = np.array([[1, 2, 3, 0, 0, 0], [4, 5, 0, 0, 0, 0]], dtype="int32")
    expected = model.predict(batch, verbose=0)
    got = model.predict(batch, batch_size=1, verbose=0, callbacks=[LayerTimingCallback()])
    np.testing.assert_allclose(got, expected, rtol=1e-5, atol=1e-6)
    assert not is_patched(model)


def test_outputs_are_those_of_the_users_model():
    # shared layer, two inputs, a skip connection, a nested model, a Sequential, two outputs
    inner = keras.Sequential([keras.Input((3,)), keras.layers.Dense(3, name="in_d")], name="seq")
    a = keras.Input((3,), name="a")
    b = keras.Input((3,), name="b")
    shared = keras.layers.Dense(3, name="shared")
    h = keras.layers.Add(name="add")([shared(a), shared(inner(b))])
    nested_in = keras.Input((3,))
    nested = keras.Model(nested_in, keras.layers.ReLU(name="relu")(nested_in) * 2.0, name="nested")
    y1 = keras.layers.Multiply(name="mul")([nested(h), a])
    y2 = keras.layers.Dense(1, name="head")(keras.layers.Concatenate(name="cat")([h, y1, b]))
    model = keras.Model([a, b], [y1, y2])
    rng = np.random.default_rng(0)
    batch = [rng.normal(size=(N, 3)).astype("float32") for _ in range(2)]
    expected = model.predict(batch, verbose=0)
    cb = LayerTimingCallback(expanded=["nested", "seq"])
    got = model.predict(batch, batch_size=1, verbose=0, callbacks=[cb])
    for g, e in zip(got, expected, strict=True):
        np.testing.assert_allclose(g, e, rtol=1e-6, atol=1e-6)
    assert {("shared", 1), ("seq/in_d", 0), ("nested/relu", 0)} <= set(cb.site_times_us)
    assert not is_patched(model)
