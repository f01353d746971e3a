"""What a frame is made of: a generation's header, the type byte, le32 arrays, and the decoded `Frame`."""

from __future__ import annotations

import struct
import sys
from array import array
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from vmsim.wire.messages.spec import MessageSpec

KINDS = ("request", "response", "event")
_U32_CODE = "I" if array("I").itemsize == 4 else "L"
_SWAP = sys.byteorder == "big"


def u32_bytes(elements) -> bytes:
    """Little-endian le32 array from ints (OverflowError / TypeError on a bad element)."""
    words = array(_U32_CODE, elements)
    if _SWAP:
        words.byteswap()
    return words.tobytes()


def u32_list(data) -> list[int]:
    """Ints from a little-endian le32 array whose length is a multiple of 4.

    ``frombytes`` reads the buffer's bytes; ``array(code, view)`` would iterate a memoryview and
    make each byte one element.
    """
    words = array(_U32_CODE)
    words.frombytes(data)
    if _SWAP:
        words.byteswap()
    return words.tolist()



class Header:
    """The header of one generation (reference §2): its fields and how the frame is sized.

    Every generation starts with ``type u8, msg_id u8, dev_num le16``; the 8-byte header adds
    ``token`` then ``msg_size``, the 6-byte header only ``msg_size``. Fixed-40 frames have no
    size field: ``frame_size`` is their constant length, zero-filled past the payload.
    """

    __slots__ = ("code", "frame_size", "names", "offsets", "size", "size_index", "token_index")

    def __init__(self, fields: tuple[tuple[str, str], ...], *, frame_size: int | None = None) -> None:
        self.names = tuple(name for name, _ in fields)
        self.code = "".join(code for _, code in fields)
        self.size = struct.calcsize("<" + self.code)
        self.offsets = {}
        offset = 0
        for name, code in fields:
            self.offsets[name] = offset
            offset += struct.calcsize("<" + code)
        self.token_index = self.names.index("token") if "token" in self.names else None
        self.size_index = self.names.index("msg_size") if "msg_size" in self.names else None
        self.frame_size = frame_size

    def items(self, type_: int, msg_id: int, dev_num: int, token: int, msg_size: int) -> tuple:
        """The header's struct items in wire order (fields it lacks are dropped)."""
        every = {"type": type_, "msg_id": msg_id, "dev_num": dev_num, "token": token, "msg_size": msg_size}
        return tuple(every[name] for name in self.names)


HEADER_8 = Header((("type", "B"), ("msg_id", "B"), ("dev_num", "H"), ("token", "H"), ("msg_size", "H")))
HEADER_6 = Header((("type", "B"), ("msg_id", "B"), ("dev_num", "H"), ("msg_size", "H")))
HEADER_FIXED40 = Header((("type", "B"), ("msg_id", "B"), ("dev_num", "H")), frame_size=40)


def type_byte(kind: str, bus: bool) -> int:
    """The header ``type``: bit 0 response, bit 1 bus; events go out with bit 0 clear (S-pr28)."""
    return (kind == "response") | (bus << 1)


class Frame:
    """One decoded message: header values, payload fields, and the spec that decoded it.

    ``values`` is the header then the payload, in wire order; ``fields`` builds a fresh dict
    of the payload each time, ``frame[name]`` reads one field without it (the hot path).
    """

    __slots__ = ("spec", "values")

    def __init__(self, spec: MessageSpec, values: tuple) -> None:
        self.spec = spec
        self.values = values

    name = property(lambda self: self.spec.name)
    kind = property(lambda self: self.spec.kind)
    bus = property(lambda self: self.spec.bus)
    type = property(lambda self: self.values[0])
    msg_id = property(lambda self: self.values[1])
    dev_num = property(lambda self: self.values[2])

    @property
    def token(self) -> int | None:
        """The 8-byte header's token; None in layouts without one (draft-6b, fixed40)."""
        index = self.spec.header.token_index
        return None if index is None else self.values[index]

    @property
    def msg_size(self) -> int:
        """Bytes on the wire (the constant 40 for fixed-40 frames, which carry no size field)."""
        header = self.spec.header
        return header.frame_size if header.size_index is None else self.values[header.size_index]

    @property
    def fields(self) -> dict:
        spec = self.spec
        return dict(zip(spec.field_names, self.values[len(spec.header.names) :]))

    def __getitem__(self, name: str):
        return self.values[self.spec.index[name]]

    @property
    def header(self) -> dict:
        return dict(zip(self.spec.header.names, self.values))

    def to_json(self) -> dict:
        """Plain JSON types: byte arrays as hex strings, ``u32`` arrays as lists."""
        fields = {
            name: value.hex() if isinstance(value, bytes) else value for name, value in self.fields.items()
        }
        return {
            "layout": self.spec.layout,
            "name": self.name,
            "kind": self.kind,
            "header": self.header,
            "fields": fields,
        }

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Frame):
            return NotImplemented
        return self.spec is other.spec and self.values == other.values

    __hash__ = None

    def __repr__(self) -> str:
        header = " ".join(f"{k}={v}" for k, v in self.header.items())
        return f"<Frame {self.spec.layout} {self.name} {self.kind} {header} {self.fields}>"

