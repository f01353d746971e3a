"""Liveness: a device or queue that makes no progress for too long while work waits fails the run's checks.

A run whose device stopped serving still prints latency, only over the requests that got through, so a stall
looks like a fast device. The safety checks (`vmsim.analysis.checks`) say nothing went wrong with shared
memory; this check says something stopped moving, and names what and when:

- a **device** makes progress while it serves a request (from the request's start to its completion); it
  stalls over any stretch longer than the threshold in which it serves none while one of its requests waits
  (submitted, not completed);
- a **queue** (a channel's frames waiting for the receiver, its `*.occupancy` series) makes progress when a
  frame leaves it; it stalls over any stretch longer than the threshold with frames in it and none leaving.

The threshold is `max(FLOOR_NS, SHARE * sim_time_ns)`: long enough that a slow but working model (a long
service counts as progress, a polling period is far shorter) passes, short enough that a sender waiting out
a 10 ms retry in a 10 ms run does not; a wait a tenth of the run long is a stall worth a failed check even
when the model recovers from it (a share retried after its default 10 ms `ack_timeout` in a 50 ms run). A run's summary feeds `Liveness` its requests a batch
at a time in completion order (memory bounded by a batch); `liveness_check` takes whole numpy columns.
"""

from __future__ import annotations

import numpy as np

from vmsim.units import format_ns

NAME = "liveness"
FLOOR_NS = 1_000_000
SHARE = 0.1
SHOWN = 20  # violations listed; `violations_total` counts them all


def threshold_ns(sim_time_ns: int) -> int:
    """How long a device or queue may make no progress while work waits before the run fails."""
    return max(FLOOR_NS, int(SHARE * sim_time_ns))


def liveness_check(*, devices, submit_ns, start_ns, complete_ns, workloads: dict, series: dict,
                   sim_time_ns: int, threshold: int | None = None) -> dict:
    """The `liveness` entry of summary.json's `check`, shaped like the safety checks' entries.

    `devices`, `submit_ns`, `start_ns` and `complete_ns` are the requests table's columns, every request
    that completed (after the end too), in any order; `workloads` is `SimOutput.workloads` (each workload's
    device and the submit time of its oldest request still waiting at the end); `series` maps names to step
    series (`vmsim.sim.output.Series`) of which the `*.occupancy` ones are queues. A run's summary feeds
    `Liveness` its requests a batch at a time instead.
    """
    names, codes = np.unique(np.asarray(devices, dtype=object).astype(str), return_inverse=True)
    complete = np.asarray(complete_ns, dtype=np.int64)
    order = np.argsort(complete, kind="stable")
    liveness = Liveness(sim_time_ns, threshold)
    liveness.add(names.tolist(), codes.reshape(-1)[order], np.asarray(submit_ns, dtype=np.int64)[order],
                 np.asarray(start_ns, dtype=np.int64)[order], complete[order])
    return liveness.entry(workloads, series)


class Liveness:
    """The liveness check over requests read a batch at a time in completion order (the order the driver
    logs them: `complete_ns` never decreases), with memory bounded by a batch and the stretches long enough
    to fail the check."""

    def __init__(self, sim_time_ns: int, threshold: int | None = None):
        self.sim_time_ns = sim_time_ns
        self.limit = threshold_ns(sim_time_ns) if threshold is None else threshold
        self.devices: dict[str, DeviceProgress] = {}

    def add(self, names: list[str], codes, submit, start, complete) -> None:
        """The next requests in completion order: each one's device (an index into `names`) and its times."""
        codes = np.asarray(codes, dtype=np.int64)
        order = np.argsort(codes, kind="stable")
        bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
        for code, name in enumerate(names):
            mine = order[bounds[code]:bounds[code + 1]]
            if mine.size:
                progress = self.devices.get(name) or self.devices.setdefault(
                    name, DeviceProgress(self.sim_time_ns, self.limit))
                progress.add(submit[mine], start[mine], complete[mine])

    def entry(self, workloads: dict, series: dict) -> dict:
        """The check's entry, once every request was added."""
        oldest: dict[str, int] = {}
        for counts in workloads.values():
            if counts.get("oldest_waiting_ns") is not None:
                device = counts["device"]
                oldest[device] = min(oldest.get(device, counts["oldest_waiting_ns"]), counts["oldest_waiting_ns"])
        limit, end = self.limit, self.sim_time_ns
        violations = []
        for device in sorted(set(self.devices) | set(oldest)):
            progress = self.devices.get(device) or DeviceProgress(end, limit)
            stall = progress.stall(oldest.get(device))
            if stall is not None and stall[1] - stall[0] > limit:
                violations.append(_violation("device", device, stall, end, limit))
        for name, steps in sorted(series.items()):
            if not name.endswith(".occupancy"):
                continue
            stall = steps.queue_stall(end)
            if stall is not None and stall[1] - stall[0] > limit:
                violations.append(_violation("queue", name.removesuffix(".occupancy"), stall, end, limit))
        return {"name": NAME, "status": "failed" if violations else "ok", "violations": violations[:SHOWN],
                "violations_total": len(violations), "threshold_ns": limit}


_NEVER = np.iinfo(np.int64).max
_BEFORE_ALL = np.iinfo(np.int64).min


class DeviceProgress:
    """`device_stall` of one device over its requests added in completion order, keeping only the idle
    stretches longer than `limit` (a shorter one cannot fail the check, and stretches only shrink as
    requests come).

    A request served from `s` opens a stretch of idleness when it starts after every request before it was
    served; one added later that started earlier shrinks or closes the stretches after its start. Every
    request added after a stretch opened completed after the stretch ended, so the earliest submit among
    them is the one `device_stall` looks for: work waited from the later of that and the stretch's start.
    """

    def __init__(self, end_ns: int, limit: int):
        self.end_ns, self.limit = end_ns, limit
        self.first_served: int | None = None  # the earliest start of service: the idleness before it
        self.served_until: int | None = None  # the latest end of service so far
        self.earliest_submit = _NEVER
        self.stretches: list[list[int]] = []  # [idle from, idle to, earliest submit since], in time order
        self.last_complete = _BEFORE_ALL

    def add(self, submit, start, complete) -> None:
        submit, start, complete = (np.asarray(column, dtype=np.int64) for column in (submit, start, complete))
        if not complete.size:
            return
        if complete[0] < self.last_complete or np.any(complete[1:] < complete[:-1]):
            raise ValueError("requests must be added in completion order")
        self.last_complete = int(complete[-1])
        served_to = np.minimum(complete, self.end_ns)
        served_from = np.minimum(np.where(start >= 0, start, served_to), served_to)
        earliest_from, earliest_submit = int(served_from.min()), int(submit.min())
        stretches = self.stretches
        while stretches and stretches[-1][1] > earliest_from:  # started before they ended: shrunk or closed
            if stretches[-1][0] >= earliest_from or earliest_from - stretches[-1][0] <= self.limit:
                stretches.pop()
                continue
            stretches[-1][1] = earliest_from
            break
        for stretch in reversed(stretches):  # their earliest submits never decrease along the list
            if stretch[2] <= earliest_submit:
                break
            stretch[2] = earliest_submit
        self.earliest_submit = min(self.earliest_submit, earliest_submit)
        self.first_served = earliest_from if self.first_served is None else min(self.first_served, earliest_from)
        before = np.append(_NEVER if self.served_until is None else self.served_until, served_to[:-1])
        opens = np.flatnonzero(served_from > before)
        if opens.size:
            until = np.minimum.accumulate(served_from[::-1])[::-1][opens]
            waiting = np.minimum.accumulate(submit[::-1])[::-1][opens]
            since = before[opens]
            kept = (until > since) & (until - since > self.limit)
            stretches += [[int(a), int(b), int(c)] for a, b, c in zip(since[kept], until[kept], waiting[kept])]
        self.served_until = int(served_to[-1])

    def stall(self, oldest_waiting_ns: int | None) -> tuple[int, int] | None:
        """The longest stretch `(from_ns, to_ns)` in which a request waited and none was served (among those
        longer than `limit`, and the first of equals), as `device_stall` finds it; None when there is none."""
        never = _NEVER if oldest_waiting_ns is None else oldest_waiting_ns
        if self.served_until is None:
            if oldest_waiting_ns is None:
                return None
            candidates = [(_BEFORE_ALL, self.end_ns, never)]
        else:
            candidates = [(_BEFORE_ALL, self.first_served, self.earliest_submit),
                          *map(tuple, self.stretches), (self.served_until, self.end_ns, _NEVER)]
        best = None
        for idle_from, idle_to, earliest in candidates:
            waiting_from = max(idle_from, min(earliest, never))
            if idle_to - waiting_from > 0 and (best is None or idle_to - waiting_from > best[1] - best[0]):
                best = (waiting_from, idle_to)
        return best


def device_stall(submit, start, complete, oldest_waiting_ns: int | None, end_ns: int) -> tuple[int, int] | None:
    """The longest stretch `(from_ns, to_ns)` within the run in which a request of the device waited and none
    was being served; None when there is none.

    A request waits from its submit to its completion (`oldest_waiting_ns`: the oldest never completed,
    waiting to the end) and is served from its start to its completion, so a slow device that keeps serving
    is never stalled. Between two stretches of service, work waited from the later of the first's end and
    the earliest submit of a request served after it."""
    never = [] if oldest_waiting_ns is None else [oldest_waiting_ns]
    submit = np.append(submit, never).astype(np.int64)
    complete = np.append(complete, [np.iinfo(np.int64).max] * len(never)).astype(np.int64)
    start = np.asarray(start, dtype=np.int64)
    if submit.size == 0:
        return None
    idle_from, idle_to = _idle(start, complete[:start.size], end_ns)
    by_complete = np.argsort(complete, kind="stable")
    earliest_after = np.minimum.accumulate(submit[by_complete][::-1])[::-1]  # earliest submit completing at i or later
    earliest_after = np.append(earliest_after, np.iinfo(np.int64).max)
    first_waiting = np.searchsorted(complete[by_complete], idle_to, side="left")  # still waiting when it ends
    waiting_from = np.maximum(idle_from, earliest_after[first_waiting])
    lengths = idle_to - waiting_from
    best = int(np.argmax(lengths))
    if lengths[best] <= 0:
        return None
    return int(waiting_from[best]), int(idle_to[best])


def _idle(start, complete, end_ns: int) -> tuple[np.ndarray, np.ndarray]:
    """The stretches `(idle_from, idle_to)` in which the device served nothing: before its first service,
    between the stretches of overlapping services, and from the last to the end."""
    if start.size == 0:
        return np.array([np.iinfo(np.int64).min]), np.array([end_ns])
    served_to = np.minimum(complete, end_ns)
    served_from = np.minimum(np.where(start >= 0, start, served_to), served_to)
    order = np.argsort(served_from, kind="stable")
    served_from, served_to = served_from[order], np.maximum.accumulate(served_to[order])
    new_stretch = np.append(True, served_from[1:] > served_to[:-1])
    last_of_stretch = np.append(new_stretch[1:], True)
    idle_from = np.append(np.iinfo(np.int64).min, served_to[last_of_stretch])  # service stopped here...
    idle_to = np.append(served_from[new_stretch], end_ns)  # ...until the next stretch began, or the end
    return idle_from, idle_to


def queue_stall(time_ns, level, end_ns: int) -> tuple[int, int] | None:
    """The longest stretch `(from_ns, to_ns)` in which a queue held frames and none left it (its level rose
    or held), from the level's step series; None when it never held a frame."""
    time_ns, level = np.asarray(time_ns, dtype=np.int64), np.asarray(level, dtype=np.int64)
    if level.size == 0:
        return None
    before = np.append(0, level[:-1])
    left = level < before  # a frame left the queue at this step
    holding = level > 0
    starts = np.flatnonzero(holding & (left | (before == 0)))
    if starts.size == 0:
        return None
    leaving = np.flatnonzero(left)
    next_leave = np.searchsorted(leaving, starts, side="right")
    ends = np.append(time_ns[leaving], end_ns)[next_leave]
    ends = np.minimum(ends, end_ns)
    lengths = ends - time_ns[starts]
    best = int(np.argmax(lengths))
    if lengths[best] <= 0:
        return None
    return int(time_ns[starts][best]), int(ends[best])


def _violation(kind: str, name: str, stall: tuple[int, int], end_ns: int, limit: int) -> dict:
    begin, until = stall
    waited = "requests waited for it" if kind == "device" else "frames waited in it"
    until_text = f"the end of the run ({format_ns(until)})" if until >= end_ns else format_ns(until)
    return {"kind": kind, "component": name, "from_ns": begin, "to_ns": until,
            "message": f"{kind} {name} made no progress from {format_ns(begin)} to {until_text}, "
                       f"{format_ns(until - begin)} while {waited} (threshold {format_ns(limit)})"}


def with_liveness(check: dict, entry: dict) -> dict:
    """The safety checks' verdict with the liveness entry added: failed when either failed."""
    failed = check["status"] != "ok" or entry["status"] != "ok"
    return {**check, "status": "failed" if failed else "ok", "checks": [*check["checks"], entry]}
