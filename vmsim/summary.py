"""A run's summary (summary.json): what became of its requests, latency and throughput over the measured
window, counters by bus, where the processors' time went, what it cost, the checks' verdicts and the warnings a
user must not miss. Read from the requests a batch at a time, so its memory stays bounded however long the run
(`RequestBatches`)."""

from __future__ import annotations

import math

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from vmsim._version import __version__
from vmsim.accounting import accounting, completed_by_device
from vmsim.analysis.checks import check_events
from vmsim.analysis.conformance import with_conformance
from vmsim.analysis.liveness import Liveness, with_liveness
from vmsim.analysis.stats import DEFAULT_BATCHES, StreamedLatency
from vmsim.sim.output import SimOutput
from vmsim.spill import FLUSH_ROWS, LogSpill
from vmsim.tables import requests_table
from vmsim.units import format_ns


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
        "processors": processors_per_request(output),
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


def processors_per_request(output: SimOutput) -> dict:
    """Each processor's report with its work per request, by activity: where the time went. `by_activity_ns`
    is the whole run's; `per_request_ns` is the measured window's work (from the warm-up's end) per request
    completed in it, the steady state that start-up does not inflate (as `accounting` counts it)."""
    before = output.at_warmup.get("processors", {})
    requests = sum(completed_by_device(output)[1].values())

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
