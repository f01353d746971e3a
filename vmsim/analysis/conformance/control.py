"""The control loop: requests, responses, status writes and bus messages in log order, keeping what each
side knows (the driver's view of a device in `DriverSide`, the device's status, the requests outstanding
per bus, device number and requester) and judging the rules that need that state."""

from __future__ import annotations

from collections import deque

from vmsim.errors import DecodeError

from .vocabulary import (
    ALLOWED_WHILE_INACTIVE,
    DRIVER,
    DRIVER_OK,
    EVENT,
    FAILED,
    FEATURES_OK,
    NEEDS_DEVICE_INFO,
    NEEDS_RESET,
    READY,
    REMOVED,
    REQUEST,
    RESPONSE,
    RING_RESET_BIT,
    STATUS_NAMES,
    STEP_BEFORE,
    status_text,
)


class DriverSide:
    """What the driver has done with one device and what it has been told, since the device was (re)added."""

    __slots__ = ("accepted", "info_asked", "offered", "removed", "reported", "reset_flagged", "reset_seen",
                 "written")

    def __init__(self):
        self.written: int | None = None  # the last status written
        self.reported = 0  # the status the device last reported to the driver
        self.reset_seen = False
        self.reset_flagged = False
        self.info_asked = False
        self.offered: dict[int, int] = {}  # feature block -> bits offered
        self.accepted: dict[int, int] = {}  # feature block -> bits the driver set
        self.removed = False


class ControlLoop:
    """The `ConformanceMonitor` methods that walk the control frames one by one."""

    def _driver(self, key) -> DriverSide:
        side = self._drivers.get(key)
        if side is None:
            side = self._drivers[key] = DriverSide()
        return side

    def _control(self, chunk, head, message, i, sent, delivered, timelines) -> None:
        data = chunk.wire(i)
        msg_size = int(head.msg_size[i])
        if len(data) < msg_size:  # a capture cut the frame: read what is there, zeros for the rest
            data = data + bytes(msg_size - len(data))
        try:
            frame = message.spec.decode(data)
        except DecodeError:
            return  # frame-layout has judged it; no other rule can read it
        seen = int(chunk.length[i])
        bus = chunk.buses[chunk.bus[i]]
        key = (bus, int(head.dev_num[i]))
        if sent:
            self._on_sent(chunk, i, message, frame, key, seen, timelines)
        if delivered:
            self._on_delivered(chunk, i, message, frame, key, seen, timelines)

    def _on_sent(self, chunk, i, message, frame, key, seen, timelines) -> None:
        name, kind, bus = message.name, message.kind, key[0]
        if kind == REQUEST and chunk.to_device[i] and not message.bus:
            self._driver_request(chunk, i, name, frame, key, seen, timelines)
        elif kind == RESPONSE:
            self._pair(chunk, i, message, frame, key, timelines)
        elif kind == EVENT and not chunk.to_device[i]:
            self._answer_poll(bus)
            if message.bus and name == "EVENT_DEVICE":
                self._bus_device_event(frame, bus, i, timelines)
            elif name == "EVENT_CONFIG":
                held = self._device_status.get(key, 0)
                self._checked("inactive-device")
                if held == 0:
                    self._violation("inactive-device", chunk, i, key[1], "EVENT_CONFIG from an inactive device "
                                    "(status 0)")

    def _on_delivered(self, chunk, i, message, frame, key, seen, timelines) -> None:
        name, kind, bus = message.name, message.kind, key[0]
        if kind == REQUEST:
            queue_key = (bus, message.bus, key[1], bool(chunk.to_device[i]))
            self._outstanding.setdefault(queue_key, deque()).append((i, frame, int(chunk.rows[i])))
            if not message.bus and chunk.to_device[i]:
                held = self._device_status.get(key, 0)
                self._checked("inactive-device")
                if held == 0 and name not in ALLOWED_WHILE_INACTIVE:
                    self._violation("inactive-device", chunk, i, key[1], f"{name} reached an inactive device "
                                    "(status 0)")
                if name == "SET_DEVICE_STATUS":
                    self._hold(key, frame["status"], i, timelines)
        elif kind == RESPONSE and not chunk.to_device[i]:
            driver = self._driver(key)
            if not message.bus and name in ("SET_DEVICE_STATUS", "GET_DEVICE_STATUS") and seen >= 12:
                self._tell(key, frame["status"], i, timelines)
            elif not message.bus and name == "GET_DEVICE_FEATURES":
                self._offered(driver, frame, seen)
            elif message.bus and name == "RESET":
                self._bus_reset(key[0], i, timelines, for_driver=True)
        elif kind == EVENT and not chunk.to_device[i]:
            if message.bus and name == "EVENT_DEVICE":
                self._driver_device_event(frame, key[0], i, timelines)
            elif name == "EVENT_CONFIG":
                self._tell(key, frame["device_status"], i, timelines)

    # status views ---------------------------------------------------------------------------------

    def _tell(self, key, status: int, i: int, timelines) -> None:
        """The device's status as the driver now knows it."""
        driver = self._driver(key)
        timelines.add(key, "told", i, status, driver.reported)
        driver.reported = status

    def _hold(self, key, status: int, i: int, timelines) -> None:
        """The device's status as the device now holds it."""
        timelines.add(key, "held", i, status, self._device_status.get(key, 0))
        self._device_status[key] = status

    def _bus_reset(self, bus: str, i: int, timelines, *, for_driver: bool) -> None:
        """An FF-A bus RESET answered: every device of the bus is back at status 0, its exchanges dropped."""
        if for_driver:
            for key, side in self._drivers.items():
                if key[0] == bus:
                    self._tell(key, 0, i, timelines)
                    side.written, side.reset_seen = 0, True
        else:
            for key in [key for key in self._device_status if key[0] == bus]:
                self._hold(key, 0, i, timelines)
            for queue_key in [k for k in self._outstanding if k[0] == bus and not k[1]]:
                self._outstanding[queue_key].clear()

    def _bus_device_event(self, frame, bus: str, i: int, timelines) -> None:
        key = (bus, frame["device_number"])
        state = frame["device_bus_state"]
        if state in (READY, REMOVED):
            removed = state == REMOVED
            timelines.add(key, "bus_removed", i, removed, self._device_removed.get(key, False))
            self._device_removed[key] = removed
            self._hold(key, 0, i, timelines)
            for queue_key in [k for k in self._outstanding if k[0] == bus and not k[1] and k[2] == key[1]]:
                self._outstanding[queue_key].clear()

    def _driver_device_event(self, frame, bus: str, i: int, timelines) -> None:
        key = (bus, frame["device_number"])
        state = frame["device_bus_state"]
        if state in (READY, REMOVED):
            before = self._driver(key)
            side = self._drivers[key] = DriverSide()  # a new device as far as the driver knows
            side.removed = state == REMOVED
            timelines.add(key, "driver_removed", i, side.removed, before.removed)
            timelines.add(key, "told", i, 0, before.reported)

    # the driver's requests ---------------------------------------------------------------------------

    def _driver_request(self, chunk, i, name, frame, key, seen, timelines) -> None:
        driver = self._driver(key)
        dev = key[1]
        if name in NEEDS_DEVICE_INFO:
            self._checked("device-info-first")
            if not driver.info_asked:
                self._violation("device-info-first", chunk, i, dev, f"{name} before GET_DEVICE_INFO")
        if name == "GET_DEVICE_INFO":
            driver.info_asked = True
        elif name == "SET_DEVICE_STATUS":
            self._status_write(chunk, i, frame["status"], driver, key, timelines)
        elif name == "SET_DRIVER_FEATURES":
            self._features(chunk, i, frame, driver, dev, seen)
        elif name == "SET_VQUEUE":
            self._checked("queues-after-features-ok")
            if not driver.reported & FEATURES_OK:
                self._violation("queues-after-features-ok", chunk, i, dev, "SET_VQUEUE while the device reported "
                                f"status {status_text(driver.reported)}")
        elif name == "RESET_VQUEUE":
            block = driver.accepted.get(RING_RESET_BIT // 32)
            if block is None:
                self._unknown("ring-reset-negotiated")
            else:
                self._checked("ring-reset-negotiated")
                if not block >> (RING_RESET_BIT % 32) & 1:
                    self._violation("ring-reset-negotiated", chunk, i, dev,
                                    "RESET_VQUEUE without VIRTIO_F_RING_RESET accepted")

    def _status_write(self, chunk, i, status: int, driver: DriverSide, key, timelines) -> None:
        dev = key[1]
        if status == 0:
            driver.written, driver.reset_seen = 0, True
            driver.accepted = {}
            self._tell(key, 0, i, timelines)  # the driver stops relying on the old status as it resets
            return
        self._checked("reset-before-acknowledge")
        if not driver.reset_seen and not driver.reset_flagged:
            driver.reset_flagged = True
            self._violation("reset-before-acknowledge", chunk, i, dev,
                            f"status {status_text(status)} written before any reset (status 0)")
        before = driver.written or 0
        problems = []
        if before & FAILED:
            problems.append(f"{status_text(status)} written after FAILED without a reset")
        cleared = before & ~status & ~NEEDS_RESET
        if cleared:
            problems.append(f"clears {status_text(cleared)}")
        added = status & ~before
        for bit, needed in STEP_BEFORE.items():
            if added & bit and not before & needed:
                problems.append(f"sets {STATUS_NAMES[bit]} without {STATUS_NAMES[needed]} set before")
        if added & DRIVER_OK and before & FEATURES_OK and not driver.reported & FEATURES_OK:
            problems.append("sets DRIVER_OK before the device reported FEATURES_OK kept")
        self._checked("status-order")
        if problems:
            self._violation("status-order", chunk, i, dev,
                            f"status {status_text(before)} -> {status_text(status)}: " + "; ".join(problems))
        driver.written = status

    def _features(self, chunk, i, frame, driver: DriverSide, dev: int, seen: int) -> None:
        written = driver.written or 0
        self._checked("features-before-features-ok")
        if written & FEATURES_OK or not written & DRIVER:
            when = "after FEATURES_OK" if written & FEATURES_OK else "before DRIVER"
            self._violation("features-before-features-ok", chunk, i, dev,
                            f"SET_DRIVER_FEATURES {when} (status {status_text(written)})")
        first, blocks = frame["block_index"], frame["features"]
        offset = frame.spec.offsets["features"]
        unknown = False
        for n, bits in enumerate(blocks):
            if offset + 4 * (n + 1) > seen:
                unknown = True
                continue
            driver.accepted[first + n] = bits
            offered = driver.offered.get(first + n)
            if offered is None:
                unknown = True
            elif bits & ~offered:
                self._violation("features-subset", chunk, i, dev, f"block {first + n}: bits 0x{bits & ~offered:08x} "
                                "set but not offered")
        if unknown:
            self._unknown("features-subset")
        else:
            self._checked("features-subset")

    @staticmethod
    def _offered(driver: DriverSide, frame, seen: int) -> None:
        offset = frame.spec.offsets["features"]
        for n, bits in enumerate(frame["features"]):
            if offset + 4 * (n + 1) <= seen:
                driver.offered[frame["block_index"] + n] = bits

    # pairing -------------------------------------------------------------------------------------------

    def _pair(self, chunk, i, message, frame, key, timelines) -> None:
        bus, dev = key
        name = message.name
        requester_to_device = not chunk.to_device[i]
        queue = None
        wanted = name
        if message.bus and name == "ERROR":  # FF-A: answers whichever request failed, transport or bus
            wanted_id = frame["original_msg_id"]
            for space in (False, True):
                candidate = self._outstanding.get((bus, space, dev if not space else 0, requester_to_device))
                if candidate and any(req.msg_id == wanted_id for _, req, _ in candidate):
                    queue = candidate
                    wanted = next(req.name for _, req, _ in candidate if req.msg_id == wanted_id)
                    break
        else:
            queue = self._outstanding.get((bus, message.bus, dev, requester_to_device))
        self._checked("response-pairing")
        if not queue:
            if name == "EVENT_POLL" and frame.token in self._polls_answered.get(bus, set()):
                self._polls_answered[bus].discard(frame.token)  # the event was unsolicited; this is the answer
                return
            self._violation("response-pairing", chunk, i, dev, f"{name} response with no request outstanding")
            return
        position = next((n for n, (_, req, _) in enumerate(queue) if req.name == wanted), None)
        if position is None:
            self._violation("response-pairing", chunk, i, dev, f"{name} response while the request outstanding is "
                            f"{queue[0][1].name}")
            return
        _, request, request_row = queue[position]
        del queue[position]
        if position:
            self._violation("response-pairing", chunk, i, dev, f"{name} response overtakes {position} earlier "
                            f"request(s) ({queue[0][1].name} first, row {queue[0][2]})")
        if frame.token is not None:
            self._checked("tokens")
            if frame.token != request.token:
                self._violation("tokens", chunk, i, dev, f"{name} response token {frame.token}, its request "
                                f"(row {request_row}) carried {request.token}")
        else:
            self._unknown("tokens")
        if name == "PING" and message.bus:
            self._checked("ping-echo")
            if frame["data"] != request["data"]:
                self._violation("ping-echo", chunk, i, dev, f"PING data 0x{frame['data']:x}, asked 0x{request['data']:x}")
        if not message.bus and name in ("SET_DEVICE_STATUS", "GET_DEVICE_STATUS"):
            self._hold(key, frame["status"], i, timelines)
        elif message.bus and name == "RESET":
            self._bus_reset(bus, i, timelines, for_driver=False)

    def _answer_poll(self, bus: str) -> None:
        """On FF-A a pending event may be the answer to the oldest EVENT_POLL."""
        queue = self._outstanding.get((bus, True, 0, True))
        if queue and queue[0][1].name == "EVENT_POLL":
            _, poll, _ = queue.popleft()
            self._polls_answered.setdefault(bus, set()).add(poll.token)
