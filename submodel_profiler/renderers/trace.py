"""A Report as a Chrome trace (Trace Event Format, object form), which Perfetto
(ui.perfetto.dev) and chrome://tracing open.

Process 1 is the whole model's traced step-stats run (`Timeline`, from `step_stats.py`): per
executor thread, each executed node is an `X` event, nested in an `X` event of its row spanning
a run of the row's consecutive nodes; the bytes in use by the run's kernels are a `C` counter.
Process 2 lays the rows' isolated median times end to end in execution order: durations to
compare, not a timeline.

Nesting. Trace viewers drop `X` events on one thread that overlap without nesting. Nodes that
run concurrently (TF 2.21's software trace gives every node thread id 0) go to extra tracks,
"thread N (overlap k)": each node takes the lowest track of its thread that is free at its
start, preferring one whose last node is of the same row. On a track the nodes are disjoint, so
a row's slice (its consecutive nodes on that track) holds them and touches no other row's; a
row interleaved with another is several slices (`args.slice`: "2 of 3"). Times are whole
nanoseconds, written as µs (`ts`, `dur`), so a parent's end is exactly its last node's end.
"""

from __future__ import annotations

import json
from collections import defaultdict
from dataclasses import dataclass

from submodel_profiler.report import Report, Timeline

WHOLE_PID = 1
ISOLATED_PID = 2
MEMORY_TID = 0  # process 1's counter events
ISOLATED_TID = 1
# Row fields other modules may add; shown in a row's args where present and not None.
OPTIONAL_ROW_ARGS = ("op_bytes", "bytes_accessed")


@dataclass(frozen=True)
class _Node:
    """A timeline slice in whole nanoseconds."""

    name: str
    op: str
    row: str | None
    thread: int
    start: int
    end: int


def render_trace(report: Report, timeline: Timeline | None = None) -> str:
    """The report as Chrome Trace Event Format JSON (`{"traceEvents": [...], ...}`).

    `timeline` defaults to `report.timeline` (where the report has one); without a timeline
    only process 2 (the isolated rows) is written.
    """
    timeline = timeline or getattr(report, "timeline", None)
    rows = {row.label: row for row in report.layers}
    events = []
    if timeline is not None:
        events += _whole_model_events(timeline, rows)
    events += _isolated_events(report.layers)
    trace = {"traceEvents": events, "displayTimeUnit": "ms"}
    return json.dumps(trace, separators=(",", ":")) + "\n"


def _whole_model_events(timeline: Timeline, rows: dict) -> list:
    """Process 1: names, per (thread, track) row and node slices, the memory counter."""
    events = _process_name(WHOLE_PID, f"whole model (TF step stats, {timeline.mode})", 0)
    runs = []  # (tid, consecutive nodes of one row, or one unattributed node)
    for tid, ((thread, lane), nodes) in enumerate(sorted(_tracks(timeline.slices).items()), 1):
        name = f"thread {thread}" if lane == 0 else f"thread {thread} (overlap {lane})"
        events.append(_thread_name(WHOLE_PID, tid, name))
        runs += [(tid, run) for run in _runs(nodes)]
    number, parts = _slice_numbers([run for _, run in runs])
    for tid, run in runs:
        row = run[0].row
        if row is not None:
            args = _row_args(rows.get(row), timeline.mode) | {"nodes": len(run)}
            args["slice"] = f"{number[id(run)]} of {parts[row]}"
            events.append(_slice(row, "row", tid, run[0].start, run[-1].end, args))
        events += [
            _slice(n.name, "node", tid, n.start, n.end, {"op": n.op, "row": n.row}) for n in run
        ]
    if timeline.memory:
        events.append(_thread_name(WHOLE_PID, MEMORY_TID, "bytes in use (CPU allocator)"))
        events += _memory_events(timeline.memory)
    return events


def _tracks(slices) -> dict:
    """(thread, lane) -> nodes by start, disjoint in time: a node takes its thread's lowest lane
    free at its start, one whose last node is of its row first; a new lane where none is."""
    lanes: dict = defaultdict(list)  # thread -> [[nodes of lane 0], [lane 1], ...]
    nodes = [
        _Node(s.node, s.op, s.row, s.thread, _ns(s.start_us), _ns(s.start_us) + _ns(s.dur_us))
        for s in slices
    ]
    for node in sorted(nodes, key=lambda n: (n.start, -n.end)):
        thread_lanes = lanes[node.thread]
        free = [lane for lane in thread_lanes if lane[-1].end <= node.start]
        same_row = [lane for lane in free if node.row is not None and lane[-1].row == node.row]
        if same_row or free:
            (same_row or free)[0].append(node)
        else:
            thread_lanes.append([node])
    return {(t, i): lane for t, ls in lanes.items() for i, lane in enumerate(ls)}


def _runs(nodes) -> list:
    """Consecutive nodes of one row (or single unattributed nodes), in order."""
    runs: list = []
    for node in nodes:
        if runs and node.row is not None and runs[-1][-1].row == node.row:
            runs[-1].append(node)
        else:
            runs.append([node])
    return runs


def _slice_numbers(runs) -> tuple:
    """(id(run) -> its number among its row's runs by start, row label -> number of runs)."""
    number, parts = {}, defaultdict(int)
    for run in sorted((r for r in runs if r[0].row is not None), key=lambda r: r[0].start):
        parts[run[0].row] += 1
        number[id(run)] = parts[run[0].row]
    return number, dict(parts)


def _memory_events(memory) -> list:
    """One counter event per allocation record, from 0 bytes at the run's start."""
    points = [(0.0, 0)] + [(max(ts, 0.0), int(b)) for ts, b in memory]
    return [
        {
            "ph": "C",
            "name": "bytes in use",
            "pid": WHOLE_PID,
            "tid": MEMORY_TID,
            "ts": _us(_ns(ts)),
            "args": {"bytes": b},
        }
        for ts, b in points
    ]


def _isolated_events(layers) -> list:
    """Process 2: every timed row, its isolated median as the duration, end to end."""
    events = _process_name(ISOLATED_PID, "isolated rows (laid end to end, not a real timeline)", 1)
    events.append(_thread_name(ISOLATED_PID, ISOLATED_TID, "rows in execution order"))
    start = 0
    for row in layers:
        if row.time_us is None:
            continue
        end = start + _ns(row.time_us.median)
        args = _row_args(row, None) | {"iqr_us": row.time_us.iqr, "repeats": row.time_us.repeats}
        events.append(_slice(row.label, "row", ISOLATED_TID, start, end, args, ISOLATED_PID))
        start = end
    return events


def _row_args(row, mode: str | None) -> dict:
    """A row's counts and shapes (and, for a step-stats mode, its median time there)."""
    if row is None:
        return {}
    args = {
        "type": row.type,
        "flops": row.flops,
        "macs": row.macs,
        "params": row.params,
        "input_shapes": [list(s) for s in row.input_shapes],
        "output_shapes": [list(s) for s in row.output_shapes],
    }
    for name in OPTIONAL_ROW_ARGS:
        if getattr(row, name, None) is not None:
            args[name] = getattr(row, name)
    if mode is not None:
        args["step_stats_median_us"] = getattr(row, f"{mode}_time_us", None)
    return args


def _slice(name, cat, tid, start: int, end: int, args, pid=WHOLE_PID) -> dict:
    return {
        "ph": "X",
        "name": name,
        "cat": cat,
        "pid": pid,
        "tid": tid,
        "ts": _us(start),
        "dur": _us(end - start),
        "args": args,
    }


def _process_name(pid: int, name: str, order: int) -> list:
    """The process's name and its place among processes (metadata on tid 0)."""
    return [
        {"ph": "M", "name": "process_name", "pid": pid, "tid": 0, "args": {"name": name}},
        {
            "ph": "M",
            "name": "process_sort_index",
            "pid": pid,
            "tid": 0,
            "args": {"sort_index": order},
        },
    ]


def _thread_name(pid: int, tid: int, name: str) -> dict:
    return {"ph": "M", "name": "thread_name", "pid": pid, "tid": tid, "args": {"name": name}}


def _ns(us: float) -> int:
    return round(us * 1000)


def _us(ns: int) -> float:
    return ns / 1000
