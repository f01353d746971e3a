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

The column pass lives in `column_rules`, the loop and the state it keeps in `control`, the column helpers in
`columns`, the status bits and message groups the rules name in `vocabulary`; this module holds the verdicts.
"""

from __future__ import annotations

from collections import deque

import numpy as np

from vmsim.wire import get_layout

from .column_rules import ColumnRules
from .columns import Heads, Timelines, small_unique
from .control import ControlLoop, DriverSide
from .frames import FrameChunk
from .rules import RULE_IDS, SECTIONS
from .vocabulary import HOT, SHOWN, Message

__all__ = ["ConformanceMonitor"]


class ConformanceMonitor(ColumnRules, ControlLoop):
    """Feed it frame chunks in log order (`feed`), then read `report()`; state carries across chunks."""

    def __init__(self):
        self.counts = {rule: [0, 0, 0] for rule in RULE_IDS}  # checked, violations, not checkable
        self.found: dict[str, list[dict]] = {rule: [] for rule in RULE_IDS}
        self.frames = 0
        self._drivers: dict[tuple[str, int], DriverSide] = {}
        self._device_status: dict[tuple[str, int], int] = {}
        self._device_removed: dict[tuple[str, int], bool] = {}
        self._outstanding: dict[tuple, deque] = {}
        self._polls_answered: dict[str, set] = {}
        self._messages: dict[tuple[str, int, int], Message | None] = {}

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
        head = Heads(chunk)
        keys = head.layout_code.astype(np.int64) << 16 | head.type << 8 | head.msg_id
        unique, inverse = small_unique(keys)
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
        timelines = Timelines()
        for i in np.flatnonzero(control).tolist():
            self._control(chunk, head, messages[inverse[i]], i, bool(sent[i]), bool(delivered[i]), timelines)
        self._hot_rules(chunk, head, names, hot & sent, timelines)
        self._removal_rule(chunk, head, known & ~is_bus & sent, timelines)

    def _message(self, layout_name: str, type_: int, msg_id: int) -> Message | None:
        key = (layout_name, type_, msg_id)
        if key not in self._messages:
            layout = get_layout(layout_name)
            spec = next((s for s in layout.messages if s.type == type_ and s.msg_id == msg_id), None)
            self._messages[key] = Message(spec) if spec is not None else None
        return self._messages[key]
