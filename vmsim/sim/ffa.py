"""The FF-A bus plug-in: virtio-msg between a driver endpoint and an Arm FF-A partition (reference §4).

A frame's path: the driver's endpoint (a kernel, or a VM behind a hypervisor: Xen's FF-A mediator,
KVM/pKVM) -> the EL3 SPMD -> the SPMC (OP-TEE at S-EL1, or Hafnium at S-EL2 with partitions as VMs) ->
the partition; or VM to VM through the hypervisor. `FfaPath` sums the platform's per-hop costs; the
partition's vCPUs are a shared resource every bus it serves queues on.

Three methods carry frames (L-26, the 2026 Linux bus): FFA_MSG_SEND_DIRECT_REQ2/RESP2 (the frame in
x4..x17, synchronous, at most 104 bytes), FFA_MSG_SEND2 through the RX/TX buffers (one message per
RX buffer until FFA_RX_RELEASE, the "RX buffer full" notification), and the 2026 FIFO rings (kicked by
FF-A notifications, notify-after-full). The bus bootstraps over direct or indirect, negotiates with
VERSION and falls back as the reference driver does. A partition cannot call the driver on a direct
bus, so device events wait in the partition until EVENT_POLL drains them (every 100 ms, or at once
when FFA_NOTIFICATION_SET rings). Memory is shared with FFA_MEM_SHARE/LEND + AREA_SHARE, retrieved
by the partition and given back with AREA_UNSHARE -> FFA_MEM_RELINQUISH -> FFA_MEM_RECLAIM (or the
device's AREA_RELEASE): once for a pool at start, or per request buffer. A device with `sharing:` has its
regions shared through the same calls and messages under its own policy (`vmsim.sim.sharing`): the
plug-in supplies them as the bus's sharing mechanism.

The bus speaks the generation its `layout` names, and one `Generation` class holds what differs. `ffa-2026`
is the above. `ffa-2025` is the RFC 2025 bus (L-ffa-rfc1): a five-field VERSION (versions, vmsg revision and
features, DIRECT/INDIRECT RX/TX bits, area_num), the method taken from the partition's properties (direct if
it receives direct requests, else indirect) and checked against that answer, no EVENT_CONFIGURE, EVENT_POLL or
FIFO: device events (and an indirect bus's responses) reach the driver as FFA_MSG_SEND2 messages in its RX
buffer, read on "RX buffer full"; areas at `area_id << 56`, at most 0xFF; GET_DEVICES for 0xFF devices.

Every FF-A ABI call is a mark row (`ffa.*`) in the event log; every bus frame is a real frame of the bus's
layout. Sends from one endpoint are serialised by its lock, as L-26 sends under `drv->lock`.
"""

from __future__ import annotations

import struct
from collections import deque

import simpy

from vmsim.sim.bus import Bus
from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.sim.costs import MemoryCost, sampler
from vmsim.sim.doorbell import Doorbell
from vmsim.sim.virtqueue import _Waker
from vmsim.wire.ffa import (
    AREA_SHIFT,
    AREA_SHIFT_RFC2025,
    BUS_VERSION_1_0,
    DIRECT_REQ2_BYTES,
    EVENT_POLL,
    RFC2025_FEATURES,
    RFC2025_GET_DEVICES,
    RFC2025_MAX_AREAS,
    BusFeature,
    Cacheability,
    EventMethod,
    MemoryType,
    Result,
    SharingAttrs,
    SharingType,
    bus_address,
    pack_direct_req2,
    split_bus_address,
    unpack_direct_req2,
)
from vmsim.wire.fifo import HEADER_SIZE, MIN_MESSAGE_SIZE, create_fifo_pair, open_fifo_pair
from vmsim.wire.memory import PAGE, pages
from vmsim.wire.share import MemType

RXTX_BUFFER = 4096  # Linux arm_ffa maps one page each for RX and TX
MSG_SEND2_HEADER = struct.Struct("<6I")  # FF-A v1.2 partition message header (flags, -, offset, ids, size, -)
DRIVER_ENDPOINT, PARTITION_ENDPOINT = 0x0001, 0x8001  # a normal-world VM id and a secure partition id
EVENT_NOTIF_ID, FIFO_DRIVER_NOTIF_ID, FIFO_DEVICE_NOTIF_ID = 0, 1, 2
FFA_VERSION_1_2 = 0x0001_0002
TRANSPORT_REVISION = 1
BUS_RESPONSE = 0x03  # type byte of a bus response
BUSY_IMAGE = bytes(DIRECT_REQ2_BYTES)  # the all-zero RESP2 "busy" sentinel (L-26 xfer_direct.c)
METHODS = ("direct", "indirect", "fifo")
FEATURES = {
    "direct": BusFeature.DIRECT_RX | BusFeature.DIRECT_TX,
    "indirect": BusFeature.INDIRECT_RX | BusFeature.INDIRECT_TX,
    "notif": BusFeature.NOTIF_RX | BusFeature.NOTIF_TX,
    "fifo": BusFeature.FIFO,
}


def partition_features(names) -> int:
    """The VERSION feature bits of a partition that supports the named features."""
    bits = 0
    for name in names:
        bits |= FEATURES[name]
    return bits


def usable(method: str, features: int) -> bool:
    """A method is usable only if all of its feature bits are set (L-26 xfer.h)."""
    return features & FEATURES[method] == FEATURES[method]


def bootstrap_method(features: int) -> str:
    """Bootstrap over direct if the partition takes direct requests, else indirect (L-26)."""
    return "direct" if usable("direct", features) else "indirect"


def negotiate(wanted: str, events: str, features: int) -> tuple[str, EventMethod]:
    """The runtime method and event delivery from the VERSION answer, with the reference fallbacks.

    The wanted method if usable, else stay on the bootstrap method. On direct, NOTIF needs both
    notification bits and falls back to POLL (L-26 xfer_direct.c); indirect and FIFO buses deliver
    events as messages of their method.
    """
    method = wanted if usable(wanted, features) else bootstrap_method(features)
    if method == "indirect":
        return method, EventMethod.INDIRECT
    if method == "fifo":
        return method, EventMethod.FIFO
    notif = events == "notif" and usable("notif", features)
    return method, EventMethod.NOTIF if notif else EventMethod.POLL


def rfc2025_method(partition_features: int, version_features: int) -> str:
    """The RFC 2025 driver's method: direct if the partition's properties say it receives direct requests,
    else indirect; then the VERSION answer's feature bits must offer it (L-ffa-rfc1)."""
    method = bootstrap_method(partition_features)
    if not usable(method, version_features):
        raise SimulationError(f"the partition's VERSION answer (features 0x{version_features:x}) does not "
                              f"offer {method} messages, which its properties promise")
    return method


class Generation2026:
    """What differs between the generations of the FF-A bus, as the 2026 bus does it (L-26): its VERSION,
    AREA_SHARE field names, bus addresses (`area_id << 48`), EVENT_CONFIGURE and FIFO. The partition keeps
    device events for EVENT_POLL until EVENT_CONFIGURE says otherwise."""

    layout = "ffa-2026"
    area_shift = AREA_SHIFT
    configures_events = True  # EVENT_CONFIGURE (and FIFO_CONFIGURE for the FIFO method)
    device_events = EventMethod.POLL
    get_devices_count = None  # the driver's own window
    page_count = "page_count"

    @staticmethod
    def version_request() -> dict:
        return {"bus_version": BUS_VERSION_1_0, "transport_revision": TRANSPORT_REVISION,
                "ffa_version": FFA_VERSION_1_2}

    @staticmethod
    def version_answer(partition, request) -> dict:
        return {"bus_version": BUS_VERSION_1_0, "transport_revision": TRANSPORT_REVISION,
                "ffa_version": FFA_VERSION_1_2, "feature_bits": 0, "bus_features": partition.features,
                "max_areas": partition.max_areas}

    @staticmethod
    def read_version(answer) -> tuple[int, int]:
        """(feature bits, areas) of a VERSION answer."""
        return answer["bus_features"], answer["max_areas"]

    @staticmethod
    def area_share(area: int, handle: int, pages: int, attrs: int) -> dict:
        return {"area_id": area, "mem_handle": handle, "mem_tag": 0, "page_count": pages, "sharing_attrs": attrs}


class Generation2025(Generation2026):
    """The RFC 2025 bus (L-ffa-rfc1): a five-field VERSION whose features are bits 0-3 and whose `area_num`
    both sides bound; no EVENT_CONFIGURE and no FIFO, so device events (and, on an indirect bus, responses)
    reach the driver as indirect messages in its RX buffer; bus addresses `area_id << 56`; GET_DEVICES for
    0xFF device numbers. Its AREA_SHARE `attr` word has no published meaning and is sent as 0."""

    layout = "ffa-2025"
    area_shift = AREA_SHIFT_RFC2025
    configures_events = False
    device_events = EventMethod.INDIRECT
    get_devices_count = RFC2025_GET_DEVICES
    page_count = "count"

    @staticmethod
    def version_request() -> dict:
        return {"driver_version": 1, "vmsg_revision": 1, "vmsg_features": 0, "features": RFC2025_FEATURES,
                "area_num": RFC2025_MAX_AREAS}

    @staticmethod
    def version_answer(partition, request) -> dict:
        return {"device_version": 1, "vmsg_revision": 1, "vmsg_features": 0,
                "features": partition.features & RFC2025_FEATURES,
                "area_num": min(partition.max_areas, request["area_num"])}

    @staticmethod
    def read_version(answer) -> tuple[int, int]:
        return answer["features"], min(answer["area_num"], RFC2025_MAX_AREAS)

    @staticmethod
    def area_share(area: int, handle: int, pages: int, attrs: int) -> dict:
        return {"area_id": area, "mem_handle": handle, "tag": 0, "count": pages, "attr": 0}


GENERATIONS = {generation.layout: generation for generation in (Generation2025, Generation2026)}


class FfaPath:
    """What crossing the FF-A stack costs: `leg` carries a frame one way between the driver and the
    partition; `driver_call` / `partition_call` are an ABI call the framework (SPMC, or the hypervisor
    for a VM partition) answers, there and back. Built from the platform's per-pass costs (A.6)."""

    __slots__ = ("driver_call", "leg", "partition_call")

    def __init__(self, costs, kind: str, hypervisor):
        hop = hypervisor.trap + hypervisor.forward if hypervisor is not None else 0
        if kind == "vm":
            to_framework, to_partition, from_partition = hop, hypervisor.vm_switch, hop
        else:
            to_framework = hop + costs.el3_switch + costs.spmd_context + costs.spmc_dispatch
            s_el2 = costs.sel2_switch if kind == "hafnium" else 0
            to_partition, from_partition = s_el2, s_el2 + costs.spmc_dispatch
        self.leg = to_framework + to_partition
        self.driver_call = 2 * to_framework
        self.partition_call = 2 * from_partition


class Partition(Component):
    """The vCPUs of one partition, shared by every bus it serves: the frames it handles and the
    buffers its devices serve hold one while they run, so a busy partition delays the next call."""

    def __init__(self, sim: Simulation, name: str, spec):
        super().__init__(sim, f"partition.{name}")
        self.kind = spec.kind
        self.features = partition_features(spec.features)
        self.max_areas = spec.max_areas
        self.vcpus = simpy.Resource(sim.env, spec.vcpus)
        self.counts = sim.counter(self.name)
        self.counts.update(servers=spec.vcpus, busy_ns=0, busy_answers=0, yields=0)

    @classmethod
    def shared(cls, sim: Simulation, name: str, spec, shared: dict) -> Partition:
        key = ("ffa.partition", name)
        if key not in shared:
            shared[key] = cls(sim, name, spec)
        return shared[key]

    def free(self) -> bool:
        return self.vcpus.count < self.vcpus.capacity

    def leave(self, request, since: int) -> None:
        self.vcpus.release(request)
        self.counts["busy_ns"] += self.env.now - since


class Mailbox:
    """An endpoint's RX buffer: FFA_MSG_SEND2 copies one message in, the owner reads it and hands the
    buffer back with FFA_RX_RELEASE; until then a send to this endpoint is answered BUSY."""

    __slots__ = ("buffer", "full")

    def __init__(self):
        self.buffer = bytearray(RXTX_BUFFER)
        self.full = False


class _Side:
    """One end of the bus: its send lock, CPU and memory costs, ABI call cost, RX/TX buffers, FIFO ring
    ends, the notification that wakes its handler, and its log components."""

    __slots__ = ("bell", "call", "component", "cpu_ns", "endpoint", "fifo_rx", "fifo_tx", "inbound", "lock",
                 "memory", "outbound", "rx", "sent", "space", "tx", "wake")

    def __init__(self, bus, role: str, endpoint: int, cpu_ns: int, memory: MemoryCost, call: int, kind):
        sim, env, log = bus.sim, bus.env, bus.sim.log
        toward = "to_device" if role == "device" else "to_driver"
        self.endpoint = endpoint
        self.cpu_ns = cpu_ns
        self.memory = memory
        self.call = call
        self.lock = simpy.Resource(env, 1)
        self.component = log.components(f"{bus.name}.{role}")
        self.inbound = log.components(f"{bus.name}.{toward}")
        self.outbound = None  # the peer's inbound: frames this side sends
        self.sent = None
        self.tx = bytearray(RXTX_BUFFER)
        self.rx = Mailbox()
        self.fifo_tx = self.fifo_rx = None
        self.wake = _Waker(env)
        self.bell = Doorbell(sim, f"{bus.name}.{toward}.doorbell", kind, bus.bus_id, self.wake.kick)
        self.space = env.event()

    def release_space(self) -> None:
        """A notification arrived: wake a sender waiting for room in its FIFO ring (notify-after-full)."""
        if self.space.callbacks:
            self.space.succeed()
            self.space = self.space.env.event()


class FfaBus(Bus):
    """See the module docstring."""

    match_tokens = True  # responses may overtake each other (yields, busy retries, several vCPUs)
    buffer_hooks = True  # a served buffer holds a partition vCPU; per-buffer sharing shares it

    def __init__(self, sim: Simulation, spec, *, partition: Partition, path: FfaPath, costs, notification,
                 driver_memory: MemoryCost, device_memory: MemoryCost, driver_cpu_ns: int, device_cpu_ns: int):
        super().__init__(sim, spec.name, layout=spec.layout, max_msg_size=spec.max_msg_size, in_band=True)
        self.spec = spec
        self.generation = generation = GENERATIONS[spec.layout]
        self.get_devices_count = generation.get_devices_count
        self._shift = generation.area_shift
        self.partition = partition
        self.path = path
        self.costs = costs
        self.driver_memory = driver_memory
        self.device_memory = device_memory
        self.driver_cpu_ns = driver_cpu_ns
        self.device_cpu_ns = device_cpu_ns
        self.ready = sim.env.event()
        self.transport = None  # the method frames travel by: bootstrap, then the negotiated one
        self.event_delivery = None
        self.driver_side = _Side(self, "driver", DRIVER_ENDPOINT, driver_cpu_ns, driver_memory,
                                 path.driver_call, notification)
        self.device_side = _Side(self, "device", PARTITION_ENDPOINT, device_cpu_ns, device_memory,
                                 path.partition_call, notification)
        for side, peer, direction in ((self.driver_side, self.device_side, "to_device"),
                                      (self.device_side, self.driver_side, "to_driver")):
            side.outbound = peer.inbound
            side.sent = sim.counter(f"{spec.name}.{direction}")
            side.sent.update(frames=0, bytes=0, full=0)
        self.counts.update(method="", event_delivery="", direct_calls=0, event_polls=0, busy=0, tx_failed=0, mem_busy=0,
                           shares=0, reclaims=0, unmapped_access=0)
        self._rng = sim.rng(f"{spec.name}.yield") if spec.yield_probability else None
        self._sleep = sampler(spec.driver_sleep, sim.rng(f"{spec.name}.sleep"))
        self._busy_response = spec.when_busy == "busy-response"
        self._share_type = SharingType.LEND if spec.share_op == "lend" else SharingType.SHARE
        self._attrs = SharingAttrs(type=self._share_type).encode()
        self.busy_retries, self.busy_backoff, self.busy_backoff_max = (spec.mem_retries, spec.mem_backoff,
                                                                       spec.mem_backoff_max)
        # driver side
        self._free_areas: deque = deque()
        self._areas_changed = sim.env.event()
        self._driver_areas: dict[int, int] = {}  # area id -> pages
        self._buffer_area: dict = {}  # request -> area id
        self._released: set[int] = set()
        self._pool = None
        self._handles = 0
        # device side
        self._events: deque = deque()  # events waiting for EVENT_POLL (direct buses)
        self._device_events = generation.device_events
        self._areas: dict[int, list[int]] = {}  # area id -> [pages, mappings]
        self._serving: dict[tuple[int, int], tuple] = {}  # (dev_num, vq) -> (vCPU request, since)
        self._fifo_region = None
        log = sim.log
        self._log = log
        self._ev = {name: log.events(name) for name in (
            "tx", "rx", "queue.full", "ffa.msg_send_direct_req2", "ffa.msg_send_direct_resp2", "ffa.busy",
            "ffa.yield", "ffa.run", "ffa.msg_send2", "ffa.rx_release", "ffa.notification_set", "ffa.mem_share",
            "ffa.mem_lend", "ffa.mem_retrieve_req", "ffa.mem_relinquish", "ffa.mem_reclaim", "ffa.method")}

    @classmethod
    def build(cls, sim: Simulation, spec, context) -> FfaBus:
        ffa = context.platform.ffa
        partition = Partition.shared(sim, spec.partition, ffa.partitions[spec.partition], context.shared)
        hypervisor = ffa.hypervisors[spec.hypervisor] if spec.hypervisor else None
        driver_memory, device_memory = context.side_memory(spec.memory)
        return cls(sim, spec, partition=partition, path=FfaPath(ffa, partition.kind, hypervisor), costs=ffa,
                   notification=context.doorbell(spec.notification), driver_memory=driver_memory,
                   device_memory=device_memory, driver_cpu_ns=context.cpu_ns(context.driver.cpu),
                   device_cpu_ns=context.device_cpu_ns)

    # --- logging ----------------------------------------------------------------------------------

    def _mark(self, component: int, event: str, dev_num: int = -1, value: int = 0) -> None:
        self._log.mark(self.env.now, component, self._ev[event], self.bus_id, dev_num, value)

    def _frame(self, component: int, event: str, dev_num: int, frame: bytes) -> None:
        self._log.frame(self.env.now, component, self._ev[event], self.bus_id, dev_num, frame)

    def _sent(self, side: _Side, dev_num: int, frame: bytes) -> None:
        self._frame(side.outbound, "tx", dev_num, frame)
        side.sent["frames"] += 1
        side.sent["bytes"] += len(frame)

    # --- start-up: VERSION, method, events, FIFO, the probe-time area ------------------------------

    def start(self) -> None:
        super().start()
        env = self.env
        env.process(self._bootstrap())
        env.process(self._driver_handler())
        env.process(self._device_handler())

    def _bootstrap(self):
        generation = self.generation
        self.transport = bootstrap_method(self.partition.features)
        version = yield from self._bus_call("VERSION", generation.version_request())
        features, areas = generation.read_version(version)
        if generation.configures_events:
            method, events = negotiate(self.spec.method, self.spec.events, features)
        else:
            method, events = rfc2025_method(self.partition.features, features), EventMethod.INDIRECT
        self._free_areas.extend(range(1, areas + 1))
        self._area_event()  # regions shared under a policy may already wait for an area id
        if method == "fifo":
            yield from self._configure_fifo()
        if generation.configures_events:
            yield from self._bus_call("EVENT_CONFIGURE", {"event_method": events, "notif_id": EVENT_NOTIF_ID})
        self.counts["method"], self.counts["event_delivery"] = method, events.name.lower()
        self._mark(self.driver_side.component, "ffa.method", value=METHODS.index(method))
        self.event_delivery = events
        if self.spec.sharing == "probe":
            self._pool = yield from self._share_area(-(-self.spec.pool_size // PAGE))
        self.transport = method
        if events == EventMethod.POLL:
            self.env.process(self._poller())
        self.ready.succeed()

    def _configure_fifo(self):
        """Share the FIFO region, lay out both rings (the driver's TX first), FIFO_CONFIGURE; the
        partition retrieves the region and attaches to the rings (L-26 xfer_fifo.c)."""
        pages = self.spec.fifo_size // PAGE
        handle = yield from self._mem_share(pages)
        self._fifo_region = bytearray(pages * PAGE)
        side = self.driver_side
        size = max(MIN_MESSAGE_SIZE, self.max_msg_size)
        side.fifo_tx, side.fifo_rx = create_fifo_pair(self._fifo_region, 0, len(self._fifo_region), size)
        yield self.env.timeout(side.memory.write(2 * HEADER_SIZE))
        yield from self._bus_call("FIFO_CONFIGURE", {"mem_handle": handle, "page_count": pages,
                                                     "driver_notif_id": FIFO_DRIVER_NOTIF_ID})

    def _bus_call(self, name: str, fields: dict):
        """A bus request of the plug-in's own on the current transport; returns the response's fields."""
        frame, event = self.expect_response(0, self._encode(name, "request", fields), bus_message=True)
        yield from self._send_down(frame, 0)
        return (yield event).fields

    # --- the transport hooks ------------------------------------------------------------------------

    def _to_device(self, frame: bytes, dev_num: int):
        if not self.ready.triggered:
            yield self.ready
        yield from self._send_down(frame, dev_num)

    def _to_driver(self, frame: bytes, dev_num: int):
        if not self.ready.triggered and frame[0] != BUS_RESPONSE:
            yield self.ready  # events wait for the bus; answers to the bootstrap's requests do not
        if self.transport == "direct" and self._device_events != EventMethod.INDIRECT:
            yield from self._queue_event(frame, dev_num)
        elif self.transport in ("direct", "indirect"):  # RFC 2025: events come indirect on a direct bus too
            yield from self._msg_send2(self.device_side, self.driver_side, frame, dev_num)
        else:
            yield from self._fifo_send(self.device_side, self.driver_side, frame, dev_num)

    def _send_down(self, frame: bytes, dev_num: int):
        if self.transport == "direct":
            response = yield from self._direct(frame, dev_num)
            if response is not None:
                self._driver_receives(response)
        elif self.transport == "indirect":
            yield from self._msg_send2(self.driver_side, self.device_side, frame, dev_num)
        else:
            yield from self._fifo_send(self.driver_side, self.device_side, frame, dev_num)

    def _driver_receives(self, data: bytes) -> None:
        """Hand a received frame to the driver; an event's handler (the used-buffer reclaim) runs as work of
        its own, as in a workqueue: one waiting for a response (per-buffer unsharing) or for a free area
        must not block the path that response, or the reclaim freeing that area, arrives on."""
        work = self.deliver_to_driver(data)
        if work is not None:
            self.env.process(work)

    # --- direct messages ------------------------------------------------------------------------------

    def _direct(self, frame: bytes, dev_num: int):
        """FFA_MSG_SEND_DIRECT_REQ2 under the driver endpoint's lock; returns the RESP2 frame, or None
        (an event's RESP2 carries none, or every attempt was answered busy)."""
        lock = self.driver_side.lock.request()
        yield lock
        response = yield from self._direct_locked(frame, dev_num)
        self.driver_side.lock.release(lock)
        return response

    def _direct_locked(self, frame: bytes, dev_num: int):
        env, partition, leg = self.env, self.partition, self.path.leg
        driver = self.driver_side
        request = pack_direct_req2(frame)  # x4..x17
        if self.driver_cpu_ns:
            yield env.timeout(self.driver_cpu_ns)
        for attempt in range(1, self.spec.busy_retries + 1):
            self.counts["direct_calls"] += 1
            self._mark(driver.component, "ffa.msg_send_direct_req2", dev_num, len(frame))
            self._sent(driver, dev_num, frame)
            yield env.timeout(leg)
            if self._busy_response and not partition.free():
                partition.counts["busy_answers"] += 1
                reply = BUSY_IMAGE
            else:
                response = yield from self._direct_at_partition(request, dev_num)
                if not response:
                    yield env.timeout(leg)
                    return None  # an event: its RESP2 carries no frame
                reply = pack_direct_req2(response)
            yield env.timeout(leg)
            response = unpack_direct_req2(reply)
            if response is not None:
                self._frame(driver.inbound, "rx", dev_num, response)
                return response
            self.counts["busy"] += 1  # the all-zero sentinel: retried at once (L-26)
            self._mark(driver.component, "ffa.busy", dev_num, attempt)
        self.counts["tx_failed"] += 1  # L-26 returns -EBUSY after its retry budget: the frame is lost
        return None

    def _direct_at_partition(self, request: bytes, dev_num: int):
        """The partition takes a vCPU (or yields it back first), reads the frame from x4..x17 and answers;
        returns the response frame, b"" for an event."""
        env, partition, device = self.env, self.partition, self.device_side
        vcpu = partition.vcpus.request()
        yield vcpu
        since = env.now
        if self._rng is not None and self._rng.random() < self.spec.yield_probability:
            partition.leave(vcpu, since)  # FFA_YIELD: the partition hands its CPU back
            partition.counts["yields"] += 1
            self._mark(device.component, "ffa.yield", dev_num)
            yield env.timeout(self.path.leg + self._sleep())  # Linux sleeps 1-2 ms, then FFA_RUN (A.6 row 35)
            self._mark(self.driver_side.component, "ffa.run", dev_num)
            yield env.timeout(self.path.leg)
            vcpu = partition.vcpus.request()
            yield vcpu
            since = env.now
        received = unpack_direct_req2(request)
        if self.device_cpu_ns:
            yield env.timeout(self.device_cpu_ns)
        self._frame(device.inbound, "rx", dev_num, received)
        answered = yield from self._at_partition(received)
        if self._late:  # a late answer to a synchronous call: the call itself takes that much longer
            late, self._late = self._late, 0
            yield env.timeout(late)
        partition.leave(vcpu, since)
        response = answered[0] if answered else b""
        self._mark(device.component, "ffa.msg_send_direct_resp2", dev_num, len(response))
        if response:
            self._sent(device, dev_num, response)
        return response

    def _at_partition(self, data: bytes):
        """The partition answers a received frame (the caller holds a vCPU); FF-A calls the answer made
        (retrieve, relinquish) take their time before the answer leaves."""
        answered = self.answer(data)
        if self._owed:
            owed, self._owed = self._owed, 0
            yield self.env.timeout(owed)
        return answered

    # --- device events on a direct bus: EVENT_POLL -------------------------------------------------------

    def _queue_event(self, frame: bytes, dev_num: int):
        """The partition keeps the event for EVENT_POLL; in NOTIF mode it also sets the driver's
        notification (a bit already pending coalesces, as the doorbell does)."""
        self._events.append(frame)
        if self._device_events == EventMethod.NOTIF:
            yield from self._notification_set(self.device_side, self.driver_side, EVENT_NOTIF_ID, dev_num)

    def _notification_set(self, sender: _Side, receiver: _Side, notif_id: int, dev_num: int):
        """FFA_NOTIFICATION_SET: a call to the framework, which then signals the receiver."""
        self._mark(sender.component, "ffa.notification_set", dev_num, notif_id)
        if sender.call:
            yield self.env.timeout(sender.call)
        cost = receiver.bell.ring(dev_num)
        if cost:
            yield self.env.timeout(cost)

    def _drain_events(self):
        """EVENT_POLL until the empty answer, at most `poll_budget` per run (L-26); True once drained."""
        for _ in range(self.spec.poll_budget):
            self.counts["event_polls"] += 1
            frame = self._encode("EVENT_POLL", "request", {}, token=self.next_token())
            response = yield from self._direct(frame, 0)
            if response is None or response[0] == BUS_RESPONSE and response[1] == EVENT_POLL:
                return True
            self._driver_receives(response)  # the answer *is* the pending event
        return False

    def _poller(self):
        """POLL mode: a drain every `poll_interval`; a run that used its whole budget goes again at once."""
        while True:
            yield self.env.timeout(self.spec.poll_interval)
            while not (yield from self._drain_events()):
                pass

    # --- indirect messages ------------------------------------------------------------------------------

    def _msg_send2(self, sender: _Side, receiver: _Side, frame: bytes, dev_num: int):
        """FFA_MSG_SEND2: header and frame into the sender's TX buffer; the framework copies them into
        the receiver's RX buffer and raises "RX buffer full". A full RX buffer answers BUSY: L-26 sleeps
        1-2 ms and retries, `tx_busy_retries` times in all, then the frame is lost."""
        env = self.env
        lock = sender.lock.request()
        yield lock
        size = MSG_SEND2_HEADER.size + len(frame)
        MSG_SEND2_HEADER.pack_into(sender.tx, 0, 0, 0, MSG_SEND2_HEADER.size,
                                   sender.endpoint << 16 | receiver.endpoint, len(frame), 0)
        sender.tx[MSG_SEND2_HEADER.size:size] = frame
        cost = sender.cpu_ns + sender.memory.write(size)
        if cost:
            yield env.timeout(cost)
        for attempt in range(1, self.spec.tx_busy_retries + 1):
            self._mark(sender.component, "ffa.msg_send2", dev_num, len(frame))
            if not receiver.rx.full:
                receiver.rx.full = True
                receiver.rx.buffer[:size] = sender.tx[:size]
                yield env.timeout(sender.call + sender.memory.read(size) + receiver.memory.write(size))
                self._sent(sender, dev_num, frame)
                cost = receiver.bell.ring(dev_num)
                if cost:
                    yield env.timeout(cost)
                break
            yield env.timeout(sender.call)
            self.counts["busy"] += 1
            self._mark(sender.component, "ffa.busy", dev_num, attempt)
            if attempt == self.spec.tx_busy_retries:
                self.counts["tx_failed"] += 1
                break
            yield env.timeout(self._sleep())
        sender.lock.release(lock)

    def _read_mailbox(self, side: _Side):
        """Read the message in `side`'s RX buffer, then give the buffer back with FFA_RX_RELEASE."""
        env = self.env
        _flags, _, offset, _ids, size, _ = MSG_SEND2_HEADER.unpack_from(side.rx.buffer)
        frame = bytes(side.rx.buffer[offset:offset + size])
        cost = side.cpu_ns + side.memory.read(offset + size)
        if cost:
            yield env.timeout(cost)
        self._mark(side.component, "ffa.rx_release")
        if side.call:
            yield env.timeout(side.call)
        side.rx.full = False
        self._frame(side.inbound, "rx", -1, frame)
        return frame

    # --- FIFO rings ---------------------------------------------------------------------------------------

    def _fifo_send(self, sender: _Side, receiver: _Side, frame: bytes, dev_num: int):
        """Push into the sender's ring and kick the peer with an FF-A notification (L-26 notifies per
        message). A full ring waits, without the lock, for the consumer's notify-after-full."""
        env = self.env
        ring = sender.fifo_tx
        lock = sender.lock.request()
        yield lock
        while True:
            read, written = ring.bytes_read, ring.bytes_written
            pushed = ring.try_push(frame)
            cost = sender.memory.read(ring.bytes_read - read) + sender.memory.write(ring.bytes_written - written)
            if pushed:
                break
            sender.sent["full"] += 1
            self._mark(sender.outbound, "queue.full", dev_num)
            sender.lock.release(lock)
            yield sender.space
            lock = sender.lock.request()
            yield lock
        yield env.timeout(sender.cpu_ns + cost)
        self._sent(sender, dev_num, frame)
        yield from self._notification_set(sender, receiver, self._notif_id(receiver), dev_num)
        sender.lock.release(lock)

    def _fifo_pop(self, side: _Side):
        """Take one entry from `side`'s ring; after taking from a full ring, notify the producer."""
        ring = side.fifo_rx
        read, written = ring.bytes_read, ring.bytes_written
        frame = self.frame_in(ring.try_pop())
        cost = side.cpu_ns + side.memory.read(ring.bytes_read - read) + side.memory.write(ring.bytes_written - written)
        if cost:
            yield self.env.timeout(cost)
        self._frame(side.inbound, "rx", -1, frame)
        if ring.was_full:
            peer = self.device_side if side is self.driver_side else self.driver_side
            yield from self._notification_set(side, peer, self._notif_id(peer), -1)
        return frame

    def _notif_id(self, receiver: _Side) -> int:
        return FIFO_DEVICE_NOTIF_ID if receiver is self.device_side else FIFO_DRIVER_NOTIF_ID

    # --- receive handlers (woken by FF-A notifications) ----------------------------------------------

    def _pending_in(self, side: _Side) -> bool:
        return side.rx.full or side.fifo_rx is not None and len(side.fifo_rx) > 0

    def _read_one(self, side: _Side):
        if side.rx.full:
            return (yield from self._read_mailbox(side))
        return (yield from self._fifo_pop(side))

    def _driver_handler(self):
        side = self.driver_side
        while True:
            yield side.wake.wait()
            side.wake.rearm()
            if side.bell.ack_cost:
                yield self.env.timeout(side.bell.ack_cost)
            side.release_space()
            while self._pending_in(side):
                self._driver_receives((yield from self._read_one(side)))
            if self.event_delivery == EventMethod.NOTIF:
                while not (yield from self._drain_events()):
                    pass

    def _device_handler(self):
        """The partition's receive path: every frame is handled on one of its vCPUs."""
        side, partition, env = self.device_side, self.partition, self.env
        while True:
            yield side.wake.wait()
            side.wake.rearm()
            owed = side.bell.ack_cost
            side.release_space()
            while self._pending_in(side):
                vcpu = partition.vcpus.request()
                yield vcpu
                since = env.now
                if owed:
                    yield env.timeout(owed)
                    owed = 0
                answered = yield from self._at_partition((yield from self._read_one(side)))
                partition.leave(vcpu, since)
                self.send_answer(answered)

    # --- bus messages at the partition --------------------------------------------------------------

    def _answer_bus_message(self, frame):
        name, fields = frame.name, frame.fields
        if name == "EVENT_POLL":
            if self._events:
                return self._events.popleft()
            answer = {}
        elif name == "VERSION":
            answer = self.generation.version_answer(self.partition, fields)
        elif name == "EVENT_CONFIGURE":
            method = EventMethod(fields["event_method"])
            needs = {EventMethod.NOTIF: "notif", EventMethod.INDIRECT: "indirect", EventMethod.FIFO: "fifo"}
            if method in needs and not usable(needs[method], self.partition.features):
                answer = {"result": Result.ERROR}
            else:
                self._device_events = method
                answer = {"result": Result.SUCCESS}
        elif name == "FIFO_CONFIGURE":
            self._owe("ffa.mem_retrieve_req", self.costs.mem_retrieve, fields["page_count"])
            side = self.device_side
            side.fifo_rx, side.fifo_tx = open_fifo_pair(self._fifo_region)
            answer = {"result": Result.SUCCESS, "device_notif_id": FIFO_DEVICE_NOTIF_ID}
        elif name in ("AREA_SHARE", "AREA_UNSHARE"):
            area, share = fields["area_id"], name == "AREA_SHARE"
            if area in self.regions:  # a region of a device with `sharing:`: its device side answers
                result = (self.shares.share if share else self.shares.unshare)(area)
                if result is None:
                    return None  # the acknowledgement is lost (a fault the scenario asked for)
            elif share:
                self.owe(self._retrieve(area, fields[self.generation.page_count]))
                result = Result.SUCCESS
            else:
                result = self._unshare(area)
            answer = {"area_id": area, "result": result}
        else:
            return super()._answer_bus_message(frame)
        return self._encode(name, "response", answer, token=frame.token)

    def _unshare(self, area_id: int) -> Result:
        """AREA_UNSHARE at the partition: BUSY while a buffer in the area is still mapped (O-new),
        else FFA_MEM_RELINQUISH."""
        if area_id not in self._areas:
            return Result.ERROR
        spent = self._relinquish(area_id)
        if spent is None:
            return Result.BUSY
        self.owe(spent)
        return Result.SUCCESS

    def _retrieve(self, area_id: int, pages: int) -> int:
        """FFA_MEM_RETRIEVE_REQ at the partition: the area joins its table; the call's time."""
        self._areas[area_id] = [pages, 0]
        return self._memory_call(self.device_side, "ffa.mem_retrieve_req", self.costs.mem_retrieve, pages)

    def _relinquish(self, area_id: int) -> int | None:
        """FFA_MEM_RELINQUISH at the partition, and the area leaves its table; the call's time, or None while a
        buffer in the area is still mapped."""
        pages, mapped = self._areas[area_id]
        if mapped:
            return None
        del self._areas[area_id]
        return self._memory_call(self.device_side, "ffa.mem_relinquish", self.costs.mem_relinquish, pages,
                                 self.costs.tlb_maintenance)

    def _owe(self, event: str, op, pages: int, extra: int = 0) -> None:
        """A partition-side FF-A memory call made while answering: logged now, its time paid before the answer."""
        self._owed += self._memory_call(self.device_side, event, op, pages, extra)

    def _memory_call(self, side: _Side, event: str, op, pages: int, extra: int = 0) -> int:
        """Log an FF-A memory call and return its time: the crossing, fixed + per page, TLB maintenance."""
        self._mark(side.component, event, -1, pages)
        return side.call + op.fixed + pages * op.per_page + extra

    # --- memory: the driver side ---------------------------------------------------------------------

    def _mem_call(self, event: str, op, pages: int, extra: int = 0):
        yield self.env.timeout(self._memory_call(self.driver_side, event, op, pages, extra))

    def _mem_share(self, pages: int, lend: bool = False):
        """FFA_MEM_SHARE (or LEND, which also takes the pages out of the owner's stage 2): a handle."""
        yield from self._mem_call("ffa.mem_lend" if lend else "ffa.mem_share", self.costs.mem_share, pages,
                                  self.costs.tlb_maintenance if lend else 0)
        self._handles += 1
        self.counts["shares"] += 1
        return self._handles

    def _share_area(self, pages: int, kick=None):
        """FFA_MEM_SHARE (or LEND), then AREA_SHARE under a free area id; the partition retrieves the pages.

        With every id taken, `kick` (dev_num, vq) is notified first, so that buffers published before
        this one get served and give their areas back (as a driver kicks before it waits for DMA space).
        """
        handle = yield from self._mem_share(pages, self.spec.share_op == "lend")
        area = yield from self._take_area(None if kick is None else (lambda: self.notify_device(*kick)))
        yield from self._bus_call("AREA_SHARE", self.generation.area_share(area, handle, pages, self._attrs))
        self._driver_areas[area] = pages
        return area

    def _take_area(self, before_wait):
        """A free area id; with every id taken, run `before_wait` first, then wait for a reclaim."""
        if not self._free_areas and before_wait is not None:
            yield from before_wait()
        while not self._free_areas:
            yield self._areas_changed
        return self._free_areas.popleft()

    def _unshare_area(self, area: int):
        """AREA_UNSHARE (retried on BUSY, 20 ms doubling to 100 ms, 20 tries: L-26 common.c) or the
        device's AREA_RELEASE, then FFA_MEM_RECLAIM and the area id is free again."""
        if self.spec.release == "device":
            while area not in self._released:
                yield self._areas_changed
            self._released.discard(area)
        else:
            delay = self.spec.mem_backoff
            for attempt in range(1, self.spec.mem_retries + 1):
                result = (yield from self._bus_call("AREA_UNSHARE", {"area_id": area}))["result"]
                if result != Result.BUSY:
                    break
                self.counts["mem_busy"] += 1
                self._mark(self.driver_side.component, "ffa.busy", -1, attempt)
                if attempt < self.spec.mem_retries:
                    yield self.env.timeout(delay)
                    delay = min(2 * delay, self.spec.mem_backoff_max)
            if result != Result.SUCCESS:
                return  # still shared: the area and its pages stay lost to the driver, as in L-26
        yield from self._reclaim_area(area, self._driver_areas.pop(area))

    def _reclaim_area(self, area: int, pages: int):
        """FFA_MEM_RECLAIM: the pages are the driver's again and the area id is free."""
        yield from self._mem_call("ffa.mem_reclaim", self.costs.mem_reclaim, pages)
        self.counts["reclaims"] += 1
        self._free_areas.append(area)
        self._area_event()

    def _area_event(self) -> None:
        self._areas_changed.succeed()
        self._areas_changed = self.env.event()

    def _bus_event(self, frame) -> None:
        if frame.name != "AREA_RELEASE":
            super()._bus_event(frame)
        elif frame["area_id"] in self.regions:
            region = self.regions[frame["area_id"]]
            region.owner.on_release(region)
        else:
            self._released.add(frame["area_id"])
            self._area_event()

    # --- request buffers -------------------------------------------------------------------------------

    def share_buffer(self, dev_num: int, vq: int, request):
        if self._pool is not None:
            return bus_address(self._pool, 0, self._shift)
        area = yield from self._share_area(pages(request.size), (dev_num, vq))
        self._buffer_area[request] = area
        return bus_address(area, 0, self._shift)

    def release_buffer(self, dev_num: int, vq: int, request):
        area = self._buffer_area.pop(request, None)
        if area is not None:
            yield from self._unshare_area(area)

    def map_buffer(self, device, vq: int, chain):
        """The partition serves the buffer on one of its vCPUs; the device translates its bus addresses."""
        vcpu = self.partition.vcpus.request()
        yield vcpu
        self._serving[(device.dev_num, vq)] = (vcpu, self.env.now)
        for descriptor in chain:
            area = self._areas.get(split_bus_address(descriptor[0], self._shift)[0])
            if area is None:
                self.counts["unmapped_access"] += 1
            else:
                area[1] += 1

    def unmap_buffer(self, device, vq: int, chain):
        self.partition.leave(*self._serving.pop((device.dev_num, vq)))
        for descriptor in chain:
            area_id = split_bus_address(descriptor[0], self._shift)[0]
            if area_id not in self._areas:
                continue
            if self.spec.unmap_delay:
                self.env.process(self._unmap(area_id, self.spec.unmap_delay))
            else:
                yield from self._unmap(area_id, 0)

    def _unmap(self, area_id: int, delay: int):
        """Drop one mapping (`delay` later: a lazy unmap). With `release: device` the partition then
        relinquishes the area itself and tells the driver with AREA_RELEASE."""
        if delay:
            yield self.env.timeout(delay)
        area = self._areas[area_id]
        area[1] -= 1
        if self.spec.release == "device" and not area[1]:
            yield self.env.timeout(self._relinquish(area_id))
            yield from self.event_to_driver(0, self._encode("AREA_RELEASE", "event", {"area_id": area_id}))

    # --- memory shared under a policy: the FF-A mechanism -------------------------------------------------

    def new_share_id(self, region, before_wait):
        """A free area id of the partition's table."""
        region.id = yield from self._take_area(before_wait)

    def prepare_share(self, region):
        """FFA_MEM_SHARE (or LEND) of the region's pages: its memory handle; bus addresses in its area."""
        region.handle = yield from self._mem_share(region.pages, self.spec.share_op == "lend")
        region.bus_address = bus_address(region.id, 0, self._shift)

    def share_frame(self, region) -> bytes:
        """AREA_SHARE, its sharing attributes saying how the device maps the region."""
        kind = region.owner.mem_type
        attrs = SharingAttrs(type=self._share_type,
                             cacheability=Cacheability.NON if kind == MemType.NON_CACHEABLE else Cacheability.WRITE_BACK,
                             memory_type=MemoryType.DEVICE if kind == MemType.DEVICE else MemoryType.NORMAL)
        return self._encode("AREA_SHARE", "request",
                            self.generation.area_share(region.id, region.handle, region.pages, attrs.encode()))

    def unshare_frame(self, region) -> bytes:
        return self._encode("AREA_UNSHARE", "request", {"area_id": region.id})

    def release_frame(self, region) -> bytes:
        return self._encode("AREA_RELEASE", "event", {"area_id": region.id})

    def reclaim_region(self, region):
        yield from self._reclaim_area(region.id, region.pages)

    def attach_region(self, region) -> int:
        return self._retrieve(region.id, region.pages)

    def detach_region(self, region) -> int | None:
        return self._relinquish(region.id)
