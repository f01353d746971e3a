"""Declarative little-endian field tables over a shared buffer (the dpkt `_MetaPacket` idea, slotted).

A `View` subclass lists its fields as `Field(fmt, offset)` class attributes; each is compiled once to a
`struct.Struct` and reads/writes the buffer in place, so two simulated peers holding views over the same
`bytearray` see each other's stores exactly as they would over real shared memory.

Errors: a view that does not fit its buffer raises `DecodeError` naming the structure, offset and sizes;
storing a value the field cannot hold raises `EncodeError` naming the field and its byte offset.
The hot-path classes in the sibling modules use the module-level `struct` helpers below directly
(one `unpack_from`/`pack_into` call per access, no descriptor overhead).
"""

from __future__ import annotations

import struct

from vmsim.errors import DecodeError, EncodeError

U16 = struct.Struct("<H")
U32 = struct.Struct("<I")
I32 = struct.Struct("<i")
U64 = struct.Struct("<Q")


def readable_bytes(data, what: str):
    """`data` as a buffer indexed, sliced and measured in bytes, or `DecodeError` naming `what`.

    bytes and bytearray pass as they are; any other buffer (memoryview, array, mmap) becomes a flat
    byte view of the same memory, or a copy when it is not C-contiguous. A memoryview counts and
    iterates elements of its own format (`array('I', view)` reads one element per byte of a byte
    view), so every decoder reads what it is given through this.
    """
    kind = type(data)
    if kind is bytes or kind is bytearray:
        return data
    try:
        view = memoryview(data)
    except TypeError:
        raise DecodeError(f"{what}: expected bytes, got {kind.__name__}") from None
    except ValueError as exc:  # a released memoryview
        raise DecodeError(f"{what}: unreadable {kind.__name__} ({exc})") from None
    if view.ndim == 1 and view.format == "B" and view.c_contiguous:
        return view
    try:
        return view.cast("B")
    except (TypeError, ValueError):  # not C-contiguous, or a zero in its shape
        return view.tobytes()


def shared_bytes(buf, what: str):
    """`buf` as a buffer indexed and measured in bytes that still writes through to the caller's memory.

    Like `readable_bytes`, except that a view which is not C-contiguous cannot be written in place
    and is refused with `DecodeError` (the peers of a shared-memory structure must see each other's stores).
    """
    kind = type(buf)
    if kind is bytearray or kind is bytes:
        return buf
    view = readable_bytes(buf, what)
    if type(view) is bytes:
        raise DecodeError(f"{what}: a {kind.__name__} that is not C-contiguous cannot be shared memory")
    return view


def check_span(buf, offset: int, size: int, what: str) -> None:
    """Raise DecodeError unless `size` bytes starting at `offset` lie inside `buf`."""
    n = len(buf)
    if offset < 0 or size < 0 or offset + size > n:
        raise DecodeError(f"{what}: needs {size} bytes at offset {offset}, buffer has {n}")


def bad_field(what: str, field: str, offset: int, value, expected: str) -> DecodeError:
    """The one shape of every field-level decode error: '<what>: <field> at offset <o> is <v>, expected <e>'."""
    shown = f"0x{value:X}" if isinstance(value, int) and value >= 0 else repr(value)
    return DecodeError(f"{what}: {field} at offset {offset} is {shown}, expected {expected}")


def store_error(what: str, field: str, offset: int, value, exc: Exception) -> EncodeError:
    return EncodeError(f"{what}: cannot store {value!r} in {field} at offset {offset} ({exc})")


class Field:
    """One little-endian field at a fixed offset inside a `View` (a data descriptor)."""

    __slots__ = ("_pack", "_unpack", "fmt", "name", "offset", "size")

    def __init__(self, fmt: str, offset: int):
        st = struct.Struct("<" + fmt)
        self.fmt = fmt
        self.offset = offset
        self.size = st.size
        self.name = fmt
        self._unpack = st.unpack_from
        self._pack = st.pack_into

    def __set_name__(self, owner, name: str) -> None:
        self.name = name

    def __get__(self, obj, owner=None):
        if obj is None:
            return self
        return self._unpack(obj._buf, obj._off + self.offset)[0]

    def __set__(self, obj, value) -> None:
        try:
            self._pack(obj._buf, obj._off + self.offset, value)
        except struct.error as exc:
            raise store_error(obj.NAME, self.name, obj._off + self.offset, value, exc) from None


class View:
    """A fixed-size structure at `offset` inside a byte buffer; fields read and write in place.

    `SIZE` defaults to the end of the last field; a subclass may set it larger (padding lines).
    Construction only checks bounds; structure-specific checks live in each subclass's `validate()`.
    """

    __slots__ = ("_buf", "_off")
    NAME = "view"
    SIZE = 0
    FIELDS: tuple[Field, ...] = ()

    def __init_subclass__(cls, **kwargs):
        super().__init_subclass__(**kwargs)
        own = [v for v in vars(cls).values() if isinstance(v, Field)]
        if own:
            cls.FIELDS = tuple(sorted((*cls.FIELDS, *own), key=lambda f: f.offset))
        if "SIZE" not in vars(cls) and cls.FIELDS:
            cls.SIZE = max(f.offset + f.size for f in cls.FIELDS)

    def __init__(self, buf, offset: int = 0):
        buf = shared_bytes(buf, self.NAME)
        check_span(buf, offset, self.SIZE, self.NAME)
        self._buf = buf
        self._off = offset

    @property
    def offset(self) -> int:
        return self._off

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in self.FIELDS}

    def __repr__(self) -> str:
        inner = ", ".join(f"{k}={v!r}" for k, v in self.as_dict().items())
        return f"{type(self).__name__}(@{self._off}: {inner})"
