"""The FF-A bus: its bus messages, constants, sharing attributes, bus addresses, register image.

Sources (reference §1.3, §4): the 2025 set is L-ffa-rfc1 / L-ffa-8b, the 2026 set
L-ffa-uapi26 / L-26 protocol.h @e61b1145 (O-new agrees except where noted). Arm DEN0153, the
normative FF-A bus document, was not found: semantics come from code. Bus messages carry type
bit 1 and dev_num 0 (the 2026 ERROR response echoes the failing dev_num).

The message tables are exported as `BUS_2025` / `BUS_2026`; `vmsim.wire.layouts` appends them
to v1 as the ``ffa-2025`` / ``ffa-2026`` layouts.
"""

from __future__ import annotations

import struct
import uuid
from dataclasses import dataclass
from enum import IntEnum, IntFlag

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import readable_bytes
from vmsim.wire.fields import Message, event, pair, reserved, u8, u16, u32, u64

# -- bus messages ----------------------------------------------------------------------------

VERSION, AREA_SHARE, AREA_UNSHARE, RESET, EVENT_POLL = 0x80, 0x81, 0x82, 0x83, 0x84
EVENT_CONFIGURE, FIFO_CONFIGURE, ERROR = 0x85, 0x86, 0x87
AREA_RELEASE = 0xC0  # event, device -> driver

BUS_2025 = (
    *pair(
        "VERSION",
        VERSION,
        (u32("driver_version"), u32("vmsg_revision"), u32("vmsg_features"), u32("features"), u16("area_num")),
        (u32("device_version"), u32("vmsg_revision"), u32("vmsg_features"), u32("features"), u16("area_num")),
        bus=True,
    ),
    # The 64-bit fields sit unaligned at payload offsets 2 and 10 (packed struct, L-ffa-rfc1).
    *pair(
        "AREA_SHARE",
        AREA_SHARE,
        (u16("area_id"), u64("mem_handle"), u64("tag"), u32("count"), u32("attr")),
        (u16("area_id"), u16("result")),
        bus=True,
    ),
    *pair("AREA_UNSHARE", AREA_UNSHARE, (u16("area_id"),), (u16("area_id"), u16("result")), bus=True),
    *pair("RESET", RESET, (), (), bus=True),
    *pair("EVENT_POLL", EVENT_POLL, (), (), bus=True),
    *event("AREA_RELEASE", AREA_RELEASE, (u16("area_id"),), bus=True),
)

BUS_2026 = (
    # protocol.h adds ffa_version to the uapi@86770cf3 VERSION; O-new still sends the 2025 form.
    *pair(
        "VERSION",
        VERSION,
        (u32("bus_version"), u32("transport_revision"), u32("ffa_version")),
        (
            u32("bus_version"),
            u32("transport_revision"),
            u32("ffa_version"),
            u32("feature_bits"),
            u32("bus_features"),
            u16("max_areas"),
        ),
        bus=True,
    ),
    *pair(
        "AREA_SHARE",
        AREA_SHARE,
        (u16("area_id"), u64("mem_handle"), u64("mem_tag"), u32("page_count"), u32("sharing_attrs")),
        (u16("area_id"), u16("result")),
        bus=True,
    ),
    *pair("AREA_UNSHARE", AREA_UNSHARE, (u16("area_id"),), (u16("area_id"), u16("result")), bus=True),
    *pair("RESET", RESET, (), (u16("result"),), bus=True),
    # An EVENT_POLL response that is not empty *is* the pending event frame (msg_id bit 6 set):
    # it decodes as that event, so only the empty response is declared here.
    *pair("EVENT_POLL", EVENT_POLL, (), (), bus=True),
    *pair(
        "EVENT_CONFIGURE",
        EVENT_CONFIGURE,
        (u8("event_method"), reserved("reserved", "B"), u16("notif_id")),
        (u16("result"),),
        bus=True,
    ),
    *pair(
        "FIFO_CONFIGURE",
        FIFO_CONFIGURE,
        (u64("mem_handle"), u16("page_count"), u16("driver_notif_id")),
        (u16("result"), u16("device_notif_id")),
        bus=True,
    ),
    Message("ERROR", "response", ERROR, (u16("original_msg_id"),), bus=True),
    *event("AREA_RELEASE", AREA_RELEASE, (u16("area_id"),), bus=True),
)

# -- constants -------------------------------------------------------------------------------

DEVICE_ROLE_UUID = uuid.UUID("c66028b5-2498-4aa1-9de7-77da6122abf0")  # 2025+ (L-ffa-rfc1, L-26, O-new)
DRIVER_ROLE_UUID = uuid.UUID("bd7fd089-6795-472b-b47f-db0c5d9a719d")  # 2026 TX target (L-26)
PARTITION_UUID_2024 = uuid.UUID("c5b82091-d4fe-48bb-b7e7-4d246ebb28be")  # L-ffa-2024, "FIXME"

BUS_VERSION_1_0 = 0x0001_0000  # (major << 16) | minor (L-ffa-uapi26, O-new)
NOTIF_ID_INVALID = 0xFFFF  # notification IDs are 0..63 (L-26)
MAX_FRAME = 104  # FFA_BUS_MAX_MSG_SIZE (L-26)


class Result(IntEnum):
    """``result`` of AREA_SHARE / AREA_UNSHARE / RESET / EVENT_CONFIGURE / FIFO_CONFIGURE."""

    SUCCESS = 0
    ERROR = 1
    BUSY = 2  # e.g. unshare while the device still maps the area


class BusFeature(IntFlag):
    """VERSION feature bits: bits 0-3 in 2025 (L-ffa-rfc1), 4-6 added in 2026 (L-26).

    A transfer method is usable only if both its RX and TX bits are set (L-26 xfer.h).
    """

    DIRECT_RX = 1 << 0
    DIRECT_TX = 1 << 1
    INDIRECT_RX = 1 << 2
    INDIRECT_TX = 1 << 3
    NOTIF_RX = 1 << 4
    NOTIF_TX = 1 << 5
    FIFO = 1 << 6


class EventMethod(IntEnum):
    """EVENT_CONFIGURE ``event_method`` (L-26; O-new rejects INDIRECT)."""

    POLL = 0
    NOTIF = 1
    INDIRECT = 2
    FIFO = 3


class SharingType(IntEnum):
    SHARE = 0
    LEND = 1
    DONATE = 2


class Shareability(IntEnum):
    NON = 0
    OUTER = 2
    INNER = 3


class Cacheability(IntEnum):
    NON = 1
    WRITE_BACK = 3


class MemoryType(IntEnum):
    UNSPECIFIED = 0
    DEVICE = 1
    NORMAL = 2


_ATTR_RESERVED = ~0xFFF & 0xFFFF_FFFF


@dataclass(frozen=True, slots=True)
class SharingAttrs:
    """The 2026 AREA_SHARE ``sharing_attrs`` word (L-26 protocol.h).

    bits 1:0 type, 2 writeable, 3 executable, 5:4 shareability, 7:6 cacheability,
    9:8 memory type, 10 non-secure, 11 driver retention requested; 31:12 reserved (zero).
    The two-bit fields are kept as plain ints so that values the enums do not name survive a
    round trip; the enums above name the documented ones.
    """

    type: int = SharingType.SHARE
    writeable: bool = True
    executable: bool = False
    shareability: int = Shareability.INNER
    cacheability: int = Cacheability.WRITE_BACK
    memory_type: int = MemoryType.NORMAL
    non_secure: bool = True
    driver_retention: bool = False

    def encode(self) -> int:
        for name in ("type", "shareability", "cacheability", "memory_type"):
            value = getattr(self, name)
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 3:
                raise EncodeError(f"sharing_attrs: field {name!r}: {value!r} is not a 2-bit value")
        return (
            self.type
            | bool(self.writeable) << 2
            | bool(self.executable) << 3
            | self.shareability << 4
            | self.cacheability << 6
            | self.memory_type << 8
            | bool(self.non_secure) << 10
            | bool(self.driver_retention) << 11
        )

    @classmethod
    def decode(cls, word: int) -> SharingAttrs:
        if type(word) is not int or not 0 <= word <= 0xFFFF_FFFF:
            raise DecodeError(f"sharing_attrs: {word!r} is not a 32-bit word")
        if word & _ATTR_RESERVED:
            raise DecodeError(f"sharing_attrs: reserved bits 31:12 are set in 0x{word:08x}")
        return cls(
            type=word & 3,
            writeable=bool(word >> 2 & 1),
            executable=bool(word >> 3 & 1),
            shareability=word >> 4 & 3,
            cacheability=word >> 6 & 3,
            memory_type=word >> 8 & 3,
            non_secure=bool(word >> 10 & 1),
            driver_retention=bool(word >> 11 & 1),
        )


SHARE_RW_XN_INNER_WB_NORMAL_NS = 0x6F4  # the L-26 default, == SharingAttrs().encode()

# -- the RFC 2025 bus (L-ffa-rfc1) ---------------------------------------------------------------

RFC2025_FEATURES = 0xF  # its VERSION knows DIRECT_RX/TX and INDIRECT_RX/TX only
RFC2025_MAX_AREAS = 0xFF  # area ids are 8-bit under `area_id << 56`
RFC2025_GET_DEVICES = 0xFF  # the count its driver asks GET_DEVICES for
RFC2025_MAX_DEVICES = 16  # and the devices that driver supports

# -- bus addresses ---------------------------------------------------------------------------

AREA_SHIFT = 48  # L-ffa-8b, L-26: 16-bit area id, 48-bit offset (also the 2024 form)
AREA_SHIFT_RFC2025 = 56  # L-ffa-rfc1: 8-bit area id, 56-bit offset


def bus_address(area_id: int, offset: int, shift: int = AREA_SHIFT) -> int:
    """The DMA address a device sees for `offset` into shared area `area_id`."""
    if type(area_id) is not int or not 0 <= area_id < 1 << (64 - shift):
        raise EncodeError(f"bus address: area_id {area_id!r} does not fit {64 - shift} bits")
    if type(offset) is not int or not 0 <= offset < 1 << shift:
        raise EncodeError(f"bus address: offset {offset!r} does not fit {shift} bits")
    return area_id << shift | offset


def split_bus_address(address: int, shift: int = AREA_SHIFT) -> tuple[int, int]:
    """(area_id, offset) of a bus address; the inverse of `bus_address`."""
    if type(address) is not int or not 0 <= address < 1 << 64:
        raise DecodeError(f"bus address: {address!r} is not a 64-bit address")
    return address >> shift, address & ((1 << shift) - 1)


# -- FFA_MSG_SEND_DIRECT_REQ2 / RESP2 register image -------------------------------------------

DIRECT_REQ2_REGISTERS = 14  # x4..x17
DIRECT_REQ2_BYTES = 8 * DIRECT_REQ2_REGISTERS  # 112
_REGISTERS = struct.Struct(f"<{DIRECT_REQ2_REGISTERS}Q")
_MSG_SIZE_OFFSET = 6  # in the 8-byte header of every layout the FF-A bus carries


def pack_direct_req2(frame: bytes) -> bytes:
    """The 112-byte x4..x17 image of `frame`: the frame at byte 0, the rest zero (L-26 xfer_direct.c)."""
    if not isinstance(frame, bytes | bytearray | memoryview):
        raise EncodeError(f"direct_req2: expected frame bytes, got {type(frame).__name__}")
    frame = bytes(frame)  # a memoryview's len counts elements of its format, not bytes
    length = len(frame)
    if not 8 <= length <= MAX_FRAME:
        raise EncodeError(f"direct_req2: field 'msg_size': a {length}-byte frame is outside 8..{MAX_FRAME}")
    msg_size = frame[6] | frame[7] << 8
    if msg_size != length:
        raise EncodeError(f"direct_req2: field 'msg_size' is {msg_size}, but the frame has {length} bytes")
    return bytes(frame) + bytes(DIRECT_REQ2_BYTES - length)


def unpack_direct_req2(image) -> bytes | None:
    """The frame held in a register image, or None for the all-zero "busy" sentinel (L-26)."""
    image = readable_bytes(image, "direct_req2")
    if len(image) != DIRECT_REQ2_BYTES:
        raise DecodeError(f"direct_req2: image at offset 0: {len(image)} bytes, expected {DIRECT_REQ2_BYTES}")
    if not any(image):
        return None
    msg_size = image[_MSG_SIZE_OFFSET] | image[_MSG_SIZE_OFFSET + 1] << 8
    if not 8 <= msg_size <= MAX_FRAME:
        raise DecodeError(
            f"direct_req2: field 'msg_size' at offset {_MSG_SIZE_OFFSET}: {msg_size} is outside 8..{MAX_FRAME}"
        )
    for offset in range(msg_size, DIRECT_REQ2_BYTES):
        if image[offset]:
            raise DecodeError(f"direct_req2: padding at offset {offset}: bytes past msg_size must be zero")
    return bytes(image[:msg_size])


def image_to_registers(image: bytes) -> tuple[int, ...]:
    """The image as the 14 little-endian 64-bit registers x4..x17."""
    image = readable_bytes(image, "direct_req2")
    if len(image) != DIRECT_REQ2_BYTES:
        raise DecodeError(f"direct_req2: image at offset 0: {len(image)} bytes, expected {DIRECT_REQ2_BYTES}")
    return _REGISTERS.unpack(image)


def registers_to_image(registers) -> bytes:
    """x4..x17 (14 ints) back to the 112-byte image."""
    registers = tuple(registers)
    if len(registers) != DIRECT_REQ2_REGISTERS:
        raise EncodeError(f"direct_req2: expected {DIRECT_REQ2_REGISTERS} registers, got {len(registers)}")
    for number, value in enumerate(registers, start=4):
        if type(value) is not int or not 0 <= value < 1 << 64:
            raise EncodeError(f"direct_req2: register x{number}: {value!r} is not a 64-bit value")
    return _REGISTERS.pack(*registers)
