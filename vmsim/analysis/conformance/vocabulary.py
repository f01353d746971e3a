"""The monitor's vocabulary: status bits and message groups its rules name, and what it needs of each message
of a layout (`Message`), worked out once per (layout, type, msg_id)."""

from __future__ import annotations

from vmsim.wire.virtio import ACKNOWLEDGE, DRIVER, DRIVER_OK, FEATURES_OK

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


class Message:
    """What the monitor needs of one message of one layout, worked out once per (layout, type, msg_id)."""

    __slots__ = ("bus", "kind", "name", "plain_size", "sender", "spec")

    def __init__(self, spec):
        self.spec = spec
        self.name = spec.name
        self.bus = spec.bus
        self.kind = {"request": REQUEST, "response": RESPONSE, "event": EVENT}[spec.kind]
        self.plain_size = spec.size if spec.fast_unpack is not None else None
        self.sender = message_sender(spec)


def message_sender(spec) -> int | None:
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
