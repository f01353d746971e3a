"""The Xen bus's sharing mechanism: request buffers granted, mapped, copied or listed in a grant directory
(`grants`), and regions shared under a policy granted by the frontend and mapped by the backend."""


from __future__ import annotations

from collections import deque

from vmsim.buses.xen.host import DIRECTORY_BASE, DIRECTORY_ENTRY, GREF_FIRST
from vmsim.sim.core import SimulationError
from vmsim.sim.share_mechanism import VmsimShare
from vmsim.wire.memory import PAGE_SHIFT, pages


class XenGrants(VmsimShare):
    """The Xen bus's sharing mechanism: grant references, the persistent-grant pool and the grant directory;
    regions shared under a policy speak vmsim-share, granted and mapped per region."""

    buffer_hooks = True

    def __init__(self, bus):
        super().__init__(bus)
        self._next_gref = GREF_FIRST
        self._grants: dict[int, tuple[int, int]] = {}  # bus address -> (first grant ref or page, pages)
        self._shared: dict[object, int] = {}  # request -> bus address of its buffer
        self._pool: dict[int, list[int]] = {}  # persistent grants free for reuse, by page count
        self._mapped: set[int] = set()  # persistent grants the backend keeps mapped
        self._directory_free = deque(range(bus.spec.directory_pages))
        self._directory_pages: dict[int, list[int]] = {}
        self._directory_waiting: list = []
        self._batched: dict[tuple[int, int], int] = {}  # (dev_num, vq) -> requests left in the current batch

    def share_buffer(self, dev_num: int, vq: int, request):
        """Frontend: grant the buffer (or copy it into a persistent grant, or place it in the directory)."""
        count = pages(request.size)
        costs = self.bus.costs
        if self.bus.scheme == "directory":
            address = yield from self._directory_alloc(count)
        elif self.bus.scheme == "persistent":
            steps = []
            free = self._pool.get(count)
            if free:
                address = free.pop()
            else:
                gref = self.new_grefs(count)
                address = gref << PAGE_SHIFT
                self._grants[address] = (gref, count)
                steps.append(("grant.grant", gref, costs.grant_entry * count))
            yield from self.bus.steps(self.bus.front, self.bus.front_id, steps, dev_num,
                                      copy_ns=self._memcpy(request.size))
        else:
            gref = self.new_grefs(count)
            address = gref << PAGE_SHIFT
            self._grants[address] = (gref, count)
            yield from self.bus.steps(self.bus.front, self.bus.front_id, [("grant.grant", gref, costs.grant_entry * count)],
                                   dev_num)
        self._shared[request] = address
        return address

    def release_buffer(self, dev_num: int, vq: int, request):
        """Frontend, once the used buffer is back: end foreign access, or return the buffer for reuse."""
        address = self._shared.pop(request)
        if self.bus.scheme == "persistent":
            self._pool.setdefault(self._grants[address][1], []).append(address)
        elif self.bus.scheme == "directory":
            self._directory_free.extend(self._directory_pages.pop(address))
            del self._grants[address]
            waiting, self._directory_waiting = self._directory_waiting, []
            for event in waiting:
                event.succeed()
        else:
            gref, count = self._grants.pop(address)
            yield from self.bus.steps(self.bus.front, self.bus.front_id,
                                   [("grant.end_access", gref, self.bus.costs.grant_entry * count)], dev_num)

    def map_buffer(self, device, vq: int, chain):
        """Backend: take a vCPU for the whole request (given back in `unmap_buffer`) and reach the data."""
        bus = self.bus
        costs = bus.costs
        yield from bus.back.enter("service_ns")
        batched = self._joins_batch(device, vq)
        for address, length, *_ in chain:
            if address not in self._grants:
                continue  # in a region shared under a policy: mapped when it was shared
            first, count = self._grants[address]
            saved = costs.hypercall if batched else 0  # the batch's first request paid the hypercall's entry
            mapped = bus.scheme == "persistent" and address in self._mapped
            if bus.spec.gfn2mfn and bus.scheme != "directory" and not mapped:
                yield from bus.held_steps([("gfn2mfn", count, costs.gfn2mfn * count)], device.dev_num)
            if bus.scheme == "map-unmap":
                yield from bus.grant_op("grant.map", first, max(0, costs.grant_map * count - saved), count,
                                       device.dev_num)
            elif bus.scheme == "copy":
                yield from bus.held_steps([("grant.copy", length, max(0, costs.grant_copy - saved))], device.dev_num)
                yield from bus.copy(bus.back, self._memcpy(length))
            elif bus.scheme == "persistent":
                if not mapped:
                    self._mapped.add(address)
                    yield from bus.grant_op("grant.map", first, costs.grant_map * count, count, device.dev_num)
            else:
                yield from bus.held_steps([(None, 0, bus.device_memory.read(DIRECTORY_ENTRY * count))],
                                          device.dev_num)

    def unmap_buffer(self, device, vq: int, chain):
        """Backend: unmap per-request grants and flush the TLBs (`XenBus.flush_tlbs`); free the vCPU."""
        bus = self.bus
        if bus.scheme == "map-unmap":
            for address, *_ in chain:
                if address not in self._grants:
                    continue  # in a region shared under a policy: mapped for as long as it is shared
                gref, count = self._grants[address]
                yield from bus.grant_op("grant.unmap", gref, bus.costs.grant_unmap * count, count, device.dev_num)
                yield from bus.flush_tlbs(device.dev_num)
        yield from bus.back.settle()
        bus.back.leave()

    def _joins_batch(self, device, vq: int) -> bool:
        """Whether this request's maps or copies go in the hypercall of a batch an earlier request opened; if
        not, it opens one for up to `grant_batch` requests, itself and those already available on the ring."""
        key = (device.dev_num, vq)
        left = self._batched.get(key, 0)
        if left:
            self._batched[key] = left - 1
            return True
        limit = self.bus.spec.grant_batch
        if limit > 1:
            self._batched[key] = min(limit - 1, device.queues[vq].ring.pending())
        return False

    # --- helpers ----------------------------------------------------------------------------------

    def new_grefs(self, count: int) -> int:
        """`count` grant references in a row; the first."""
        first = self._next_gref
        self._next_gref += count
        return first

    def _memcpy(self, nbytes: int) -> int:
        return -(-nbytes * self.bus.costs.memcpy_per_kib // 1024)

    def _directory_alloc(self, count: int):
        if count > self.bus.spec.directory_pages:
            raise SimulationError(f"{self.bus.name}: a {count}-page buffer does not fit the grant directory's "
                                  f"{self.bus.spec.directory_pages} pages")
        while len(self._directory_free) < count:
            waiting = self.bus.env.event()
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
        region.handle = gref = self.new_grefs(region.pages)
        region.bus_address = gref << PAGE_SHIFT
        yield from self.bus.steps(self.bus.front, self.bus.front_id,
                               [("grant.grant", gref, self.bus.costs.grant_entry * region.pages)], region.dev_num)

    def attach_region(self, region) -> int:
        """Backend, answering SHM_SHARE: map the region's grants (translated first with gfn2mfn)."""
        costs, count = self.bus.costs, region.pages
        steps = [("gfn2mfn", count, costs.gfn2mfn * count)] if self.bus.spec.gfn2mfn else []
        steps.append(("grant.map", region.handle, costs.grant_map * count))
        return self.bus.logged(steps, region.dev_num)

    def detach_region(self, region) -> int:
        """Backend, giving the region up: unmap it and flush the TLBs of its other running vCPUs (the IPIs
        land on them; the flush lock is not modelled here: a region is given up rarely)."""
        costs, back = self.bus.costs, self.bus.back
        others = back.interrupt(costs.tlb_flush, "tlb_ns")
        return self.bus.logged([("grant.unmap", region.handle, costs.grant_unmap * region.pages),
                             ("tlb.shootdown", others, costs.tlb_shootdown + costs.tlb_ipi * others)],
                            region.dev_num)

    def reclaim_region(self, region):
        """Frontend, after the backend's acknowledgement: end foreign access to the region's grants."""
        yield from self.bus.steps(self.bus.front, self.bus.front_id,
                               [("grant.end_access", region.handle, self.bus.costs.grant_entry * region.pages)],
                               region.dev_num)
