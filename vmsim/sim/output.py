"""What one simulation run hands to the results layer."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

from vmsim.sim.log import EventLog, RequestLog


@dataclass
class Series:
    """A step function sampled where it changes: (time_ns, level) pairs, e.g. queue occupancy."""

    time: array = field(default_factory=lambda: array("q"))
    level: array = field(default_factory=lambda: array("q"))

    def record(self, time_ns: int, level: int) -> None:
        self.time.append(time_ns)
        self.level.append(level)


@dataclass
class SimOutput:
    """Logs, counters and series of one run; all times are integer nanoseconds.

    `counters` maps a component's dotted name to its counters, e.g.
    ``{"amp0.to_device": {"frames": 812, "bytes": 9744, "full": 0, "utilisation": 0.12},
    "amp0.doorbell.to_device": {"rung": 400, "coalesced": 12, "delivered": 388}}``.
    `series` maps a dotted name to a step function (queue occupancy over time).
    `init_done_ns` maps each device's dotted name to the time its driver set DRIVER_OK.
    `workloads` maps each workload to its arrival kind, its device's dotted name and the requests it submitted
    and saw completed.
    `processors` maps each modelled core to its `cores`, `busy_ns`, `utilisation` (never above 1) and the
    thread and interrupt work items it served; `busy_periods` maps each to its cores' `BusyPeriods` (when each
    core or vCPU was busy without a gap: the trace's per-core slices).
    `at_warmup` holds the `counters`, the `processors`' reports and each workload's `completed` as they stood
    when the warm-up ended (per-request costs are counted from there); empty when `warmup_ns` is 0.
    """

    scenario: str
    seed: int
    sim_time_ns: int
    warmup_ns: int
    events: EventLog
    requests: RequestLog
    counters: dict[str, dict[str, float]] = field(default_factory=dict)
    series: dict[str, Series] = field(default_factory=dict)
    init_done_ns: dict[str, int] = field(default_factory=dict)
    workloads: dict[str, dict] = field(default_factory=dict)
    processors: dict[str, dict] = field(default_factory=dict)
    busy_periods: dict[str, list] = field(default_factory=dict)
    at_warmup: dict[str, dict] = field(default_factory=dict)
