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
  map to unmap (its service included) hold one vCPU. Work waits for a free vCPU (no preemption);
  TLB-flush IPI handlers go ahead of waiting work. This is where many DomUs contend for one backend.
"""

from __future__ import annotations

from collections import deque
from typing import NamedTuple

import simpy

from vmsim.sim.channel import Channel, QueuePairBus
from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.sim.costs import MemoryCost
from vmsim.wire.memory import PAGE, PAGE_SHIFT, pages
from vmsim.wire.spsc import create_queue_pair

XEN = "xen"
"""As a bus's `frontend`: the hypervisor itself is the driver side (the vmp proxy)."""
GREF_FIRST = 8  # grant references below 8 are reserved (GNTTAB_NR_RESERVED_ENTRIES)
DIRECTORY_BASE = 1 << 44  # bus addresses in the grant directory's address space
DIRECTORY_ENTRY = 8  # bytes the backend reads per page from the mapped directory
URGENT, NORMAL = 0, 1  # vCPU request priorities: IPI handlers before waiting work
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


class _Free:
    """Stands for a platform without a `xen:` section: every hypervisor operation is free."""

    def __getattr__(self, _name: str) -> int:
        return 0


class Domain:
    """A domain's vCPUs: a pool of servers that all its bus work runs on (counters `domain.<name>`).

    A process takes a vCPU with `enter(account)` and gives it back with `leave()`, which charges the
    time held to `account`, less what `work` inside attributed to other accounts. Nested pairs in the
    same process reuse the vCPU it holds, because a handler's own work (the driver's used-buffer handler
    publishing new requests) runs in the handler's context, on its vCPU.
    """

    def __init__(self, sim: Simulation, name: str, vcpus: int | None, upcall_extra: int):
        self.env = sim.env
        self.name = name
        self.pool = simpy.PriorityResource(sim.env, capacity=vcpus or HYPERVISOR_VCPUS)
        self.upcall_extra = upcall_extra
        self.counts = sim.counter(f"domain.{name}")
        self.counts.update(vcpus=vcpus or 0, busy_ns=0, frames_ns=0, grants_ns=0, tlb_ns=0, service_ns=0)
        self._ports = 0
        self._holders: dict[object, _Hold] = {}  # process -> the vCPU it holds

    def enter(self, account: str, priority: int = NORMAL):
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
        process = self.env.active_process
        hold = self._holders[process]
        hold.depth -= 1
        if hold.depth:
            return
        del self._holders[process]
        self.pool.release(hold.vcpu)
        held = self.env.now - hold.since
        self.counts["busy_ns"] += held
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

    def port(self) -> int:
        """The next free event-channel port of this domain."""
        self._ports += 1
        return self._ports

    def running(self) -> int:
        """vCPUs busy now (the dirty mask a TLB flush must reach)."""
        return len(self.pool.users)


class _Hold:
    """One process's hold on a vCPU: since when, for what, and the part other accounts took."""

    __slots__ = ("account", "attributed", "depth", "since", "vcpu")

    def __init__(self, vcpu, since: int, account: str):
        self.vcpu = vcpu
        self.since = since
        self.account = account
        self.depth = 1
        self.attributed = 0


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


class XenBus(QueuePairBus):
    """A DomU (or Xen) driver and a backend domain's device model; see the module docstring."""

    buffer_hooks = True

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
        self.front = host.domain(spec.frontend)
        self.back = host.domain(spec.backend)
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
        self._next_gref = GREF_FIRST
        self._grants: dict[int, tuple[int, int]] = {}  # bus address -> (first grant ref or page, pages)
        self._shared: dict[object, int] = {}  # request -> bus address of its buffer
        self._pool: dict[int, list[int]] = {}  # persistent grants free for reuse, by page count
        self._mapped: set[int] = set()  # persistent grants the backend keeps mapped
        self._directory_free = deque(range(spec.directory_pages))
        self._directory_pages: dict[int, list[int]] = {}
        self._directory_waiting: list = []
        log = sim.log
        self.front_id = log.components(f"{spec.name}.frontend")
        self.back_id = log.components(f"{spec.name}.backend")
        self._events = {event: log.events(event) for event in BUS_EVENTS}
        self.counts.update(dict.fromkeys(BUS_EVENTS, 0))

    @classmethod
    def build(cls, sim: Simulation, spec, context) -> XenBus:
        costs = context.platform.xen or _Free()
        driver_memory, device_memory = context.side_memory(spec.memory)
        return cls(sim, spec, host=XenHost.of(sim, context, costs), costs=costs,
                   to_device=_evtchn(context.doorbell(spec.doorbell)),
                   to_driver=_evtchn(context.doorbell(spec.doorbell_to_driver or spec.doorbell)),
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
            yield from self._steps(back, self.back_id, [("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
            yield from self._steps(front, self.front_id, [("foreign.map", 1, costs.grant_map)])
        elif self.spec.shared_page == "grant":
            gref = self._new_grefs(1)
            yield from self._steps(front, self.front_id, [("grant.grant", gref, costs.grant_entry),
                                                          ("evtchn.bind", self.to_driver.doorbell.port, costs.hypercall)])
            yield from self._steps(back, self.back_id, [("grant.map", gref, costs.grant_map),
                                                        ("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
        else:  # a privileged device model maps the frontend's page by its guest frame number
            yield from self._steps(front, self.front_id, [("evtchn.bind", self.to_driver.doorbell.port, costs.hypercall)])
            yield from self._steps(back, self.back_id, [*([("gfn2mfn", 1, costs.gfn2mfn)] if translate else []),
                                                        ("foreign.map", 1, costs.grant_map),
                                                        ("evtchn.bind", self.to_device.doorbell.port, costs.hypercall)])
        if self.scheme == "directory":
            count = self.spec.directory_pages + 1  # the region and the directory page itself
            steps = [("gfn2mfn", count, costs.gfn2mfn * count)] if translate else []
            yield from self._steps(back, self.back_id, [*steps, ("grant.map", count, costs.grant_map * count)])
        self.ready.succeed()

    # --- transport --------------------------------------------------------------------------------

    # --- request buffers --------------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        """Frontend: grant the buffer (or copy it into a persistent grant, or place it in the directory)."""
        count = pages(request.size)
        costs = self.costs
        if self.scheme == "directory":
            address = yield from self._directory_alloc(count)
        elif self.scheme == "persistent":
            steps = [(None, 0, self._memcpy(request.size))]
            free = self._pool.get(count)
            if free:
                address = free.pop()
            else:
                gref = self._new_grefs(count)
                address = gref << PAGE_SHIFT
                self._grants[address] = (gref, count)
                steps.insert(0, ("grant.grant", gref, costs.grant_entry * count))
            yield from self._steps(self.front, self.front_id, steps, dev_num)
        else:
            gref = self._new_grefs(count)
            address = gref << PAGE_SHIFT
            self._grants[address] = (gref, count)
            yield from self._steps(self.front, self.front_id, [("grant.grant", gref, costs.grant_entry * count)],
                                   dev_num)
        self._shared[request] = address
        return address

    def release_buffer(self, dev_num: int, vq: int, request):
        """Frontend, once the used buffer is back: end foreign access, or return the buffer for reuse."""
        address = self._shared.pop(request)
        if self.scheme == "persistent":
            self._pool.setdefault(self._grants[address][1], []).append(address)
        elif self.scheme == "directory":
            self._directory_free.extend(self._directory_pages.pop(address))
            del self._grants[address]
            waiting, self._directory_waiting = self._directory_waiting, []
            for event in waiting:
                event.succeed()
        else:
            gref, count = self._grants.pop(address)
            yield from self._steps(self.front, self.front_id,
                                   [("grant.end_access", gref, self.costs.grant_entry * count)], dev_num)

    def map_buffer(self, device, vq: int, chain):
        """Backend: take a vCPU for the whole request (given back in `unmap_buffer`) and reach the data."""
        yield from self.back.enter("service_ns")
        for address, length, *_ in chain:
            yield from self._held_steps(self._access(address, length), device.dev_num)

    def unmap_buffer(self, device, vq: int, chain):
        """Backend: unmap per-request grants and flush the other running vCPUs' TLBs; free the vCPU."""
        back = self.back
        if self.scheme == "map-unmap":
            costs = self.costs
            for address, *_ in chain:
                if address not in self._grants:
                    continue  # in a region shared under a policy: mapped for as long as it is shared
                gref, count = self._grants[address]
                others = back.running() - 1
                yield from self._held_steps([
                    ("grant.unmap", gref, costs.grant_unmap * count),
                    ("tlb.shootdown", others, costs.tlb_shootdown + costs.tlb_ipi * others)], device.dev_num)
                for _ in range(others):
                    self.env.process(back.run(costs.tlb_flush, "tlb_ns", URGENT))
        back.leave()

    def _access(self, address: int, length: int) -> list[tuple]:
        """The backend's steps to reach one buffer under the bus's scheme (none in a region shared under a
        policy, which the backend mapped when it was shared)."""
        if address not in self._grants:
            return []
        costs = self.costs
        first, count = self._grants[address]
        translate = [("gfn2mfn", count, costs.gfn2mfn * count)] if self.spec.gfn2mfn else []
        if self.scheme == "map-unmap":
            return [*translate, ("grant.map", first, costs.grant_map * count)]
        if self.scheme == "copy":
            return [*translate, ("grant.copy", length, costs.grant_copy + self._memcpy(length))]
        if self.scheme == "persistent":
            if address in self._mapped:
                return []
            self._mapped.add(address)
            return [*translate, ("grant.map", first, costs.grant_map * count)]
        return [(None, 0, self.device_memory.read(DIRECTORY_ENTRY * count))]

    # --- helpers ----------------------------------------------------------------------------------

    def _new_grefs(self, count: int) -> int:
        first = self._next_gref
        self._next_gref += count
        return first

    def _memcpy(self, nbytes: int) -> int:
        return -(-nbytes * self.costs.memcpy_per_kib // 1024)

    def _directory_alloc(self, count: int):
        if count > self.spec.directory_pages:
            raise SimulationError(f"{self.name}: a {count}-page buffer does not fit the grant directory's "
                                  f"{self.spec.directory_pages} pages")
        while len(self._directory_free) < count:
            waiting = self.env.event()
            self._directory_waiting.append(waiting)
            yield waiting
        slots = [self._directory_free.popleft() for _ in range(count)]
        address = DIRECTORY_BASE + (slots[0] << PAGE_SHIFT)
        self._grants[address] = (slots[0], count)
        self._directory_pages[address] = slots
        return address

    # --- memory shared under a policy: grants mapped per region -------------------------------------

    def prepare_share(self, region):
        """Frontend: grant the region's pages; the backend addresses it by its first grant reference."""
        region.handle = gref = self._new_grefs(region.pages)
        region.bus_address = gref << PAGE_SHIFT
        yield from self._steps(self.front, self.front_id,
                               [("grant.grant", gref, self.costs.grant_entry * region.pages)], region.dev_num)

    def attach_region(self, region) -> int:
        """Backend, answering SHM_SHARE: map the region's grants (translated first with gfn2mfn)."""
        costs, count = self.costs, region.pages
        steps = [("gfn2mfn", count, costs.gfn2mfn * count)] if self.spec.gfn2mfn else []
        steps.append(("grant.map", region.handle, costs.grant_map * count))
        return self._logged(steps, region.dev_num)

    def detach_region(self, region) -> int:
        """Backend, giving the region up: unmap it and flush the TLBs of its other running vCPUs."""
        costs, back = self.costs, self.back
        others = max(0, back.running() - 1)  # the vCPUs running something else (this one may hold none)
        for _ in range(others):
            self.env.process(back.run(costs.tlb_flush, "tlb_ns", URGENT))
        return self._logged([("grant.unmap", region.handle, costs.grant_unmap * region.pages),
                             ("tlb.shootdown", others, costs.tlb_shootdown + costs.tlb_ipi * others)],
                            region.dev_num)

    def reclaim_region(self, region):
        """Frontend, after the backend's acknowledgement: end foreign access to the region's grants."""
        yield from self._steps(self.front, self.front_id,
                               [("grant.end_access", region.handle, self.costs.grant_entry * region.pages)],
                               region.dev_num)

    def device_work(self, ns: int):
        """Backend work on the vCPU its receive handler holds (or on a free one)."""
        yield from self.back.run(ns, "grants_ns")

    def _logged(self, steps: list[tuple], dev_num: int) -> int:
        """Backend steps logged now, their time returned for the caller to spend."""
        for event, value, _ns in steps:
            self._mark(self.back_id, event, value, dev_num)
        return sum(step[2] for step in steps)

    def _mark(self, component: int, event: str, value: int, dev_num: int) -> None:
        self.sim.log.mark(self.env.now, component, self._events[event], self.bus_id, dev_num, value)
        self.counts[event] += 1

    def _steps(self, domain: Domain, component: int, steps: list[tuple], dev_num: int = -1):
        """(event, value, ns) steps back to back on one vCPU of `domain`, each logged as it starts."""
        total = sum(step[2] for step in steps)
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
        domain.leave()

    def _held_steps(self, steps: list[tuple], dev_num: int):
        """Backend steps on the vCPU the request already holds."""
        for event, value, ns in steps:
            if event:
                self._mark(self.back_id, event, value, dev_num)
            if ns:
                yield from self.back.work(ns, "tlb_ns" if event == "tlb.shootdown" else "grants_ns")


def _evtchn(kind) -> EvtchnCost:
    return EvtchnCost(kind.kind, kind.ring, kind.latency, kind.ack)
