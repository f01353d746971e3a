"""The Xen host a Xen bus runs on: domains as vCPU pools shared by every bus they are on, and the
interdomain event channels that notify them (send hypercall, upcall, mask and unmask)."""


from __future__ import annotations

from typing import NamedTuple

from vmsim.buses.xen.spec import XEN
from vmsim.sim.channel import Channel
from vmsim.sim.core import Component, Simulation
from vmsim.sim.vcpus import VcpuPool

GREF_FIRST = 8  # grant references below 8 are reserved (GNTTAB_NR_RESERVED_ENTRIES)
DIRECTORY_BASE = 1 << 44  # bus addresses in the grant directory's address space
DIRECTORY_ENTRY = 8  # bytes the backend reads per page from the mapped directory
HYPERVISOR_VCPUS = 1 << 20  # Xen runs on whichever pCPU trapped into it: it never waits for a vCPU
BUS_EVENTS = ("evtchn.bind", "grant.grant", "grant.map", "grant.unmap", "grant.copy", "grant.end_access",
              "foreign.map", "tlb.shootdown", "gfn2mfn")
"""What a Xen bus logs besides frames (the event channels log evtchn.send/upcall/mask/unmask); each is
also a counter of the bus."""


class EvtchnCost(NamedTuple):
    """The doorbell figures of one direction: `ring` = the send hypercall, `latency` = until the upcall."""

    kind: str
    ring: int
    latency: int
    ack: int


class NoCosts:
    """Stands for a platform without a `xen:` section: every hypervisor operation is free."""

    def __getattr__(self, _name: str) -> int:
        return 0


class Domain(VcpuPool):
    """A domain's vCPUs (`VcpuPool`, counters `domain.<name>`) that all its bus work runs on, and its
    event-channel ports."""

    def __init__(self, sim: Simulation, name: str, vcpus: int | None, upcall_extra: int):
        counts = sim.counter(f"domain.{name}")
        counts.update(vcpus=vcpus or 0, busy_ns=0, frames_ns=0, grants_ns=0, tlb_ns=0, service_ns=0)
        super().__init__(sim.env, vcpus or HYPERVISOR_VCPUS, counts)
        self.name = name
        self.upcall_extra = upcall_extra
        self._ports = 0

    def port(self) -> int:
        """The next free event-channel port of this domain."""
        self._ports += 1
        return self._ports


class XenHost:
    """The domains of one model, shared by all its Xen buses (one backend serving many DomUs)."""

    def __init__(self, sim: Simulation, domains, costs):
        self.sim = sim
        self.domains: dict[str, Domain] = {}
        for spec in domains:
            extra = costs.vm_switch + costs.sched_wakeup if spec.pcpu == "shared" else 0
            self.domains[spec.name] = Domain(sim, spec.name, spec.vcpus, extra)

    def domain(self, name: str) -> Domain:
        """A declared domain, or the hypervisor itself (made on first use: no vCPU limit, no upcall)."""
        if name == XEN and XEN not in self.domains:
            self.domains[XEN] = Domain(self.sim, XEN, None, 0)
        return self.domains[name]

    @classmethod
    def of(cls, sim: Simulation, context, costs) -> XenHost:
        host = context.shared.get("xen")
        if host is None:
            host = context.shared["xen"] = cls(sim, getattr(context.scenario, "domains", ()), costs)
        return host


class EventChannel(Component):
    """One port of an interdomain event channel: the doorbell of the side that receives on it.

    A send while an upcall is on its way folds into it; a send while the port is masked only sets
    it pending, and the unmask reports that so the handler runs again (Xen re-raises the upcall).
    Xen as the receiver never masks.
    """

    def __init__(self, sim: Simulation, name: str, cost: EvtchnCost, bus_id: int, port: int, on_upcall,
                 *, extra_ns: int, maskable: bool):
        super().__init__(sim, name)
        self.kind = cost.kind
        self.ring_cost = cost.ring
        self.latency = cost.latency + extra_ns
        self.ack_cost = cost.ack
        self.bus_id = bus_id
        self.port = port
        self.on_upcall = on_upcall
        self.maskable = maskable
        self.in_flight = self.masked = self.pending = False
        self.counts = sim.counter(name)
        self.counts.update(kind=self.kind, port=port, rung=0, coalesced=0, delivered=0)
        log = sim.log
        self._log = log
        self._ev_send, self._ev_upcall, self._ev_mask, self._ev_unmask = (
            log.events(event) for event in ("evtchn.send", "evtchn.upcall", "evtchn.mask", "evtchn.unmask"))

    def ring(self, dev_num: int = -1) -> int:
        """EVTCHNOP_send now; returns the hypercall's cost (charged by the sender)."""
        self._log.mark(self.env.now, self.log_id, self._ev_send, self.bus_id, dev_num, self.port)
        if self.masked:
            self.pending = True
            self.counts["coalesced"] += 1
        elif self.in_flight:
            self.counts["coalesced"] += 1
        else:
            self.in_flight = True
            self.counts["rung"] += 1
            self.env.timeout(self.ring_cost + self.latency).callbacks.append(self._upcall)
        return self.ring_cost

    def _upcall(self, _event) -> None:
        self.in_flight = False
        self.counts["delivered"] += 1
        self._log.mark(self.env.now, self.log_id, self._ev_upcall, self.bus_id, -1, self.port)
        self.on_upcall()

    def mask(self) -> None:
        if self.maskable:
            self.masked = True
            self._log.mark(self.env.now, self.log_id, self._ev_mask, self.bus_id, -1, self.port)

    def unmask(self) -> bool:
        """Unmask the port; True when a send arrived while it was masked."""
        if not self.maskable:
            return False
        self.masked = False
        self._log.mark(self.env.now, self.log_id, self._ev_unmask, self.bus_id, -1, self.port)
        pending, self.pending = self.pending, False
        return pending


class XenChannel(Channel):
    """One direction over the shared page: the sender sends on a vCPU of its domain (given up while it
    backs off from a full queue), the receive handler runs on a vCPU of the receiving domain and keeps
    its event-channel port masked while it drains."""

    def __init__(self, sim: Simulation, name: str, *, sender: Domain, domain: Domain, cost: EvtchnCost, port: int,
                 maskable: bool, unmask_ns: int, **options):
        self.sender = sender
        self.domain = domain
        self.unmask_ns = unmask_ns if maskable else 0
        evtchn = EventChannel(sim, f"{name}.doorbell", cost, options["bus_id"], port, self.wake,
                              extra_ns=domain.upcall_extra, maskable=maskable)
        super().__init__(sim, name, doorbell_kind=None, doorbell=evtchn, **options)

    def _receive_loop(self):
        env = self.env
        per_frame = self.frame_cost()
        evtchn = self.doorbell
        domain = self.domain
        while True:
            yield self._wake_event
            self._wake_event = env.event()
            evtchn.mask()
            yield from domain.enter("frames_ns")
            yield from self.drain(per_frame, evtchn.ack_cost)
            if self.unmask_ns:
                yield env.timeout(self.unmask_ns)
            domain.leave()
            if evtchn.unmask() or self.budget and len(self.queue):
                self.wake()

    def send(self, frame: bytes, dev_num: int):
        yield from self.sender.enter("frames_ns")
        yield from super().send(frame, dev_num)
        self.sender.leave()

    def back_off(self):
        """The sender sleeps without its vCPU, as the reference driver's msleep does."""
        self.sender.leave()
        yield from super().back_off()
        yield from self.sender.enter("frames_ns")


def evtchn_cost(kind) -> EvtchnCost:
    return EvtchnCost(kind.kind, kind.ring, kind.latency, kind.ack)
