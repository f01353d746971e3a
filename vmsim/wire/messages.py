"""The message compiler: field tables -> `MessageSpec` (one `struct.Struct` each) -> `Frame`.

A `Layout` is one generation's header plus its message set. Compiling it builds, once, for
every message: the `struct.Struct` of header + fixed fields, the byte offset of every field
(for error messages), and an encoder and a decoder. Messages whose fields are plain integers
(every v1-family message the simulator sends per request) get closures that do one dict
look-up, one ``pack`` and one ``unpack_from`` per frame; anything unusual (a bad value, a
derived count the caller left out, the fixed-40 frames) falls through to the checked path,
which is also the one that words the error. Both paths give the same bytes.

Errors: decoders raise only `DecodeError` naming the field and its byte offset; encoders raise
only `EncodeError` naming the field.
"""

from __future__ import annotations

import struct
import sys
from array import array
from collections.abc import Iterator, Mapping
from operator import itemgetter

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import readable_bytes
from vmsim.wire.fields import Array, Blob, Message, Scalar, check_bytes, check_uint

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


_MISSING = object()


def _first_unknown(keys, known):
    """The first of `keys`, in the caller's order, that is not in `known`, else `_MISSING`.

    In order rather than sorted: keys of mixed types (``1`` and ``"x"``) do not sort.
    """
    return next((key for key in keys if key not in known), _MISSING)


class JsonError(EncodeError):
    """A codec JSON object that is not shaped as `Frame.to_json` prints one.

    The message has one self-contained line per problem (each naming the key's path), also listed
    in `problems`, so the CLI prints them all at once.
    """

    def __init__(self, *problems: str):
        super().__init__(*problems)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


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
            self.pack = self._pack_checked
        elif self.array is None:
            self.encode, self.pack = _fixed_codecs(self)
            self.decode = self.decode_checked
        else:
            self.encode, self.pack, self.decode = _array_codecs(self)

    def _pack_checked(self, dev_num: int, token: int, *values) -> bytes:
        if len(values) != len(self.field_names):
            raise EncodeError(f"{self.where}: expected {len(self.field_names)} values {self.field_names}")
        return self.encode_checked(dict(zip(self.field_names, values)), dev_num, token)

    def encode_checked(self, fields: Mapping, dev_num: int = 0, token: int = 0) -> bytes:
        """Encode with every check; the reference path the fast closures must agree with."""
        where = f"encode {self.where}"
        if not isinstance(fields, Mapping):
            raise EncodeError(f"{where}: fields must be a mapping, got {type(fields).__name__}")
        unknown = _first_unknown(fields, self.field_names)
        if unknown is not _MISSING:
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
        given = values.get(array.name, _MISSING)
        if given is _MISSING:
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


def _getter(names: tuple[str, ...]):
    """A C-speed ``fields -> tuple of values`` for `names` (itemgetter returns a bare value for one)."""
    if len(names) > 1:
        return itemgetter(*names)
    if names:
        (name,) = names

        def one(fields):
            return (fields[name],)

        return one

    def none(fields):
        return ()

    return none


def _rules(spec: MessageSpec, skip: int) -> tuple[tuple[int, int], ...]:
    """(position, multiple) of each must-be-a-multiple field in a values tuple missing `skip` items."""
    return tuple((spec.index[name] - skip, multiple) for name, multiple in spec.multiples)


def _breaks(values: tuple, rules: tuple[tuple[int, int], ...]) -> bool:
    return any(values[position] % multiple for position, multiple in rules)


def _fixed_codecs(spec: MessageSpec):
    """Encoders for a fixed-size message of plain integers: one ``pack`` each.

    Its decoder is inlined in `Layout.decode` (one ``unpack_from``), the hottest call of all.
    """
    pack_struct = spec.struct.pack
    type_, msg_id, size = spec.type, spec.msg_id, spec.size
    names = spec.field_names
    count = len(names)
    getter = _getter(names)
    rules = _rules(spec, len(spec.header.names))
    has_token = spec.header.token_index is not None
    checked = spec.encode_checked

    def pack(dev_num, token, *values):
        try:
            if has_token:
                return pack_struct(type_, msg_id, dev_num, token, size, *values)
            return pack_struct(type_, msg_id, dev_num, size, *values)
        except struct.error:
            return spec._pack_checked(dev_num, token, *values)

    def encode(fields, dev_num=0, token=0):
        try:
            if len(fields) == count:
                values = getter(fields)
                if rules and _breaks(values, rules):
                    return checked(fields, dev_num, token)
                if has_token:
                    return pack_struct(type_, msg_id, dev_num, token, size, *values)
                return pack_struct(type_, msg_id, dev_num, size, *values)
        except (KeyError, TypeError, struct.error):
            pass
        return checked(fields, dev_num, token)

    return encode, pack


def _array_codecs(spec: MessageSpec):
    """Closures for a plain message with a trailing array sized by a count field."""
    array = spec.array
    pack_struct = spec.struct.pack
    unpack = spec.struct.unpack_from
    type_, msg_id, fixed_size = spec.type, spec.msg_id, spec.struct.size
    name, count_name, unit = array.name, array.count, array.unit
    is_bytes, elem_size = array.is_bytes, array.elem_size
    scalar_names = spec.field_names[:-1]
    getter = _getter(scalar_names)
    total = len(spec.field_names)
    has_token = spec.header.token_index is not None
    size_index = spec.header.size_index
    count_index = spec.index[count_name]
    rules = _rules(spec, len(spec.header.names))
    decode_rules = _rules(spec, 0)
    checked = spec.encode_checked

    def encode(fields, dev_num=0, token=0):
        try:
            elements = fields[name]
            derived = len(elements) * unit
            if fields.get(count_name, derived) == derived:
                if type(elements) is not (bytes if is_bytes else list):
                    raise TypeError
                tail = elements if is_bytes else u32_bytes(elements)
                merged = {**fields, count_name: derived}
                values = getter(merged)
                if len(merged) == total and not (rules and _breaks(values, rules)):
                    size = fixed_size + len(tail)
                    if has_token:
                        return pack_struct(type_, msg_id, dev_num, token, size, *values) + tail
                    return pack_struct(type_, msg_id, dev_num, size, *values) + tail
        except (KeyError, TypeError, OverflowError, struct.error):
            pass
        return checked(fields, dev_num, token)

    def pack(dev_num, token, *values):
        if len(values) == total:
            return encode(dict(zip(spec.field_names, values)), dev_num, token)
        return spec._pack_checked(dev_num, token, *values)

    def decode(data):
        if type(data) is not bytes:
            data = readable_bytes(data, f"decode {spec.where}")
        length = len(data)
        if length >= fixed_size:
            values = unpack(data)
            count = values[count_index]
            if (
                values[1] == msg_id
                and values[0] == type_
                and values[size_index] == length
                and count % unit == 0
                and fixed_size + count // unit * elem_size == length
                and not (decode_rules and _breaks(values, decode_rules))
            ):
                if is_bytes:
                    return Frame(spec, values + (bytes(data[fixed_size:length]),))
                elements = u32_list(data[fixed_size:length])
                return Frame(spec, values + (elements,))
        return spec.decode_checked(data)

    return encode, pack, decode


class Layout:
    """One generation's message set over its header; built once by `vmsim.wire.layouts`.

    ``is_event(msg_id)`` is the generation's ID-range rule, so that request / response / event
    is read from the header exactly as the spec defines it (type bit 0, then the event range).
    """

    __slots__ = (
        "_by_head",
        "_by_key",
        "_size_index",
        "description",
        "header",
        "is_event",
        "messages",
        "name",
    )

    def __init__(self, name, header, messages, *, is_event, description="", multiples=None) -> None:
        self.name = name
        self.header = header
        self.description = description
        self.is_event = is_event
        multiples = multiples or {}
        specs = []
        for message in messages:
            spec = MessageSpec(name, header, message, multiples.get(message.key, ()))
            if self.kind_of(spec.type, spec.msg_id) != spec.kind:
                raise ValueError(f"{spec.where}: msg_id 0x{spec.msg_id:02x} is not a {spec.kind} in {name}")
            specs.append(spec)
        self.messages = tuple(specs)
        self._by_key = {(s.name, s.kind): s for s in specs}
        self._by_head = {s.type << 8 | s.msg_id: (s, s.fast_unpack, s.size) for s in specs}
        self._size_index = header.size_index
        if len(self._by_head) != len(specs) or len(self._by_key) != len(specs):
            raise ValueError(f"layout {name}: duplicate message")

    @property
    def header_size(self) -> int:
        return self.header.size

    def kind_of(self, type_: int, msg_id: int) -> str:
        """request / response / event, from the header alone."""
        if type_ & 1:
            return "response"
        return "event" if self.is_event(msg_id) else "request"

    def spec(self, name: str, kind: str | None = None) -> MessageSpec:
        """The compiled message; `kind` may be left out when the name has only one."""
        if kind is None:
            kinds = [s.kind for s in self.messages if s.name == name]
            if len(kinds) == 1:
                kind = kinds[0]
            elif kinds:
                raise EncodeError(f"{self.name} {name}: say which kind: {', '.join(kinds)}")
        spec = self._find(name, kind)
        if spec is None:
            raise EncodeError(self._unknown(name, kind))
        return spec

    def _find(self, name, kind) -> MessageSpec | None:
        try:
            return self._by_key.get((name, kind))
        except TypeError:  # an unhashable name or kind names no message
            return None

    def _unknown(self, name, kind) -> str:
        kinds = [s.kind for s in self.messages if s.name == name]
        if kinds:
            return f"{self.name} {name} has no {kind!r}; it has {', '.join(kinds)}"
        names = ", ".join(dict.fromkeys(s.name for s in self.messages))
        return f"layout {self.name} has no message {name!r}; messages: {names}"

    def encode(self, name: str, kind: str, fields: Mapping, dev_num: int = 0, token: int = 0) -> bytes:
        """Encode one message; ``msg_size`` and omitted array counts are computed.

        ``token`` is ignored by layouts without one (draft-6b, fixed40).
        """
        spec = self._find(name, kind)
        if spec is not None:
            return spec.encode(fields, dev_num, token)
        raise EncodeError(self._unknown(name, kind))

    def decode(self, data) -> Frame:
        """Decode one whole frame, exactly msg_size long: bytes, bytearray, or any buffer (a memoryview
        of any format, shape or stride is read as its bytes; see `readable_bytes`)."""
        if type(data) is not bytes:
            data = readable_bytes(data, f"decode {self.name}")
        try:
            spec, unpack, size = self._by_head[data[0] << 8 | data[1]]
        except (KeyError, IndexError):
            raise self._head_error(data) from None
        if unpack is not None and len(data) == size:
            values = unpack(data)
            if values[self._size_index] == size:
                return Frame(spec, values)
        return spec.decode(data)

    def _head_error(self, data) -> DecodeError:
        where = f"decode {self.name}"
        length = len(data)
        if length < self.header.size:
            offset, missing = max((start, n) for n, start in self.header.offsets.items() if start <= length)
            return DecodeError(
                f"{where}: field {missing!r} at offset {offset}: truncated: "
                f"{length} bytes, the header needs {self.header.size}"
            )
        type_, msg_id = data[0], data[1]
        if type_ & 0xFC:
            return DecodeError(f"{where}: field 'type' at offset 0: 0x{type_:02x} has reserved bits 2-7 set")
        kind = self.kind_of(type_, msg_id)
        space = "bus" if type_ & 2 else "transport"
        return DecodeError(
            f"{where}: field 'msg_id' at offset 1: no {space} {kind} with msg_id 0x{msg_id:02x}"
        )

    def encode_json(self, obj: Mapping) -> bytes:
        """Inverse of `Frame.to_json`: ``header.msg_size`` is recomputed, not trusted.

        Every key and value is type-checked before use: a `JsonError` lists each problem on its own line.
        """
        where = f"encode {self.name}"
        problems = _json_problems(obj, where)
        if problems:
            shown = problems[:_MAX_PROBLEMS]
            if len(problems) > _MAX_PROBLEMS:
                shown.append(f"{where}: ... and {len(problems) - _MAX_PROBLEMS} more problems")
            raise JsonError(*shown)
        if obj.get("layout", self.name) != self.name:
            raise EncodeError(f"{where}: 'layout' is {obj['layout']!r}, expected {self.name!r}")
        spec = self.spec(obj["name"], obj.get("kind"))
        header = obj.get("header", {})
        unknown = _first_unknown(header, spec.header.names)
        if unknown is not _MISSING:
            raise EncodeError(
                f"encode {spec.where}: unknown header field {unknown!r}; "
                f"the header has {', '.join(spec.header.names)}"
            )
        for name, expected in (("type", spec.type), ("msg_id", spec.msg_id)):
            if header.get(name, expected) != expected:
                raise EncodeError(
                    f"encode {spec.where}: header {name} is {header[name]!r}, expected {expected}"
                )
        fields = _fields_from_json(spec, obj.get("fields", {}))
        return spec.encode(fields, header.get("dev_num", 0), header.get("token", 0))

    def __iter__(self) -> Iterator[MessageSpec]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"<Layout {self.name} header={self.header.size} messages={len(self.messages)}>"


JSON_KEYS = ("layout", "name", "kind", "header", "fields")
_MAX_PROBLEMS = 10  # a JSON of 100,000 wrong keys is reported in ten lines, not 100,000


def _json_type(value) -> str:
    """The JSON name of a value's type (what the user wrote), not Python's."""
    names = {bool: "boolean", int: "integer", float: "number", str: "string", type(None): "null"}
    if type(value) in names:
        return names[type(value)]
    if isinstance(value, Mapping):
        return "object"
    return "array" if isinstance(value, list | tuple) else type(value).__name__


def _is_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_problems(obj, where: str) -> list[str]:
    """Every key of a codec JSON object whose type is wrong, by path (``fields.features[3]``).

    Types only; ranges, names and counts are the encoder's checks, which word their own errors.
    """
    if not isinstance(obj, Mapping):
        return [f"{where}: expected a JSON object, got {_json_type(obj)}"]
    problems = [
        f"{where}: unknown key {key!r}; keys are {', '.join(JSON_KEYS)}" for key in obj if key not in JSON_KEYS
    ]
    if "name" not in obj:
        problems.append(f"{where}: missing key 'name'")
    for key in ("layout", "name", "kind"):
        if key in obj and not isinstance(obj[key], str):
            problems.append(f"{where}: {key!r} must be a string, got {_json_type(obj[key])}")
    if "kind" in obj and isinstance(obj["kind"], str) and obj["kind"] not in KINDS:
        problems.append(f"{where}: 'kind' is {obj['kind']!r}, expected one of {', '.join(KINDS)}")
    for key in ("header", "fields"):
        if key in obj and not isinstance(obj[key], Mapping):
            problems.append(f"{where}: {key!r} must be an object, got {_json_type(obj[key])}")
    header = obj.get("header")
    if isinstance(header, Mapping):
        for name, value in header.items():
            if not _is_int(value):
                problems.append(f"{where}: header.{name} must be an integer, got {_json_type(value)}")
    fields = obj.get("fields")
    if isinstance(fields, Mapping):
        for name, value in fields.items():
            if isinstance(value, list | tuple):
                bad = next((i for i, element in enumerate(value) if not _is_int(element)), None)
                if bad is not None:
                    problems.append(
                        f"{where}: fields.{name}[{bad}] must be an integer, got {_json_type(value[bad])}"
                    )
            elif not (_is_int(value) or isinstance(value, str)):
                problems.append(
                    f"{where}: fields.{name} must be an integer, a hex string or an array of integers, "
                    f"got {_json_type(value)}"
                )
    return problems


def _fields_from_json(spec: MessageSpec, fields: Mapping) -> dict:
    """Hex strings back to bytes for the byte fields; everything else passes through."""
    byte_fields = {f.name for f in spec.fixed if isinstance(f, Blob)}
    if spec.array is not None and spec.array.is_bytes:
        byte_fields.add(spec.array.name)
    converted = dict(fields)
    for name in byte_fields & set(fields):
        text = fields[name]
        if not isinstance(text, str):
            raise EncodeError(f"encode {spec.where}: field {name!r} must be a hex string")
        try:
            converted[name] = bytes.fromhex(text)
        except ValueError:
            raise EncodeError(f"encode {spec.where}: field {name!r} is not valid hex: {text!r}") from None
    return converted
