"""Doorbells: an interrupt from one side of a bus to the other, the one notifier every bus kind uses.

Inter-processor interrupts, mailboxes (IPCC-like, TI-mailbox-like), a PCIe BAR doorbell write
and MSI-X back, FF-A notifications, Xen event channels: all are "the sender pays `ring`, the receiver's
handler runs `latency` later". A doorbell rung while one is still on its way coalesces into it, as a
mailbox status bit or a pending interrupt line does; the counters keep rung vs coalesced vs delivered.

A doorbell with a `port` is one end of a Xen interdomain event channel: each send (EVTCHNOP_send) and
upcall is logged with the port (`evtchn.*`), and the receiver's handler may mask the port while it works:
a send then only sets it pending, and the unmask reports that so the handler runs again (Xen re-raises
the upcall). A port that is not `maskable` (Xen itself as the receiver) never masks.

A `faults:` entry aimed at a doorbell (`vmsim.sim.faults`) loses a ring (the sender paid, no handler runs)
or delivers it late; the next delivery makes good a lost one, since its handler drains what both announced.
"""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation
from vmsim.sim.faults import DOORBELL_KINDS, faults_on


class Doorbell(Component):
    """One direction of notification; `on_deliver` is called when the receiver's handler runs.

    `kind` gives the figures: `ring` (the sender's cost), `latency` (until the handler runs, plus
    `extra_ns`: a VM switch and a scheduler wake-up when the receiving domain shares pCPUs), `ack` (the
    handler's acknowledgement, paid by the receiver) and its `kind` name.
    """

    def __init__(self, sim: Simulation, name: str, kind, bus_id: int, on_deliver, *, port: int | None = None,
                 extra_ns: int = 0, maskable: bool = False):
        super().__init__(sim, name)
        self.kind = kind.kind
        self.ring_cost = kind.ring
        self.latency = kind.latency + extra_ns
        self.ack_cost = kind.ack
        self.bus_id = bus_id
        self.on_deliver = on_deliver
        self.port = port
        self.maskable = maskable
        self.in_flight = self.masked = self.pending = False
        self.counts = sim.counter(name)
        self.counts["kind"] = self.kind
        if port is not None:
            self.counts["port"] = port
        self.counts.update(rung=0, coalesced=0, delivered=0)
        self.faults = faults_on(sim, name, DOORBELL_KINDS)  # `faults:` aimed at this doorbell, or None
        log = sim.log
        self._log = log
        if port is None:
            self._value = 0
            self._ev_send = self._ev_mask = self._ev_unmask = None
            self._ev_ring, self._ev_coalesced, self._ev_deliver = (
                log.events(event) for event in ("doorbell.ring", "doorbell.coalesced", "doorbell.deliver"))
        else:
            self._value = port
            self._ev_ring = self._ev_coalesced = None
            self._ev_send, self._ev_deliver, self._ev_mask, self._ev_unmask = (
                log.events(event) for event in ("evtchn.send", "evtchn.upcall", "evtchn.mask", "evtchn.unmask"))

    def ring(self, dev_num: int = -1) -> int:
        """Ring now; returns the sender's cost of ringing (charged by the caller)."""
        now = self.env.now
        if self._ev_send is not None:
            self._log.mark(now, self.log_id, self._ev_send, self.bus_id, dev_num, self._value)
        if self.masked:
            self.pending = True
            self.counts["coalesced"] += 1
            return self.ring_cost
        if self.in_flight:
            self.counts["coalesced"] += 1
            if self._ev_coalesced is not None:
                self._log.mark(now, self.log_id, self._ev_coalesced, self.bus_id, dev_num)
            return self.ring_cost
        self.in_flight = True
        self.counts["rung"] += 1
        if self._ev_ring is not None:
            self._log.mark(now, self.log_id, self._ev_ring, self.bus_id, dev_num)
        delay = 0
        if self.faults is not None:
            if self.faults.strike("doorbell-lost", dev_num) is not None:
                self.in_flight = False  # the interrupt never arrives; the next ring is a new one
                self.faults.lose()
                return self.ring_cost
            delayed = self.faults.strike("doorbell-delayed", dev_num)
            delay = 0 if delayed is None else delayed.spec.delay
        self.env.timeout(self.ring_cost + self.latency + delay).callbacks.append(self._deliver)
        return self.ring_cost

    def _deliver(self, _event) -> None:
        self.in_flight = False
        if self.faults is not None and self.faults.missing:
            self.faults.made_good()  # this handler drains what a lost ring announced too
        self.counts["delivered"] += 1
        self._log.mark(self.env.now, self.log_id, self._ev_deliver, self.bus_id, -1, self._value)
        self.on_deliver()

    def mask(self) -> None:
        """The receiver's handler masks its port while it works (a no-op unless `maskable`)."""
        if self.maskable:
            self.masked = True
            self._log.mark(self.env.now, self.log_id, self._ev_mask, self.bus_id, -1, self._value)

    def unmask(self) -> bool:
        """Unmask the port; True when a send arrived while it was masked."""
        if not self.maskable:
            return False
        self.masked = False
        self._log.mark(self.env.now, self.log_id, self._ev_unmask, self.bus_id, -1, self._value)
        pending, self.pending = self.pending, False
        return pending
