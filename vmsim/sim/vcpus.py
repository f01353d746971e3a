"""vCPU pools: the servers a domain's or a partition's bus work holds while it runs (Xen domains, FF-A
partitions), shared by every bus that domain or partition is on.

Work waits for a free vCPU, without pre-emption; urgent work goes ahead of work that waits at normal
priority, and work of one priority is served first come, first served. An interrupt (a TLB-flush IPI)
lands on the vCPUs that are running something: each holder's work takes that much longer, paid when its
current `work` ends or when it `settle`s; a vCPU spinning on a lock (`busy_wait`) takes it in the wait. A SimPy
`PriorityResource` holds the vCPUs, so each hold costs a request and a release event (`vmsim.sim.processor`
is the one-timeout-per-item model of a core).
"""

from __future__ import annotations

from collections.abc import Mapping
from heapq import heappop, heappush
from types import MappingProxyType
from typing import ClassVar

import simpy

from vmsim.sim.processor import BusyPeriods, activity_totals

URGENT, NORMAL = 0, 1  # vCPU request priorities: IPI handlers before waiting work


class VcpuPool:
    """`capacity` vCPUs. A process takes one with `enter(account)` and gives it back with `leave()`, which adds
    the time held to the counter `busy_ns` and, with an `account`, to that counter, less what `work` inside
    attributed to other accounts. Nested pairs in the same process reuse the vCPU it holds, because a
    handler's own work (the driver's used-buffer handler publishing new requests) runs in the handler's
    context, on its vCPU.
    """

    ACTIVITY_OF_ACCOUNT: ClassVar[Mapping[str, str]] = MappingProxyType({})
    """The activity (`vmsim.sim.processor.ACTIVITIES`) each of a subclass's counter accounts reports as."""

    HELD_ACCOUNT = "queue_ns"
    """The counter account of work charged through the processor protocol (`hold`): virtqueue ring
    accesses, payload copies and endpoint software, reported by the activities their callers add to `by_activity`."""

    def __init__(self, env: simpy.Environment, capacity: int, counts: dict):
        self.env = env
        self.pool = simpy.PriorityResource(env, capacity=capacity)
        self.counts = counts
        self.cores = capacity
        self.holds = 0  # vCPUs taken (outermost `enter`s)
        self.by_activity = activity_totals()  # ns the processor protocol's callers said was for each activity
        self._periods: list[BusyPeriods] = []  # per vCPU, numbered in the order they were first taken
        self._idle: list[int] = []  # numbers of the vCPUs free now (a heap: the lowest is taken first)
        self._holders: dict[object, _Hold] = {}  # process -> the vCPU it holds

    def enter(self, account: str | None = None, priority: int = NORMAL):
        """Take a vCPU for the active process, or reuse the one it holds."""
        process = self.env.active_process
        hold = self._holders.get(process)
        if hold is not None:
            hold.depth += 1
            return
        vcpu = self.pool.request(priority)
        yield vcpu
        self.holds += 1
        if self._idle:
            number = heappop(self._idle)
        else:
            number = len(self._periods)
            self._periods.append(BusyPeriods())
        self._holders[process] = _Hold(vcpu, self.env.now, account, number)

    def leave(self) -> None:
        """Give back the active process's vCPU (once its outermost `enter` is matched)."""
        process = self.env.active_process
        hold = self._holders[process]
        hold.depth -= 1
        if hold.depth:
            return
        del self._holders[process]
        self.pool.release(hold.vcpu)
        self._periods[hold.number].add(hold.since, self.env.now)
        heappush(self._idle, hold.number)
        held = self.env.now - hold.since
        self.counts["busy_ns"] += held
        if hold.account is not None:
            self.counts[hold.account] += held - hold.attributed

    def work(self, ns: int, account: str):
        """`ns` of work on the vCPU the active process holds, counted under `account`, then the interrupts
        that landed on it meanwhile."""
        yield self.env.timeout(ns)
        hold = self._holders[self.env.active_process]
        hold.attributed += ns
        self.counts[account] += ns
        if hold.owed:
            yield from self.settle()

    def settle(self):
        """Run the interrupts that landed on the active process's vCPU and are not paid yet (call before
        `leave` where the last step was not `work`)."""
        hold = self._holders[self.env.active_process]
        while hold.owed:
            owed, hold.owed = hold.owed, 0
            yield self.env.timeout(owed)
            hold.attributed += owed
            self.counts[hold.owed_account] += owed

    def busy_wait(self, waiting, account: str):
        """Run `waiting` (a generator: a lock's request, a memory-bandwidth stall) with the vCPU held and busy,
        counted under `account`; interrupts that land meanwhile are taken in the wait, at no extra time."""
        hold = self._holders[self.env.active_process]
        start, owed = self.env.now, hold.owed
        result = yield from waiting
        waited = self.env.now - start
        hold.attributed += waited
        self.counts[account] += waited
        hold.owed = owed + max(0, hold.owed - owed - waited)
        return result

    def interrupt(self, ns: int, account: str) -> int:
        """An IPI to every vCPU that another process holds: each loses `ns`, counted under `account` (as
        pre-emption would, its holder's work ends `ns` later); the number of vCPUs interrupted."""
        sender = self.env.active_process
        targets = 0
        for process, hold in self._holders.items():
            if process is not sender:
                hold.owed += ns
                hold.owed_account = account
                targets += 1
        return targets

    def run(self, ns: int, account: str, priority: int = NORMAL):
        """`ns` of work on a free vCPU; zero work needs none."""
        if ns <= 0:
            return
        yield from self.enter(account, priority)
        yield self.env.timeout(ns)
        yield from self.settle()
        self.leave()

    # --- the processor protocol (`vmsim.sim.processor`), so a bus's side can run on a vCPU pool -----------

    def hold(self, cost: int, irq: bool = False):
        """`cost` ns on the vCPU the active process holds (a handler's own work), or on a free one. Work
        from an interrupt waits for a vCPU like any other: vCPUs are not pre-empted here."""
        if cost <= 0:
            return
        yield from self.enter()
        yield from self.work(cost, self.HELD_ACCOUNT)
        self.leave()

    def report(self, now: int) -> dict:
        """What a run's summary says of this pool at `now`, in the shape of `Processor.report`."""
        by_activity = dict(self.by_activity)
        for account, activity in self.ACTIVITY_OF_ACCOUNT.items():
            if self.counts.get(account):
                by_activity[activity] = by_activity.get(activity, 0) + self.counts[account]
        busy = self.counts["busy_ns"]
        return {"cores": self.cores, "busy_ns": busy, "utilisation": busy / (now * self.cores) if now > 0 else 0.0,
                "work_items": self.holds, "irq_items": 0,
                "by_activity_ns": {activity: ns for activity, ns in sorted(by_activity.items()) if ns}}

    def busy_periods(self, now: int) -> list[BusyPeriods]:
        """Each vCPU's holds up to `now`, those still held included (the trace's per-vCPU slices)."""
        periods = [held.clipped(now) for held in self._periods]
        for hold in self._holders.values():
            periods[hold.number].add(hold.since, now)
        return periods

    def running(self) -> int:
        """vCPUs busy now (the dirty mask a TLB flush must reach)."""
        return len(self.pool.users)

    def free(self) -> bool:
        """Whether a vCPU is idle now (a partition that answers BUSY instead of queueing asks this)."""
        return len(self.pool.users) < self.pool.capacity


class _Hold:
    """One process's hold on a vCPU: since when, for what, the part other accounts took, interrupts owed."""

    __slots__ = ("account", "attributed", "depth", "number", "owed", "owed_account", "since", "vcpu")

    def __init__(self, vcpu, since: int, account: str | None, number: int):
        self.vcpu = vcpu
        self.number = number  # which vCPU of the pool, for the trace
        self.since = since
        self.account = account
        self.depth = 1
        self.attributed = 0
        self.owed = 0  # interrupt time that landed on this vCPU and is not paid yet
        self.owed_account = account
