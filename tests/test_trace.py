"""The Chrome trace renderer: object-form Trace Event Format that Perfetto keeps whole.

A hand-built report and timeline (no TensorFlow) check the structure, the perfect nesting of
`X` events per (pid, tid) (interleaved rows and concurrent nodes on one executor thread
included), process 2's durations and process 1's row slices; a real profile checks that TF's
step stats give a timeline attributed to rows, with the bytes in use.
"""

from __future__ import annotations

import json
import types
from collections import Counter, defaultdict
from dataclasses import dataclass

import pytest

from submodel_profiler.renderers.trace import render_trace
from submodel_profiler.report import (
    CrossCheck,
    Environment,
    LayerRow,
    ModelInfo,
    Report,
    Settings,
    TensorInfo,
    Timeline,
    TimelineSlice,
    TimeStats,
    Totals,
    row_label,
)

from conftest import FAST_FLAGS, FAST_TIMING, run_cli


@dataclass(frozen=True)
class _RowWithBytes(LayerRow):
    """A row as it will be once another module adds byte counts."""

    op_bytes: int | None = None
    bytes_accessed: int | None = None


def _stats(median: float) -> TimeStats:
    return TimeStats(median=median, min=median, max=median, iqr=0.5, repeats=5)


def _row(name, median, flops, **kw) -> LayerRow:
    shapes = {"input_shapes": ((1, 8),), "output_shapes": ((1, 8),)}
    return _RowWithBytes(
        name, "Dense", "layer", 0, flops=flops, macs=flops // 2, time_us=median, **shapes, **kw
    )


def hand_built_report() -> Report:
    layers = (
        _row("a", _stats(12.5), 100, params=72, op_bytes=256),
        _row("b", _stats(0.1), 20),
        _row("c", None, 30),  # not timed: not in process 2
        _row("d", _stats(7.25), 40, bytes_accessed=512),
    )
    return Report(
        model=ModelInfo("trace", "python", 1, (TensorInfo("x", (1, 8), "float32"),), 72),
        environment=Environment("3.11", "2.21.0", "3.15", "Linux", "CPU: test"),
        settings=Settings(True, 1, 3, 5, 0.05, 0.001),
        layers=layers,
        totals=Totals(flops=190, whole_graph_flops=190, unattributed_flops=0),
        cross_check=CrossCheck(True),
    )


def _slice(node, row, thread, start, dur, op="MatMul"):
    return TimelineSlice(node=node, op=op, row=row, thread=thread, start_us=start, dur_us=dur)


# Thread 0: rows a and b interleave (a, b, a), c runs concurrently with both (overlapping
# nodes on one thread id, as TF 2.21's software trace records every node), a node of no row
# and a zero-length node; thread 5 holds another node of a.
SLICES = (
    _slice("_SOURCE", None, 0, 0.0, 0.35, op=""),
    _slice("a/MatMul", "a", 0, 1.0, 10.0),
    _slice("c/MatMul", "c", 0, 5.0, 20.0),
    _slice("a/BiasAdd", "a", 0, 11.0, 0.1),
    _slice("b/MatMul", "b", 0, 11.1, 8.9),
    _slice("a/Relu", "a", 0, 20.0, 0.3),
    _slice("a/ReadVariableOp", "a", 5, 2.0, 0.5, op="ReadVariableOp"),
    _slice("c/BiasAdd", "c", 0, 25.0, 0.0),
    _slice("d/MatMul", "d", 0, 25.5, 3.0),
    _slice("Identity", None, 0, 30.0, 1.0, op="Identity"),
)
MEMORY = ((1.2, 32), (5.1, 64), (11.2, 96), (20.4, 64), (28.0, 16))
TIMELINE = Timeline(mode="unfused", slices=SLICES, memory=MEMORY)


def _events(text: str) -> list:
    trace = json.loads(text)
    assert set(trace) == {"traceEvents", "displayTimeUnit"} and trace["displayTimeUnit"] == "ms"
    return trace["traceEvents"]


def _ns(us: float) -> int:
    """µs as whole nanoseconds, the way Perfetto reads `ts` and `dur`."""
    return round(us * 1000)


def assert_well_formed(events):
    """Every event has ph/pid/tid/name; X events a ts and a dur >= 0; M events name every pid
    and every (pid, tid) that an event uses."""
    for e in events:
        assert {"ph", "pid", "tid", "name"} <= set(e), e
        if e["ph"] == "X":
            assert e["ts"] >= 0 and e["dur"] >= 0, e
        if e["ph"] in ("X", "C"):
            assert isinstance(e["ts"], (int, float)), e
    processes = {e["pid"] for e in events if e["ph"] == "M" and e["name"] == "process_name"}
    threads = {
        (e["pid"], e["tid"]) for e in events if e["ph"] == "M" and e["name"] == "thread_name"
    }
    used = {(e["pid"], e["tid"]) for e in events if e["ph"] != "M"}
    assert {pid for pid, _ in used} <= processes
    assert used <= threads


def nesting_violations(events) -> list:
    """Pairs of X events on one (pid, tid) that overlap without one holding the other."""
    tracks = defaultdict(list)
    for e in events:
        if e["ph"] == "X":
            start = _ns(e["ts"])
            tracks[e["pid"], e["tid"]].append((start, start + _ns(e["dur"]), e["name"]))
    bad = []
    for spans in tracks.values():
        stack = []
        for start, end, name in sorted(spans, key=lambda s: (s[0], -s[1])):
            while stack and stack[-1][1] <= start:
                stack.pop()
            if stack and end > stack[-1][1]:
                bad.append((stack[-1][2], name))
            stack.append((start, end, name))
    return bad


def test_nesting_checker_catches_overlap():
    def x(name, ts, dur):
        return {"ph": "X", "name": name, "pid": 1, "tid": 1, "ts": ts, "dur": dur}

    nested = [x("row", 0, 10), x("n1", 0, 4), x("n2", 4, 6), x("next", 10, 1)]
    assert nesting_violations(nested) == []
    assert nesting_violations([x("a", 0, 10), x("b", 5, 10)]) == [("a", "b")]


def test_trace_is_well_formed_and_nests_perfectly():
    events = _events(render_trace(hand_built_report(), timeline=TIMELINE))
    assert_well_formed(events)
    assert nesting_violations(events) == []
    names = {
        (e["pid"], e["args"]["name"]) for e in events if e["ph"] == "M" and "name" in e["args"]
    }
    assert (1, "whole model (TF step stats, unfused)") in names
    assert (2, "isolated rows (laid end to end, not a real timeline)") in names
    # c overlaps a and b on thread 0: an extra track; thread 5 is a track of its own.
    assert {"thread 0", "thread 0 (overlap 1)", "thread 5"} <= {n for _, n in names}


def test_without_a_timeline_only_the_isolated_rows_are_written():
    events = _events(render_trace(hand_built_report()))
    assert_well_formed(events)
    assert {e["pid"] for e in events} == {2}


def test_the_timeline_is_read_from_the_report_where_it_has_one():
    report = hand_built_report()
    with_timeline = types.SimpleNamespace(layers=report.layers, timeline=TIMELINE)
    assert render_trace(with_timeline) == render_trace(report, timeline=TIMELINE)


def test_isolated_rows_are_their_medians_end_to_end():
    report = hand_built_report()
    events = [e for e in _events(render_trace(report, timeline=TIMELINE)) if e["pid"] == 2]
    rows = [e for e in events if e["ph"] == "X"]
    timed = [r for r in report.layers if r.time_us is not None]
    assert [e["name"] for e in rows] == [r.label for r in timed]
    assert [e["dur"] for e in rows] == pytest.approx([r.time_us.median for r in timed])
    ends = [0] + [_ns(e["ts"]) + _ns(e["dur"]) for e in rows]
    assert [_ns(e["ts"]) for e in rows] == ends[:-1]  # each starts where the last ended
    assert rows[0]["args"]["op_bytes"] == 256 and "bytes_accessed" not in rows[0]["args"]
    assert rows[-1]["args"]["bytes_accessed"] == 512
    assert rows[0]["args"]["flops"] == 100 and rows[0]["args"]["params"] == 72
    assert rows[0]["args"]["input_shapes"] == [[1, 8]]


def _row_and_node_slices(events):
    xs = [e for e in events if e["ph"] == "X" and e["pid"] == 1]
    return [e for e in xs if e["cat"] == "row"], [e for e in xs if e["cat"] == "node"]


def assert_rows_cover_their_nodes(events):
    """Every node of a row lies inside a slice of that row on its own track; every row slice
    starts at a node of its row and ends at one."""
    rows, nodes = _row_and_node_slices(events)

    def span(e):
        return _ns(e["ts"]), _ns(e["ts"]) + _ns(e["dur"])

    for node in (n for n in nodes if n["args"]["row"] is not None):
        start, end = span(node)
        holders = [
            r
            for r in rows
            if r["tid"] == node["tid"]
            and r["name"] == node["args"]["row"]
            and span(r)[0] <= start
            and end <= span(r)[1]
        ]
        assert len(holders) == 1, node
    for row in rows:
        own = [n for n in nodes if n["tid"] == row["tid"] and n["args"]["row"] == row["name"]]
        assert span(row)[0] in {span(n)[0] for n in own}
        assert span(row)[1] in {span(n)[1] for n in own}


def test_row_slices_cover_their_nodes_and_interleaved_rows_are_split():
    events = _events(render_trace(hand_built_report(), timeline=TIMELINE))
    assert_rows_cover_their_nodes(events)
    rows, nodes = _row_and_node_slices(events)
    assert Counter(n["name"] for n in nodes) == Counter(s.node for s in SLICES)
    # a runs before and after b on thread 0, and on thread 5: three slices, numbered by start.
    a = sorted((r for r in rows if r["name"] == "a"), key=lambda r: r["ts"])
    assert [r["args"]["slice"] for r in a] == ["1 of 3", "2 of 3", "3 of 3"]
    assert sum(r["args"]["nodes"] for r in a) == 4
    assert a[0]["args"]["flops"] == 100 and a[0]["args"]["op_bytes"] == 256


def test_memory_is_a_counter_of_the_records():
    events = _events(render_trace(hand_built_report(), timeline=TIMELINE))
    counters = [e for e in events if e["ph"] == "C"]
    assert {(e["pid"], e["name"]) for e in counters} == {(1, "bytes in use")}
    points = [(e["ts"], e["args"]["bytes"]) for e in counters]
    assert points == [(0.0, 0), *MEMORY]


def test_a_real_profile_gives_a_timeline_attributed_to_rows(tiny_cnn, monkeypatch):
    import submodel_profiler
    from submodel_profiler import profiler

    recorded = []

    def recording_other_methods(*args, **kwargs):
        recorded.append(other_methods(*args, **kwargs))
        return recorded[-1]

    other_methods = profiler.other_methods
    monkeypatch.setattr(profiler, "other_methods", recording_other_methods)
    report = submodel_profiler.profile_model(
        tiny_cnn, timing_settings=FAST_TIMING, step_stats_runs=1, callback_samples=0, trace=True
    )
    (others,) = recorded
    assert not others.errors
    for mode, times in (("in_graph", others.in_graph), ("unfused", others.unfused)):
        timeline = times.timeline
        assert timeline.mode == mode
        starts = [s.start_us for s in timeline.slices]
        assert starts == sorted(starts) and starts[0] == 0.0
        # The rows timed in this mode, and no other, own nodes; every node of no row is listed.
        assert {s.row for s in timeline.slices} - {None} == {row_label(*k) for k in times.times_us}
        assert times.peak_bytes > 0
        assert max(b for _, b in timeline.memory) == times.peak_bytes
        assert set(times.row_peak_bytes) == set(times.times_us)
        assert all(0 <= b <= times.peak_bytes for b in times.row_peak_bytes.values())
    events = _events(render_trace(report, timeline=others.unfused.timeline))
    assert_well_formed(events)
    assert nesting_violations(events) == []
    assert_rows_cover_their_nodes(events)


def test_the_cli_writes_a_trace_that_nests(model_file, tmp_path):
    path = tmp_path / "trace.json"
    result = run_cli([model_file, *FAST_FLAGS, "--trace", str(path)])
    assert result.returncode == 0, result.stderr
    events = _events(path.read_text())
    assert_well_formed(events)
    assert nesting_violations(events) == []
    pids = {e["pid"] for e in events if e["ph"] == "X"}
    assert pids == {1, 2}  # the step-stats run and the isolated rows


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--no-timing"], "--no-timing"),
        (["--step-stats-runs", "0"], "--step-stats-runs 0"),
        (["--batch-sizes", "1,2"], "--batch-sizes"),
    ],
)
def test_the_cli_refuses_a_trace_it_cannot_write(model_file, tmp_path, extra, message):
    result = run_cli([model_file, *extra, "--trace", str(tmp_path / "t.json")])
    assert result.returncode == 2 and message in result.stderr, result.stderr
    result = run_cli([model_file, "--trace", str(tmp_path / "t.txt")])  # not .json
    assert result.returncode == 2 and ".json" in result.stderr
