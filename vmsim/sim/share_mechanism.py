"""How a bus makes driver memory reachable by its devices: the sharing mechanism a bus plug-in chooses.

Two callers use it. The virtqueues run the request-buffer hooks around every request when the mechanism
sets `buffer_hooks` (Xen grants, FF-A memory shares): `share_buffer` / `release_buffer` on the driver side,
`map_buffer` / `unmap_buffer` on the device side. Memory shared under a policy (`vmsim.sim.sharing`) runs
its region lifecycle over the rest: the driver side asks `new_share_id`, then `prepare_share` (make the
region reachable at a bus address), sends `share_frame` / `unshare_frame` and ends with `reclaim_region`;
the device side's `attach_region` / `detach_region` return the time they take (None: not now, the region
is still mapped). The bus hands the mechanism the bus messages it `answers` and the bus events it knows.

`ShareMechanism` shares nothing (request buffers sit at a fixed bus address, nothing is mapped);
`VmsimShare` speaks vmsim-share (SHM_SHARE, SHM_UNSHARE, SHM_RELEASE) over an AMP carve-out, where sharing
is bookkeeping; Xen grants (`vmsim.buses.xen.grants`) and FF-A memory (`vmsim.buses.ffa.memory`) are the
others.
"""

from __future__ import annotations

from vmsim.wire.share import Op

PAYLOAD_BASE = 0x8000_0000  # bus address of request buffers when the bus does not map them (not simulated bytes)
CARVE_OUT = 0xA000_0000_0000  # bus addresses of shared regions on a bus with no mapping of its own: + dev_num << 32


class ShareMechanism:
    """No mechanism: request buffers need no hooks and no region can be shared under a policy."""

    buffer_hooks = False
    """Whether the virtqueues run the request-buffer hooks; without them they skip the calls entirely (no cost
    on the hot path)."""

    answers: frozenset[str] = frozenset()
    """The bus messages the device side of this mechanism answers (`answer`)."""

    busy_retries, busy_backoff, busy_backoff_max = 20, 20_000_000, 100_000_000
    """An unshare answered BUSY is asked again, the wait doubling up to the maximum (L-26 common.c)."""

    def __init__(self, bus):
        self.bus = bus

    # --- request buffers --------------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        """Driver side, before publishing: make the buffer reachable; returns its bus address."""
        return PAYLOAD_BASE
        yield  # a generator: a mechanism's version may take time

    def release_buffer(self, dev_num: int, vq: int, request):
        """Driver side, after the used buffer came back and before the request completes."""
        return
        yield

    def map_buffer(self, device, vq: int, chain):
        """Device side, before touching the payload of `chain` ((addr, len, flags, next) tuples)."""
        return
        yield

    def unmap_buffer(self, device, vq: int, chain):
        """Device side, after serving and before returning the buffer on the used ring."""
        return
        yield

    # --- bus messages ------------------------------------------------------------------------------

    def answer(self, frame) -> bytes | None:
        """The device side's response to a bus message named in `answers`, or None (none leaves)."""
        raise NotImplementedError

    def bus_event(self, frame) -> bool:
        """A bus event for the driver (a region given back); False when it is not this mechanism's."""
        return False

    # --- memory shared under a policy --------------------------------------------------------------

    def new_share_id(self, region, before_wait):
        """Driver side: the region's id (it may wait for one; then it runs `before_wait` first, a generator
        function that kicks what was published, so that what it waits for can come back)."""
        raise NotImplementedError(f"{self.bus.name}: this bus shares no memory under a policy")

    def prepare_share(self, region):
        """Driver side, before the share message: make the region reachable; its bus address."""
        raise NotImplementedError

    def share_frame(self, region) -> bytes:
        raise NotImplementedError

    def unshare_frame(self, region) -> bytes:
        raise NotImplementedError

    def release_frame(self, region) -> bytes:
        raise NotImplementedError

    def reclaim_region(self, region):
        """Driver side, after the device's acknowledgement: take the pages back."""
        return
        yield

    def attach_region(self, region) -> int:
        """Device side: take the region in; the time it takes."""
        return 0

    def detach_region(self, region) -> int | None:
        """Device side: give the region up; the time it takes, or None while it cannot (still mapped)."""
        return 0


class VmsimShare(ShareMechanism):
    """vmsim-share messages over an AMP carve-out both sides reach: a share is bookkeeping, a region's bus
    address is its place in the device's window of the carve-out. A mechanism that speaks the same messages
    over memory of its own (Xen grants) changes how a region is made reachable and taken in."""

    answers = frozenset(("SHM_SHARE", "SHM_UNSHARE"))

    def __init__(self, bus):
        super().__init__(bus)
        self._share_ids = 0

    def answer(self, frame) -> bytes | None:
        """SHM_SHARE / SHM_UNSHARE at the device side: its answer, or None when the acknowledgement is lost
        (a fault the scenario asked for) or no device on the bus shares memory."""
        bus = self.bus
        if bus.shares is None:
            bus.counts["discarded"] += 1
            return None
        share_id = frame.fields["share_id"]
        share = frame.name == "SHM_SHARE"
        result = (bus.shares.share if share else bus.shares.unshare)(share_id)
        if result is None:
            return None
        return bus.encode(frame.name, "response", {"share_id": share_id, "result": result,
                                                   "op": Op.SHARE_ACK if share else Op.UNSHARE_ACK},
                          dev_num=frame.dev_num, token=frame.token)

    def bus_event(self, frame) -> bool:
        """SHM_RELEASE: the device gave a region back itself."""
        region = self.bus.regions.get(frame["share_id"]) if frame.name == "SHM_RELEASE" else None
        if region is None:
            return False
        region.owner.on_release(region)
        return True

    def new_share_id(self, region, before_wait):
        self._share_ids += 1
        region.id = self._share_ids
        return
        yield

    def prepare_share(self, region):
        region.bus_address = CARVE_OUT + (region.dev_num << 32) + region.offset
        return
        yield

    def share_frame(self, region) -> bytes:
        return self.bus.encode("SHM_SHARE", "request", region.descriptor(Op.SHARE), dev_num=region.dev_num)

    def unshare_frame(self, region) -> bytes:
        return self.bus.encode("SHM_UNSHARE", "request", region.descriptor(Op.UNSHARE), dev_num=region.dev_num)

    def release_frame(self, region) -> bytes:
        return self.bus.encode("SHM_RELEASE", "event", region.descriptor(Op.UNSHARE), dev_num=region.dev_num)
