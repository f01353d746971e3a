"""The device side of memory shared under a policy (`vmsim.sim.sharing`): the regions a bus's devices hold."""

from __future__ import annotations

from vmsim.sim.core import Component, Simulation
from vmsim.sim.regions import Region
from vmsim.wire.share import Result


class DeviceShares(Component):
    """The device side of sharing on one bus: the regions it holds, found by page from any bus address.

    It takes a region in on a share request (the bus maps or retrieves it), answers again when a
    retried request finds it held, refuses to give it up while an access is under way (BUSY), and
    with `release: device` gives a region back itself once every buffer in it was consumed. A
    correct device touches only what it holds: an access to anything else is refused (counted).
    """

    def __init__(self, sim: Simulation, bus):
        super().__init__(sim, f"{bus.name}.share.device")
        self.bus = bus
        self.held: dict[int, list] = {}  # region id -> [region, accesses under way, buffers consumed]
        self.pages: dict[int, int] = {}  # bus address >> 12 -> region id
        self.counts = sim.counter(self.name)
        self.counts.update(refused=0)

    def share(self, region_id: int) -> Result | None:
        """A share request: take the region in (once: a request retried after a lost ack finds it held) and
        log share.ack; SUCCESS, ERROR for a region the driver does not know, None when the ack is lost."""
        bus = self.bus
        region = bus.regions.get(region_id)
        if region is None:
            return Result.ERROR
        if region_id not in self.held:
            bus.owe(bus.mechanism.attach_region(region))
            self.held[region_id] = [region, 0, 0]
            first = region.bus_address >> 12
            for page in range(first, first + region.pages):
                self.pages[page] = region_id
        region.owner.device_mark("share.ack", region)
        return Result.SUCCESS if self._ack_leaves(region) else None

    def unshare(self, region_id: int) -> Result | None:
        """An unshare request: SUCCESS once the region is given up (or was already, or is gone), BUSY while it
        is in use; None when the ack is lost."""
        bus = self.bus
        entry = self.held.get(region_id)
        if entry is None:
            return Result.SUCCESS
        region = entry[0]
        if entry[1] or (spent := bus.mechanism.detach_region(region)) is None:
            result = Result.BUSY
        else:
            bus.owe(spent)
            self._drop(region)
            result = Result.SUCCESS
        return result if self._ack_leaves(region) else None

    def _ack_leaves(self, region: Region) -> bool:
        lost, late = region.owner.ack_fault()
        self.bus.delay_answer(late)
        return not lost

    def _drop(self, region: Region) -> None:
        del self.held[region.id]
        first = region.bus_address >> 12
        for page in range(first, first + region.pages):
            del self.pages[page]
        region.owner.device_mark("release.ack", region)

    def access(self, device, chain) -> None:
        """The device is about to touch the buffers of `chain`: each must lie in a region it holds."""
        for descriptor in chain:
            region_id = self.pages.get(descriptor[0] >> 12)
            if region_id is None:
                self.counts["refused"] += 1
                continue
            entry = self.held[region_id]
            entry[1] += 1
            entry[0].owner.device_mark("share.access", entry[0])

    def done(self, device, chain):
        """The device is done with `chain`; with `release: device` a region it consumed whole goes back."""
        for descriptor in chain:
            entry = self.held.get(self.pages.get(descriptor[0] >> 12, -1))
            if entry is None:
                continue
            entry[1] -= 1
            entry[2] += 1
            region = entry[0]
            if region.owner.release == "device" and entry[2] >= region.count and not entry[1]:
                yield from self._release(region)

    def _release(self, region: Region):
        """The device gives `region` back on its own: give it up, then tell the driver (SHM_RELEASE or
        AREA_RELEASE)."""
        bus = self.bus
        region.owner.device_mark("release.request", region)
        spent = bus.mechanism.detach_region(region)
        if spent:
            yield from bus.device_work(spent)
        self._drop(region)
        yield from bus.event_to_driver(region.dev_num, bus.mechanism.release_frame(region))
