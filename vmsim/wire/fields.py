"""Declarative field tables: what each message holds, in wire order.

A message is declared once as a tuple of fields (in the manner of dpkt's ``_MetaPacket``);
`vmsim.wire.messages` compiles each table into one `struct.Struct` per message and layout.
Field objects hold no offsets, so one declaration serves every layout that shares it (the
offsets follow from the header in front). All integers are little-endian and every struct is
packed (reference §intro, S-pr28).

Four kinds of field cover every generation:

* `Scalar`: an unsigned integer (``u8`` .. ``u64``); ``reserved`` words default to 0.
* `Blob`: a fixed run of bytes (the 2026 device UUID).
* `Split`: one integer word holding several sub-fields, low bits first (the 2024 24-bit
  config offset with its 8-bit size in one le32).
* `Array`: the trailing array of a message (``features[]``, ``data[]``, ``bitmap[]``), sized
  by a count field, or a fixed zero-filled slot in the fixed-40 frames.
"""

from __future__ import annotations

import struct

from vmsim.errors import EncodeError


def check_uint(value: object, limit: int, where: str, field: str) -> int:
    """`value` as an int if it is one (IntEnum included, bool not) in [0, limit), else `EncodeError`."""
    is_int = isinstance(value, int) and not isinstance(value, bool)
    if is_int and 0 <= value < limit:
        return int(value)
    if not is_int:
        problem = f"expected an integer, got {type(value).__name__} {value!r}"
    elif value.bit_length() > 64:  # too long to print in full (Python caps int-to-str at 4300 digits)
        problem = f"a {value.bit_length()}-bit integer is out of range 0..{limit - 1}"
    else:
        problem = f"{value} is out of range 0..{limit - 1}"
    raise EncodeError(f"{where}: field {field!r}: {problem}")


def check_bytes(value: object, where: str, field: str) -> bytes:
    """Return `value` as bytes if it is bytes-like, else raise `EncodeError` naming `field`."""
    if isinstance(value, bytes | bytearray | memoryview):
        return bytes(value)
    raise EncodeError(f"{where}: field {field!r}: expected bytes, got {type(value).__name__}")


class Scalar:
    """An unsigned little-endian integer; a ``reserved`` one may be omitted and encodes as 0."""

    __slots__ = ("code", "limit", "name", "reserved", "size")

    def __init__(self, name: str, code: str, *, reserved: bool = False) -> None:
        self.name = name
        self.code = code
        self.size = struct.calcsize("<" + code)
        self.limit = 1 << (8 * self.size)
        self.reserved = reserved

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def to_items(self, values: dict, where: str) -> tuple:
        if self.name in values:
            value = values[self.name]
        elif self.reserved:
            value = 0
        else:
            raise EncodeError(f"{where}: missing field {self.name!r}")
        return (check_uint(value, self.limit, where, self.name),)

    def from_items(self, items: tuple) -> tuple:
        return items


class Blob:
    """A fixed number of raw bytes, given and returned as `bytes` of exactly that length."""

    __slots__ = ("code", "name", "size")

    def __init__(self, name: str, size: int) -> None:
        self.name = name
        self.code = f"{size}s"
        self.size = size

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    def to_items(self, values: dict, where: str) -> tuple:
        if self.name not in values:
            raise EncodeError(f"{where}: missing field {self.name!r}")
        data = check_bytes(values[self.name], where, self.name)
        if len(data) != self.size:
            raise EncodeError(f"{where}: field {self.name!r} must be {self.size} bytes, got {len(data)}")
        return (data,)

    def from_items(self, items: tuple) -> tuple:
        return items


class Split:
    """Sub-fields packed low bits first into one integer word (e.g. a 24-bit offset + 8-bit size).

    ``struct`` has no 3-byte integer; a le32 whose low 24 bits are the offset and high 8 bits
    the size is byte-identical to ``u8 offset[3]; u8 size`` (L-2024).
    """

    __slots__ = ("code", "parts", "size")

    def __init__(self, code: str, *parts: tuple[str, int]) -> None:
        self.code = code
        self.size = struct.calcsize("<" + code)
        if sum(bits for _, bits in parts) != 8 * self.size:
            raise ValueError(f"sub-fields {parts} do not fill a {self.size}-byte word")
        self.parts = parts

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.parts)

    def to_items(self, values: dict, where: str) -> tuple:
        word = 0
        shift = 0
        for name, bits in self.parts:
            if name not in values:
                raise EncodeError(f"{where}: missing field {name!r}")
            word |= check_uint(values[name], 1 << bits, where, name) << shift
            shift += bits
        return (word,)

    def from_items(self, items: tuple) -> tuple:
        (word,) = items
        values = []
        for _, bits in self.parts:
            values.append(word & ((1 << bits) - 1))
            word >>= bits
        return tuple(values)


class Array:
    """The trailing array of a message: ``u32`` elements (a list) or bytes.

    ``count`` names the field that sizes it and ``unit`` how many count units one element is
    (1 for ``num_blocks`` and ``length``; 8 for GET_DEVICES, whose ``count`` is in device
    bits, one bitmap byte per 8). When encoding, an omitted count is derived from the array
    and a given one is checked against it. ``capacity`` makes it a fixed zero-filled slot
    (the fixed-40 frames); ``count=None`` with a capacity means always full. ``optional``
    allows an empty array whatever the count says (SET_CONFIG's optional data echo, S-pr28).
    ``partial`` lets the count end inside the last element: the array then holds
    ceil(count / unit) elements (the RFC 2025 FF-A GET_DEVICES asks for 0xFF device bits).
    """

    __slots__ = ("capacity", "count", "elem", "name", "optional", "partial", "unit")

    def __init__(
        self,
        name: str,
        elem: str,
        count: str | None,
        *,
        unit: int = 1,
        capacity: int | None = None,
        optional: bool = False,
        partial: bool = False,
    ) -> None:
        if elem not in ("B", "I"):
            raise ValueError(f"array element code must be 'B' or 'I', not {elem!r}")
        self.name = name
        self.elem = elem
        self.count = count
        self.unit = unit
        self.capacity = capacity
        self.optional = optional
        self.partial = partial

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name,)

    @property
    def elem_size(self) -> int:
        return 4 if self.elem == "I" else 1

    @property
    def is_bytes(self) -> bool:
        return self.elem == "B"


def u8(name: str) -> Scalar:
    return Scalar(name, "B")


def u16(name: str) -> Scalar:
    return Scalar(name, "H")


def u32(name: str) -> Scalar:
    return Scalar(name, "I")


def u64(name: str) -> Scalar:
    return Scalar(name, "Q")


def reserved(name: str, code: str = "I") -> Scalar:
    """A must-be-zero word: kept on decode (so frames re-encode byte for byte), 0 if omitted."""
    return Scalar(name, code, reserved=True)


Field = Scalar | Blob | Split | Array


class Message:
    """One declared message: name, kind, msg_id, bus or transport, and its payload fields."""

    __slots__ = ("bus", "fields", "kind", "msg_id", "name")

    def __init__(self, name: str, kind: str, msg_id: int, fields: tuple, *, bus: bool = False) -> None:
        self.name = name
        self.kind = kind
        self.msg_id = msg_id
        self.bus = bus
        self.fields = fields

    @property
    def key(self) -> tuple[str, str]:
        return (self.name, self.kind)


def pair(name: str, msg_id: int, request: tuple, response: tuple, *, bus: bool = False) -> tuple:
    """A request and its response: the same msg_id, told apart by type bit 0."""
    return (
        Message(name, "request", msg_id, request, bus=bus),
        Message(name, "response", msg_id, response, bus=bus),
    )


def event(name: str, msg_id: int, fields: tuple, *, bus: bool = False) -> tuple:
    return (Message(name, "event", msg_id, fields, bus=bus),)


def replace(messages: tuple, *changes: tuple) -> tuple:
    """`messages` with each message of `changes` swapped in by (name, kind), order kept.

    A change whose (name, kind) is not in `messages` is appended (a message the newer set adds).
    """
    by_key = {m.key: m for group in changes for m in group}
    kept = tuple(by_key.pop(m.key, m) for m in messages)
    return kept + tuple(by_key.values())
