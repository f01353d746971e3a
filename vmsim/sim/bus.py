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
up platform costs and the devices on the bus) and supplies the transport: `_to_device(frame, dev_num)` / `_to_driver(frame, dev_num)`
generators that put bytes on the bus, and out-of-band notification if it has one. Received bytes
come back through `deliver_to_device` / `deliver_to_driver`; a synchronous transport takes the device's
answer from `answer` instead, and a plug-in's own bus requests are registered with `expect_response`.
"""

from __future__ import annotations

from collections import deque

from vmsim.errors import DecodeError
from vmsim.sim.core import Component, Simulation, SimulationError
from vmsim.wire import get_layout

MSG_SIZE_OFFSET = {8: 6, 6: 4}  # where msg_size sits in the 8-byte (v1) and 6-byte (draft) headers
FIXED_FRAME = 40  # the 2024 layout has no msg_size: every frame is 40 bytes
PAYLOAD_BASE = 0x8000_0000  # bus address of request buffers when the bus does not map them (not simulated bytes)
TOKEN_FIRST = 2  # 0 marks events and 1 is the fixed token of bus requests (L-26 provider.h)
DEVICE_READY = 0x0001
DEVICE_REMOVED = 0x0002


class Bus(Component):
    """Base of every bus plug-in (AMP, Xen, FF-A)."""

    match_tokens = False
    """Match a response to its request by token instead of by order (L-26 FF-A keys exchanges on
    (dev_num, token)): for buses whose responses may overtake each other."""

    def __init__(self, sim: Simulation, name: str, *, layout: str, max_msg_size: int, in_band: bool):
        super().__init__(sim, name)
        self.layout = get_layout(layout)
        self.has_token = self.layout.header_size == 8
        self.max_msg_size = max_msg_size
        self.in_band = in_band
        self.bus_id = sim.log.add_bus(name, layout)
        self.driver = None
        self.devices: dict[int, object] = {}
        self._pending: dict[tuple[bool, int], deque] = {}
        self._token = TOKEN_FIRST - 1
        self.counts = sim.counter(name)
        self.counts.update(requests=0, responses=0, events=0, discarded=0, token_mismatch=0)
        self._encode = self.layout.encode

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
        """Start the plug-in's own processes (handshakes); announce hot-plugged devices later."""
        for device in self.devices.values():
            if device.added_at is not None and device.added_at > 0:
                self.env.process(self._announce(device))

    def _announce(self, device):
        yield self.env.timeout(device.added_at)
        frame = self._encode("EVENT_DEVICE", "event",
                             {"device_number": device.dev_num, "device_bus_state": DEVICE_READY})
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

    def next_token(self) -> int:
        """The bus owns the token: 2, 3, ... 0xFFFF, then 2 again (L-26)."""
        self._token = self._token + 1 if self._token < 0xFFFF else TOKEN_FIRST
        return self._token

    def notify_device(self, dev_num: int, vq: int):
        """Tell the device that buffers are available (EVENT_AVAIL in band, else out of band)."""
        if self.in_band:
            frame = self._encode("EVENT_AVAIL", "event", {"vq_index": vq, "next_offset": 0}, dev_num=dev_num)
            self.counts["events"] += 1
            yield from self._send_to_device(frame, dev_num)
        else:
            yield from self._notify_out_of_band_to_device(dev_num, vq)

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
            if not waiting:
                self.counts["discarded"] += 1
                return
            if self.match_tokens and waiting[0][1] != frame.token:
                entry = next((e for e in waiting if e[1] == frame.token), waiting[0])
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
                self.driver.on_device_event(self, frame.fields["device_number"], frame.fields["device_bus_state"])
            else:
                self._bus_event(frame)
        else:
            return self.driver.on_event(self, frame)
        return None

    # --- device side ------------------------------------------------------------------------------

    def notify_driver(self, dev_num: int, vq: int):
        """Tell the driver that buffers were used (EVENT_USED in band, else out of band)."""
        if self.in_band:
            frame = self._encode("EVENT_USED", "event", {"vq_index": vq}, dev_num=dev_num)
            self.counts["events"] += 1
            yield from self._send_to_driver(frame, dev_num)
        else:
            yield from self._notify_out_of_band_to_driver(dev_num, vq)

    def event_to_driver(self, dev_num: int, frame: bytes):
        """A device event other than EVENT_USED (EVENT_CONFIG)."""
        self.counts["events"] += 1
        yield from self._send_to_driver(frame, dev_num)

    def deliver_to_device(self, data) -> None:
        """Bytes read on the device side: answer bus messages, hand transport messages to the device."""
        answered = self.answer(data)
        if answered is not None:
            self.env.process(self._send_to_driver(*answered))

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
            response = self._answer_bus_message(frame)
        else:
            device = self.devices.get(frame.dev_num)
            if device is None or device.added_at is not None and device.added_at > self.env.now:
                self.counts["discarded"] += 1
                return None
            response = device.on_frame(frame)
        return None if response is None else (response, frame.dev_num)

    def _answer_bus_message(self, frame):
        fields = frame.fields
        if frame.name == "GET_DEVICES":
            offset, count = fields["offset"], fields["count"]
            bitmap = bytearray(count // 8)
            present = self.present_devices()
            for n in present:
                if offset <= n < offset + count:
                    bitmap[(n - offset) // 8] |= 1 << ((n - offset) % 8)
            more = [n for n in present if n >= offset + count]
            next_offset = (offset + count) if more else 0
            return self._encode("GET_DEVICES", "response",
                                {"offset": offset, "count": count, "next_offset": next_offset,
                                 "bitmap": bytes(bitmap)}, token=frame.token)
        if frame.name == "PING":
            return self._encode("PING", "response", {"data": fields["data"]}, token=frame.token)
        self.counts["discarded"] += 1
        return None

    # --- transport hooks ----------------------------------------------------------------------------

    def _send_to_device(self, frame: bytes, dev_num: int):
        self._check_size(frame)
        yield from self._to_device(frame, dev_num)

    def _send_to_driver(self, frame: bytes, dev_num: int):
        self._check_size(frame)
        yield from self._to_driver(frame, dev_num)

    def _check_size(self, frame: bytes) -> None:
        if len(frame) > self.max_msg_size:
            raise SimulationError(
                f"{self.name}: a {len(frame)}-byte frame exceeds the bus maximum of {self.max_msg_size}")

    def _bus_event(self, frame) -> None:
        """A bus event for the driver other than EVENT_DEVICE (FF-A AREA_RELEASE); unknown ones are discarded."""
        self.counts["discarded"] += 1

    def _to_device(self, frame: bytes, dev_num: int):
        raise NotImplementedError

    def _to_driver(self, frame: bytes, dev_num: int):
        raise NotImplementedError

    def _notify_out_of_band_to_device(self, dev_num: int, vq: int):
        raise SimulationError(f"{self.name}: this bus has no out-of-band notification")

    def _notify_out_of_band_to_driver(self, dev_num: int, vq: int):
        raise SimulationError(f"{self.name}: this bus has no out-of-band notification")

    # --- costs seen by the virtqueues -------------------------------------------------------------

    driver_memory = None  # MemoryCost of the driver touching ring memory; a plug-in sets both
    device_memory = None

    # --- request buffers ----------------------------------------------------------------------------
    # A bus that must make each request's buffer visible to the device (Xen grants, FF-A memory
    # shares) sets `buffer_hooks` and overrides these generators; the virtqueues call them around
    # every request. Without hooks the virtqueues skip them entirely (no cost on the hot path).

    buffer_hooks = False

    def share_buffer(self, dev_num: int, vq: int, request):
        """Driver side, before publishing: make the buffer reachable; returns its bus address."""
        return PAYLOAD_BASE
        yield  # a generator: a plug-in's version may take time

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
