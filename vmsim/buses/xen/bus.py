"""The Xen bus plug-in: virtio-msg between domains over one shared page, an event channel and grants.

A DomU runs the driver and a device model in Dom0 or a driver domain (DomD) runs the devices; or Xen
itself is the driver side (`frontend: xen`, the non-blocking virtio-mmio proxy of X-xen). The shapes
follow QEMU's `virtio-msg-bus-xen` and Xen's `vmp` (virtio-msg-protocol.md section 6):

- **Shared page**: one 4 KiB page, granted by the frontend and mapped by grant reference, or
  foreign-mapped by a privileged device model; it holds two spsc queues (driver -> device at 0,
  device -> driver at `queue_bytes`; 1 KiB = 14 slots of 64 bytes). Set-up (grant, map, event-channel
  bind) runs in simulated time before the first frame, as the AMP handshake does.
- **Event channel**: one interdomain channel, a port at each end. A send is the EVTCHNOP_send
  hypercall (the doorbell's `ring`); the upcall reaches the other end `latency` later, plus a VM switch
  and a scheduler wake-up when that domain's vCPUs share pCPUs. The handler masks its port, drains up
  to `rx_budget` frames, unmasks (EVTCHNOP_unmask) and runs again at once if a send came meanwhile.
  With Xen as the frontend there is no hypercall toward the backend (Xen raises the event itself) and
  no upcall back (Xen handles the backend's send inside the hypercall).
- **Data buffers** (`grants`), through the bus's request-buffer hooks:
  `map-unmap`: the frontend grants each buffer, the backend maps it, unmaps it after service and
  flushes the TLBs of its other running vCPUs (grant-ref-as-address, latency-anchors row 32);
  `persistent`: buffers are copied into a pool of pages granted and mapped once (blkif persistent
  grants); `copy`: the backend has Xen copy the data (GNTTABOP_copy), nothing is mapped;
  `directory`: buffers live in a region whose grant references a directory page lists, mapped once at
  connect time, so a request costs only the directory-entry reads. `gfn2mfn` adds an XENMEM_gfn2mfn
  translation before every map or copy.
  A device with `sharing:` has its regions granted by the frontend and mapped by the backend when
  they are shared (SHM_SHARE), unmapped with a TLB shootdown when given back (SHM_UNSHARE) and
  their grants ended at reclaim: per region, not per request (`vmsim.sim.sharing`).
- **Domains** are vCPU pools (a SimPy PriorityResource per domain, shared by every bus the domain is
  on): frame handling in both directions, grant operations and, on the backend, each request from
  map to unmap (its service included) hold one vCPU. Work waits for a free vCPU (no preemption).
  This is where many DomUs contend for one backend.
- **Backend contention**: each ring's device worker is one serial thread (blkback's kthread per ring).
  Every map and unmap op spends `grant_lock` under the backend domain's grant-table lock, which all its
  buses share; each unmap flushes the unmapping vCPU's TLB and, when other backend vCPUs run something,
  interrupts each of them (each loses `tlb_flush`, its work ending that much later) and waits
  `tlb_ack + tlb_ipi` per target for the acknowledgements, on x86 (`tlb_ipis`) under the hypervisor's
  one global flush lock. Waiting for either lock spins on the vCPU. So map/unmap throughput peaks and
  then falls as guests are added: the flush lock's hold grows with the vCPUs it must reach.
- **Batching**: the worker takes every request the ring holds per wake-up; with `grant_batch` > 1 the
  maps or grant copies of up to that many requests already available go in one hypercall (its entry
  paid once); responses notify the frontend only when the ring asks (event index), once per batch.
  Copies (grant copy, copies into persistent grants) share the host's memory: `copy_streams` at once.
"""


from __future__ import annotations

from vmsim.buses.xen.grants import XenGrants
from vmsim.buses.xen.host import (
    BUS_EVENTS,
    Domain,
    EvtchnCost,
    NoCosts,
    XenChannel,
    XenHost,
    evtchn_cost,
)
from vmsim.buses.xen.spec import XEN
from vmsim.sim.channel import QueuePairBus
from vmsim.sim.core import Simulation
from vmsim.sim.costs import MemoryCost
from vmsim.wire.memory import PAGE
from vmsim.wire.spsc import create_queue_pair


class XenBus(QueuePairBus):
    """A DomU (or Xen) driver and a backend domain's device model; see the module docstring."""

    def __init__(self, sim: Simulation, spec, *, host: XenHost, costs, to_device: EvtchnCost,
                 to_driver: EvtchnCost, driver_memory: MemoryCost, device_memory: MemoryCost,
                 driver_cpu_ns: int, device_cpu_ns: int):
        super().__init__(sim, spec.name, layout=spec.layout, max_msg_size=spec.max_msg_size or spec.element_size,
                         in_band=True)
        self.spec = spec
        self.costs = costs
        self.scheme = spec.grants
        self.driver_memory = driver_memory
        self.device_memory = device_memory
        self.host = host
        self.front = host.domain(spec.frontend)
        self.back = host.domain(spec.backend)
        self.driver_cpu, self.device_cpu = self.front, self.back  # virtqueue work holds the domains' vCPUs
        self.proxy = spec.frontend == XEN
        if self.proxy:
            to_device = to_device._replace(ring=0)
            to_driver = to_driver._replace(latency=0, ack=0)
        self.page = bytearray(PAGE)
        down, up = create_queue_pair(spec.queue_format, self.page, 0, 2 * spec.queue_bytes)
        common = {"bus_id": self.bus_id, "frame_in": self.frame_in, "budget": spec.rx_budget,
                  "retry_ns": spec.tx_retry, "retries": spec.tx_retries, "unmask_ns": costs.evtchn_unmask}
        self.to_device = XenChannel(sim, f"{spec.name}.to_device", queue=down, sender=self.front, domain=self.back,
                                    cost=to_device,
                                    port=self.back.port(), maskable=True, sender_memory=driver_memory,
                                    receiver_memory=device_memory, sender_cpu_ns=driver_cpu_ns,
                                    receiver_cpu_ns=device_cpu_ns, deliver=self.deliver_to_device, **common)
        self.to_driver = XenChannel(sim, f"{spec.name}.to_driver", queue=up, sender=self.back, domain=self.front,
                                    cost=to_driver,
                                    port=self.front.port(), maskable=not self.proxy, sender_memory=device_memory,
                                    receiver_memory=driver_memory, sender_cpu_ns=device_cpu_ns,
                                    receiver_cpu_ns=driver_cpu_ns, deliver=self.deliver_to_driver, **common)
        self.ready = sim.env.event()
        log = sim.log
        self.front_id = log.components(f"{spec.name}.frontend")
        self.back_id = log.components(f"{spec.name}.backend")
        self._events = {event: log.events(event) for event in BUS_EVENTS}
        self.counts.update(dict.fromkeys(BUS_EVENTS, 0))
        self.mechanism = XenGrants(self)

    @classmethod
    def build(cls, sim: Simulation, spec, context) -> XenBus:
        costs = context.platform.xen or NoCosts()
        driver_memory, device_memory = context.side_memory(spec.memory)
        return cls(sim, spec, host=XenHost.of(sim, context, costs), costs=costs,
                   to_device=evtchn_cost(context.doorbell(spec.doorbell)),
                   to_driver=evtchn_cost(context.doorbell(spec.doorbell_to_driver or spec.doorbell)),
                   driver_memory=driver_memory, device_memory=device_memory,
                   driver_cpu_ns=context.cpu_ns(context.driver.cpu), device_cpu_ns=context.device_cpu_ns)

    # --- set-up -----------------------------------------------------------------------------------

    def start(self) -> None:
        super().start()
        self.env.process(self._connect())

    def _connect(self):
        """Share the page and bind the event channel (frontend first, as QEMU expects), map the directory."""
        costs = self.costs
        front, back = self.front, self.back
        translate = self.spec.gfn2mfn
        if self.proxy:  # the DM connects by DM-op; Xen maps its page (prepare_ring_for_helper) and binds
            yield from self.steps(back, self.back_id, [("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
            yield from self.steps(front, self.front_id, [("foreign.map", 1, costs.grant_map)])
        elif self.spec.shared_page == "grant":
            gref = self.mechanism.new_grefs(1)
            yield from self.steps(front, self.front_id, [("grant.grant", gref, costs.grant_entry),
                                                          ("evtchn.bind", self.to_driver.doorbell.port, costs.hypercall)])
            yield from self.steps(back, self.back_id, [("grant.map", gref, costs.grant_map),
                                                        ("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
        else:  # a privileged device model maps the frontend's page by its guest frame number
            yield from self.steps(front, self.front_id, [("evtchn.bind", self.to_driver.doorbell.port, costs.hypercall)])
            yield from self.steps(back, self.back_id, [*([("gfn2mfn", 1, costs.gfn2mfn)] if translate else []),
                                                        ("foreign.map", 1, costs.grant_map),
                                                        ("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
        if self.scheme == "directory":
            count = self.spec.directory_pages + 1  # the region and the directory page itself
            steps = [("gfn2mfn", count, costs.gfn2mfn * count)] if translate else []
            yield from self.steps(back, self.back_id, [*steps, ("grant.map", count, costs.grant_map * count)])
        self.ready.succeed()

    # --- backend work and grant steps (the sharing mechanism's too) ---------------------------------

    def device_work(self, ns: int):
        """Backend work on the vCPU its receive handler holds (or on a free one)."""
        yield from self.back.run(ns, "grants_ns")

    def logged(self, steps: list[tuple], dev_num: int) -> int:
        """Backend steps logged now, their time returned for the caller to spend."""
        for event, value, _ns in steps:
            self._mark(self.back_id, event, value, dev_num)
        return sum(step[2] for step in steps)

    def _mark(self, component: int, event: str, value: int, dev_num: int) -> None:
        self.sim.log.mark(self.env.now, component, self._events[event], self.bus_id, dev_num, value)
        self.counts[event] += 1

    def steps(self, domain: Domain, component: int, steps: list[tuple], dev_num: int = -1, copy_ns: int = 0):
        """(event, value, ns) steps back to back on one vCPU of `domain`, each logged as it starts, then a
        copy of `copy_ns` at full speed on the host's memory."""
        total = sum(step[2] for step in steps) + copy_ns
        if not total:
            for event, value, _ns in steps:
                if event:
                    self._mark(component, event, value, dev_num)
            return
        yield from domain.enter("grants_ns")
        for event, value, ns in steps:
            if event:
                self._mark(component, event, value, dev_num)
            if ns:
                yield from domain.work(ns, "grants_ns")
        yield from self.copy(domain, copy_ns)
        yield from domain.settle()
        domain.leave()

    def held_steps(self, steps: list[tuple], dev_num: int):
        """Backend steps on the vCPU the request already holds."""
        for event, value, ns in steps:
            if event:
                self._mark(self.back_id, event, value, dev_num)
            if ns:
                yield from self.back.work(ns, "grants_ns")

    # --- contended steps: the grant-table lock, the TLB flush, the host's memory ---------------------

    def grant_op(self, event: str, value: int, ns: int, ops: int, dev_num: int):
        """A backend map or unmap hypercall of `ops` grant ops, `ns` in all, on the vCPU the request holds;
        `grant_lock` per op of it under the backend domain's grant-table lock."""
        back = self.back
        self._mark(self.back_id, event, value, dev_num)
        locked = min(ns, self.costs.grant_lock * ops)
        if locked:
            lock = back.grant_lock.request()
            yield from back.busy_wait(_granted(lock), "lock_ns")
            yield from back.work(locked, "grants_ns")
            back.grant_lock.release(lock)
        if ns > locked:
            yield from back.work(ns - locked, "grants_ns")

    def flush_tlbs(self, dev_num: int):
        """After an unmap, on the vCPU the request holds: flush its own TLB, then every other running backend
        vCPU's: an IPI each (under the hypervisor's global flush lock when flushes are IPIs), each losing
        `tlb_flush`, and wait for their acknowledgements."""
        costs, back = self.costs, self.back
        if costs.tlb_shootdown:
            yield from back.work(costs.tlb_shootdown, "tlb_ns")
        if back.running() <= 1:
            self._mark(self.back_id, "tlb.shootdown", 0, dev_num)
            return
        lock = self.host.flush_lock.request() if costs.tlb_ipis else None
        if lock is not None:
            yield from back.busy_wait(_granted(lock), "lock_ns")
        targets = back.interrupt(costs.tlb_flush, "tlb_ns")
        self._mark(self.back_id, "tlb.shootdown", targets, dev_num)
        if targets:
            yield from back.work(costs.tlb_ack + costs.tlb_ipi * targets, "tlb_ns")
        if lock is not None:
            self.host.flush_lock.release(lock)

    def copy(self, domain: Domain, ns: int):
        """A copy of `ns` at full speed on the vCPU `domain`'s active process holds; the host's memory takes
        `copy_streams` copies at once, so more wait for it with their vCPUs busy."""
        if not ns:
            return
        if self.host.copies is None:
            yield from domain.work(ns, "copy_ns")
        else:
            yield from domain.busy_wait(self.host.copies.hold(ns), "copy_ns")


def _granted(request):
    """Wait for a SimPy resource request (as a generator, for `busy_wait`)."""
    yield request
