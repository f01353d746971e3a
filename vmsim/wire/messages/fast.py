"""The fast codecs: closures compiled once per plain-integer message, one ``pack`` or ``unpack_from`` each.

Anything they do not handle (a bad value, a derived count left out, a multiple broken) falls
through to the spec's checked path, which words the error; both give the same bytes.
"""

from __future__ import annotations

import struct
from operator import itemgetter
from typing import TYPE_CHECKING

from vmsim.wire._view import readable_bytes
from vmsim.wire.messages.frame import Frame, u32_bytes, u32_list

if TYPE_CHECKING:
    from vmsim.wire.messages.spec import MessageSpec


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


def fixed_codecs(spec: MessageSpec):
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
            return spec.pack_checked(dev_num, token, *values)

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


def array_codecs(spec: MessageSpec):
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
        return spec.pack_checked(dev_num, token, *values)

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
