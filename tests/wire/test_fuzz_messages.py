"""Property tests: every message of every layout round-trips, and decoders only raise DecodeError.

Two promises are checked with hypothesis:

* encode -> decode -> encode gives the same bytes and the same fields, for any in-range values
  (array counts left out to be derived, or given);
* any bytes at all either decode to a frame that re-encodes to exactly those bytes, or raise
  `DecodeError`; no other exception escapes (no IndexError, struct.error, ValueError). The same
  bytes behind a memoryview (a slice of a larger buffer, or cast to another format) decode to
  the same frame or the same error.

`benchmarks/fuzz_codecs.py` runs the same promises over millions of frames.
"""

from __future__ import annotations

import re

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from vmsim.wire import DecodeError, ffa, get_layout, layout_names
from vmsim.wire.fields import Array, Blob, Scalar, Split

LAYOUTS = layout_names()
FUZZ = settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def value_strategy(spec, field):
    """In-range values for one declared field, as a dict of name -> strategy."""
    multiples = dict(spec.multiples)
    if isinstance(field, Scalar):
        step = multiples.get(field.name, 1)
        return {field.name: st.integers(0, (field.limit - 1) // step).map(lambda n, s=step: n * s)}
    if isinstance(field, Blob):
        return {field.name: st.binary(min_size=field.size, max_size=field.size)}
    if isinstance(field, Split):
        return {name: st.integers(0, (1 << bits) - 1) for name, bits in field.parts}
    raise AssertionError(field)


def array_strategy(array: Array):
    if array.count is None:
        return st.lists(st.integers(0, 2**32 - 1), min_size=array.capacity, max_size=array.capacity)
    limit = array.capacity if array.capacity is not None else 40
    if array.is_bytes:
        return st.binary(max_size=limit)
    return st.lists(st.integers(0, 2**32 - 1), max_size=limit)


@st.composite
def messages(draw, layout):
    """(spec, fields, dev_num, token) for any message of `layout`, with valid values."""
    spec = draw(st.sampled_from(layout.messages))
    strategies = {}
    for field in spec.fixed:
        strategies.update(value_strategy(spec, field))
    if spec.array is not None:
        strategies.pop(spec.array.count, None)
        strategies[spec.array.name] = array_strategy(spec.array)
    fields = draw(st.fixed_dictionaries(strategies))
    array = spec.array
    if array is not None and array.count is not None and draw(st.booleans()):
        fields[array.count] = len(fields[array.name]) * array.unit  # given, so checked
    return spec, fields, draw(st.integers(0, 0xFFFF)), draw(st.integers(0, 0xFFFF))


@pytest.mark.parametrize("name", LAYOUTS)
@FUZZ
@given(data=st.data())
def test_every_message_round_trips(name, data):
    """encode -> decode gives the fields back; re-encoding the frame gives the same bytes."""
    layout = get_layout(name)
    spec, fields, dev_num, token = data.draw(messages(layout))
    wire = layout.encode(spec.name, spec.kind, fields, dev_num=dev_num, token=token)
    frame = layout.decode(wire)
    assert (frame.name, frame.kind, frame.dev_num, frame.msg_size) == (
        spec.name,
        spec.kind,
        dev_num,
        len(wire),
    )
    assert frame.token == (token if layout.header.token_index is not None else None)
    assert {k: frame.fields[k] for k in fields} == fields
    assert layout.encode(frame.name, frame.kind, frame.fields, dev_num=dev_num, token=token) == wire
    assert layout.encode_json(frame.to_json()) == wire
    assert spec.pack(dev_num, token, *frame.fields.values()) == wire


def outcome(layout, data):
    """The frame `data` decodes to, or the message of the DecodeError it raises (nothing else may escape)."""
    try:
        return layout.decode(data)
    except DecodeError as exc:
        return str(exc)


def as_memoryviews(data: bytes) -> list[memoryview]:
    """`data` behind memoryviews whose len and items are not its bytes unless read as bytes."""
    views = [memoryview(b"\xff" + data + b"\xff")[1:-1], memoryview(data).cast("c")]
    if data and len(data) % 4 == 0:
        views.append(memoryview(data).cast("I"))
    return views


def assert_only_decode_error(layout, data: bytes) -> None:
    """Decoding `data` raises DecodeError, or gives a frame that re-encodes to exactly `data`;
    any memoryview of the same bytes gives the same frame or the same error."""
    result = outcome(layout, data)
    for view in as_memoryviews(data):
        assert outcome(layout, view) == result, view
    if not isinstance(result, str):
        assert layout.encode_json(result.to_json()) == data


@pytest.mark.parametrize("name", LAYOUTS)
@FUZZ
@given(data=st.binary(max_size=120))
def test_random_bytes_only_raise_decode_error(name, data):
    assert_only_decode_error(get_layout(name), data)


@st.composite
def mutated_frames(draw, layout):
    """A valid frame, then one of: a byte changed, truncated, extended, msg_size rewritten."""
    spec, fields, dev_num, token = draw(messages(layout))
    wire = bytearray(layout.encode(spec.name, spec.kind, fields, dev_num=dev_num, token=token))
    how = draw(st.sampled_from(["byte", "truncate", "extend", "msg_size"]))
    if how == "byte":
        wire[draw(st.integers(0, len(wire) - 1))] = draw(st.integers(0, 255))
    elif how == "truncate":
        del wire[draw(st.integers(0, len(wire) - 1)) :]
    elif how == "extend":
        wire += draw(st.binary(min_size=1, max_size=16))
    elif layout.header.size_index is not None:
        wire[6 if layout.header.size == 8 else 4] = draw(st.integers(0, 255))
    return bytes(wire)


@pytest.mark.parametrize("name", LAYOUTS)
@FUZZ
@given(data=st.data())
def test_mutated_frames_only_raise_decode_error(name, data):
    layout = get_layout(name)
    assert_only_decode_error(layout, data.draw(mutated_frames(layout)))


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=100, max_size=120), st.integers(0, 2**64 - 1))
def test_ffa_helpers_only_raise_decode_error(image, word):
    """Register images and attribute words of any content: a frame / None / DecodeError only."""
    try:
        frame = ffa.unpack_direct_req2(image)
    except DecodeError as exc:
        with pytest.raises(DecodeError, match=re.escape(str(exc))):
            ffa.unpack_direct_req2(memoryview(image).cast("c"))
    else:
        assert frame is None or ffa.pack_direct_req2(frame) == image
        assert ffa.unpack_direct_req2(memoryview(image).cast("c")) == frame
    try:
        attrs = ffa.SharingAttrs.decode(word)
    except DecodeError:
        pass
    else:
        assert attrs.encode() == word
