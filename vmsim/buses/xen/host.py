"""The Xen host a Xen bus runs on: domains as vCPU pools shared by every bus they are on, and the channels
over the shared page whose interdomain event-channel ports (doorbells with a port: send hypercall, upcall,
mask and unmask) notify them."""


from __future__ import annotations

from types import MappingProxyType
from typing import NamedTuple

import simpy

from vmsim.buses.xen.spec import XEN
from vmsim.sim.channel import Channel
from vmsim.sim.core import Simulation
from vmsim.sim.doorbell import Doorbell
from vmsim.sim.processor import Processor
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


ACCOUNTS = ("frames_ns", "grants_ns", "lock_ns", "tlb_ns", "copy_ns", "service_ns", "queue_ns")
"""What a domain's vCPU time is spent on: frame handling, grant operations, spinning on the grant-table or
flush lock, TLB flushes (its own and the IPIs it takes), copies, holding a request while it is served, and
its virtqueue work (ring accesses, payload copies, endpoint software: the bus side's processor protocol)."""


class Domain(VcpuPool):
    """A domain's vCPUs (`VcpuPool`, counters `domain.<name>`) that all its bus work runs on, its grant-table
    lock and its event-channel ports."""

    ACTIVITY_OF_ACCOUNT = MappingProxyType({"frames_ns": "frames", "grants_ns": "grants", "lock_ns": "locks",
                                            "tlb_ns": "tlb", "copy_ns": "copies", "service_ns": "service"})
    """`queue_ns` is not here: the virtqueue work it counts is reported by the activities its callers name."""

    def __init__(self, sim: Simulation, name: str, vcpus: int | None, upcall_extra: int):
        counts = sim.counter(f"domain.{name}")
        counts.update(vcpus=vcpus or 0, busy_ns=0, **dict.fromkeys(ACCOUNTS, 0))
        super().__init__(sim.env, vcpus or HYPERVISOR_VCPUS, counts)
        self.name = name
        self.upcall_extra = upcall_extra
        self.grant_lock = simpy.Resource(sim.env, capacity=1)  # the lock its map and unmap ops take
        self._ports = 0

    def port(self) -> int:
        """The next free event-channel port of this domain."""
        self._ports += 1
        return self._ports


class XenHost:
    """The domains of one model, shared by all its Xen buses (one backend serving many DomUs), the
    hypervisor's global TLB-flush lock and the host memory copies share."""

    def __init__(self, sim: Simulation, domains, costs):
        self.sim = sim
        self.flush_lock = simpy.Resource(sim.env, capacity=1)
        self.copies = Processor(sim, "xen.copies", cores=costs.copy_streams) if costs.copy_streams else None
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
            for name, domain in host.domains.items():
                context.adopt_processor(f"domain.{name}", domain)
        return host


class XenChannel(Channel):
    """One direction over the shared page: the sender sends on a vCPU of its domain (given up while it
    backs off from a full queue), the receive handler runs on a vCPU of the receiving domain and keeps
    its event-channel port masked while it drains."""

    def __init__(self, sim: Simulation, name: str, *, sender: Domain, domain: Domain, cost: EvtchnCost, port: int,
                 maskable: bool, unmask_ns: int, **options):
        self.sender = sender
        self.domain = domain
        self.unmask_ns = unmask_ns if maskable else 0
        evtchn = Doorbell(sim, f"{name}.doorbell", cost, options["bus_id"], self.wake, port=port,
                          extra_ns=domain.upcall_extra, maskable=maskable)
        super().__init__(sim, name, doorbell_kind=None, doorbell=evtchn, **options)

    def enter(self):
        """The upcall handler masks its port and takes a vCPU of its domain."""
        self.doorbell.mask()
        yield from self.domain.enter("frames_ns")

    def leave(self):
        """Unmask (EVTCHNOP_unmask) and give the vCPU back; run again if a send came while masked."""
        if self.unmask_ns:
            yield self.env.timeout(self.unmask_ns)
        yield from self.domain.settle()
        self.domain.leave()
        return self.doorbell.unmask() or bool(self.budget and len(self.queue))

    def send(self, frame: bytes, dev_num: int):
        yield from self.sender.enter("frames_ns")
        yield from super().send(frame, dev_num)
        yield from self.sender.settle()
        self.sender.leave()

    def back_off(self):
        """The sender sleeps without its vCPU, as the reference driver's msleep does."""
        yield from self.sender.settle()
        self.sender.leave()
        yield from super().back_off()
        yield from self.sender.enter("frames_ns")


def evtchn_cost(kind) -> EvtchnCost:
    return EvtchnCost(kind.kind, kind.ring, kind.latency, kind.ack)
