"""The message sets of each virtio-msg generation, by name.

Tables follow the byte-level reference (docs of the project: reference §1-§3); each cites its
source tag. Field names are the spec's (S-pr28) wherever the message exists there.

=============  ======  =============================================================
layout         header  what it is
=============  ======  =============================================================
v1 (default)   8       S-pr28 = L-8b = Q-v1: token, reserved words aligning GET/SET_VQUEUE
draft-6b       6       S-0609 / L-rfc1 / X-xen / O-old: no token, no reserved words
fixed40        4       S-alpha / L-2024: every frame 40 bytes, zero-filled
linux-2026     8       L-26@f3796dd7: UUID + feature blocks, 64-bit GET_SHM, vq flags
ffa-2025       8       v1 + the FF-A bus messages of L-ffa-rfc1 / L-ffa-8b; GET_DEVICES count 0xFF
ffa-2026       8       v1 + the FF-A bus messages of L-ffa-uapi26 / L-26 protocol.h
vmsim-share    8       v1 + vmsim's own share / unshare / release messages (vmsim-defined)
=============  ======  =============================================================
"""

from __future__ import annotations

from functools import cache

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire import ffa, share
from vmsim.wire.fields import Array, Blob, Split, event, pair, replace, reserved, u16, u32, u64
from vmsim.wire.messages import HEADER_6, HEADER_8, HEADER_FIXED40, Layout

DEFAULT_LAYOUT = "v1"


class LayoutError(DecodeError, EncodeError):
    """A layout name that names no layout (the empty string included: it does not mean the default).

    Both a `DecodeError` and an `EncodeError`, so the one a caller already catches around its
    decode or encode also catches a wrong layout name.
    """


def v1_is_event(msg_id: int) -> bool:
    """S-pr28: msg_id bit 6 marks an event (0x40-0x7F standard, 0xC0-0xFF implementation-defined)."""
    return bool(msg_id & 0x40)


def fixed40_is_event(msg_id: int) -> bool:
    """S-alpha: events are numbered from 0x10 (EVENT_CONFIG 0x10, AVAIL 0x11, USED 0x12)."""
    return 0x10 <= msg_id <= 0x1F


def _features() -> Array:
    return Array("features", "I", "num_blocks")


def _data(*, optional: bool = False) -> Array:
    return Array("data", "B", "length", optional=optional)


# -- v1: S-pr28 §3.1, byte-identical to L-8b and Q-v1 (checked by the golden vectors) -----------

V1_TRANSPORT = (
    *pair(
        "GET_DEVICE_INFO",
        0x02,
        (),
        (
            u32("device_id"),
            u32("vendor_id"),
            u32("num_feature_bits"),
            u32("config_size"),
            u32("max_virtqueues"),
            u16("admin_vq_start"),
            u16("admin_vq_count"),
        ),
    ),
    *pair(
        "GET_DEVICE_FEATURES",
        0x03,
        (u32("block_index"), u32("num_blocks")),
        (u32("block_index"), u32("num_blocks"), _features()),
    ),
    *pair("SET_DRIVER_FEATURES", 0x04, (u32("block_index"), u32("num_blocks"), _features()), ()),
    *pair(
        "GET_CONFIG",
        0x05,
        (u32("offset"), u32("length")),
        (u32("generation"), u32("offset"), u32("length"), _data()),
    ),
    # The response's data is an optional echo (S-pr28); length 0 means rejected.
    *pair(
        "SET_CONFIG",
        0x06,
        (u32("generation"), u32("offset"), u32("length"), _data()),
        (u32("generation"), u32("offset"), u32("length"), _data(optional=True)),
    ),
    *pair("GET_DEVICE_STATUS", 0x07, (), (u32("status"),)),
    *pair("SET_DEVICE_STATUS", 0x08, (u32("status"),), (u32("status"),)),
    *pair(
        "GET_VQUEUE",
        0x09,
        (u32("index"),),
        (
            u32("index"),
            u32("max_size"),
            u32("cur_size"),
            reserved("reserved"),  # added 2025-10-18 to 8-byte-align desc_addr (S-pr28)
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
    ),
    *pair(
        "SET_VQUEUE",
        0x0A,
        (
            u32("index"),
            reserved("reserved0"),
            u32("size"),
            reserved("reserved1"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
        (),
    ),
    *pair("RESET_VQUEUE", 0x0B, (u32("index"),), ()),
    *pair("GET_SHM", 0x0C, (u32("index"),), (u32("index"), u32("length"), u32("address"))),
    *event(
        "EVENT_CONFIG",
        0x40,
        (u32("device_status"), u32("generation"), u32("offset"), u32("length"), _data()),
    ),
    # next_offset: bits 30:0 offset, bit 31 wrap; 0 unless VIRTIO_F_NOTIFICATION_DATA (S-pr28).
    *event("EVENT_AVAIL", 0x41, (u32("vq_index"), u32("next_offset"))),
    *event("EVENT_USED", 0x42, (u32("vq_index"),)),
)

V1_BUS = (
    # bitmap[count / 8]: device offset+n is bit n, LSB first in each byte (S-pr28).
    *pair(
        "GET_DEVICES",
        0x02,
        (u16("offset"), u16("count")),
        (u16("offset"), u16("count"), u16("next_offset"), Array("bitmap", "B", "count", unit=8)),
        bus=True,
    ),
    *pair("PING", 0x03, (u32("data"),), (u32("data"),), bus=True),
    *event("EVENT_DEVICE", 0x40, (u16("device_number"), u16("device_bus_state")), bus=True),
)

V1 = V1_TRANSPORT + V1_BUS

# GET_DEVICES offsets and counts go in whole bitmap bytes (S-pr28: count a multiple of 8).
_GET_DEVICES_RULES = {
    ("GET_DEVICES", "request"): (("offset", 8), ("count", 8)),
    ("GET_DEVICES", "response"): (("offset", 8), ("count", 8)),
}

# The RFC 2025 FF-A driver enumerates with GET_DEVICES(offset 0, count 0xFF), a count that is not a multiple
# of 8 (L-ffa-rfc1; O-old: "Kernel uses 0xff"): on ffa-2025 the count is any number of device bits, and
# the bitmap has one byte per 8 started (count 0xFF: 32 bytes, device offset+n still bit n). Offsets stay
# multiples of 8.
GET_DEVICES_FFA_2025 = pair(
    "GET_DEVICES",
    0x02,
    (u16("offset"), u16("count")),
    (u16("offset"), u16("count"), u16("next_offset"), Array("bitmap", "B", "count", unit=8, partial=True)),
    bus=True,
)
_GET_DEVICES_RULES_FFA_2025 = {
    ("GET_DEVICES", "request"): (("offset", 8),),
    ("GET_DEVICES", "response"): (("offset", 8),),
}

# -- draft-6b: S-0609 / L-rfc1 / X-xen / O-old; same IDs, no reserved words (reference §3.1 note) --

DRAFT_6B = replace(
    V1,
    pair(
        "GET_VQUEUE",
        0x09,
        (u32("index"),),
        (
            u32("index"),
            u32("max_size"),
            u32("cur_size"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
    ),
    pair(
        "SET_VQUEUE",
        0x0A,
        (
            u32("index"),
            reserved("reserved"),
            u32("size"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
        (),
    ),
)

# -- linux-2026: L-26@f3796dd7 (post-pr28; no public spec text, reference §10.2) ---------------

LINUX_2026 = replace(
    V1,
    pair(
        "GET_DEVICE_INFO",
        0x02,
        (),
        (
            u32("device_id"),
            u32("vendor_id"),
            Blob("device_uuid", 16),
            u32("num_feature_blocks"),
            u32("config_size"),
            u32("max_virtqueues"),
            u32("admin_vq_start"),
            u32("admin_vq_count"),
        ),
    ),
    pair(
        "GET_VQUEUE",
        0x09,
        (u32("index"),),
        (
            u32("index"),
            u32("max_size"),
            u32("cur_size"),
            u32("flags"),  # bit 0 VQUEUE_F_ENABLED
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
    ),
    pair(
        "SET_VQUEUE",
        0x0A,
        (
            u32("index"),
            u32("flags"),  # SET_VQUEUE_STATE_OP_ENABLE = 1
            u32("size"),
            reserved("reserved"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
        (),
    ),
    pair(
        "GET_SHM",
        0x0C,
        (u32("shmid"),),
        (u32("shmid"), reserved("reserved"), u64("length"), u64("address")),
    ),
    pair(
        "GET_DEVICES",
        0x02,
        (u16("offset"), u16("count")),
        (u16("offset"), u16("next_offset"), u16("count"), Array("bitmap", "B", "count", unit=8)),
        bus=True,
    ),
)

# -- fixed40: S-alpha / L-2024 (reference §3.3, generation A), IDs of the alpha column ---------
# Payload 36 bytes at offset 4, unused bytes must be zero. Config offsets are 24-bit with the
# size in the byte above them; feature data is 32 bytes (eight le32 blocks, as L-2024's le64[4]).
# The reference gives GET/SET_CONFIG one data layout: both responses are taken to carry it.
# No bus messages exist in this generation.


def _config24() -> Split:
    return Split("I", ("offset", 24), ("length", 8))


FIXED40 = (
    *pair("CONNECT", 0x01, (), ()),
    *pair("DISCONNECT", 0x02, (), ()),
    *pair("GET_DEVICE_INFO", 0x03, (), (u32("device_version"), u32("device_id"), u32("vendor_id"))),
    *pair(
        "GET_DEVICE_FEATURES",
        0x04,
        (u32("index"),),
        (u32("index"), Array("features", "I", None, capacity=8)),
    ),
    *pair("SET_DRIVER_FEATURES", 0x05, (u32("index"), Array("features", "I", None, capacity=8)), ()),
    *pair(
        "GET_CONFIG",
        0x06,
        (_config24(),),
        (_config24(), Array("data", "B", "length", capacity=32)),
    ),
    *pair(
        "SET_CONFIG",
        0x07,
        (_config24(), Array("data", "B", "length", capacity=32)),
        (_config24(), Array("data", "B", "length", capacity=32)),
    ),
    *pair("GET_CONFIG_GEN", 0x08, (), (u32("generation"),)),
    *pair("GET_DEVICE_STATUS", 0x09, (), (u32("status"),)),
    *pair("SET_DEVICE_STATUS", 0x0A, (u32("status"),), (u32("status"),)),
    *pair(
        "GET_VQUEUE",
        0x0B,
        (u32("index"),),
        (
            u32("index"),
            u32("max_size"),
            u32("cur_size"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
    ),
    *pair(
        "SET_VQUEUE",
        0x0C,
        (
            u32("index"),
            reserved("reserved"),
            u32("size"),
            u64("desc_addr"),
            u64("driver_addr"),
            u64("device_addr"),
        ),
        (),
    ),
    *pair("RESET_VQUEUE", 0x0D, (u32("index"),), ()),
    *event(
        "EVENT_CONFIG",
        0x10,
        (u32("device_status"), _config24(), Array("data", "B", "length", capacity=16)),
    ),
    *event("EVENT_AVAIL", 0x11, (u32("vq_index"), u32("next_offset"), u32("next_wrap"))),
    *event("EVENT_USED", 0x12, (u32("vq_index"),)),
)


# name -> (header, messages, event rule, sources); compiled on first use.
_TABLES = {
    "v1": (HEADER_8, V1, v1_is_event, "S-pr28 (= L-8b, Q-v1)"),
    "draft-6b": (HEADER_6, DRAFT_6B, v1_is_event, "S-0609 / L-rfc1: 6-byte header"),
    "fixed40": (HEADER_FIXED40, FIXED40, fixed40_is_event, "S-alpha / L-2024: fixed 40-byte frames"),
    "linux-2026": (HEADER_8, LINUX_2026, v1_is_event, "L-26@f3796dd7: post-pr28"),
    "ffa-2025": (
        HEADER_8,
        replace(V1, GET_DEVICES_FFA_2025) + ffa.BUS_2025,
        v1_is_event,
        "v1 + FF-A bus, L-ffa-rfc1 / L-ffa-8b",
    ),
    "ffa-2026": (HEADER_8, V1 + ffa.BUS_2026, v1_is_event, "v1 + FF-A bus, L-ffa-uapi26 / L-26"),
    "vmsim-share": (HEADER_8, V1 + share.MESSAGES, v1_is_event, "v1 + vmsim-defined share messages"),
}


def layout_names() -> tuple[str, ...]:
    return tuple(_TABLES)


@cache
def _compiled(name: str) -> Layout:
    header, messages, is_event, description = _TABLES[name]
    multiples = _GET_DEVICES_RULES_FFA_2025 if name == "ffa-2025" else _GET_DEVICES_RULES
    return Layout(name, header, messages, is_event=is_event, multiples=multiples, description=description)


def get_layout(name: str = DEFAULT_LAYOUT) -> Layout:
    """The compiled layout called `name` (compiled on first use, then shared)."""
    if not isinstance(name, str) or name not in _TABLES:
        raise LayoutError(f"unknown layout {name!r}; choose one of: {', '.join(_TABLES)}")
    return _compiled(name)
