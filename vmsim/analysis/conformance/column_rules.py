"""The column rules: the checks judged column by column with numpy over a whole chunk (frame layout, bus
messages' dev_num, sender, event tokens) and the hot notifications (EVENT_AVAIL, EVENT_USED) judged against
the status and removal timelines the control loop builds."""

from __future__ import annotations

import numpy as np

from vmsim.wire import get_layout

from .columns import decode_problem, device_pairs
from .vocabulary import DRIVER_OK, EITHER, EVENT, NAMES_ITS_DEVICE, RESPONSE, status_text


class ColumnRules:
    """The `ConformanceMonitor` methods that judge a chunk's frames a column at a time."""

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
                    seen[data] = decode_problem(layout, data, int(head.msg_size[i]))
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
        for bus_code, dev in device_pairs(buses, devs):
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
        for bus_code, dev in device_pairs(buses, devs):
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
