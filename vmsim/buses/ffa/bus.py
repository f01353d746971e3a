"""The FF-A bus plug-in: virtio-msg between a driver endpoint and an Arm FF-A partition (reference §4).

A frame's path: the driver's endpoint (a kernel, or a VM behind a hypervisor: Xen's FF-A mediator,
KVM/pKVM) -> the EL3 SPMD -> the SPMC (OP-TEE at S-EL1, or Hafnium at S-EL2 with partitions as VMs) ->
the partition; or VM to VM through the hypervisor. `FfaPath` sums the platform's per-hop costs; the
partition's vCPUs are a shared resource every bus it serves queues on; the driver's side holds the driver's
core for its frame handling, memory calls and its legs of every call it makes (as thread work; its receive
handler's as interrupt work).

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

Failure paths (docs/faults.md): at `reset_at` the driver sends the bus RESET, the partition resets its devices
and the driver initialises each again; on `ffa-2026` a request the partition cannot decode or refuses is
answered ERROR and sent again once; an EVENT_POLL refused busy through every retry is polled again after the
driver's sleep (`lost_poll`); the `faults:` aimed at `<bus>.to_device` / `<bus>.to_driver` strike frames
where they arrive.
"""

from __future__ import annotations

from collections import deque

from vmsim.buses.ffa.direct import FfaDirect
from vmsim.buses.ffa.memory import FfaMemory
from vmsim.buses.ffa.messages import FfaMessages
from vmsim.buses.ffa.partition import FfaPath, Partition, Side
from vmsim.buses.ffa.protocol import (
    BUS_RESPONSE,
    DRIVER_ENDPOINT,
    EVENT_NOTIF_ID,
    FIFO_DEVICE_NOTIF_ID,
    FIFO_DRIVER_NOTIF_ID,
    GENERATIONS,
    METHODS,
    PARTITION_ENDPOINT,
    bootstrap_method,
    negotiate,
    usable,
)
from vmsim.sim.bus import Bus
from vmsim.sim.core import Simulation, SimulationError
from vmsim.sim.costs import MemoryCost, sampler
from vmsim.sim.faults import FRAME_KINDS, faults_on
from vmsim.sim.receive import Receiver
from vmsim.wire.ffa import ERROR, EVENT_POLL, EventMethod, Result
from vmsim.wire.fifo import HEADER_SIZE, MIN_MESSAGE_SIZE, create_fifo_pair, open_fifo_pair
from vmsim.wire.memory import PAGE


def rfc2025_method(partition_features: int, version_features: int) -> str:
    """The RFC 2025 driver's method: direct if the partition's properties say it receives direct requests,
    else indirect; then the VERSION answer's feature bits must offer it (L-ffa-rfc1)."""
    method = bootstrap_method(partition_features)
    if not usable(method, version_features):
        raise SimulationError(f"the partition's VERSION answer (features 0x{version_features:x}) does not "
                              f"offer {method} messages, which its properties promise")
    return method


class FfaBus(FfaDirect, FfaMessages, Bus):
    """See the module docstring."""

    match_tokens = True  # responses may overtake each other (yields, busy retries, several vCPUs)

    def __init__(self, sim: Simulation, spec, *, partition: Partition, path: FfaPath, costs, notification,
                 driver_memory: MemoryCost, device_memory: MemoryCost, driver_cpu_ns: int, device_cpu_ns: int,
                 driver_cpu=None):
        super().__init__(sim, spec.name, layout=spec.layout, max_msg_size=spec.max_msg_size, in_band=True)
        self.spec = spec
        self.generation = generation = GENERATIONS[spec.layout]
        self.get_devices_count = generation.get_devices_count
        self.area_shift = generation.area_shift
        self.partition = partition
        self.path = path
        self.costs = costs
        self.driver_memory = driver_memory
        self.device_memory = device_memory
        self.driver_cpu_ns = driver_cpu_ns
        self.device_cpu_ns = device_cpu_ns
        self.driver_cpu = driver_cpu or self.driver_cpu  # the driver's work holds its core
        self.device_cpu = partition.vcpus  # the device side's work holds a vCPU of the partition
        self.ready = sim.env.event()
        self.transport = None  # the method frames travel by: bootstrap, then the negotiated one
        self.event_delivery = None
        self.driver_side = Side(self, "driver", DRIVER_ENDPOINT, self.driver_cpu, driver_cpu_ns, driver_memory,
                                 path.driver_call, notification)
        self.device_side = Side(self, "device", PARTITION_ENDPOINT, self.device_cpu, device_cpu_ns, device_memory,
                                 path.partition_call, notification)
        for side, peer, direction in ((self.driver_side, self.device_side, "to_device"),
                                      (self.device_side, self.driver_side, "to_driver")):
            side.outbound = peer.inbound
            side.sent = sim.counter(f"{spec.name}.{direction}")
            side.sent.update(frames=0, bytes=0, full=0)
        self.counts.update(method="", event_delivery="", direct_calls=0, event_polls=0, busy=0, tx_failed=0, mem_busy=0,
                           shares=0, reclaims=0, unmapped_access=0, polls_lost=0, repolls=0, bus_resets=0,
                           errors_sent=0, errors_received=0, error_resends=0)
        self._rng = sim.rng(f"{spec.name}.yield") if spec.yield_probability else None
        self._sleep = sampler(spec.driver_sleep, sim.rng(f"{spec.name}.sleep"))
        self._busy_response = spec.when_busy == "busy-response"
        # device side
        self._events: deque = deque()  # events waiting for EVENT_POLL (direct buses)
        self._repolling = False  # a poll after a lost one is scheduled
        self._device_events = generation.device_events
        self._fifo_region = None
        self.mechanism = FfaMemory(self)
        self._asked: dict[int, tuple] = {}  # token -> (frame, dev_num, resent): a request ERROR may answer
        self._faults = {side: faults_on(sim, f"{spec.name}.{toward}", FRAME_KINDS) for side, toward
                        in ((self.device_side, "to_device"), (self.driver_side, "to_driver"))}
        log = sim.log
        self._log = log
        self._ev = {name: log.events(name) for name in (
            "tx", "rx", "queue.full", "ffa.msg_send_direct_req2", "ffa.msg_send_direct_resp2", "ffa.busy",
            "ffa.yield", "ffa.run", "ffa.poll_lost", "ffa.msg_send2", "ffa.rx_release", "ffa.notification_set",
            "ffa.mem_share", "ffa.mem_lend", "ffa.mem_retrieve_req", "ffa.mem_relinquish", "ffa.mem_reclaim",
            "ffa.method")}

    @classmethod
    def build(cls, sim: Simulation, spec, context) -> FfaBus:
        ffa = context.platform.ffa
        partition = Partition.shared(sim, spec.partition, ffa.partitions[spec.partition], context)
        hypervisor = ffa.hypervisors[spec.hypervisor] if spec.hypervisor else None
        driver_memory, device_memory = context.side_memory(spec.memory)
        return cls(sim, spec, partition=partition, path=FfaPath(ffa, partition.kind, hypervisor), costs=ffa,
                   notification=context.doorbell(spec.notification), driver_memory=driver_memory,
                   device_memory=device_memory, driver_cpu_ns=context.cpu_ns(context.driver.cpu),
                   device_cpu_ns=context.device_cpu_ns, driver_cpu=context.driver_processor())

    # --- logging ----------------------------------------------------------------------------------

    def mark(self, component: int, event: str, dev_num: int = -1, value: int = 0) -> None:
        self._log.mark(self.env.now, component, self._ev[event], self.bus_id, dev_num, value)

    def _frame(self, component: int, event: str, dev_num: int, frame: bytes) -> None:
        self._log.frame(self.env.now, component, self._ev[event], self.bus_id, dev_num, frame)

    def _sent(self, side: Side, dev_num: int, frame: bytes) -> None:
        self._frame(side.outbound, "tx", dev_num, frame)
        side.sent["frames"] += 1
        side.sent["bytes"] += len(frame)

    # --- start-up: VERSION, method, events, FIFO, the probe-time area ------------------------------

    def start(self) -> None:
        super().start()
        env = self.env
        env.process(self._bootstrap())
        env.process(DriverReceiver(self).receive_loop())
        env.process(PartitionReceiver(self).receive_loop())
        if self.spec.reset_at is not None:
            env.process(self._reset_bus())

    def _bootstrap(self):
        generation = self.generation
        self.transport = bootstrap_method(self.partition.features)
        version = yield from self.bus_call("VERSION", generation.version_request())
        features, areas = generation.read_version(version)
        if generation.configures_events:
            method, events = negotiate(self.spec.method, self.spec.events, features)
        else:
            method, events = rfc2025_method(self.partition.features, features), EventMethod.INDIRECT
        self.mechanism.open_areas(areas)
        if method == "fifo":
            yield from self._configure_fifo()
        if generation.configures_events:
            yield from self.bus_call("EVENT_CONFIGURE", {"event_method": events, "notif_id": EVENT_NOTIF_ID})
        self.counts["method"], self.counts["event_delivery"] = method, events.name.lower()
        self.mark(self.driver_side.component, "ffa.method", value=METHODS.index(method))
        self.event_delivery = events
        if self.spec.sharing == "probe":
            yield from self.mechanism.share_pool(-(-self.spec.pool_size // PAGE))
        self.transport = method
        if events == EventMethod.POLL:
            self.env.process(self._poller())
        self.ready.succeed()

    def _configure_fifo(self):
        """Share the FIFO region, lay out both rings (the driver's TX first), FIFO_CONFIGURE; the
        partition retrieves the region and attaches to the rings (L-26 xfer_fifo.c)."""
        pages = self.spec.fifo_size // PAGE
        handle = yield from self.mechanism.mem_share(pages)
        self._fifo_region = bytearray(pages * PAGE)
        side = self.driver_side
        size = max(MIN_MESSAGE_SIZE, self.max_msg_size)
        side.fifo_tx, side.fifo_rx = create_fifo_pair(self._fifo_region, 0, len(self._fifo_region), size)
        yield from side.work("setup", side.memory.write(2 * HEADER_SIZE))
        yield from self.bus_call("FIFO_CONFIGURE", {"mem_handle": handle, "page_count": pages,
                                                     "driver_notif_id": FIFO_DRIVER_NOTIF_ID})

    def bus_call(self, name: str, fields: dict):
        """A bus request of the plug-in's own on the current transport; returns the response's fields. A
        direct call refused busy through every retry is made again after the driver's sleep."""
        frame, event = self.expect_response(0, self.encode(name, "request", fields), bus_message=True)
        while not (yield from self._send_down(frame, 0)):
            yield self.env.timeout(self._sleep())
        return (yield event).fields

    # --- the transport hooks ------------------------------------------------------------------------

    def carry_to_device(self, frame: bytes, dev_num: int):
        if not self.ready.triggered:
            yield self.ready
        yield from self._send_down(frame, dev_num)

    def carry_to_driver(self, frame: bytes, dev_num: int):
        if not self.ready.triggered and frame[0] != BUS_RESPONSE:
            yield self.ready  # events wait for the bus; answers to the bootstrap's requests do not
        if self.transport == "direct" and self._device_events != EventMethod.INDIRECT:
            yield from self._queue_event(frame, dev_num)
        elif self.transport in ("direct", "indirect"):  # RFC 2025: events come indirect on a direct bus too
            yield from self._msg_send2(self.device_side, self.driver_side, frame, dev_num)
        else:
            yield from self._fifo_send(self.device_side, self.driver_side, frame, dev_num)

    def _send_down(self, frame: bytes, dev_num: int):
        """Send toward the partition on the current transport; False when a direct call was refused busy
        through every retry (the other methods count what they lose themselves)."""
        if self.transport == "direct":
            taken, response = yield from self._direct(frame, dev_num)
            if response is not None:
                self.driver_receives(response)
            return taken
        if self.transport == "indirect":
            yield from self._msg_send2(self.driver_side, self.device_side, frame, dev_num)
        else:
            yield from self._fifo_send(self.driver_side, self.device_side, frame, dev_num)
        return True

    def driver_receives(self, data: bytes) -> None:
        """Hand a received frame to the driver; an event's handler (the used-buffer reclaim) runs as work of
        its own, as in a workqueue: one waiting for a response (per-buffer unsharing) or for a free area
        must not block the path that response, or the reclaim freeing that area, arrives on."""
        work = self.deliver_to_driver(data)
        if work is not None:
            self.env.process(work)

    # --- frames as they arrive: the `faults:` on the way, the partition's answer --------------------------

    def dropped(self, side: Side, frame: bytes, dev_num: int) -> bool:
        """Whether a direct call's frame toward `side` is lost on the way (`faults:`, `vmsim.sim.faults`)."""
        faults = self._faults[side]
        return faults is not None and faults.dropped(frame, dev_num)

    def arrives(self, side: Side, frame: bytes) -> bytes | None:
        """`frame` as `side` takes it once read under the `faults:` aimed at its direction: None when its
        receiver ignores it (or, read from an RX buffer or FIFO, it was dropped), damaged bytes when it was
        corrupted, else as it was."""
        return None if self.dropped(side, frame, -1) else self.received(side, frame)

    def received(self, side: Side, frame: bytes) -> bytes | None:
        """`frame` as `side`'s receiver takes it once the log recorded it (`Aimed.received`)."""
        faults = self._faults[side]
        return frame if faults is None else faults.received(frame)

    def at_partition(self, data: bytes):
        """The partition answers a received frame (the caller holds a vCPU); FF-A calls the answer made
        (retrieve, relinquish) take their time before the answer leaves."""
        answered = self.answer(data)
        owed = self.settle_owed()
        if owed:
            yield from self.device_side.work("calls", owed)
        return answered

    # --- RESET and ERROR ---------------------------------------------------------------------------------

    def _reset_bus(self):
        """RESET at `reset_at` (a partition or VM reset under way). The driver stops publishing on every
        device of the bus and sends RESET; the partition resets each of its devices (status 0, queues
        dropped), drops the events they left waiting, forgets its event configuration and answers. The driver
        then configures events again and resets and initialises each device as it would recover one
        (`Driver.reset_device`). The shared areas and the FIFO rings are the bus's and stay."""
        yield self.env.timeout(self.spec.reset_at)
        if not self.ready.triggered:
            yield self.ready
        handles = [handle for (bus, _), handle in self.driver.handles.items()
                   if bus == self.name and not handle.failed]
        for handle in handles:
            for queue in handle.queues.values():
                queue.halt()
        yield from self.bus_call("RESET", {})
        self.counts["bus_resets"] += 1
        if self.generation.configures_events:
            yield from self.bus_call("EVENT_CONFIGURE", {"event_method": self.event_delivery,
                                                         "notif_id": EVENT_NOTIF_ID})
        for handle in handles:
            self.env.process(self.driver.reset_device(self, handle.dev_num, 0))

    def expect_response(self, dev_num: int, frame: bytes, bus_message: bool = False):
        """The base's, keeping the request by token until answered, for a partition's ERROR to be resent."""
        frame, event = super().expect_response(dev_num, frame, bus_message)
        if self.generation.answers_errors and self.has_token:
            token = self._token
            self._asked[token] = (frame, dev_num, False)
            event.callbacks.append(lambda _event: self._asked.pop(token, None))
        return frame, event

    def answer(self, data):
        """The base's answer; on `ffa-2026` a request the partition cannot decode, or refuses (a bus message it
        does not know, a device it does not have), is answered ERROR(original msg_id), echoing its device
        number and token, where the base would discard it without a word."""
        discarded = self.counts["discarded"]
        answered = super().answer(data)
        if answered is not None or self.counts["discarded"] == discarded or not self.generation.answers_errors:
            return answered
        dev_num, token = (data[2] | data[3] << 8, data[4] | data[5] << 8) if len(data) >= 8 else (0, 0)
        if not token or data[0] & 1 or data[1] & 0x40:
            return None  # a response, an event (it has no answer), or too short to carry a token
        self.counts["errors_sent"] += 1
        error = self.encode("ERROR", "response", {"original_msg_id": data[1]}, dev_num=dev_num, token=token)
        return error, dev_num

    def deliver_to_driver(self, data):
        if len(data) > 1 and data[1] == ERROR and data[0] == BUS_RESPONSE and self.generation.answers_errors:
            return self._on_error(data)
        return super().deliver_to_driver(data)

    def _on_error(self, data: bytes) -> None:
        """The partition answered ERROR: the request it names by token is sent again, once (it was damaged on
        the way, or the partition was not ready); an ERROR for a request already resent, or for none still
        waiting, is discarded and the request left to the driver's own timeout."""
        self.counts["errors_received"] += 1
        token = data[4] | data[5] << 8
        asked = self._asked.get(token)
        if asked is None or asked[2]:
            self.counts["discarded"] += 1
            return
        frame, dev_num, _ = asked
        self._asked[token] = (frame, dev_num, True)
        self.counts["error_resends"] += 1
        self.env.process(self._send_down(frame, dev_num))

    # --- device events on a direct bus: EVENT_POLL -------------------------------------------------------

    def _queue_event(self, frame: bytes, dev_num: int):
        """The partition keeps the event for EVENT_POLL; in NOTIF mode it also sets the driver's
        notification (a bit already pending coalesces, as the doorbell does)."""
        self._events.append(frame)
        if self._device_events == EventMethod.NOTIF:
            yield from self._notification_set(self.device_side, self.driver_side, EVENT_NOTIF_ID, dev_num)

    def forget_events(self, dev_num: int) -> None:
        """A reset device's events still waiting for EVENT_POLL go with it (the bus's own stay)."""
        self._events = deque(frame for frame in self._events
                             if frame[2] | frame[3] << 8 != dev_num or self.layout.decode(frame).bus)

    def drain_events(self):
        """EVENT_POLL until the empty answer, at most `poll_budget` per run (L-26); True once drained, or once
        a poll was refused busy through every retry (`lost_poll` says what happens to the events left)."""
        for _ in range(self.spec.poll_budget):
            self.counts["event_polls"] += 1
            frame = self.encode("EVENT_POLL", "request", {}, token=self.next_token())
            taken, response = yield from self._direct(frame, 0)
            if not taken:
                self._poll_lost()
                return True
            if response is None or response[0] == BUS_RESPONSE and response[1] == EVENT_POLL:
                return True
            self.driver_receives(response)  # the answer *is* the pending event
        return False

    def _poll_lost(self) -> None:
        """An EVENT_POLL refused busy through every retry leaves the partition's events waiting, and nothing
        rings for them again: with `lost_poll: repoll` the driver polls again after its sleep (1-2 ms, as
        between busy retries of an indirect send), until a poll is taken; with `wait` they wait for the
        next notification or `poll_interval` (a device waiting on them stalls meanwhile)."""
        self.counts["polls_lost"] += 1
        self.mark(self.driver_side.component, "ffa.poll_lost")
        if self.spec.lost_poll == "repoll" and not self._repolling:
            self._repolling = True
            self.env.process(self._repoll())

    def _repoll(self):
        yield self.env.timeout(self._sleep())
        self._repolling = False
        self.counts["repolls"] += 1
        while not (yield from self.drain_events()):
            pass

    def _poller(self):
        """POLL mode: a drain every `poll_interval`; a run that used its whole budget goes again at once."""
        while True:
            yield self.env.timeout(self.spec.poll_interval)
            while not (yield from self.drain_events()):
                pass

    # --- bus messages at the partition --------------------------------------------------------------

    def answer_bus_message(self, frame):
        name, fields = frame.name, frame.fields
        if name == "EVENT_POLL":
            if self._events:
                return self._events.popleft()
            answer = {}
        elif name == "VERSION":
            answer = self.generation.version_answer(self.partition, fields)
        elif name == "RESET":
            for device in self.devices.values():
                device.reset()
            self._events.clear()  # what the reset devices left waiting for EVENT_POLL
            self._device_events = self.generation.device_events  # the event configuration is forgotten
            answer = self.generation.reset_answer()
        elif name == "EVENT_CONFIGURE":
            method = EventMethod(fields["event_method"])
            needs = {EventMethod.NOTIF: "notif", EventMethod.INDIRECT: "indirect", EventMethod.FIFO: "fifo"}
            if method in needs and not usable(needs[method], self.partition.features):
                answer = {"result": Result.ERROR}
            else:
                self._device_events = method
                answer = {"result": Result.SUCCESS}
        elif name == "FIFO_CONFIGURE":
            self.mechanism.owe_call("ffa.mem_retrieve_req", self.costs.mem_retrieve, fields["page_count"])
            side = self.device_side
            side.fifo_rx, side.fifo_tx = open_fifo_pair(self._fifo_region)
            answer = {"result": Result.SUCCESS, "device_notif_id": FIFO_DEVICE_NOTIF_ID}
        else:
            return super().answer_bus_message(frame)
        return self.encode(name, "response", answer, token=frame.token)


class DriverReceiver(Receiver):
    """The driver endpoint's handler, woken by its FF-A notification: it acknowledges, frees a sender waiting
    for FIFO room, hands each pending frame to the driver and, in NOTIF mode, polls the pending events."""

    def __init__(self, bus: FfaBus):
        self.bus = bus
        self.env = bus.env
        self.side = bus.driver_side
        self.waker = self.side.wake

    def enter(self):
        side = self.side
        if side.bell.ack_cost:
            yield from side.work("notify", side.bell.ack_cost, irq=True)
        side.release_space()

    def drain(self):
        bus, side = self.bus, self.side
        while bus.pending_in(side):
            frame = bus.arrives(side, (yield from bus.read_one(side)))
            if frame is not None:
                bus.driver_receives(frame)
        if bus.event_delivery == EventMethod.NOTIF:
            while not (yield from bus.drain_events()):
                pass


class PartitionReceiver(Receiver):
    """The partition's receive path: every frame is handled on one of its vCPUs, the notification's
    acknowledgement paid on the first."""

    def __init__(self, bus: FfaBus):
        self.bus = bus
        self.env = bus.env
        self.side = bus.device_side
        self.waker = self.side.wake

    def enter(self):
        self.side.release_space()
        return
        yield

    def drain(self):
        bus, side = self.bus, self.side
        vcpus = bus.partition.vcpus
        owed = side.bell.ack_cost
        while bus.pending_in(side):
            yield from vcpus.enter()
            if owed:
                yield from side.work("notify", owed)
                owed = 0
            frame = bus.arrives(side, (yield from bus.read_one(side)))
            answered = None if frame is None else (yield from bus.at_partition(frame))
            vcpus.leave()
            bus.send_answer(answered)
