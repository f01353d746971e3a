"""Processors: cores, vCPU pools and partition cores that work is charged to.

Everything done on a processor (interrupt entry, frame handling, queue reads and writes, copies,
device service) holds it for its cost, so a core is never more than 100 % busy and two devices on
one core wait for each other.

A processor serves its work first come, first served, and a work item's cost is known when it is
submitted. On an idle core one timeout per item is the whole cost in events (a SimPy `Resource` would
add a request and a release event to every item); an item queued behind others waits on a plain event
until its turn, so that interrupt work, which pushes back only the running item, costs one extra wake-up
at most, however long the queue. Interrupt work
(`irq=True`) on a one-core processor pre-empts thread work and resumes it afterwards: it runs after
the interrupt work queued before it only, and every piece of thread work not finished when it arrives
is pushed back by its cost. A pool of several cores (a domain's vCPUs) hands each item to the core
that frees first.
"""

from __future__ import annotations

from array import array
from collections import deque

from vmsim.sim.core import Component, Simulation

ACTIVITIES = ("service", "software", "copies", "rings", "frames", "notify", "calls", "setup", "grants", "locks", "tlb")
"""What work on a processor is for: device service, endpoint software paths, payload copies through shared
memory, virtqueue ring accesses, transport frames (software and queue memory), notifications (doorbells,
acknowledgements, notification words, polls), calls into firmware or a hypervisor (an FF-A SMC or HVC and its
world switches, paid by the caller), bus set-up (handshakes), and on a Xen domain's vCPUs grant operations,
spinning on the grant-table or TLB-flush lock, and TLB flushes with the IPIs they send and take."""


MAX_BUSY_PERIODS = 100_000
"""Busy periods kept per core for the trace (the earliest, as the trace keeps the start of a run): 1.6 MB."""


def activity_totals() -> dict[str, int]:
    """A processor's `by_activity`: the ns of its work each of `ACTIVITIES` was for, the "where the time went"
    table. Callers add to it themselves (`cpu.by_activity["rings"] += ns`), apart from `hold` because one hold
    often pays for several activities at once (a ring update and the copy it publishes); a dict rather than a
    method, as it is added to several times a request."""
    return dict.fromkeys(ACTIVITIES, 0)


class BusyPeriods:
    """When one core was busy without a gap, as (start, end) pairs in time order: the per-core slices of the
    trace. Keeps the first `MAX_BUSY_PERIODS` and counts the rest; `since` is when the period being recorded
    began."""

    __slots__ = ("dropped", "ends", "room", "since", "starts")

    def __init__(self):
        self.starts = array("q")
        self.ends = array("q")
        self.dropped = 0
        self.room = MAX_BUSY_PERIODS
        self.since = 0

    def restart(self, end: int, now: int) -> None:
        """The period begun at `since` ended at `end` (nothing if empty); the next begins at `now`."""
        start, self.since = self.since, now
        if end <= start:
            return
        if self.room:
            self.room -= 1
            self.starts.append(start)
            self.ends.append(end)
        else:
            self.dropped += 1

    def add(self, start: int, end: int) -> None:
        """A period from `start` to `end` (nothing if empty)."""
        self.since = start
        self.restart(end, end)

    def clipped(self, stop: int) -> BusyPeriods:
        """These periods as of `stop`: work still to run after it is not shown. Periods are in time order,
        so only the last ones can reach past `stop`."""
        kept = BusyPeriods()
        kept.dropped, kept.room = self.dropped, self.room
        kept.starts, kept.ends = self.starts[:], self.ends[:]
        while kept.ends and kept.ends[-1] > stop:
            if kept.starts[-1] < stop:
                kept.ends[-1] = stop
                break
            kept.starts.pop()
            kept.ends.pop()
        return kept


class Processor(Component):
    """`cores` identical cores serving work first come, first served; interrupt work first on one core.

    Use `yield from processor.hold(cost_ns)` inside a process: it returns once the work is done.
    `busy_ns(now)` is the work done by `now`, at most `now * cores`.
    """

    def __init__(self, sim: Simulation, name: str, *, cores: int = 1):
        super().__init__(sim, name)
        if cores < 1:
            raise ValueError(f"{name}: a processor has at least one core, not {cores}")
        self.cores = cores
        self._free_at = [0] * cores  # when each core has finished the work handed to it so far
        self._thread_running = False  # one core: a thread item holds it (interrupt work aside)
        self._waiting: deque = deque()  # one core: the turns of the thread items queued behind it
        self._irq_free_at = 0  # when the interrupt work handed to the (one) core so far is done
        self._stolen = 0  # interrupt time that pushed back thread work in progress or waiting
        self._stolen_at = -1  # when interrupt work last pushed thread work back
        self._stolen_earlier = 0  # _stolen before the interrupts that arrived at _stolen_at
        self._charged = 0  # ns of work handed out, including work still to run
        self._timeout = sim.env.timeout
        self.work_items = 0
        self.irq_items = 0
        self.by_activity = activity_totals()
        self._periods = [BusyPeriods() for _ in range(cores)]

    def hold(self, cost: int, irq: bool = False):
        """Hold a core for `cost` ns, after the work submitted before (interrupt work: before it)."""
        now = self.env.now
        free_at = self._free_at
        self._charged += cost
        if self.cores > 1:
            core = free_at.index(min(free_at))
            if free_at[core] < now:
                self._periods[core].restart(free_at[core], now)  # idle since its work ended
            end = (free_at[core] if free_at[core] > now else now) + cost  # noqa: FURB136 (max() costs a call)
            free_at[core] = end
            self.work_items += 1
            yield self._timeout(end - now)
            return
        if irq:  # after the interrupt work before it only; thread work not done yet is pushed back by its cost
            start = self._irq_free_at if self._irq_free_at > now else now  # noqa: FURB136
            self._irq_free_at = end = start + cost
            self.irq_items += 1
            if free_at[0] > now:  # thread work in progress or waiting: all of it moves back
                free_at[0] += cost
                if self._stolen_at != now:
                    self._stolen_at, self._stolen_earlier = now, self._stolen
                self._stolen += cost
            elif free_at[0] < end:  # thread work submitted from now waits for the interrupt work
                if free_at[0] < now:
                    self._periods[0].restart(free_at[0], now)  # idle since its work ended
                free_at[0] = end
            yield self._timeout(end - now)
            return
        self.work_items += 1
        if free_at[0] < now:
            self._periods[0].restart(free_at[0], now)  # idle since its work ended
        free_at[0] = (free_at[0] if free_at[0] > now else now) + cost  # noqa: FURB136 (the core's busy period)
        if self._thread_running:  # wait for the thread work ahead: only the running item has a timeout
            turn = self.env.event()
            self._waiting.append(turn)
            yield turn
            now = self.env.now
        else:
            self._thread_running = True
        start = self._irq_free_at if self._irq_free_at > now else now  # noqa: FURB136 (after interrupt work)
        stolen = self._stolen
        yield self._timeout(start + cost - now)
        if self._stolen != stolen:
            while True:  # interrupt work that arrived before this work was done ran first: wait that long more
                seen = self._stolen if self._stolen_at < self.env.now else self._stolen_earlier
                if seen <= stolen:
                    break
                stolen, extra = seen, seen - stolen
                yield self._timeout(extra)
        if self._waiting:
            self._waiting.popleft().succeed()
        else:
            self._thread_running = False

    def busy_periods(self, now: int) -> list[BusyPeriods]:
        """Each core's busy periods up to `now` (the trace's per-core slices)."""
        for periods, free_at in zip(self._periods, self._free_at, strict=True):
            periods.restart(free_at, free_at)
        return [periods.clipped(now) for periods in self._periods]

    def busy_ns(self, now: int) -> int:
        """Work done by `now`: what was handed out, less what is still to run after `now`."""
        # Each core is busy without a gap until its _free_at (on one core that includes interrupt work).
        return self._charged - sum(max(0, free_at - now) for free_at in self._free_at)

    def utilisation(self, now: int) -> float:
        """Share of the cores' time spent working, in [0, 1]."""
        return self.busy_ns(now) / (now * self.cores) if now > 0 else 0.0

    def report(self, now: int) -> dict:
        """What a run's summary says of this processor at `now`."""
        return {"cores": self.cores, "busy_ns": self.busy_ns(now), "utilisation": self.utilisation(now),
                "work_items": self.work_items, "irq_items": self.irq_items,
                "by_activity_ns": {activity: ns for activity, ns in sorted(self.by_activity.items()) if ns}}


class Unshared:
    """Work that takes its time but waits for no other work: the side of a bus whose processor the bus kind
    does not model yet (Xen and FF-A hold their domains' and partitions' vCPUs in their own steps)."""

    cores = 0

    def __init__(self, env):
        self._timeout = env.timeout
        self.by_activity = activity_totals()  # unshared work is not reported

    def hold(self, cost: int, irq: bool = False):
        yield self._timeout(cost)
