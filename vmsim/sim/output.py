"""What one simulation run hands to the results layer."""

from __future__ import annotations

from array import array
from dataclasses import dataclass, field

import numpy as np

from vmsim.sim.log import EventLog, RequestLog

RAW_POINTS = 4_096
"""Changes a `Series` keeps as they are; past this, the oldest half is folded into its windows."""
WINDOWS = 1_024
"""Windows a `Series` folds its older changes into at most: their width doubles as the run goes on."""


class Series:
    """A step function sampled where it changes: (time_ns, level) pairs, e.g. queue occupancy; 0 before the
    first change. Memory stays bounded however long the run: the latest changes (at most `RAW_POINTS`) are
    kept as they are, the older ones folded into at most `WINDOWS` equal windows from time 0 holding the exact
    area under the curve (integer level-nanoseconds) and the highest level.

    `time` and `level` give the steps back: the kept changes as recorded, each folded window as at most
    four steps with its area (hence its time-weighted mean, `vmsim.analysis.stats.time_average`) and its
    maximum exact, so per-window means and maxima (`stats.windowed_levels`) are exact on the windows' edges.
    `queue_stall` follows every change as it is folded, so the liveness check stays exact too.
    """

    __slots__ = ("_areas", "_folded_until", "_last_level", "_level", "_peaks", "_stall", "_time", "_width")

    def __init__(self):
        self._time = array("q")
        self._level = array("q")
        self._width = 1  # of a folded window, in ns: a power of two
        self._areas = np.zeros(0, dtype=np.int64)
        self._peaks = np.zeros(0, dtype=np.int64)
        self._folded_until = 0  # the folded windows cover [0, this); the kept changes start here
        self._last_level = 0  # the level in force at `_folded_until`
        self._stall = _Stretches()

    def record(self, time_ns: int, level: int) -> None:
        self._time.append(time_ns)
        self._level.append(level)
        if len(self._time) > RAW_POINTS:
            self._fold()

    @property
    def time(self) -> array:
        return self._steps()[0]

    @property
    def level(self) -> array:
        return self._steps()[1]

    def queue_stall(self, end_ns: int) -> tuple[int, int] | None:
        """The longest stretch `(from_ns, to_ns)` up to `end_ns` in which the level was above 0 and never fell
        (a queue held frames and none left it), the first of equals; None when there is none. Exact when
        `end_ns` is not before the last folded change (the changes after a run's end are few and kept)."""
        times, levels = np.frombuffer(self._time, dtype=np.int64), np.frombuffer(self._level, dtype=np.int64)
        stretches = self._stall.copy()
        stretches.follow(times, levels, end_ns)
        return stretches.longest(end_ns)

    def _fold(self) -> None:
        """Fold the oldest half of the kept changes into the windows (all the changes at one time together)."""
        times = np.array(self._time, dtype=np.int64)  # copies: the buffers shrink below
        half = int(np.searchsorted(times, times[len(times) // 2], side="left"))
        if half == 0:
            half = int(np.searchsorted(times, times[0], side="right"))
            if half == len(times):
                return  # every change at one time: nothing to fold until time moves on
        levels = np.array(self._level, dtype=np.int64)
        boundary = int(times[half])
        self._stall.follow(times[:half], levels[:half], None)
        self._widen(boundary)
        self._add_steps(times[:half], levels[:half], boundary)
        self._last_level = int(levels[half - 1])
        self._folded_until = boundary
        del self._time[:half]
        del self._level[:half]

    def _widen(self, boundary: int) -> None:
        """Windows wide enough that [0, boundary) takes at most `WINDOWS`, merged in pairs as they widen."""
        width = self._width
        while -(-boundary // width) > WINDOWS:
            width *= 2
        factor = width // self._width
        if factor > 1:
            count = -(-self._areas.size // factor)
            pad = count * factor - self._areas.size
            self._areas = np.append(self._areas, np.zeros(pad, dtype=np.int64)).reshape(count, factor).sum(axis=1)
            peaks = np.append(self._peaks, np.full(pad, np.iinfo(np.int64).min)).reshape(count, factor)
            self._peaks = peaks.max(axis=1)
            self._width = width
        count = -(-boundary // width)
        if count > self._areas.size:
            extra = count - self._areas.size
            self._areas = np.append(self._areas, np.zeros(extra, dtype=np.int64))
            self._peaks = np.append(self._peaks, np.full(extra, np.iinfo(np.int64).min))

    def _add_steps(self, times: np.ndarray, levels: np.ndarray, boundary: int) -> None:
        """Add to the windows the level in force from `_folded_until` to each change and from the last to
        `boundary`: its area, and its value to the maximum of every window it holds in (for some time, or at
        a change: the level carried in from before counts only if it holds for some time)."""
        width, areas, peaks = self._width, self._areas, self._peaks
        starts = np.append(self._folded_until, times)
        ends = np.append(times, boundary)
        values = np.append(self._last_level, levels)
        instant = ends == starts
        instant[0] = False
        np.maximum.at(peaks, starts[instant] // width, values[instant])
        held = ends > starts
        starts, ends, values = starts[held], ends[held], values[held]
        first, last = starts // width, (ends - 1) // width
        np.add.at(areas, first, values * (np.minimum(ends, (first + 1) * width) - starts))
        np.maximum.at(peaks, first, values)
        spans = last > first
        np.add.at(areas, last[spans], values[spans] * (ends[spans] - last[spans] * width))
        np.maximum.at(peaks, last[spans], values[spans])
        inner = np.maximum(last - first - 1, 0)
        if inner.sum():
            rows = np.repeat(np.arange(inner.size), inner)
            offsets = np.arange(rows.size) - np.repeat(np.cumsum(inner) - inner, inner)
            windows = first[rows] + 1 + offsets
            areas[windows] = values[rows] * width
            peaks[windows] = values[rows]

    def _steps(self) -> tuple[array, array]:
        """The folded windows as steps (see the class docstring), then the kept changes."""
        times, levels = array("q"), array("q")
        width = self._width
        for index, (area, peak) in enumerate(zip(self._areas.tolist(), self._peaks.tolist())):
            begin = index * width
            span = min(begin + width, self._folded_until) - begin
            mean, extra = divmod(area, span)
            first = mean + (extra > 0)
            times.append(begin)
            levels.append(first)
            middle = begin + (extra if extra else span // 2)
            if peak > first:
                times.append(middle)
                levels.append(peak)
            if peak > first or extra:
                times.append(middle)
                levels.append(mean)
        times.extend(self._time)
        levels.extend(self._level)
        return times, levels


class _Stretches:
    """The stretches in which a step function was above 0 and never fell, followed change by change: the
    longest closed so far, and the one still open."""

    __slots__ = ("before", "longest_so_far", "open_since")

    def __init__(self):
        self.before = 0
        self.open_since: int | None = None
        self.longest_so_far: tuple[int, int] | None = None

    def copy(self) -> _Stretches:
        twin = _Stretches()
        twin.before, twin.open_since, twin.longest_so_far = self.before, self.open_since, self.longest_so_far
        return twin

    def _close(self, since: int, until: int) -> None:
        if until - since > 0 and (self.longest_so_far is None
                                  or until - since > self.longest_so_far[1] - self.longest_so_far[0]):
            self.longest_so_far = (since, until)

    def follow(self, times: np.ndarray, levels: np.ndarray, end_ns: int | None) -> None:
        """The next changes; a stretch closed after `end_ns` counts up to `end_ns` only."""
        if not levels.size:
            return
        before = np.append(self.before, levels[:-1])
        fell = levels < before
        opens = np.flatnonzero((levels > 0) & (fell | (before == 0)))
        falls = np.flatnonzero(fell)
        ends = times[falls] if end_ns is None else np.minimum(times[falls], end_ns)
        if self.open_since is not None and falls.size:
            self._close(self.open_since, int(ends[0]))
            self.open_since = None
        closing = np.searchsorted(falls, opens, side="right")
        closed = closing < falls.size
        if closed.any():
            lengths = ends[closing[closed]] - times[opens[closed]]
            best = int(np.argmax(lengths))
            self._close(int(times[opens[closed]][best]), int(ends[closing[closed]][best]))
        if opens.size and not closed[-1]:
            self.open_since = int(times[opens[-1]])
        self.before = int(levels[-1])

    def longest(self, end_ns: int) -> tuple[int, int] | None:
        """The longest stretch once the function is followed to `end_ns` (an open one ends there)."""
        if self.open_since is not None:
            self._close(self.open_since, end_ns)
        return self.longest_so_far


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
