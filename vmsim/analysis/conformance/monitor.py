"""The conformance monitor: every rule of `rules.RULES` over a frame log, fed a chunk at a time.

Two passes per chunk keep it cheap on long runs. The notifications that make up most of a run's frames
(EVENT_AVAIL, EVENT_USED) are judged with numpy: their size, sender and token column by column, their
timing against the status and removal timelines the control frames build. Everything else (requests,
responses, status writes, bus messages: a few per request at most) goes through one loop in log order that
keeps what each side knows:

- the driver's side of a device: the status it wrote and the status the device reported back to it, whether
  it reset the device and asked GET_DEVICE_INFO, the features offered and accepted, whether it has been
  told the device was removed;
- the device's side: the status it holds (from the requests it received and the answers it sent);
- the bus: requests delivered and not yet answered, per bus, device number and requester.

A frame is judged where its rule puts the duty: what a side sends by the frame as sent (`tx`), what it
knows by what was delivered to it (`rx`). A capture line is both at once. A status or removal takes effect
for the driver when the answer or event reaches it, for the device when the request reaches it or it sends
its answer. Requests still unanswered at the end of the log are not judged (the log may end mid-exchange).
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vmsim.errors import DecodeError
from vmsim.wire import get_layout
from vmsim.wire.virtio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK

from .frames import FrameChunk
from .rules import RULE_IDS, SECTIONS

NEEDS_RESET = 0x40  # DEVICE_NEEDS_RESET: the device's bit, which the driver does not write back
FAILED = 0x80
RING_RESET_BIT = 40  # VIRTIO_F_RING_RESET
READY, REMOVED = 0x0001, 0x0002  # EVENT_DEVICE device_bus_state
HOT = ("EVENT_AVAIL", "EVENT_USED")
ALLOWED_WHILE_INACTIVE = ("GET_DEVICE_INFO", "GET_DEVICE_STATUS", "SET_DEVICE_STATUS")
NEEDS_DEVICE_INFO = ("GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES", "GET_VQUEUE", "SET_VQUEUE", "RESET_VQUEUE")
NAMES_ITS_DEVICE = ("ERROR", "SHM_SHARE", "SHM_UNSHARE", "SHM_RELEASE")
"""Bus messages whose layout puts a device number in dev_num: FF-A 2026's ERROR (L-26) and vmsim-share's."""
STEP_BEFORE = {DRIVER: ACKNOWLEDGE, FEATURES_OK: DRIVER, DRIVER_OK: FEATURES_OK}
STATUS_NAMES = {ACKNOWLEDGE: "ACKNOWLEDGE", DRIVER: "DRIVER", FEATURES_OK: "FEATURES_OK",
                DRIVER_OK: "DRIVER_OK", NEEDS_RESET: "DEVICE_NEEDS_RESET", FAILED: "FAILED"}
SHOWN = 20  # violations kept per rule; the counts have them all
REQUEST, RESPONSE, EVENT = 0, 1, 2
TO_DRIVER, TO_DEVICE, EITHER = 0, 1, 2


def status_text(status: int) -> str:
    bits = [name for bit, name in STATUS_NAMES.items() if status & bit]
    return "|".join(bits) if bits else "0"


class _Message:
    """What the monitor needs of one message of one layout, worked out once per (layout, type, msg_id)."""

    __slots__ = ("bus", "kind", "name", "plain_size", "sender", "spec")

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.bus = spec.bus
        self.kind = {"request": REQUEST, "response": RESPONSE, "event": EVENT}[spec.kind]
        self.plain_size = spec.size if spec.fast_unpack is not None else None
        self.sender = _sender(spec)


def _sender(spec) -> int | None:
    """The side that sends this request or event (None: a response, or a message the rule cannot place)."""
    if spec.kind == "response":
        return None
    if spec.kind == "request":
        if spec.bus and spec.name == "PING":
            return EITHER
        return TO_DEVICE
    if spec.name == "EVENT_AVAIL":
        return TO_DEVICE
    if spec.name in ("EVENT_USED", "EVENT_CONFIG", "EVENT_DEVICE") or (spec.bus and spec.msg_id >= 0xC0):
        return TO_DRIVER
    return None


class _DriverSide:
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


class ConformanceMonitor:
    """Feed it frame chunks in log order (`feed`), then read `report()`; state carries across chunks."""

    def __init__(self):
        self.counts = {rule: [0, 0, 0] for rule in RULE_IDS}  # checked, violations, not checkable
        self.found: dict[str, list[dict]] = {rule: [] for rule in RULE_IDS}
        self.frames = 0
        self._drivers: dict[tuple[str, int], _DriverSide] = {}
        self._device_status: dict[tuple[str, int], int] = {}
        self._device_removed: dict[tuple[str, int], bool] = {}
        self._outstanding: dict[tuple, deque] = {}
        self._polls_answered: dict[str, set] = {}
        self._messages: dict[tuple[str, int, int], _Message | None] = {}

    # -- reporting --------------------------------------------------------------------------------

    def _checked(self, rule: str, n: int = 1) -> None:
        self.counts[rule][0] += n

    def _unknown(self, rule: str, n: int = 1) -> None:
        self.counts[rule][2] += n

    def _violation(self, rule: str, chunk: FrameChunk, i: int, dev_num: int, message: str) -> None:
        self.counts[rule][1] += 1
        if len(self.found[rule]) < SHOWN:
            self.found[rule].append({"rule": rule, "row": int(chunk.rows[i]), "time_ns": int(chunk.time[i]),
                                     "bus": chunk.buses[chunk.bus[i]], "dev_num": int(dev_num),
                                     "message": message})

    def report(self, shown: int = SHOWN) -> dict:
        """`{"status", "frames", "rules": {id: {section, checked, violations, not_checkable}}, "violations"}`:
        the first `shown` violations over all rules, in log order."""
        rules = {rule: {"section": SECTIONS[rule], "checked": checked, "violations": bad, "not_checkable": unknown}
                 for rule, (checked, bad, unknown) in self.counts.items()}
        every = sorted((v for found in self.found.values() for v in found), key=lambda v: (v["row"], v["rule"]))
        failed = any(entry["violations"] for entry in rules.values())
        return {"status": "failed" if failed else "ok", "frames": self.frames, "rules": rules,
                "violations_total": sum(entry["violations"] for entry in rules.values()),
                "violations": every[:shown]}

    # -- one chunk --------------------------------------------------------------------------------

    def feed(self, chunk: FrameChunk) -> None:
        """Judge the frames of `chunk` (the next ones in log order)."""
        if not len(chunk):
            return
        self.frames += int(np.count_nonzero(chunk.sent))
        head = _Heads(chunk)
        keys = head.layout_code.astype(np.int64) << 16 | head.type << 8 | head.msg_id
        unique, inverse = _small_unique(keys)
        messages = [self._message(head.layout_names[key >> 16], (key >> 8) & 0xFF, key & 0xFF) for key in unique]
        names = np.array([m.name if m else "" for m in messages], dtype=object)[inverse]
        kinds = np.array([m.kind if m else -1 for m in messages], dtype=np.int8)[inverse]
        is_bus = np.array([bool(m and m.bus) for m in messages], dtype=bool)[inverse]
        sent, delivered = chunk.sent, chunk.delivered  # a capture line is both
        known = kinds >= 0
        self._frame_layout(chunk, head, messages, inverse, sent)
        self._vector_rules(chunk, head, messages, inverse, sent, known, is_bus, kinds)
        hot = np.isin(names, HOT) & ~is_bus & known
        polled = self._poll_buses(chunk)
        control = known & ~head.short & ~hot
        if polled is not None:  # events from the device answer EVENT_POLL there: the loop sees them
            control |= hot & ~chunk.to_device & polled[chunk.bus]
        timelines = _Timelines()
        for i in np.flatnonzero(control).tolist():
            self._control(chunk, head, messages[inverse[i]], i, bool(sent[i]), bool(delivered[i]), timelines)
        self._hot_rules(chunk, head, names, hot & sent, timelines)
        self._removal_rule(chunk, head, known & ~is_bus & sent, timelines)

    def _message(self, layout_name: str, type_: int, msg_id: int) -> _Message | None:
        key = (layout_name, type_, msg_id)
        if key not in self._messages:
            layout = get_layout(layout_name)
            spec = next((s for s in layout.messages if s.type == type_ and s.msg_id == msg_id), None)
            self._messages[key] = _Message(spec) if spec is not None else None
        return self._messages[key]

    # -- column rules -----------------------------------------------------------------------------

    def _frame_layout(self, chunk, head, messages, inverse, sent) -> None:
        rule = "frame-layout"
        for i in np.flatnonzero(sent & head.short).tolist():
            self._violation(rule, chunk, i, -1, f"{int(chunk.length[i])} bytes, shorter than the "
                            f"{int(head.header_size[i])}-byte header")
        self._checked(rule, int(np.count_nonzero(sent & head.short)))
        looked = sent & ~head.short
        truncated = looked & (chunk.length < head.msg_size)
        for code, message in enumerate(messages):
            mine = looked & (inverse == code)
            if not mine.any():
                continue
            if message is None:
                self._unknown_messages(chunk, head, np.flatnonzero(mine))
                continue
            size = message.spec.size
            cut = mine & truncated
            if cut.any():
                wrong = cut & (head.msg_size != size) if size is not None else np.zeros_like(cut)
                for i in np.flatnonzero(wrong).tolist():
                    self._violation(rule, chunk, i, int(head.dev_num[i]), f"{message.name}: msg_size "
                                    f"{int(head.msg_size[i])}, its layout gives {size}")
                self._checked(rule, int(np.count_nonzero(wrong)))
                self._unknown(rule, int(np.count_nonzero(cut & ~wrong)))
            whole = mine & ~truncated
            if message.plain_size is not None:
                wrong = whole & ((head.msg_size != message.plain_size) | (chunk.length != head.msg_size))
                for i in np.flatnonzero(wrong).tolist():
                    self._violation(rule, chunk, i, int(head.dev_num[i]), f"{message.name} {message.spec.kind}: "
                                    f"msg_size {int(head.msg_size[i])}, {int(chunk.length[i])} bytes sent, its "
                                    f"layout gives {message.plain_size}")
                self._checked(rule, int(np.count_nonzero(whole)))
                continue
            layout = get_layout(message.spec.layout)
            seen: dict[bytes, str | None] = {}
            for i in np.flatnonzero(whole).tolist():
                data = chunk.wire(i)
                if data not in seen:
                    seen[data] = _decode_problem(layout, data, int(head.msg_size[i]))
                if seen[data] is not None:
                    self._violation(rule, chunk, i, int(head.dev_num[i]), seen[data])
                self._checked(rule)

    def _unknown_messages(self, chunk, head, rows) -> None:
        rule = "frame-layout"
        for i in rows.tolist():
            type_, msg_id = int(head.type[i]), int(head.msg_id[i])
            layout = head.layout_names[head.layout_code[i]]
            if type_ & 0xFC:
                self._violation(rule, chunk, i, int(head.dev_num[i]), f"type 0x{type_:02x} has reserved bits 2-7 set")
                self._checked(rule)
            elif msg_id < 0x80 or get_layout(layout).header.size_index is None:
                space = "bus" if type_ & 2 else "transport"
                self._violation(rule, chunk, i, int(head.dev_num[i]),
                                f"{layout} has no {space} message 0x{msg_id:02x} of type 0x{type_:02x}")
                self._checked(rule)
            else:  # an implementation-defined message this layout does not define: nothing to judge it by
                self._unknown(rule)

    def _vector_rules(self, chunk, head, messages, inverse, sent, known, is_bus, kinds) -> None:
        judged = sent & known & ~head.short
        # bus-message-dev-num
        names_device = np.array([bool(m and m.bus and m.name in NAMES_ITS_DEVICE) for m in messages],
                                dtype=bool)[inverse]
        bus_rows = judged & is_bus & ~names_device
        wrong = bus_rows & (head.dev_num != 0)
        self._checked("bus-message-dev-num", int(np.count_nonzero(bus_rows)))
        for i in np.flatnonzero(wrong).tolist():
            m = messages[inverse[i]]
            self._violation("bus-message-dev-num", chunk, i, int(head.dev_num[i]),
                            f"bus message {m.name} with dev_num {int(head.dev_num[i])}")
        # sender
        senders = np.array([-1 if m is None or m.sender is None else m.sender for m in messages],
                           dtype=np.int8)[inverse]
        placed = judged & (senders >= 0)
        wrong = placed & (senders != EITHER) & (senders != chunk.to_device.astype(np.int8))
        self._checked("sender", int(np.count_nonzero(placed)))
        self._unknown("sender", int(np.count_nonzero(judged & (senders < 0) & (kinds != RESPONSE))))
        for i in np.flatnonzero(wrong).tolist():
            m = messages[inverse[i]]
            by = "driver" if chunk.to_device[i] else "device side"
            self._violation("sender", chunk, i, int(head.dev_num[i]), f"{m.name} {m.spec.kind} sent by the {by}")
        # tokens of events
        events = judged & (kinds == EVENT)
        with_token = events & (head.token >= 0)
        self._checked("tokens", int(np.count_nonzero(with_token)))
        self._unknown("tokens", int(np.count_nonzero(events & (head.token < 0))))
        for i in np.flatnonzero(with_token & (head.token != 0)).tolist():
            m = messages[inverse[i]]
            self._violation("tokens", chunk, i, int(head.dev_num[i]), f"event {m.name} with token {int(head.token[i])}")

    def _poll_buses(self, chunk) -> np.ndarray | None:
        """Per bus of the chunk: whether its layout has EVENT_POLL (FF-A: a poll is answered by an event)."""
        polled = np.array([any(s.name == "EVENT_POLL" for s in get_layout(name).messages) for name in chunk.layouts],
                          dtype=bool)
        return polled if polled.any() else None

    def _hot_rules(self, chunk, head, names, hot_sent, timelines) -> None:
        """EVENT_AVAIL against the status the driver was told, EVENT_USED against the device's own."""
        rows = np.flatnonzero(hot_sent)
        if not len(rows):
            return
        buses = chunk.bus[rows]
        devs = head.dev_num[rows]
        for bus_code, dev in _pairs(buses, devs):
            key = (chunk.buses[bus_code], dev)
            mine = rows[(buses == bus_code) & (devs == dev)]
            is_avail = names[mine] == "EVENT_AVAIL"
            driver = self._drivers.get(key)
            told = timelines.values(key, "told", mine, driver.reported if driver else 0)
            held = timelines.values(key, "held", mine, self._device_status.get(key, 0))
            status = np.where(is_avail, told, held)
            self._checked("events-after-driver-ok", len(mine))
            for position in np.flatnonzero((status & DRIVER_OK) == 0).tolist():
                i = int(mine[position])
                whose = "the driver was told" if is_avail[position] else "the device holds"
                self._violation("events-after-driver-ok", chunk, i, dev,
                                f"{names[i]} while {whose} status {status_text(int(status[position]))}")

    def _removal_rule(self, chunk, head, transport_sent, timelines) -> None:
        rows = np.flatnonzero(transport_sent)
        if not len(rows):
            return
        buses, devs = chunk.bus[rows], head.dev_num[rows]
        self._checked("no-traffic-after-removal", len(rows))
        for bus_code, dev in _pairs(buses, devs):
            key = (chunk.buses[bus_code], dev)
            mine = rows[(buses == bus_code) & (devs == dev)]
            driver = self._drivers.get(key)
            gone_for_driver = timelines.values(key, "driver_removed", mine, bool(driver and driver.removed))
            gone_for_bus = timelines.values(key, "bus_removed", mine, self._device_removed.get(key, False))
            gone = np.where(chunk.to_device[mine], gone_for_driver, gone_for_bus).astype(bool)
            for i in mine[gone].tolist():
                by = "to the device after the driver received" if chunk.to_device[i] else \
                    "from the device after the bus sent"
                self._violation("no-traffic-after-removal", chunk, i, dev, f"frame {by} EVENT_DEVICE(REMOVED)")

    # -- the control loop --------------------------------------------------------------------------

    def _driver(self, key) -> _DriverSide:
        side = self._drivers.get(key)
        if side is None:
            side = self._drivers[key] = _DriverSide()
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
            side = self._drivers[key] = _DriverSide()  # a new device as far as the driver knows
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

    def _status_write(self, chunk, i, status: int, driver: _DriverSide, key, timelines) -> None:
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

    def _features(self, chunk, i, frame, driver: _DriverSide, dev: int, seen: int) -> None:
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
    def _offered(driver: _DriverSide, frame, seen: int) -> None:
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


def _small_unique(keys: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`np.unique(keys, return_inverse=True)` for keys below 2**20 (layout, type, msg_id), without a sort."""
    present = np.flatnonzero(np.bincount(keys))
    lookup = np.zeros(int(present[-1]) + 1 if len(present) else 1, dtype=np.int64)
    lookup[present] = np.arange(len(present))
    return present, lookup[keys]


def _pairs(buses: np.ndarray, devs: np.ndarray) -> list[tuple[int, int]]:
    """The distinct (bus, dev_num) pairs, as ints."""
    return [(key >> 16, key & 0xFFFF) for key in np.unique(buses.astype(np.int64) << 16 | devs).tolist()]


def _decode_problem(layout, data: bytes, msg_size: int) -> str | None:
    if len(data) != msg_size:
        return f"msg_size {msg_size}, {len(data)} bytes sent"
    try:
        layout.decode(data)
    except DecodeError as exc:
        return str(exc)
    return None


class _Heads:
    """The header fields of every frame of a chunk, read column-wise from the blob."""

    def __init__(self, chunk: FrameChunk):
        self.layout_names = list(dict.fromkeys(chunk.layouts))
        per_bus = np.array([self.layout_names.index(name) for name in chunk.layouts], dtype=np.int32)
        self.layout_code = per_bus[chunk.bus]
        sizes = np.array([get_layout(name).header_size for name in self.layout_names], dtype=np.int64)
        self.header_size = sizes[self.layout_code]
        self.short = chunk.length < self.header_size
        data = np.frombuffer(chunk.blob + bytes(8), dtype=np.uint8)
        start = np.where(self.short, len(chunk.blob), chunk.start)

        def u16(offset):
            return data[start + offset].astype(np.int64) | data[start + offset + 1].astype(np.int64) << 8

        self.type = data[start].astype(np.int64)
        self.msg_id = data[start + 1].astype(np.int64)
        self.dev_num = u16(2)
        eight = self.header_size == 8
        self.token = np.where(eight, u16(4), -1)
        self.msg_size = np.where(eight, u16(6), np.where(self.header_size == 6, u16(4), 40))


class _Timelines:
    """Where, inside one chunk, a (bus, device)'s status or removal changed, per view, and what it was before
    the chunk: the hot frames look up the value in force at their row."""

    def __init__(self):
        self.points: dict[tuple, tuple[list[int], list]] = {}

    def add(self, key, view: str, position: int, value, before) -> None:
        points = self.points.get((key, view))
        if points is None:
            points = self.points[(key, view)] = ([], [before])
        points[0].append(position)
        points[1].append(value)

    def values(self, key, view: str, rows: np.ndarray, now) -> np.ndarray:
        """The value in force at each of `rows`; `now` (the state after the loop) when it did not change."""
        points = self.points.get((key, view))
        if points is None:
            return np.full(len(rows), now)
        positions, values = points
        return np.asarray(values)[np.searchsorted(np.asarray(positions), rows, side="left")]
