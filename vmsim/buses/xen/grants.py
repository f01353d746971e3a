"""The Xen bus's sharing mechanism: request buffers granted, mapped, copied or listed in a grant directory
(`grants`), and regions shared under a policy granted by the frontend and mapped by the backend."""


from __future__ import annotations

from collections import deque

from vmsim.buses.xen.host import DIRECTORY_BASE, DIRECTORY_ENTRY, GREF_FIRST
from vmsim.sim.core import SimulationError
from vmsim.sim.share_mechanism import VmsimShare
from vmsim.sim.vcpus import URGENT
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

    def share_buffer(self, dev_num: int, vq: int, request):
        """Frontend: grant the buffer (or copy it into a persistent grant, or place it in the directory)."""
        count = pages(request.size)
        costs = self.bus.costs
        if self.bus.scheme == "directory":
            address = yield from self._directory_alloc(count)
        elif self.bus.scheme == "persistent":
            steps = [(None, 0, self._memcpy(request.size))]
            free = self._pool.get(count)
            if free:
                address = free.pop()
            else:
                gref = self.new_grefs(count)
                address = gref << PAGE_SHIFT
                self._grants[address] = (gref, count)
                steps.insert(0, ("grant.grant", gref, costs.grant_entry * count))
            yield from self.bus.steps(self.bus.front, self.bus.front_id, steps, dev_num)
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
        yield from self.bus.back.enter("service_ns")
        for address, length, *_ in chain:
            yield from self.bus.held_steps(self._access(address, length), device.dev_num)

    def unmap_buffer(self, device, vq: int, chain):
        """Backend: unmap per-request grants and flush the other running vCPUs' TLBs; free the vCPU."""
        back = self.bus.back
        if self.bus.scheme == "map-unmap":
            costs = self.bus.costs
            for address, *_ in chain:
                if address not in self._grants:
                    continue  # in a region shared under a policy: mapped for as long as it is shared
                gref, count = self._grants[address]
                others = back.running() - 1
                yield from self.bus.held_steps([
                    ("grant.unmap", gref, costs.grant_unmap * count),
                    ("tlb.shootdown", others, costs.tlb_shootdown + costs.tlb_ipi * others)], device.dev_num)
                for _ in range(others):
                    self.bus.env.process(back.run(costs.tlb_flush, "tlb_ns", URGENT))
        back.leave()

    def _access(self, address: int, length: int) -> list[tuple]:
        """The backend's steps to reach one buffer under the bus's scheme (none in a region shared under a
        policy, which the backend mapped when it was shared)."""
        if address not in self._grants:
            return []
        costs = self.bus.costs
        first, count = self._grants[address]
        translate = [("gfn2mfn", count, costs.gfn2mfn * count)] if self.bus.spec.gfn2mfn else []
        if self.bus.scheme == "map-unmap":
            return [*translate, ("grant.map", first, costs.grant_map * count)]
        if self.bus.scheme == "copy":
            return [*translate, ("grant.copy", length, costs.grant_copy + self._memcpy(length))]
        if self.bus.scheme == "persistent":
            if address in self._mapped:
                return []
            self._mapped.add(address)
            return [*translate, ("grant.map", first, costs.grant_map * count)]
        return [(None, 0, self.bus.device_memory.read(DIRECTORY_ENTRY * count))]

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
        """Backend, giving the region up: unmap it and flush the TLBs of its other running vCPUs."""
        costs, back = self.bus.costs, self.bus.back
        others = max(0, back.running() - 1)  # the vCPUs running something else (this one may hold none)
        for _ in range(others):
            self.bus.env.process(back.run(costs.tlb_flush, "tlb_ns", URGENT))
        return self.bus.logged([("grant.unmap", region.handle, costs.grant_unmap * region.pages),
                             ("tlb.shootdown", others, costs.tlb_shootdown + costs.tlb_ipi * others)],
                            region.dev_num)

    def reclaim_region(self, region):
        """Frontend, after the backend's acknowledgement: end foreign access to the region's grants."""
        yield from self.bus.steps(self.bus.front, self.bus.front_id,
                               [("grant.end_access", region.handle, self.bus.costs.grant_entry * region.pages)],
                               region.dev_num)
