"""The bus plug-in interface, and the protocol duties every bus shares.

Driver and device logic exist once and talk only to this interface:

- driver side: `request(dev_num, frame) -> Event` (value: the response `Frame`),
  `notify_device(dev_num, vq)` (a generator);
- device side: `notify_driver(dev_num, vq)` and `event_to_driver(dev_num, frame)` (generators);
  responses are returned by `Device.on_frame` and sent by the bus.

The base class owns what the spec gives the bus (S-pr28): it owns the token, delivers exactly one
response per request and responses per device in request order, enforces the maximum message
size, answers bus messages (GET_DEVICES, PING) and announces hot-plugged devices (EVENT_DEVICE).
A plug-in builds itself from its scenario entry with `build(sim, spec, context)` (the context looks
up platform costs and the devices on the bus) and supplies the transport through public hooks:
`carry_to_device(frame, dev_num)` / `carry_to_driver(frame, dev_num)`, generators that put bytes on the
bus, and `signal_device` / `signal_driver` (dev_num, vq) if it has out-of-band notification. Received
bytes come back through `deliver_to_device` / `deliver_to_driver`; a synchronous transport takes the
device's answer from `answer` instead, and a plug-in's own bus requests are registered with
`expect_response`. A plug-in with bus messages of its own extends `answer_bus_message`; device-side time
spent while answering is `owe`d and an answer made late is `delay_answer`ed. A plug-in with a start-up of
its own (a handshake, FF-A VERSION) fires its `ready` event once it is up: a driver with response timeouts
starts counting them from then.

How memory becomes reachable by the devices (request buffers, regions shared under a policy by
`vmsim.sim.sharing`) is the bus's `mechanism` (`vmsim.sim.share_mechanism`), which a plug-in chooses: none
by default, an AMP carve-out speaking vmsim-share, Xen grants, FF-A memory calls.
"""

from __future__ import annotations

from collections import deque

from vmsim.errors import DecodeError
from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.sim.costs import count_bus_memory
from vmsim.sim.processor import Unshared
from vmsim.sim.share_mechanism import ShareMechanism
from vmsim.wire import get_layout

MSG_SIZE_OFFSET = {8: 6, 6: 4}  # where msg_size sits in the 8-byte (v1) and 6-byte (draft) headers
FIXED_FRAME = 40  # the 2024 layout has no msg_size: every frame is 40 bytes
TOKEN_FIRST = 2  # 0 marks events and 1 is the fixed token of bus requests (L-26 provider.h)
DEVICE_READY = 0x0001
DEVICE_REMOVED = 0x0002


class Bus(Component):
    """Base of every bus plug-in (AMP, Xen, FF-A)."""

    match_tokens = False
    """Match a response to its request by token instead of by order (L-26 FF-A keys exchanges on
    (dev_num, token)): for buses whose responses may overtake each other. Bus responses are matched by
    token on every layout that has one, since a bus request may be given up on (`call`)."""

    get_devices_count: int | None = None
    """Device numbers the driver asks for per GET_DEVICES when the bus's own driver asks a number of its
    own (the RFC 2025 FF-A driver: 0xFF); None for the driver's window."""

    def __init__(self, sim: Simulation, name: str, *, layout: str, max_msg_size: int, in_band: bool):
        super().__init__(sim, name)
        self.layout = get_layout(layout)
        self.has_token = self.layout.header_size == 8
        self.max_msg_size = max_msg_size
        self.in_band = in_band
        self.bus_id = sim.log.add_bus(name, layout)
        self.driver = None
        self.devices: dict[int, object] = {}
        self.removed_for_driver: set[int] = set()  # devices whose EVENT_DEVICE(REMOVED) the driver took in
        self._pending: dict[tuple[bool, int], deque] = {}
        self.given_up: set[tuple[bool, int, int]] = set()  # (bus message, dev_num, token) of withdrawn requests
        self._token = TOKEN_FIRST - 1
        self.counts = sim.counter(name)
        self.counts.update(requests=0, responses=0, events=0, discarded=0, token_mismatch=0)
        self.encode = self.layout.encode
        self.sharers: dict[int, object] = {}  # dev_num -> ShareDriver of a device with `sharing:`
        self.regions: dict[int, object] = {}  # share id -> Region, shared or on its way
        self.shares = None  # DeviceShares, the device side's regions, once a device on the bus has `sharing:`
        self.mechanism = ShareMechanism(self)  # how the bus makes memory reachable; a plug-in chooses its own
        # the processors the driver's and the device side's work holds (`vmsim.sim.processor`); a plug-in that
        # models its cores sets them, the others leave work unshared
        self.driver_cpu = self.device_cpu = Unshared(sim.env)
        self._owed = 0  # device-side time spent while answering (retrieving, mapping), paid before the answer
        self._late = 0  # and how much later than that the answer leaves (a late acknowledgement, a fault)

    def frame_in(self, element) -> bytes:
        """The frame at the start of a received queue element, cut to its `msg_size`.

        A queue element is read whole (stale bytes after the frame included, L-amp26); a length that
        does not fit is left to the decoder to reject.
        """
        at = MSG_SIZE_OFFSET.get(self.layout.header_size)
        if at is None:
            return bytes(element[:FIXED_FRAME])
        if len(element) < at + 2:
            return bytes(element)
        size = element[at] | element[at + 1] << 8
        return bytes(element[:size]) if 0 < size <= len(element) else bytes(element)

    # --- wiring ---------------------------------------------------------------------------------

    def attach_driver(self, driver) -> None:
        self.driver = driver

    def attach_device(self, device) -> None:
        self.devices[device.dev_num] = device

    def present_devices(self) -> list[int]:
        """Device numbers present now (a hot-plugged device appears at its `added_at`)."""
        now = self.env.now
        return sorted(n for n, d in self.devices.items() if d.added_at is None or d.added_at <= now)

    def start(self) -> None:
        """Start the plug-in's own processes (handshakes); announce hot-plugged and removed devices later."""
        count_bus_memory(self)
        for device in self.devices.values():
            if device.added_at is not None and device.added_at > 0:
                self.env.process(self._announce(device))
            if device.removed_at is not None:
                self.env.process(self._remove(device))

    def _announce(self, device):
        yield self.env.timeout(device.added_at)
        frame = self.encode("EVENT_DEVICE", "event",
                             {"device_number": device.dev_num, "device_bus_state": DEVICE_READY})
        yield from self._send_to_driver(frame, 0)

    def _remove(self, device):
        """Hot-unplug: the device stops (its queues drop what they hold) and leaves the bus, then
        EVENT_DEVICE(REMOVED) tells the driver."""
        yield self.env.timeout(device.removed_at)
        device.reset()
        del self.devices[device.dev_num]
        frame = self.encode("EVENT_DEVICE", "event",
                             {"device_number": device.dev_num, "device_bus_state": DEVICE_REMOVED})
        yield from self._send_to_driver(frame, 0)

    # --- driver side ------------------------------------------------------------------------------

    def request(self, dev_num: int, frame: bytes, bus_message: bool = False):
        """Send a request; the returned event fires with the response frame, in request order."""
        frame, event = self.expect_response(dev_num, frame, bus_message)
        self.env.process(self._send_to_device(frame, dev_num))
        return event

    def expect_response(self, dev_num: int, frame: bytes, bus_message: bool = False):
        """Stamp the bus's next token on `frame` and register the event its response fires: (frame, event).

        `request` is this plus sending; a plug-in that sends bus requests of its own while the bus is
        not yet up for the driver (FF-A VERSION) registers them here and puts them on its transport itself.
        """
        event = self.env.event()
        if self.has_token:
            frame = bytearray(frame)
            frame[4:6] = self.next_token().to_bytes(2, "little")
            frame = bytes(frame)
        self._pending.setdefault((bus_message, dev_num), deque()).append((event, self._token))
        self.counts["requests"] += 1
        return frame, event

    def call(self, frame: bytes, timeout: int, bus_message: bool = True):
        """A request with a deadline (a bus message unless told otherwise): the response `Frame`, or None when
        none came within `timeout`.

        A request that timed out is withdrawn, so that a late response matches the request sent after
        it (its retry) instead of leaving every later response one behind; on a layout with tokens its late
        answer, should it still come, is known by its token and discarded.
        """
        dev_num = frame[2] | frame[3] << 8
        frame, event = self.expect_response(dev_num, frame, bus_message)
        token = self._token
        self.env.process(self._send_to_device(frame, dev_num))
        yield event | self.env.timeout(timeout)
        if event.triggered:
            return event.value
        waiting = self._pending[(bus_message, dev_num)]
        waiting.remove(next(entry for entry in waiting if entry[0] is event))
        if self.has_token:
            self.given_up.add((bus_message, dev_num, token))
        return None

    def next_token(self) -> int:
        """The bus owns the token: 2, 3, ... 0xFFFF, then 2 again (L-26)."""
        self._token = self._token + 1 if self._token < 0xFFFF else TOKEN_FIRST
        return self._token

    def notify_device(self, dev_num: int, vq: int):
        """Tell the device that buffers are available (EVENT_AVAIL in band, else out of band)."""
        if self.in_band:
            frame = self.encode("EVENT_AVAIL", "event", {"vq_index": vq, "next_offset": 0}, dev_num=dev_num)
            self.counts["events"] += 1
            yield from self._send_to_device(frame, dev_num)
        else:
            yield from self.signal_device(dev_num, vq)

    def deliver_to_driver(self, data):
        """Bytes read on the driver side: match a response or hand an event to the driver.

        Returns the driver's handler work for an event (a generator the receive context runs), or None.
        """
        try:
            frame = self.layout.decode(data)
        except DecodeError:
            self.counts["discarded"] += 1  # malformed frames are silently discarded (S-pr28)
            return
        if frame.kind == "response":
            waiting = self._pending.get((frame.bus, frame.dev_num))
            if self.given_up and (late := (frame.bus, frame.dev_num, frame.token)) in self.given_up and not (
                    waiting and waiting[0][1] == frame.token):
                self.given_up.discard(late)  # the answer to a request `call` gave up on: its retry is waiting
                self.counts["discarded"] += 1
                return
            if not waiting:
                self.counts["discarded"] += 1
                return
            if (self.match_tokens or frame.bus and self.has_token) and waiting[0][1] != frame.token:
                entry = next((e for e in waiting if e[1] == frame.token), None)
                if entry is None:  # the late answer to a request given up on (`call` withdrew it)
                    self.counts["discarded"] += 1
                    return
                waiting.remove(entry)
            else:
                entry = waiting.popleft()
            event, token = entry
            if self.has_token and frame.token != token:
                self.counts["token_mismatch"] += 1
            self.counts["responses"] += 1
            event.succeed(frame)
        elif frame.bus:
            if frame.name == "EVENT_DEVICE":
                dev_num, state = frame.fields["device_number"], frame.fields["device_bus_state"]
                if state & DEVICE_REMOVED:
                    self.removed_for_driver.add(dev_num)
                else:
                    self.removed_for_driver.discard(dev_num)
                self.driver.on_device_event(self, dev_num, state)
            else:
                self.bus_event(frame)
        else:
            return self.driver.on_event(self, frame)
        return None

    # --- device side ------------------------------------------------------------------------------

    def notify_driver(self, dev_num: int, vq: int):
        """Tell the driver that buffers were used (EVENT_USED in band, else out of band)."""
        if self.in_band:
            frame = self.encode("EVENT_USED", "event", {"vq_index": vq}, dev_num=dev_num)
            self.counts["events"] += 1
            yield from self._send_to_driver(frame, dev_num)
        else:
            yield from self.signal_driver(dev_num, vq)

    def event_to_driver(self, dev_num: int, frame: bytes):
        """A device event other than EVENT_USED (EVENT_CONFIG)."""
        self.counts["events"] += 1
        yield from self._send_to_driver(frame, dev_num)

    def deliver_to_device(self, data):
        """Bytes read on the device side: answer bus messages, hand transport messages to the device.

        Returns the device side's own work when answering took some (mapping a shared region): a
        generator the receive context runs, the answer leaving once it is done; else None.
        """
        answered = self.answer(data)
        if self._owed:
            return self._answer_after(answered)
        if answered is not None:
            self.send_answer(answered)
        return None

    def _answer_after(self, answered):
        yield from self.device_work(self.settle_owed())
        self.send_answer(answered)

    def send_answer(self, answered) -> None:
        """Send the device side's answer, (response, dev_num) or None, after its lateness if it has one; the
        device side goes on meanwhile."""
        late = self.settle_late()
        if answered is not None:
            self.env.process(self._send_later(late, *answered) if late else self._send_to_driver(*answered))

    def _send_later(self, late: int, frame: bytes, dev_num: int):
        yield self.env.timeout(late)
        yield from self._send_to_driver(frame, dev_num)

    def owe(self, ns: int) -> None:
        """Device-side time spent while answering, paid before the answer leaves."""
        self._owed += ns

    def delay_answer(self, ns: int) -> None:
        """The answer being made leaves `ns` late, without holding the device side up."""
        self._late += ns

    def settle_owed(self) -> int:
        """The device-side time `owe`d while answering, now to be paid (and no longer owed)."""
        owed, self._owed = self._owed, 0
        return owed

    def settle_late(self) -> int:
        """How late the answer just made leaves (`delay_answer`), now to be waited (and no longer pending)."""
        late, self._late = self._late, 0
        return late

    def device_work(self, ns: int):
        """`ns` of device-side work in the running context (a plug-in may run it on its vCPUs)."""
        yield self.env.timeout(ns)

    def answer(self, data):
        """The device side's answer to received bytes, (response, dev_num), or None (an event, a discard).

        `deliver_to_device` sends it back over the bus; a synchronous bus (FF-A direct messages) returns
        it in the same call instead.
        """
        try:
            frame = self.layout.decode(data)
        except DecodeError:
            self.counts["discarded"] += 1
            return None
        if frame.bus:
            response = self.answer_bus_message(frame)
        else:
            device = self.devices.get(frame.dev_num)
            if device is None or device.added_at is not None and device.added_at > self.env.now:
                self.counts["discarded"] += 1
                return None
            response = device.on_frame(frame)
        return None if response is None else (response, frame.dev_num)

    def answer_bus_message(self, frame):
        """The device side's response to a bus message, or None (discarded, or the answer is lost); a plug-in
        with bus messages of its own answers them and hands the rest to this."""
        fields = frame.fields
        if frame.name == "GET_DEVICES":
            offset, count = fields["offset"], fields["count"]
            bitmap = bytearray(-(-count // 8))  # a byte per 8 device numbers started
            present = self.present_devices()
            for n in present:
                if offset <= n < offset + count:
                    bitmap[(n - offset) // 8] |= 1 << ((n - offset) % 8)
            more = [n for n in present if n >= offset + count]
            next_offset = (offset + count) if more else 0
            return self.encode("GET_DEVICES", "response",
                                {"offset": offset, "count": count, "next_offset": next_offset,
                                 "bitmap": bytes(bitmap)}, token=frame.token)
        if frame.name == "PING":
            return self.encode("PING", "response", {"data": fields["data"]}, token=frame.token)
        if frame.name in self.mechanism.answers:
            return self.mechanism.answer(frame)
        self.counts["discarded"] += 1
        return None

    # --- transport and its hooks ----------------------------------------------------------------------------

    def _send_to_device(self, frame: bytes, dev_num: int):
        self._check_size(frame)
        yield from self.carry_to_device(frame, dev_num)

    def _send_to_driver(self, frame: bytes, dev_num: int):
        self._check_size(frame)
        yield from self.carry_to_driver(frame, dev_num)

    def withdrawn(self, frame: bytes, dev_num: int) -> bool:
        """True (and counted) for a transport frame to a device the driver has been told is removed: a plug-in
        whose frames may wait before they go on the wire (an FF-A caller queued on the endpoint's lock) asks
        this once the wait is over, so that nothing reaches a removed device after its removal was taken in."""
        if dev_num not in self.removed_for_driver or self.layout.decode(frame).bus:
            return False
        self.counts["withdrawn"] = self.counts.get("withdrawn", 0) + 1
        return True

    def _check_size(self, frame: bytes) -> None:
        if len(frame) > self.max_msg_size:
            raise SimulationError(
                f"{self.name}: a {len(frame)}-byte frame exceeds the bus maximum of {self.max_msg_size}")

    def forget_events(self, dev_num: int) -> None:
        """A device was reset: events it left on the device side that have not yet gone on the wire are dropped
        (a reset device sends nothing). A plug-in that holds events back (FF-A's for EVENT_POLL) drops them."""

    def bus_event(self, frame) -> None:
        """A bus event for the driver other than EVENT_DEVICE (a region given back: SHM_RELEASE, FF-A
        AREA_RELEASE), for the sharing mechanism; unknown ones are discarded."""
        if not self.mechanism.bus_event(frame):
            self.counts["discarded"] += 1

    def carry_to_device(self, frame: bytes, dev_num: int):
        """Put `frame` on the bus toward the device side (a generator: the sender's time passes)."""
        raise NotImplementedError

    def carry_to_driver(self, frame: bytes, dev_num: int):
        raise NotImplementedError

    def signal_device(self, dev_num: int, vq: int):
        """Out-of-band notification of virtqueue `vq` (a generator), for a bus whose `in_band` is False."""
        raise SimulationError(f"{self.name}: this bus has no out-of-band notification")

    def signal_driver(self, dev_num: int, vq: int):
        raise SimulationError(f"{self.name}: this bus has no out-of-band notification")

    # --- costs seen by the virtqueues -------------------------------------------------------------

    driver_memory = None  # MemoryCost of the driver touching ring memory; a plug-in sets both
    device_memory = None
