"""vCPU pools: the servers a domain's or a partition's bus work holds while it runs (Xen domains, FF-A
partitions), shared by every bus that domain or partition is on.

Work waits for a free vCPU, without pre-emption; urgent work (a TLB-flush IPI handler) goes ahead of work
that waits at normal priority, and work of one priority is served first come, first served. A SimPy
`PriorityResource` holds the vCPUs, so each hold costs a request and a release event (`vmsim.sim.processor`
is the one-timeout-per-item model of a core).
"""

from __future__ import annotations

import simpy

URGENT, NORMAL = 0, 1  # vCPU request priorities: IPI handlers before waiting work


class VcpuPool:
    """`capacity` vCPUs. A process takes one with `enter(account)` and gives it back with `leave()`, which adds
    the time held to the counter `busy_ns` and, with an `account`, to that counter, less what `work` inside
    attributed to other accounts. Nested pairs in the same process reuse the vCPU it holds, because a
    handler's own work (the driver's used-buffer handler publishing new requests) runs in the handler's
    context, on its vCPU.
    """

    def __init__(self, env: simpy.Environment, capacity: int, counts: dict):
        self.env = env
        self.pool = simpy.PriorityResource(env, capacity=capacity)
        self.counts = counts
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
        self._holders[process] = _Hold(vcpu, self.env.now, account)

    def leave(self) -> None:
        """Give back the active process's vCPU (once its outermost `enter` is matched)."""
        process = self.env.active_process
        hold = self._holders[process]
        hold.depth -= 1
        if hold.depth:
            return
        del self._holders[process]
        self.pool.release(hold.vcpu)
        held = self.env.now - hold.since
        self.counts["busy_ns"] += held
        if hold.account is not None:
            self.counts[hold.account] += held - hold.attributed

    def work(self, ns: int, account: str):
        """`ns` of work on the vCPU the active process holds, counted under `account`."""
        yield self.env.timeout(ns)
        hold = self._holders[self.env.active_process]
        hold.attributed += ns
        self.counts[account] += ns

    def run(self, ns: int, account: str, priority: int = NORMAL):
        """`ns` of work on a free vCPU; zero work needs none."""
        if ns <= 0:
            return
        yield from self.enter(account, priority)
        yield self.env.timeout(ns)
        self.leave()

    def running(self) -> int:
        """vCPUs busy now (the dirty mask a TLB flush must reach)."""
        return len(self.pool.users)

    def free(self) -> bool:
        """Whether a vCPU is idle now (a partition that answers BUSY instead of queueing asks this)."""
        return len(self.pool.users) < self.pool.capacity


class _Hold:
    """One process's hold on a vCPU: since when, for what, and the part other accounts took."""

    __slots__ = ("account", "attributed", "depth", "since", "vcpu")

    def __init__(self, vcpu, since: int, account: str | None):
        self.vcpu = vcpu
        self.since = since
        self.account = account
        self.depth = 1
        self.attributed = 0
