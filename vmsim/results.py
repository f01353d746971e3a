"""What a run leaves: its tables, its summary, and `RunResult`, which writes them as a result folder.

A result folder holds `events.parquet`, `requests.parquet`, `summary.json`, `config.resolved.yaml`, PNG
plots, the Perfetto trace (`trace.perfetto-trace`, or `trace.json`) and the `.vmsim-result` marker listing
them; `vmsim.result_folder` says which folders may be replaced and writes one atomically.

A run written to a folder streams its logs to parquet as it runs (`vmsim.result_folder.LogSpill`): its
tables, its summary's numbers and its trace are read back from those files, a column or a batch at a time,
so the logs' memory stays flat however long the run. A run kept in memory (`vmsim.run(..., write=False)`:
notebooks, sweeps, tests) keeps its logs whole and builds its tables from them.
"""

from __future__ import annotations

import json
import math
import os
import shutil
from functools import cached_property
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vmsim._version import __version__
from vmsim.accounting import accounting, accounting_table
from vmsim.analysis.checks import check_events
from vmsim.analysis.conformance import with_conformance
from vmsim.analysis.liveness import Liveness, with_liveness
from vmsim.analysis.stats import DEFAULT_BATCHES, StreamedLatency
from vmsim.errors import VmsimError
from vmsim.result_folder import (
    EVENT_SCHEMA,
    FLUSH_ROWS,
    REQUEST_SCHEMA,
    SUMMARY_FILE,
    ForkedWorker,
    LogSpill,
    write_atomically,
)
from vmsim.sim.log import Column
from vmsim.sim.output import SimOutput
from vmsim.units import format_ns

TRACE_EVENT_LIMIT = 200_000


# --- tables -----------------------------------------------------------------------------------


def column_table(row: tuple[Column, ...]) -> str:
    """A log row's columns as the Markdown table results/README.md shows (a test keeps the two equal)."""
    lines = ["| column | type | meaning |", "|---|---|---|"]
    lines += [f"| `{column.name}` | {column.arrow_type} | {column.meaning} |" for column in row]
    return "\n".join(lines)


def events_table(output: SimOutput) -> pa.Table:
    """The event log as an Arrow table (frame headers decoded, `wire` as a binary column)."""
    return pa.table(output.events.columns(), schema=EVENT_SCHEMA)


def requests_table(output: SimOutput) -> pa.Table:
    return pa.table(output.requests.columns(), schema=REQUEST_SCHEMA)


# --- summary ----------------------------------------------------------------------------------


def summarize(output: SimOutput, *, wall_seconds: float, version: str = __version__,
              requests: pa.Table | None = None, spill: LogSpill | None = None) -> dict:
    """The numbers a user reads first, as a JSON-ready dict (see results/README.md for each key).

    Latency covers the requests submitted at or after `warmup_ns` and completed by `sim_time_ns`, so
    start-up (device init, empty queues) does not flatter or penalise the steady state; throughput counts
    every completion inside that window whenever its request was submitted (leaving out the ones submitted
    in the warm-up would make it low by about the requests in flight at the warm-up's end). Requests the
    teardown after the end completes (`Model._teardown` runs simulated time on) are left out of both
    (`requests_after_end` counts them). `counts` says what became of every request offered. Each bus and
    device gets the latency of its own requests. `check` is the verdict of the safety checks over the event
    log (`vmsim.analysis.checks`) and of the liveness check (`vmsim.analysis.liveness`).

    The requests are read a batch at a time in the order they completed (`RequestBatches`): counts, stall
    warnings and the liveness check in one pass, exact percentiles in one or two more
    (`vmsim.analysis.stats.StreamedLatency`), so memory stays bounded however long the run. `requests` is
    the run's requests table when the caller keeps it (a `RunResult` kept in memory): read as one batch, so
    the log is turned into a table once. `spill` is where a streamed run's logs went: the requests are read
    back from its parquet file a row group at a time, and the safety checks read the lifecycle rows it kept.
    """
    batches = RequestBatches(output, requests, spill)
    first = _FirstPass(output, batches.names)

    def measured():
        for codes, submit, start, complete in batches():
            if not first.done:
                first.add(codes, submit, start, complete)
            kept = (submit >= output.warmup_ns) & (complete <= output.sim_time_ns)
            yield codes[kept], (complete - submit)[kept]
        first.done = True

    counters = group_counters(output)
    groups = _latency_groups(counters["buses"], batches.names)
    latency = StreamedLatency(measured, len(batches.names), groups, batches=DEFAULT_BATCHES)
    summaries, interval = latency.summaries()
    completed = int(latency.counts.sum())
    _add_latency(counters["buses"], batches.names, latency.counts, summaries)
    window_s = (output.sim_time_ns - output.warmup_ns) / 1e9
    safety = spill.check() if spill is not None else check_events(output.events)
    return json_ready({
        "scenario": output.scenario,
        "seed": output.seed,
        "vmsim_version": version,
        "sim_time_ns": output.sim_time_ns,
        "warmup_ns": output.warmup_ns,
        "wall_seconds": round(wall_seconds, 3),
        "requests_total": len(output.requests),
        "requests_completed": completed,
        "requests_after_end": first.after_end,
        "requests_in_window": first.in_window,
        "throughput_rps": first.in_window / window_s if window_s > 0 else math.nan,
        "counts": request_counts(output),
        "latency_ns": summaries[_ALL],
        "latency_ci95_ns": interval.as_dict(),
        **counters,
        "init_done_ns": dict(output.init_done_ns),
        "events_logged": len(output.events),
        "trace": None,
        "check": with_conformance(with_liveness(safety, first.liveness.entry(output.workloads, output.series)),
                                  output.events, spill),
        "workloads": output.workloads,
        "processors": _per_request(output),
        "accounting": accounting(output),
        "warnings": run_warnings(output, completed, first.completed_by_end()),
    })


SUMMARY_BATCH_ROWS = FLUSH_ROWS
"""Requests a streamed run's summary reads at a time."""


class RequestBatches:
    """The requests columns the summary needs, a batch at a time in the order the requests completed (the
    order the driver logs them); each call starts again from the first. Each batch is `(codes, submit_ns,
    start_ns, complete_ns)`, `codes` indexing `names` (every device the log named). From a streamed run's
    parquet file a row group at a time (`SUMMARY_BATCH_ROWS`), else from the requests table as one batch."""

    def __init__(self, output: SimOutput, requests: pa.Table | None, spill: LogSpill | None):
        self.output, self.requests, self.spill = output, requests, spill
        self.names: list[str] = list(output.requests.devices.names)
        self._code_of = {name: code for code, name in enumerate(self.names)}

    def __call__(self):
        columns = ["device", "submit_ns", "start_ns", "complete_ns"]
        if self.requests is None and self.spill is not None:
            # pre_buffer off: else the reader buffers every row group's columns at once (the whole file)
            source = pq.ParquetFile(self.spill.requests_path, read_dictionary=["device"], pre_buffer=False
                                    ).iter_batches(batch_size=SUMMARY_BATCH_ROWS, columns=columns)
        else:
            table = self.requests if self.requests is not None else requests_table(self.output)
            source = table.select(columns).combine_chunks().to_batches()
        for batch in source:
            yield (self._codes(batch.column("device")), *(batch.column(name).to_numpy()
                                                         for name in ("submit_ns", "start_ns", "complete_ns")))

    def _codes(self, devices: pa.Array) -> np.ndarray:
        """Each row's device as an index into `names` (a batch's own dictionary mapped onto it)."""
        if not pa.types.is_dictionary(devices.type):
            devices = pc.dictionary_encode(devices)
        lookup = np.array([self._code_of[name] for name in devices.dictionary.to_pylist()], dtype=np.int64)
        return lookup[devices.indices.to_numpy(zero_copy_only=False)]


class _FirstPass:
    """What the summary learns from one pass over the requests besides latency: the window's counts, each
    device's completions by the end (stall warnings) and its progress (the liveness check). The requests
    must come in completion order."""

    def __init__(self, output: SimOutput, names: list[str]):
        self.output, self.names = output, names
        self.done = False
        self.after_end = self.in_window = 0
        self.done_by_end = np.zeros(len(names), dtype=np.int64)
        self.last_by_end = np.full(len(names), -1, dtype=np.int64)
        self.liveness = Liveness(output.sim_time_ns)
        self._last_complete = np.iinfo(np.int64).min

    def add(self, codes, submit, start, complete) -> None:
        if complete.size and (complete[0] < self._last_complete or np.any(complete[1:] < complete[:-1])):
            raise ValueError("the requests log is not in completion order")
        if complete.size:
            self._last_complete = int(complete[-1])
        by_end = complete <= self.output.sim_time_ns  # the teardown after the end may still complete requests
        self.after_end += int(by_end.size - by_end.sum())
        self.in_window += int((by_end & (complete >= self.output.warmup_ns)).sum())
        self.done_by_end += np.bincount(codes[by_end], minlength=len(self.names))
        np.maximum.at(self.last_by_end, codes[by_end], complete[by_end])
        self.liveness.add(self.names, codes, submit, start, complete)

    def completed_by_end(self) -> dict[str, tuple[int, int]]:
        """Each device that completed requests by the end: how many, and when the last."""
        return {self.names[code]: (int(self.done_by_end[code]), int(self.last_by_end[code]))
                for code in np.flatnonzero(self.done_by_end).tolist()}


_ALL = ("all",)  # the latency group of every request (bus and device groups are named by strings)


def _latency_groups(buses: dict, names: list[str]) -> dict:
    """The groups whose latency the summary gives: every request, each bus (a device's dotted name starts
    with its bus) and each device."""
    groups = {_ALL: list(range(len(names)))}
    for bus in buses:
        groups[("bus", bus)] = [code for code, name in enumerate(names) if name.split(".", 1)[0] == bus]
    groups.update({("device", name): [code] for code, name in enumerate(names)})
    return groups


def request_counts(output: SimOutput) -> dict:
    """What became of every request, per workload and in total: `offered` (its arrivals), `submitted` (taken
    by the driver towards the ring: offered less its `backlog` at the end), `completed` by the end,
    `in_flight` (submitted, not completed by the end: `on_ring`, waiting for its buffer to be shared, or lost
    with a removed device), `completed_after_end`. Frames a sender retried after finding a queue full, and
    dropped after every retry, belong to a queue, not a request: the total counts them (`frames_retried`,
    `frames_dropped`)."""
    workloads = {}
    for name, counts in output.workloads.items():
        completed = counts.get("completed_by_end", counts["completed"])
        backlog, on_ring = counts.get("backlog", 0), counts.get("on_ring", 0)
        workloads[name] = {"offered": counts["submitted"], "submitted": counts["submitted"] - backlog,
                           "completed": completed, "in_flight": counts["submitted"] - backlog - completed,
                           "on_ring": on_ring, "backlog": backlog, "completed_after_end": counts["completed"] - completed}
    keys = ("offered", "submitted", "completed", "in_flight", "on_ring", "backlog", "completed_after_end")
    total = {key: sum(entry[key] for entry in workloads.values()) for key in keys}
    total["frames_retried"] = sum(int(counts.get("full", 0)) for counts in output.counters.values())
    total["frames_dropped"] = sum(int(counts.get("tx_failed", 0)) for counts in output.counters.values())
    return {"total": total, "workloads": workloads}


def _add_latency(buses: dict, names: list, counts: np.ndarray, summaries: dict) -> None:
    """`latency_ns` per bus and per device (pooled latency hides a slow device behind fast ones), from the
    groups' summaries; a device appears once it has a measured request."""
    for bus, entry in buses.items():
        entry["latency_ns"] = summaries[("bus", bus)]
        mine = sorted(name for code, name in enumerate(names) if counts[code] and name.split(".", 1)[0] == bus)
        for name in mine:
            entry["devices"].setdefault(name, {})["latency_ns"] = summaries[("device", name)]


def _per_request(output: SimOutput) -> dict:
    """Each processor's report with its work per request, by activity: where the time went. `by_activity_ns`
    is the whole run's; `per_request_ns` is the measured window's work (from the warm-up's end) per request
    completed in it, the steady state that start-up does not inflate (as `accounting` counts it)."""
    before = output.at_warmup.get("processors", {})
    requests = (sum(counts.get("completed_by_end", counts["completed"]) for counts in output.workloads.values())
                - sum(output.at_warmup.get("completed", {}).values()))

    def per_request(name: str, report: dict) -> dict:
        earlier = before.get(name, {}).get("by_activity_ns", {})
        return {activity: (ns - earlier.get(activity, 0)) / requests if requests > 0 else None
                for activity, ns in report.get("by_activity_ns", {}).items()}

    return {name: {**report, "per_request_ns": per_request(name, report)} for name, report in output.processors.items()}


def cpu_time_table(summary: dict):
    """Where the time went, from a summary (summary.json): one row per processor and activity, with the
    work in ns over the run and per completed request (pandas DataFrame; group it as you like)."""
    import pandas as pd

    rows = [{"processor": name, "activity": activity, "ns": ns,
             "ns_per_request": report.get("per_request_ns", {}).get(activity)}
            for name, report in summary.get("processors", {}).items()
            for activity, ns in report.get("by_activity_ns", {}).items()]
    return pd.DataFrame(rows, columns=["processor", "activity", "ns", "ns_per_request"])


SATURATED = 0.9
"""An open-loop workload that completes less than this share of what it offered is past capacity."""
SHOWN_SATURATED = 3


STALL_SHARE = 0.25
"""A device that completes nothing in this last share of the measured window while requests wait has stalled."""


def run_warnings(output: SimOutput, measured: int, completed_by_end: dict[str, tuple[int, int]] | None = None
                 ) -> list[str]:
    """What a user must not miss in the numbers: a load the model did not carry, nothing measured, a device
    that stopped completing (or never did) while requests waited for it, frames a full queue delayed or lost.

    A closed loop always has its `outstanding` requests in flight at the end, so only open-loop
    workloads (Poisson, constant, trace) are held to what they offered; a stall is a stall whatever the
    loop. `completed_by_end` maps each device that completed requests by the end to how many and the time of
    its last.
    """
    warnings = []
    saturated = [(name, counts["completed"], counts["submitted"]) for name, counts in output.workloads.items()
                 if counts["arrivals"] != "closed" and counts["submitted"]
                 and counts["completed"] < SATURATED * counts["submitted"]]
    for name, completed, submitted in saturated[:SHOWN_SATURATED]:
        warnings.append(f"workload {name} completed {completed:,} of the {submitted:,} requests it offered "
                        f"({completed / submitted:.0%}): the load exceeds what the model carries, so "
                        "latency grows with the run's length")
    if len(saturated) > SHOWN_SATURATED:
        shares = [completed / submitted for _, completed, submitted in saturated[SHOWN_SATURATED:]]
        warnings.append(f"... and {len(saturated) - SHOWN_SATURATED} more workloads completed {min(shares):.0%} to "
                        f"{max(shares):.0%} of what they offered")
    warnings += _stall_warnings(output, completed_by_end or {})
    warnings += _full_queue_warnings(output.counters)
    warnings += _fault_warnings(output.counters.get("faults"))
    if output.workloads and measured == 0:
        warnings.append(f"no request submitted after the warm-up ({format_ns(output.warmup_ns)}) completed: "
                        "latency and throughput are empty")
    return warnings


def _fault_warnings(faults: dict | None) -> list[str]:
    """Injected faults (`faults:`, docs/faults.md) whose loss nothing made good by the end."""
    if not faults or not faults["lost"]:
        return []
    struck = ", ".join(f"{key.removeprefix('injected.')} {count:,}" for key, count in faults.items()
                       if key.startswith("injected.") and count)
    lost, recovered = faults["lost"], faults["recovered"]
    warning = (f"injected faults: {lost:,} lost by the end, {recovered:,} recovered ({struck}); see "
               "other_counters.faults and the fault.* rows of the event log")
    return [warning]


def _stall_warnings(output: SimOutput, completed_by_end: dict[str, tuple[int, int]]) -> list[str]:
    """Each device with requests still waiting at the end that completed none at all, or none in the last
    `STALL_SHARE` of the measured window: its latency covers only the requests that got through, so a stall
    would otherwise look like a fast device."""
    submitted: dict[str, int] = {}
    for counts in output.workloads.values():
        if "device" in counts:
            submitted[counts["device"]] = submitted.get(counts["device"], 0) + counts["submitted"]
    window = output.sim_time_ns - output.warmup_ns
    quiet_from = output.sim_time_ns - int(window * STALL_SHARE)
    warnings = []
    for device, count in submitted.items():
        done, last = completed_by_end.get(device, (0, None))
        waiting = count - done
        if waiting <= 0 or window <= 0:
            continue
        if done == 0:
            warnings.append(f"device {device} completed none of the {count:,} requests submitted to it: "
                            "it never made progress")
        elif last < quiet_from:
            warnings.append(f"device {device} stalled: it completed nothing after {format_ns(last)}, nor in "
                            f"the last {STALL_SHARE:.0%} of the measured window, while {waiting:,} requests "
                            "waited for it; its latency covers only the requests completed before")
    return warnings


def _full_queue_warnings(counters: dict) -> list[str]:
    """Every queue a sender found full (`full`, the sender waited `tx_retry`) or gave up on (`tx_failed`,
    the frame is lost): time the latency of the requests that got through may not show."""
    warnings = []
    for name, counts in sorted(counters.items()):
        full, failed = int(counts.get("full", 0)), int(counts.get("tx_failed", 0))
        if failed:
            warnings.append(f"{name}: {failed:,} frames dropped after the queue stayed full through every retry")
        if full:
            warnings.append(f"{name}: the sender found the queue full {full:,} times and waited to retry "
                            "(tx_retry) each time")
    return warnings


def group_counters(output: SimOutput) -> dict:
    """SimOutput.counters grouped by bus: the bus's own counters, its queues, doorbells and devices.

    A counter belongs to a bus when one segment of its dotted name is the bus name. Within a bus,
    a name with a `doorbell` segment is a doorbell, a counter of `frames` is a queue, anything else
    (a device's `served`, `busy_ns`) a device. A queue's utilisation is its own `utilisation`, else
    `busy_ns / sim_time_ns`; the bus reports its busiest queue. Counters of no bus go to `other_counters`.
    """
    bus_names = set(output.events.buses.names)
    buses: dict[str, dict] = {}
    other: dict[str, dict] = {}
    for name, counts in sorted(output.counters.items()):
        counts = dict(counts)
        segments = name.split(".")
        bus = next((segment for segment in segments if segment in bus_names), None)
        if bus is None:
            other[name] = counts
            continue
        entry = buses.setdefault(bus, {"frames": 0, "bytes": 0, "utilisation_max": 0.0, "counters": {},
                                       "queues": {}, "doorbells": {}, "devices": {}})
        if name == bus:
            entry["counters"] = counts
        elif "doorbell" in segments:
            entry["doorbells"][name] = counts
        elif "frames" in counts:
            if "utilisation" not in counts and "busy_ns" in counts and output.sim_time_ns > 0:
                counts["utilisation"] = counts["busy_ns"] / output.sim_time_ns
            entry["queues"][name] = counts
            entry["frames"] += counts["frames"]
            entry["bytes"] += counts.get("bytes", 0)
            entry["utilisation_max"] = max(entry["utilisation_max"], counts.get("utilisation", 0.0))
        else:
            entry["devices"][name] = counts
    return {"buses": buses, "other_counters": other}


def json_ready(value):
    """numpy scalars to Python, NaN/inf to None: summary.json stays strict JSON."""
    if isinstance(value, dict):
        return {str(key): json_ready(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [json_ready(item) for item in value]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def format_summary(summary: dict, folder: Path | None = None) -> str:
    """The one-screen report printed after `vmsim run`."""
    latency = summary["latency_ns"]
    interval = summary["latency_ci95_ns"]

    def ns(value):
        return "-" if value is None else format_ns(value)

    throughput = summary["throughput_rps"]
    rate = "-" if throughput is None else f"{throughput:,.0f}"
    mean = f"mean {ns(latency['mean'])}"
    if interval["half_width"] is not None:
        mean += f" ± {ns(interval['half_width'])} (95%, {interval['batches']} batch means)"
    lines = [
        f"scenario   {summary['scenario']}  (seed {summary['seed']})",
        (f"simulated  {ns(summary['sim_time_ns'])} (warm-up {ns(summary['warmup_ns'])}) "
         f"in {summary['wall_seconds']:.2f} s wall, {summary['events_logged']} events"),
        (f"requests   {summary['requests_completed']:,} measured (submitted after the warm-up), "
         f"{summary.get('requests_in_window', summary['requests_completed']):,} completed after it: {rate} req/s"),
        *_count_lines(summary),
        f"latency    {mean}",
        (f"           p50 {ns(latency['p50'])}  p90 {ns(latency['p90'])}  p99 {ns(latency['p99'])}  "
         f"p99.9 {ns(latency['p999'])}  max {ns(latency['max'])}"),
    ]
    lines += _bus_latency_lines(summary["buses"])
    lines += _bus_lines(summary["buses"])
    lines += _processor_lines(summary.get("processors", {}))
    lines += format_check(summary["check"])
    lines += [f"warning    {warning}" for warning in summary.get("warnings", [])]
    trace = summary.get("trace")
    if trace and trace.get("truncated"):
        lines.append(f"trace      truncated to the first {trace['limit']} events")
    if folder is not None:
        lines.append(f"results    {folder}")
    return "\n".join(lines)


SHOWN_BUSES = 4
SHOWN_WORKLOADS = 4


def _count_lines(summary: dict) -> list[str]:
    """What became of the requests offered, in total and per workload (the most offered first): a load the
    model did not carry shows as requests in flight, held back or dropped, not as a better latency."""
    counts = summary.get("counts")
    if not counts:
        return []

    def line(entry: dict) -> str:
        text = (f"offered {entry['offered']:,}, submitted {entry['submitted']:,}, completed {entry['completed']:,}, "
                f"in flight at the end {entry['in_flight']:,}")
        for key, label in (("backlog", "held back by the driver"), ("completed_after_end", "completed after the end")):
            if entry[key]:
                text += f", {label} {entry[key]:,}"
        return text

    total = counts["total"]
    lines = [f"{'':<11}{line(total)}"]
    if total["frames_retried"] or total["frames_dropped"]:
        lines.append(f"{'':<11}frames retried after a full queue {total['frames_retried']:,}, "
                     f"dropped after every retry {total['frames_dropped']:,}")
    if len(counts["workloads"]) > 1:
        listed, more = _busiest(counts["workloads"], lambda entry: entry["offered"], SHOWN_WORKLOADS)
        lines += [f"  {name}: {line(entry)}" for name, entry in listed]
        if more:
            lines.append(f"  ... and {more} more workloads")
    return lines
SHOWN_DEVICES = 4


def _busiest(items: dict, key, shown: int) -> tuple[list, int]:
    """All of `items` in their order when they are few, else the `shown` busiest first; and how many are left out."""
    if len(items) <= shown:
        return list(items.items()), 0
    return sorted(items.items(), key=lambda item: -key(item[1]))[:shown], len(items) - shown


def _bus_lines(buses: dict) -> list[str]:
    """Per bus: frames and its busiest queue, its devices' utilisation and its doorbells. A large topology
    shows its busiest buses and devices only, so the report stays on one screen (summary.json has all)."""
    shown, hidden = _busiest(buses, lambda entry: entry["utilisation_max"], SHOWN_BUSES)
    lines = [f"buses      {len(buses)}, the {SHOWN_BUSES} busiest below (all in summary.json)"] if hidden else []
    for bus, entry in shown:
        lines.append(f"bus {bus:<7}{entry['frames']} frames, {entry['bytes']} B, "
                     f"busiest queue {entry['utilisation_max']:.1%} busy")
        devices = {name: counts for name, counts in entry["devices"].items() if "utilisation" in counts}
        listed, more = _busiest(devices, lambda counts: counts["utilisation"], SHOWN_DEVICES)
        lines += [f"  {name}: {counts['utilisation']:.1%} busy" for name, counts in listed]
        if more:
            lines.append(f"  ... and {more} more devices")
        for name, counts in entry["doorbells"].items():
            if "rung" in counts:
                lines.append(f"  {name}: {counts['rung']} rung, {counts.get('coalesced', 0)} coalesced, "
                             f"{counts.get('delivered', 0)} delivered")
    return lines


def _bus_latency_lines(buses: dict) -> list[str]:
    """Each bus's own latency when there are several, and each device's when a bus has several, busiest first
    (the `SHOWN_BUSES` and `SHOWN_DEVICES` busiest): the pooled line can hide a slow bus or device behind
    fast ones."""
    with_latency = {bus: entry for bus, entry in buses.items() if "latency_ns" in entry}
    devices_of = {bus: {name: counts for name, counts in entry["devices"].items() if "latency_ns" in counts}
                  for bus, entry in with_latency.items()}
    if len(with_latency) < 2 and all(len(devices) < 2 for devices in devices_of.values()):
        return []
    shown = sorted(with_latency.items(), key=lambda item: -item[1]["utilisation_max"])[:SHOWN_BUSES]
    lines = []
    for bus, entry in shown:
        label = "by bus" if not lines else ""
        lines.append(f"{label:<11}{bus}: {_latency_figures(entry['latency_ns'])}")
        devices = devices_of[bus]
        if len(devices) < 2:
            continue
        busiest = sorted(devices.items(), key=lambda item: -item[1].get("utilisation", 0.0))
        lines += [f"{'':<13}{name}: {_latency_figures(counts['latency_ns'])}"
                  for name, counts in busiest[:SHOWN_DEVICES]]
        if len(busiest) > SHOWN_DEVICES:
            lines.append(f"{'':<13}... and {len(busiest) - SHOWN_DEVICES} more devices (all in summary.json)")
    return lines


def _latency_figures(latency: dict) -> str:
    if latency["p50"] is None:
        return "no request measured"
    return f"p50 {format_ns(latency['p50'])}  p99 {format_ns(latency['p99'])}  max {format_ns(latency['max'])}"


def _processor_lines(processors: dict) -> list[str]:
    """The busiest cores: where a capacity answer runs out first."""
    listed, more = _busiest(processors, lambda entry: entry["utilisation"], SHOWN_BUSES)
    lines = [f"cpu {name}: {entry['utilisation']:.1%} busy ({entry['work_items']:,} thread and "
             f"{entry['irq_items']:,} interrupt work items)" for name, entry in listed]
    if more:
        lines.append(f"  ... and {more} more processors")
    return lines


def format_check(check: dict, shown: int = 5) -> list[str]:
    """The safety checks in the one-screen report: nothing when they pass, else each failed check with its
    first violations and the events.parquet rows they name."""
    if check["status"] == "ok":
        return []
    lines = ["CHECK FAILED (rows are events.parquet row numbers)"]
    for entry in check["checks"]:
        if entry["status"] == "ok":
            continue
        lines.append(f"  {entry['name']}: {entry['violations_total']} violation(s)")
        for violation in entry["violations"][:shown]:
            if "rows" not in violation:  # liveness: the message names the device or queue and the time
                lines.append(f"    {violation['message']}")
                continue
            rows = ", ".join(map(str, violation["rows"]))
            lines.append(f"    bus {violation['bus']} region {violation['id']}: {violation['message']} (rows {rows})")
    return lines


class RunResult:
    """One finished run: summary, tables (built lazily, cached) and plot helpers for notebooks.

    `path` is the result folder, or None when the run was not written. `graph` may be given
    when the caller already built it (the checks need it), else it is built on first use. `spill` holds the
    parquet files of a run whose logs streamed (`vmsim.result_folder.LogSpill`): its tables are read from
    them, and after `write` from the result folder they moved into.
    """

    def __init__(self, scenario, output: SimOutput, summary: dict, *, graph=None, path: Path | None = None,
                 spill: LogSpill | None = None):
        self.scenario = scenario
        self.output = output
        self.summary = summary
        self.path = path
        self._graph = graph
        self._spill = spill

    @classmethod
    def of(cls, scenario, output: SimOutput, *, wall_seconds: float, graph=None,
           spill: LogSpill | None = None) -> RunResult:
        """A finished run's result. Kept in memory, its summary comes from the requests table the result keeps;
        streamed, from the few columns it needs, read back from the spill."""
        result = cls(scenario, output, {}, graph=graph, spill=spill)
        requests = None if spill is not None else result.requests_table
        result.summary = summarize(output, wall_seconds=wall_seconds, requests=requests, spill=spill)
        return result

    def __repr__(self) -> str:
        latency = self.summary["latency_ns"]
        p99 = "-" if latency["p99"] is None else format_ns(latency["p99"])
        return (f"<RunResult {self.summary['scenario']} seed={self.summary['seed']} "
                f"requests={self.summary['requests_completed']} p99={p99}>")

    @cached_property
    def events_table(self) -> pa.Table:
        return self._spill.events_table() if self._spill is not None else events_table(self.output)

    @cached_property
    def requests_table(self) -> pa.Table:
        return self._spill.requests_table() if self._spill is not None else requests_table(self.output)

    @cached_property
    def _request_aggregates(self):
        """What the latency and throughput plots draw (`vmsim.analysis.plots.RequestAggregates`), from the
        requests columns they need read a batch at a time: a streamed run's parquet file a row group at a time,
        a table kept in memory as one batch. The device only with more than one bus, where the latency plot
        draws a curve per bus."""
        from vmsim.analysis.plots import request_aggregates

        columns = ["submit_ns", "complete_ns", "latency_ns"]
        if len(self.output.events.buses.names) > 1:
            columns.append("device")
        if self._spill is not None and "requests_table" not in self.__dict__:
            # pre_buffer off: else the reader buffers every row group's columns at once (the whole file)
            source = pq.ParquetFile(self._spill.requests_path, read_dictionary=["device"], pre_buffer=False)
            rows = source.metadata.num_rows
            batches = source.iter_batches(batch_size=SUMMARY_BATCH_ROWS, columns=columns)
        else:
            rows = self.requests_table.num_rows
            batches = self.requests_table.select(columns).combine_chunks().to_batches()
        return request_aggregates(batches, rows=rows, sim_time_ns=self.output.sim_time_ns,
                                  warmup_ns=self.output.warmup_ns)

    @cached_property
    def events(self):
        """Every logged frame, doorbell and mark, one row each (pandas DataFrame)."""
        return self.events_table.to_pandas()

    @cached_property
    def requests(self):
        """Every completed I/O request, one row each (pandas DataFrame)."""
        return self.requests_table.to_pandas()

    @property
    def cpu_time(self):
        """Where the time went: work per processor and activity, over the run and per request (DataFrame)."""
        return cpu_time_table(self.summary)

    @property
    def accounting(self):
        """What the requests cost: bytes, lines, doorbells, interrupts, polls, frames and CPU per bus, device
        and memory region, over the run and per request (DataFrame, `vmsim.accounting.accounting_table`)."""
        return accounting_table(self.summary)

    @property
    def graph(self):
        """The topology graph (networkx DiGraph) the run was built from."""
        if self._graph is None:
            from vmsim.topology import build_graph

            self._graph = build_graph(self.scenario)
        return self._graph

    def init_sequence(self, device: str | None = None):
        """The frames a device's bring-up put on the bus (tx rows, in order), up to DRIVER_OK.

        `device` is the scenario's device name (default: the first device). Rows after the
        device's `init_done_ns` are left out, so the listing is the init conversation only.
        """
        spec = self.scenario.devices[0] if device is None else next(
            (item for item in self.scenario.devices if item.name == device), None)
        if spec is None:
            known = ", ".join(item.name for item in self.scenario.devices)
            raise VmsimError(f"no device {device!r} in scenario {self.scenario.name} (devices: {known})")
        events = self.events
        rows = events[(events["event"] == "tx") & (events["bus"] == spec.bus)
                      & (events["dev_num"] == spec.dev_num) & events["msg_name"].notna()]
        keys = (f"{spec.bus}.{spec.name}", f"{spec.bus}.{spec.dev_num}", spec.name)
        done = next((self.output.init_done_ns[key] for key in keys if key in self.output.init_done_ns), None)
        if done is not None:
            rows = rows[rows["time_ns"] <= done]
        columns = ["time_ns", "component", "msg_name", "type", "msg_id", "token", "msg_size", "wire"]
        return rows[columns].reset_index(drop=True)

    # --- plots ------------------------------------------------------------------------------

    def plot_latency_cdf(self, ax=None):
        from vmsim.analysis import plots

        return plots.latency_cdf(self._request_aggregates, ax=ax, warmup_ns=self.output.warmup_ns,
                                 sim_time_ns=self.output.sim_time_ns)

    def plot_throughput(self, ax=None):
        from vmsim.analysis import plots

        return plots.throughput(self._request_aggregates, ax=ax, sim_time_ns=self.output.sim_time_ns,
                                warmup_ns=self.output.warmup_ns)

    def plot_occupancy(self, ax=None):
        from vmsim.analysis import plots

        return plots.occupancy(self.output.series, ax=ax, sim_time_ns=self.output.sim_time_ns)

    def plot_topology(self, ax=None):
        from vmsim.analysis import plots

        return plots.topology(self.graph, ax=ax)

    def plot_cpu_time(self, ax=None):
        from vmsim.analysis import plots

        return plots.cpu_time(self.cpu_time, ax=ax)

    # --- writing ------------------------------------------------------------------------------

    def write(self, folder: Path, *, plots: bool = True, trace: bool = True,
              trace_limit: int = TRACE_EVENT_LIMIT, trace_format: str = "perfetto",
              resolved_config: dict | None = None, plotter: ForkedWorker | None = None) -> Path:
        """Write the result folder atomically; returns its path (also kept in `self.path`). A streamed run's
        parquet files are moved in from its spill, whose folder goes once they have.

        The plots are drawn by a child process (`vmsim.result_folder.ForkedWorker`) while this one writes the
        trace and the summary: `plotter`, already drawing them into the spill's folder (`draw_plots_ahead`),
        whose files are moved in once it is done, else one forked here."""
        spill = self._spill

        def fill(temporary: Path) -> None:
            if spill is None:
                pq.write_table(self.events_table, temporary / "events.parquet")
                pq.write_table(self.requests_table, temporary / "requests.parquet")
            if resolved_config is not None:
                import yaml

                with open(temporary / "config.resolved.yaml", "w") as stream:
                    yaml.safe_dump(resolved_config, stream, sort_keys=False)
            drawing = (plotter or ForkedWorker("plots")) if plots else None
            try:
                if drawing is not None and plotter is None:
                    drawing.submit(save_plots, self, temporary)
                summary = dict(self.summary)
                if trace:
                    from vmsim.trace import write_trace

                    tables = (spill.events_path, spill.requests_path) if spill is not None else (
                        self.events_table, self.requests_table)
                    summary["trace"] = write_trace(self.output, temporary, limit=trace_limit,
                                                   trace_format=trace_format, events=tables[0], requests=tables[1])
                with open(temporary / SUMMARY_FILE, "w") as stream:
                    json.dump(summary, stream, indent=2)
                    stream.write("\n")
                if drawing is not None:
                    drawing.wait()
                if drawing is not None and plotter is not None:
                    from vmsim.analysis.plots import PLOT_FILES

                    for name in PLOT_FILES:
                        os.replace(spill.spill_folder / name, temporary / name)
            finally:
                if drawing is not None:
                    drawing.cancel()
            if spill is not None:  # moved last: the plots' process reads requests.parquet where it was
                moved = spill.folder == spill.spill_folder  # else written before: copied from that folder
                for path in (spill.events_path, spill.requests_path):
                    (os.replace if moved else shutil.copyfile)(path, temporary / path.name)
                spill.moved_to(temporary)
            self.summary = summary

        try:
            self.path = write_atomically(Path(folder), fill)
        finally:
            if spill is not None:
                spill.discard()
        if spill is not None:
            spill.moved_to(self.path)
        return self.path


def draw_plots_ahead(plotter: ForkedWorker, scenario, output: SimOutput, *, graph, spill: LogSpill) -> None:
    """Hand `plotter` a streamed run's plots as soon as it has simulated, drawn into its spill's folder while
    this process summarises the run and writes the trace (`RunResult.write(..., plotter=plotter)` moves them
    in). Of the summary the plots draw only the processors' work (the CPU-time plot), given here as the
    summary has it."""
    summary = {"processors": _per_request(output)}
    plotter.submit(save_plots, RunResult(scenario, output, summary, graph=graph, spill=spill), spill.spill_folder)


def save_plots(result: RunResult, folder: Path) -> None:
    """Draw a result's standard plots into `folder` (`vmsim.analysis.plots.save_plots`): the task a plotting
    child process is handed."""
    from vmsim.analysis.plots import save_plots as draw

    draw(result, folder)


def import_plotting() -> None:
    """What drawing the plots imports (matplotlib, pyplot too for the topology plot, pandas): done by a plotting
    child process while the run simulates."""
    import matplotlib.figure
    import matplotlib.pyplot  # noqa: F401
    import pandas  # noqa: F401

    import vmsim.analysis.plots  # noqa: F401
