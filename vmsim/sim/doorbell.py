"""Doorbells: an interrupt from one side of a bus to the other.

Inter-processor interrupts, mailboxes (IPCC-like, TI-mailbox-like), a PCIe BAR doorbell write
and MSI-X back, Xen event channels: all are "the sender pays `ring`, the receiver's handler runs
`latency` later". A doorbell rung while one is still pending coalesces into it, as a mailbox
status bit or a pending interrupt line does; the counters keep rung vs coalesced vs delivered.
"""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation


class Doorbell(Component):
    """One direction of notification; `on_deliver` is called when the receiver's handler runs."""

    def __init__(self, sim: Simulation, name: str, kind, bus_id: int, on_deliver):
        super().__init__(sim, name)
        self.kind = kind.kind
        self.ring_cost = kind.ring
        self.latency = kind.latency
        self.ack_cost = kind.ack
        self.bus_id = bus_id
        self.on_deliver = on_deliver
        self.pending = False
        self.counts = sim.counter(name)
        self.counts.update(kind=self.kind, rung=0, coalesced=0, delivered=0)
        log = sim.log
        self._log = log
        self._ev_ring = log.events("doorbell.ring")
        self._ev_coalesced = log.events("doorbell.coalesced")
        self._ev_deliver = log.events("doorbell.deliver")

    def ring(self, dev_num: int = -1) -> int:
        """Ring now; returns the sender's cost of ringing (charged by the caller)."""
        now = self.env.now
        if self.pending:
            self.counts["coalesced"] += 1
            self._log.mark(now, self.log_id, self._ev_coalesced, self.bus_id, dev_num)
            return self.ring_cost
        self.pending = True
        self.counts["rung"] += 1
        self._log.mark(now, self.log_id, self._ev_ring, self.bus_id, dev_num)
        self.env.timeout(self.ring_cost + self.latency).callbacks.append(self._deliver)
        return self.ring_cost

    def _deliver(self, _event) -> None:
        self.pending = False
        self.counts["delivered"] += 1
        self._log.mark(self.env.now, self.log_id, self._ev_deliver, self.bus_id)
        self.on_deliver()
