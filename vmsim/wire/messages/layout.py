"""`Layout`: one generation's message set over its header, and the frame-level encode and decode."""

from __future__ import annotations

from collections.abc import Iterator, Mapping

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire._view import readable_bytes
from vmsim.wire.messages.frame import Frame
from vmsim.wire.messages.from_json import check_json, fields_from_json
from vmsim.wire.messages.spec import MISSING, MessageSpec, first_unknown


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
        check_json(obj, where)
        if obj.get("layout", self.name) != self.name:
            raise EncodeError(f"{where}: 'layout' is {obj['layout']!r}, expected {self.name!r}")
        spec = self.spec(obj["name"], obj.get("kind"))
        header = obj.get("header", {})
        unknown = first_unknown(header, spec.header.names)
        if unknown is not MISSING:
            raise EncodeError(
                f"encode {spec.where}: unknown header field {unknown!r}; "
                f"the header has {', '.join(spec.header.names)}"
            )
        for name, expected in (("type", spec.type), ("msg_id", spec.msg_id)):
            if header.get(name, expected) != expected:
                raise EncodeError(
                    f"encode {spec.where}: header {name} is {header[name]!r}, expected {expected}"
                )
        fields = fields_from_json(spec, obj.get("fields", {}))
        return spec.encode(fields, header.get("dev_num", 0), header.get("token", 0))

    def __iter__(self) -> Iterator[MessageSpec]:
        return iter(self.messages)

    def __repr__(self) -> str:
        return f"<Layout {self.name} header={self.header.size} messages={len(self.messages)}>"
