"""Timing statistics and the in-graph timer's bookkeeping (no timing claims: see scripts/)."""

from __future__ import annotations

import numpy as np
import pytest

from submodel_profiler.timing import (
    InputPool,
    Segment,
    SegmentTimer,
    TimeStats,
    TimingSettings,
    median_is_stable,
    random_inputs,
)

from conftest import depends_on


def test_time_stats_from_samples():
    s = TimeStats.from_samples([1.0, 2.0, 3.0, 4.0, 100.0])
    assert (s.median, s.min, s.max, s.repeats) == (3.0, 1.0, 100.0, 5)
    assert s.iqr == pytest.approx(4.0 - 2.0)


def test_median_stability_rule():
    assert median_is_stable([100.0] * 10, 0.05)
    assert not median_is_stable([50.0, 150.0] * 5, 0.05)
    # Below 1 µs of spread counts as stable, even for a ~0 µs median.
    assert median_is_stable([0.0, 0.5, 0.2, 0.9, 0.1, 0.3, 0.4], 0.05)


def test_random_inputs_match_specs():
    import tensorflow as tf

    specs = [
        tf.TensorSpec((2, 3), tf.float32),
        tf.TensorSpec((4,), tf.int32),
        tf.TensorSpec((1,), tf.bool),
    ]
    values = random_inputs(specs)
    assert [tuple(v.shape) for v in values] == [(2, 3), (4,), (1,)]
    assert [v.dtype for v in values] == [tf.float32, tf.int32, tf.bool]
    assert np.all((values[1].numpy() >= 0) & (values[1].numpy() < 10))


def test_input_pool_shares_inputs_between_segments_not_within_one():
    import tensorflow as tf

    pool = InputPool(int_high=3)
    a, b = tf.TensorSpec((4, 5), tf.float32), tf.TensorSpec((6,), tf.int32)
    first = pool.inputs([a, a, b])
    second = pool.inputs([b, a])
    assert first[0] is not first[1]  # one segment's two inputs of one shape stay distinct
    assert not np.array_equal(first[0].numpy(), first[1].numpy())
    assert second[1] is first[0] and second[0] is first[2]  # another segment's are shared
    assert pool.inputs([tf.TensorSpec((4, 5), tf.float64)])[0].dtype == tf.float64
    assert np.all((first[2].numpy() >= 0) & (first[2].numpy() < 3))


def test_chunks_of_one_timer_share_their_inputs():
    import tensorflow as tf

    from submodel_profiler.timing import _Chunk

    spec = (tf.TensorSpec((8, 8), tf.float32),)
    segments = [Segment(lambda x: x * 2.0, spec), Segment(lambda x: x + 1.0, spec)]
    pool = InputPool()
    one, two = _Chunk(segments, pool), _Chunk(segments[:1], pool)
    # calibration input, then each segment's: the same tensors for the same specs
    assert one.xs[1] is one.xs[2] is two.xs[1]
    assert _Chunk(segments[:1], InputPool()).xs[1] is not one.xs[1]  # another pool: its own


def test_segment_timer_respects_repeat_bounds(monkeypatch):
    import tensorflow as tf

    from submodel_profiler import timing

    # Never stable: neither the relative nor the absolute (1 µs) tolerance can be met, so a quiet
    # machine cannot stop sampling at min_repeats.
    monkeypatch.setattr(timing, "ABSOLUTE_TOLERANCE_US", -1.0)

    settings = TimingSettings(warmup=1, min_repeats=4, max_repeats=6, budget_s=10.0, tolerance=1e-9)
    spec = (tf.TensorSpec((64, 64), tf.float32),)
    segments = [Segment(lambda x: tf.matmul(x, x), spec), Segment(lambda x: x, spec)]
    (stats,) = SegmentTimer(settings).time([segments])
    assert len(stats) == 2
    # tolerance ~0 (and no absolute floor) is never met, so sampling runs to max_repeats.
    assert [s.repeats for s in stats] == [6, 6]


def test_segment_timer_stops_at_min_repeats_when_budget_is_spent():
    import tensorflow as tf

    ticks = iter(range(0, 10**6, 10))  # an injected clock: every read is 10 s later
    settings = TimingSettings(warmup=0, min_repeats=3, max_repeats=50, budget_s=1.0, tolerance=1e-9)
    timer = SegmentTimer(settings, clock=lambda: float(next(ticks)))
    spec = (tf.TensorSpec((8,), tf.float32),)
    (stats,) = timer.time([[Segment(lambda x: x * 2.0, spec)]])
    assert stats[0].repeats == 3


def test_a_chunk_stops_sampling_once_its_medians_are_stable(monkeypatch):
    import tensorflow as tf

    from submodel_profiler import timing

    # Fake compiled functions: the steady chunk's samples never vary (stable at min_repeats),
    # the noisy chunk's alternate 10 and 1000 µs (never stable at 5%).
    calls = {"steady": 0, "noisy": 0}

    def fake_build(segments, warm=True):
        kind = "noisy" if any(s.fn is noisy for s in segments) else "steady"

        def run(n, *xs):
            calls[kind] += int(n)
            rows = [[1.0, 10.0 if kind == "steady" or i % 2 else 1000.0] for i in range(int(n))]
            return tf.constant(np.array(rows) / 1e6), None

        run.get_concrete_function = lambda: None  # traced ahead, as a tf.function is
        return run

    def steady(x):
        return x

    def noisy(x):
        return x

    monkeypatch.setattr(timing, "build_timing_function", fake_build)
    spec = (tf.TensorSpec((1,), tf.float32),)
    settings = TimingSettings(warmup=0, min_repeats=4, max_repeats=20, budget_s=10.0)
    timer = SegmentTimer(settings, chunk_size=1)
    ((a, b),) = timer.time([[Segment(steady, spec), Segment(noisy, spec)]])
    # one warm-up run each, then: the steady chunk stable after its first round, no more; a
    # chunk of one segment runs one iteration more per round (left out: test below)
    assert a.repeats == 4 and calls["steady"] == 1 + (4 + 1)
    assert b.repeats == 20 and calls["noisy"] == 1 + 5 * (4 + 1)  # sampled on, to max_repeats


def test_groups_and_chunks_keep_segment_order(monkeypatch):
    import tensorflow as tf

    from submodel_profiler import timing

    # A fake compiled function in place of the in-graph clock: every sample of a segment is its
    # own known duration (µs), the calibration segment's the 2 µs overhead.
    overhead_us = 2.0
    durations_us = {}  # segment fn -> µs per sample, overhead included
    built = []  # the segments of every compiled function, in build order

    def fake_build(segments, warm=True):
        built.append([s.fn for s in segments])
        row = [overhead_us if s.fn is timing._empty_body else durations_us[s.fn] for s in segments]

        def run(n, *xs):
            assert len(xs) == sum(len(s.specs) for s in segments)
            return tf.constant(np.tile(np.array(row) / 1e6, (int(n), 1))), None

        run.get_concrete_function = lambda: None  # traced ahead, as a tf.function is
        return run

    monkeypatch.setattr(timing, "build_timing_function", fake_build)
    spec = (tf.TensorSpec((1,), tf.float32),)
    fns = [lambda x, i=i: x + i for i in range(4)]
    durations_us.update(zip(fns, [12.0, 32.0, 22.0, 1.0]))  # the last one below the overhead
    settings = TimingSettings(warmup=0, min_repeats=2, max_repeats=2, budget_s=10.0)
    timer = SegmentTimer(settings, chunk_size=2)
    first, second = timer.time([[Segment(f, spec) for f in fns[:3]], [Segment(fns[3], spec)]])
    # Group 1 is chunked [0, 1] + [2], group 2 compiled on its own (the smaller group first:
    # a group of its own is a large graph, slow to optimize); each with calibration first.
    assert built == [
        [timing._empty_body, fns[3]],
        [timing._empty_body, *fns[:2]],
        [timing._empty_body, fns[2]],
    ]
    assert [s.median for s in first] == pytest.approx([10.0, 30.0, 20.0])
    assert [s.median for s in second] == [0.0]  # net of the overhead, clamped at 0
    assert all(s.repeats == 2 for s in first + second)
    assert timer.overhead_us == pytest.approx(overhead_us)


def test_a_group_compiled_ahead_is_used_not_compiled_again(monkeypatch):
    import threading

    import tensorflow as tf

    from submodel_profiler import timing

    # Fake compiled functions, each recording the segments it was built for and the thread
    # that first ran it (its compile and warm-up); every sample of a segment is its known µs.
    built, first_run = [], {}
    durations_us = {}

    def fake_build(segments, warm=True):
        fns = tuple(s.fn for s in segments)
        built.append(fns)
        row = [1.0 if s.fn is timing._empty_body else durations_us[s.fn] for s in segments]

        def run(n, *xs):
            first_run.setdefault(fns, threading.current_thread().name)
            if any(s.fn is broken for s in segments):
                raise ValueError("cannot run")
            return tf.constant(np.tile(np.array(row) / 1e6, (int(n), 1))), None

        run.get_concrete_function = lambda: None
        return run

    def broken(x):
        return x

    monkeypatch.setattr(timing, "build_timing_function", fake_build)
    spec = (tf.TensorSpec((1,), tf.float32),)
    fns = [lambda x, i=i: x + i for i in range(3)]
    durations_us.update(zip([*fns, broken], [11.0, 21.0, 31.0, 5.0]))
    settings = TimingSettings(warmup=1, min_repeats=2, max_repeats=2, budget_s=10.0)
    timer = SegmentTimer(settings)
    whole, failing = [Segment(fns[2], spec)], [Segment(broken, spec)]
    timer.compile_ahead(whole)
    timer.compile_ahead(failing)
    assert built == [(timing._empty_body, fns[2]), (timing._empty_body, broken)]
    # equal groups, not the same lists: the ahead chunks are found by their segments
    rows, (alone,), (none,) = timer.time(
        [[Segment(f, spec) for f in fns[:2]], list(whole), list(failing)]
    )
    assert built.count((timing._empty_body, fns[2])) == 1  # not compiled again
    assert first_run[(timing._empty_body, fns[2])].startswith("ahead")
    assert [s.median for s in rows] == pytest.approx([10.0, 20.0])
    assert alone.median == pytest.approx(30.0)
    # a chunk compiled ahead that fails is retried and its error recorded, as any other
    assert none is None and "cannot run" in timer.errors[(2, 0)]
    assert not timer._ahead and timer._ahead_worker is None  # all used, the thread let go


def test_a_timed_run_reads_its_weights_after_its_start_timestamp():
    # A computation on weights alone (keras-hub's position embeddings) must run inside the
    # timed window, not before it nor once for both runs: a segment's ops, weight reads
    # included, are created under the run's control dependencies.
    import keras
    import tensorflow as tf

    from submodel_profiler.submodels import SubModel
    from submodel_profiler.timing import _warm_then_time

    class WeightsOnly(keras.layers.Layer):
        def build(self, shape):
            self.w = self.add_weight(shape=(4, 4))

        def call(self, x):
            return x[:, :1] * 0.0 + keras.ops.sum(keras.ops.matmul(self.w, self.w))

    inputs = keras.Input((4,))
    sub = SubModel(keras.Model(inputs, WeightsOnly()(inputs)), flops=None)
    ops = {}

    @tf.function(autograph=False)
    def run(x):
        after = tf.timestamp()
        _warm_then_time(Segment(sub.call, ()), [x], after)
        graph = tf.compat.v1.get_default_graph()
        ops["all"] = graph.get_operations()
        return after

    run.get_concrete_function(tf.TensorSpec((1, 4)))
    stamps = [op for op in ops["all"] if op.type == "Timestamp"]
    reads = [op for op in ops["all"] if op.type == "ReadVariableOp"]
    # after, start, end; matmul(w, w) reads w twice in the warm run, then twice in the timed
    assert len(stamps) == 3 and len(reads) == 4
    after, start, _ = stamps
    for warm in reads[:2]:  # after the previous segment, and before the clock starts
        assert depends_on(warm, after) and depends_on(start, warm)
    for timed in reads[2:]:
        assert depends_on(timed, start)


def test_an_imported_trace_computes_the_model_and_runs_inside_the_timed_window():
    # The whole model's segment imports its reference trace instead of tracing it again: the
    # same outputs (an LSTM's loop bodies come along as library functions), and every imported
    # op, weight reads included, after the timed run's start timestamp.
    import keras
    import tensorflow as tf

    from submodel_profiler.timing import _warm_then_time
    from submodel_profiler.tracing import imported_call, trace_call

    inputs = keras.Input((5, 3))
    sequence = keras.layers.LSTM(4, return_sequences=True)(inputs)
    model = keras.Model(inputs, [keras.layers.Dense(2)(sequence), keras.layers.Flatten()(inputs)])
    spec = tf.TensorSpec((2, 5, 3))
    call = imported_call(trace_call(model, [spec]))

    @tf.function(autograph=False)
    def run(x):
        after = tf.timestamp()
        _warm_then_time(Segment(call, (spec,)), [x], after, warm=False)
        return call(x)

    x = tf.random.normal(spec.shape, seed=1)
    for got, want in zip(run(x), model(x)):
        np.testing.assert_allclose(got.numpy(), np.asarray(want), rtol=1e-5, atol=1e-6)
    graph = run.get_concrete_function(spec).graph
    stamps = [op for op in graph.get_operations() if op.type == "Timestamp"]
    start = stamps[1]  # after, start, end
    imported = [op for op in graph.get_operations() if op.name.startswith("imported/")]  # timed
    assert any(op.type == "ReadVariableOp" for op in imported)
    assert any(op.type == "While" for op in imported)
    for op in imported:
        assert depends_on(op, start), op.name


def test_split_segments_report_their_first_parts_beside_their_totals(monkeypatch):
    import tensorflow as tf

    from submodel_profiler import timing

    # A fake compiled function: the totals in segment order, then the split segments' first
    # parts in order (build_timing_function's layout), the calibration first at 2 µs.
    def fake_build(segments, warm=True):
        totals = [2.0, 12.0, 32.0, 52.0][: len(segments)]
        firsts = [7.0, 22.0][: sum(s.split for s in segments)]

        def run(n, *xs):
            return tf.constant(np.tile(np.array(totals + firsts) / 1e6, (int(n), 1))), None

        run.get_concrete_function = lambda: None
        return run

    monkeypatch.setattr(timing, "build_timing_function", fake_build)
    spec = (tf.TensorSpec((1,), tf.float32),)
    segments = [Segment(lambda x: x, spec), Segment(lambda x, split: x, spec, split=True)]
    segments.append(Segment(lambda x, split: x, spec, split=True))
    settings = TimingSettings(warmup=0, min_repeats=2, max_repeats=2, budget_s=10.0)
    timer = SegmentTimer(settings)
    (stats,) = timer.time([segments])
    assert [s.median for s in stats] == pytest.approx([10.0, 30.0, 50.0])
    assert {k: s.median for k, s in timer.first_parts.items()} == pytest.approx(
        {(0, 1): 5.0, (0, 2): 20.0}
    )


def test_a_split_segment_must_call_its_gate_once():
    import tensorflow as tf

    from submodel_profiler.timing import build_timing_function

    spec = (tf.TensorSpec((2,), tf.float32),)
    never = Segment(lambda x, split: x * 2.0, spec, split=True)
    with pytest.raises(ValueError, match="calls its gate once, not 0 times"):
        build_timing_function([never]).get_concrete_function()


def test_only_a_chunk_of_one_segment_skips_the_untimed_run():
    # A segment alone in its chunk is warmed by its own timed run of the loop iteration before;
    # segments sharing a chunk each run once untimed right before their timed run.
    import tensorflow as tf

    from submodel_profiler.timing import _Chunk

    calls = []
    spec = (tf.TensorSpec((2,), tf.float32),)

    def seg(name):
        def fn(x):
            calls.append(name)
            return x * 2.0

        return Segment(fn, spec)

    _Chunk([seg("alone")], InputPool()).trace()
    _Chunk([seg("a"), seg("b")], InputPool()).trace()
    assert calls == ["alone", "a", "a", "b", "b"]


def test_a_chunk_of_one_segment_leaves_out_each_calls_first_iteration(monkeypatch):
    # Without an untimed run before each timed one, a call's first iteration follows other
    # chunks' runs, not its own: a fake compiled function makes it 1000 µs, the others 10.
    import tensorflow as tf

    from submodel_profiler import timing

    def fake_build(segments, warm=True):
        def run(n, *xs):
            rows = [[1.0] + [1000.0 if i == 0 else 10.0] * (len(segments) - 1) for i in range(n)]
            return tf.constant(np.array(rows) / 1e6), None

        run.get_concrete_function = lambda: None
        return run

    monkeypatch.setattr(timing, "build_timing_function", fake_build)
    spec = (tf.TensorSpec((1,), tf.float32),)
    settings = TimingSettings(warmup=0, min_repeats=3, max_repeats=6, budget_s=10.0)
    ((alone,), (a, b)) = SegmentTimer(settings).time(
        [[Segment(lambda x: x, spec)], [Segment(lambda x: x, spec), Segment(lambda x: x, spec)]]
    )
    assert alone.repeats == 3 and alone.max == pytest.approx(9.0)  # 10 less the 1 µs overhead
    assert a.max == pytest.approx(999.0)  # a shared chunk keeps every iteration
