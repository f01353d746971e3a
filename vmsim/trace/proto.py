"""The protocol buffers wire format, as much of it as a Perfetto trace needs, with the standard library alone.

A message is a concatenation of fields; each field is a key (`field_number << 3 | wire_type`, as a varint)
and a value: a varint (wire type 0), eight little-endian bytes (1, fixed64) or a length-prefixed run of
bytes (2: strings, bytes, nested messages and packed repeated numbers). Varints carry seven bits per byte,
least significant group first, the high bit set on every byte but the last; a negative int64 is sent as its
64-bit two's complement (ten bytes). See https://protobuf.dev/programming-guides/encoding/.
"""

from __future__ import annotations

import struct
from functools import cache

VARINT = 0
FIXED64 = 1
LENGTH_DELIMITED = 2

_UINT64 = (1 << 64) - 1


def _encode_varint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    out.append(value)
    return bytes(out)


SMALL_VARINTS = [_encode_varint(value) for value in range(1 << 14)]
"""The one- and two-byte varints (0 to 16,383), the common ones, by value."""


def varint(value: int) -> bytes:
    """`value` as a base-128 varint; a negative one as its 64-bit two's complement, as int64 sends it."""
    if 0 <= value < 1 << 14:
        return SMALL_VARINTS[value]
    return _encode_varint(value & _UINT64)


@cache
def key(number: int, wire_type: int) -> bytes:
    return varint(number << 3 | wire_type)


def varint_field(number: int, value: int) -> bytes:
    """An integer, enum or bool field."""
    return key(number, VARINT) + varint(value)


def fixed64_field(number: int, value: int) -> bytes:
    return key(number, FIXED64) + struct.pack("<Q", value & _UINT64)


def bytes_field(number: int, payload: bytes) -> bytes:
    """A length-delimited field: bytes, or an already encoded nested message."""
    return key(number, LENGTH_DELIMITED) + varint(len(payload)) + payload


def string_field(number: int, text: str) -> bytes:
    return bytes_field(number, text.encode())
