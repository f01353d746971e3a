"""`MessageSpec`: one message of one layout compiled to a `struct.Struct`, with its checked codecs.

The checked paths (`encode_checked`, `decode_checked`) do every check and word every error; the
fast closures of `vmsim.wire.messages.fast` must give the same bytes and fall back to them.
"""

from __future__ import annotations

import struct
from collections.abc import Mapping

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import readable_bytes
from vmsim.wire.fields import Array, Blob, Message, Scalar, check_bytes, check_uint
from vmsim.wire.messages.fast import array_codecs, fixed_codecs
from vmsim.wire.messages.frame import Frame, Header, type_byte, u32_bytes, u32_list

MISSING = object()


def first_unknown(keys, known):
    """The first of `keys`, in the caller's order, that is not in `known`, else `MISSING`.

    In order rather than sorted: keys of mixed types (``1`` and ``"x"``) do not sort.
    """
    return next((key for key in keys if key not in known), MISSING)



class MessageSpec:
    """One compiled message of one layout.

    ``encode(fields, dev_num=0, token=0)`` and ``decode(data)`` are closures chosen at compile
    time; ``pack(dev_num, token, *values)`` takes the payload values positionally in
    ``field_names`` order (the fastest way to build a fixed-size frame).
    """

    __slots__ = (
        "array",
        "bus",
        "decode",
        "encode",
        "fast_unpack",
        "field_names",
        "fixed",
        "header",
        "index",
        "kind",
        "layout",
        "min_size",
        "msg_id",
        "multiples",
        "name",
        "offsets",
        "pack",
        "size",
        "struct",
        "type",
    )

    def __init__(self, layout: str, header: Header, message: Message, multiples: tuple = ()) -> None:
        self.layout = layout
        self.header = header
        self.name = message.name
        self.kind = message.kind
        self.msg_id = message.msg_id
        self.bus = message.bus
        self.type = type_byte(message.kind, message.bus)
        self.multiples = multiples
        payload = message.fields
        self.array = payload[-1] if payload and isinstance(payload[-1], Array) else None
        self.fixed = payload[:-1] if self.array else payload
        self.field_names = tuple(name for field in payload for name in field.names)
        self.index = {name: i for i, name in enumerate(header.names + self.field_names)}
        self._compile_struct()
        self._compile_codecs()

    def _compile_struct(self) -> None:
        code = "<" + self.header.code
        offsets = dict(self.header.offsets)
        offset = self.header.size
        for field in self.fixed:
            code += field.code
            if isinstance(field, Scalar | Blob):
                offsets[field.name] = offset
            else:
                shift = 0
                for name, bits in field.parts:
                    offsets[name] = offset + shift // 8
                    shift += bits
            offset += field.size
        array = self.array
        if array:
            offsets[array.name] = offset
            if array.capacity is not None:
                code += f"{array.capacity}s" if array.is_bytes else f"{array.capacity}I"
                offset += array.capacity * array.elem_size
        frame_size = self.header.frame_size
        if frame_size is not None:
            if offset > frame_size:
                raise ValueError(f"{self.name} {self.kind} needs {offset} bytes, frame is {frame_size}")
            code += f"{frame_size - offset}x"
        self.offsets = offsets
        self.struct = struct.Struct(code)
        variable = array is not None and array.capacity is None
        self.size = None if variable else self.struct.size
        self.min_size = self.struct.size

    @property
    def where(self) -> str:
        return f"{self.layout} {self.name} {self.kind}"

    # -- encoding ---------------------------------------------------------------------------

    def _compile_codecs(self) -> None:
        plain = (
            self.header.frame_size is None
            and all(isinstance(field, Scalar) for field in self.fixed)
            and (self.array is None or self.array.capacity is None)
        )
        fixed_plain = plain and self.array is None and not self.multiples
        self.fast_unpack = self.struct.unpack_from if fixed_plain else None
        if not plain:
            self.encode = self.encode_checked
            self.decode = self.decode_checked
            self.pack = self.pack_checked
        elif self.array is None:
            self.encode, self.pack = fixed_codecs(self)
            self.decode = self.decode_checked
        else:
            self.encode, self.pack, self.decode = array_codecs(self)

    def pack_checked(self, dev_num: int, token: int, *values) -> bytes:
        if len(values) != len(self.field_names):
            raise EncodeError(f"{self.where}: expected {len(self.field_names)} values {self.field_names}")
        return self.encode_checked(dict(zip(self.field_names, values)), dev_num, token)

    def encode_checked(self, fields: Mapping, dev_num: int = 0, token: int = 0) -> bytes:
        """Encode with every check; the reference path the fast closures must agree with."""
        where = f"encode {self.where}"
        if not isinstance(fields, Mapping):
            raise EncodeError(f"{where}: fields must be a mapping, got {type(fields).__name__}")
        unknown = first_unknown(fields, self.field_names)
        if unknown is not MISSING:
            raise EncodeError(f"{where}: unknown field {unknown!r}; fields are {', '.join(self.field_names)}")
        check_uint(dev_num, 1 << 16, where, "dev_num")
        if self.header.token_index is not None:
            check_uint(token, 1 << 16, where, "token")
        values = dict(fields)
        tail_items, tail = self._encode_array(values, where)
        items = []
        for field in self.fixed:
            items.extend(field.to_items(values, where))
        for name, multiple in self.multiples:
            if values[name] % multiple:
                raise EncodeError(f"{where}: field {name!r} {values[name]} is not a multiple of {multiple}")
        msg_size = self.struct.size + len(tail)
        if self.header.size_index is not None and msg_size > 0xFFFF:
            raise EncodeError(f"{where}: msg_size {msg_size} exceeds 65535")
        head = self.header.items(self.type, self.msg_id, dev_num, token, msg_size)
        return self.struct.pack(*head, *items, *tail_items) + tail

    def _encode_array(self, values: dict, where: str) -> tuple[tuple, bytes]:
        """Check the trailing array, derive or check its count; return (struct items, tail bytes)."""
        array = self.array
        if array is None:
            return (), b""
        what = f"{where}: field {array.name!r}"
        given = values.get(array.name, MISSING)
        if given is MISSING:
            # An array may be left out when empty: the optional echo, or a count given as 0.
            if not (array.optional or (array.count is not None and array.count in values)):
                raise EncodeError(f"{where}: missing field {array.name!r}")
            given = b"" if array.is_bytes else []
        if array.is_bytes:
            elements = check_bytes(given, where, array.name)
        else:
            if not isinstance(given, list | tuple):
                raise EncodeError(f"{what}: expected a list of integers, got {type(given).__name__}")
            elements = [check_uint(v, 1 << 32, where, f"{array.name}[{i}]") for i, v in enumerate(given)]
        count = len(elements)
        if array.capacity is not None and count > array.capacity:
            raise EncodeError(f"{what}: holds at most {array.capacity} elements, got {count}")
        if array.count is None:
            if count != array.capacity:
                raise EncodeError(f"{what}: must have exactly {array.capacity} elements, got {count}")
        elif array.count in values:
            stated = values[array.count]
            if array.partial and type(stated) is int:
                fits = -(-stated // array.unit) == count  # the count may end inside the last element
            else:
                fits = stated == count * array.unit
            if not fits and not (array.optional and count == 0):
                raise EncodeError(
                    f"{where}: field {array.count!r} is {stated!r} but {array.name} has {count} elements"
                    + (f" ({count * array.unit} in units of {array.count})" if array.unit != 1 else "")
                )
        else:
            values[array.count] = count * array.unit
        if array.capacity is not None:
            return ((elements,) if array.is_bytes else tuple(elements)), b""
        if array.is_bytes:
            return (), elements
        return (), u32_bytes(elements)

    # -- decoding ---------------------------------------------------------------------------

    def fail(self, field: str, offset: int, problem: str) -> DecodeError:
        return DecodeError(f"decode {self.where}: field {field!r} at offset {offset}: {problem}")

    def decode_checked(self, data) -> Frame:
        """Decode with every check, naming the first field that is wrong and its byte offset."""
        if type(data) is not bytes:
            data = readable_bytes(data, f"decode {self.where}")
        length = len(data)
        header = self.header
        if length < header.size:
            name, offset = self._field_at(length)
            raise self.fail(name, offset, f"truncated: {length} bytes, the header needs {header.size}")
        if data[0] != self.type or data[1] != self.msg_id:
            field, offset = ("type", 0) if data[0] != self.type else ("msg_id", 1)
            raise self.fail(field, offset, f"0x{data[offset]:02x} is not this message's")
        if header.frame_size is not None:
            if length != header.frame_size:
                raise self.fail(
                    "frame", min(length, header.frame_size), f"{length} bytes; frames are {header.frame_size}"
                )
        else:
            size_offset = header.offsets["msg_size"]
            msg_size = data[size_offset] | data[size_offset + 1] << 8
            if msg_size != length:
                raise self.fail(
                    "msg_size", size_offset, f"{msg_size} disagrees with the {length}-byte buffer"
                )
        if length < self.struct.size:
            name, offset = self._field_at(length)
            raise self.fail(
                name, offset, f"truncated: frame ends at {length}, needs {self.struct.size} bytes"
            )
        if self.size is not None and length != self.size:
            raise self.fail(
                "msg_size", header.offsets["msg_size"], f"{length}, but the message is {self.size} bytes"
            )
        raw = self.struct.unpack_from(data)
        values = list(raw[: len(header.names)])
        position = len(header.names)
        for field in self.fixed:
            values.extend(field.from_items(raw[position : position + 1]))
            position += 1
        for name, multiple in self.multiples:
            value = values[self.index[name]]
            if value % multiple:
                raise self.fail(name, self.offsets[name], f"{value} is not a multiple of {multiple}")
        if self.array is not None:
            values.append(self._decode_array(data, raw[position:], values))
        if header.frame_size is not None:
            self._check_padding(data, values)
        return Frame(self, tuple(values))

    def _decode_array(self, data, items: tuple, values: list):
        array = self.array
        start = self.offsets[array.name]
        if array.capacity is not None:
            if array.count is None:
                return list(items)
            stated = values[self.index[array.count]]
            if stated > array.capacity:
                raise self.fail(
                    array.count,
                    self.offsets[array.count],
                    f"{stated} overruns the {array.capacity}-byte {array.name}",
                )
            return items[0][:stated]
        stated = values[self.index[array.count]]
        if stated % array.unit and not array.partial:
            raise self.fail(
                array.count, self.offsets[array.count], f"{stated} is not a multiple of {array.unit}"
            )
        end = start + -(-stated // array.unit) * array.elem_size
        length = len(data)
        if end != length and not (array.optional and start == length):
            problem = "overruns the frame" if end > length else "leaves trailing bytes in the frame"
            raise self.fail(
                array.count,
                self.offsets[array.count],
                f"{stated} {problem} (array ends at {end}, frame at {length})",
            )
        if array.is_bytes:
            return bytes(data[start:end])
        return u32_list(data[start:end])

    def _check_padding(self, data, values: list) -> None:
        """Fixed-40 frames are zero past the payload: any other byte would not re-encode."""
        for offset in range(self._payload_end(values), len(data)):
            if data[offset]:
                raise self.fail("padding", offset, f"byte 0x{data[offset]:02x} must be zero")

    def _payload_end(self, values: list) -> int:
        array = self.array
        if array is None:
            return self.header.size + sum(field.size for field in self.fixed)
        filled = array.capacity if array.count is None else values[self.index[array.count]]
        return self.offsets[array.name] + filled * array.elem_size

    def _field_at(self, length: int) -> tuple[str, int]:
        """The field that a frame of `length` bytes cuts off, and where that field starts."""
        start, name = max((start, name) for name, start in self.offsets.items() if start <= length)
        return name, start

    def __repr__(self) -> str:
        size = self.size if self.size is not None else f">={self.min_size}"
        return f"<MessageSpec {self.where} msg_id=0x{self.msg_id:02x} size={size}>"
