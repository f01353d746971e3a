"""Any buffer holding a frame's bytes decodes to the same frame: bytes, bytearray, memoryviews of any
slice, format, shape or stride, arrays. A memoryview counts and iterates elements of its own format,
so a decoder that took one at its word read u32 arrays one byte per element; these tests hold every
decoder to the bytes. Whatever is not a buffer is a DecodeError, never a TypeError.
"""

from __future__ import annotations

import array

import pytest

from vmsim.wire import DecodeError, EncodeError, LayoutError, ffa, get_layout, layout_names, vsock
from vmsim.wire.fields import Array, Blob, Scalar, Split
from vmsim.wire.rings import SplitRing
from vmsim.wire.spsc import Spsc2025Queue, create_queue_pair

PATTERN = 0x8877665544332211  # every byte different, so a byte read as a word shows


def sample_fields(spec) -> dict:
    """Values for every field of `spec` whose bytes all differ (array counts left to the encoder)."""
    multiples = dict(spec.multiples)
    fields = {}
    for field in spec.fixed:
        if isinstance(field, Scalar):
            step = multiples.get(field.name, 1)
            fields[field.name] = PATTERN % field.limit // step * step
        elif isinstance(field, Blob):
            fields[field.name] = bytes(range(1, field.size + 1))
        elif isinstance(field, Split):
            fields.update({name: 1 for name, _ in field.parts if name != getattr(spec.array, "count", None)})
    array_field: Array | None = spec.array
    if array_field is not None:
        fields.pop(array_field.count, None)
        elements = array_field.capacity or 2
        if array_field.is_bytes:
            fields[array_field.name] = bytes(range(0xA1, 0xA1 + elements))
        else:
            fields[array_field.name] = [0x11223344 + 0x01010101 * i for i in range(elements)]
    return fields


def buffers_of(wire: bytes) -> dict[str, object]:
    """The same bytes behind every kind of buffer a caller might hand a decoder."""
    padded = b"\xee" * 3 + wire + b"\xee" * 5
    interleaved = bytes(byte for pair in zip(wire, b"\xee" * len(wire)) for byte in pair)
    buffers = {
        "bytearray": bytearray(wire),
        "memoryview": memoryview(wire),
        "memoryview of a bytearray": memoryview(bytearray(wire)),
        "memoryview slice": memoryview(padded)[3 : 3 + len(wire)],
        "strided memoryview": memoryview(interleaved)[::2],
        "char memoryview": memoryview(wire).cast("c"),
        "signed memoryview": memoryview(wire).cast("b"),
        "array of bytes": array.array("B", wire),
    }
    if len(wire) % 4 == 0:
        buffers["u32 memoryview"] = memoryview(wire).cast("I")
        buffers["2-D memoryview"] = memoryview(wire).cast("B", (4, len(wire) // 4))
    return buffers


@pytest.mark.parametrize("name", layout_names())
def test_every_message_decodes_the_same_from_any_buffer_of_its_bytes(name):
    layout = get_layout(name)
    for spec in layout.messages:
        wire = layout.encode(spec.name, spec.kind, sample_fields(spec), dev_num=0x0102, token=0x0304)
        expected = layout.decode(wire)
        for kind, buffer in buffers_of(wire).items():
            assert layout.decode(buffer) == expected, f"{spec.where} from a {kind}"
            assert spec.decode(buffer) == expected, f"{spec.where} (its own decoder) from a {kind}"


def test_u32_arrays_from_a_memoryview_are_words_not_bytes():
    """The reported case: GET_DEVICE_FEATURES' features came back [0x44, 0x33, 0x22, 0x11, ...]."""
    v1 = get_layout("v1")
    fields = {"block_index": 0, "features": [0x11223344, 0x55667788]}
    wire = v1.encode("GET_DEVICE_FEATURES", "response", fields)
    assert v1.decode(memoryview(wire))["features"] == [0x11223344, 0x55667788]
    assert v1.decode(memoryview(bytearray(b"\0" + wire))[1:])["features"] == [0x11223344, 0x55667788]


@pytest.mark.parametrize("not_bytes", ["00020100", [0, 2, 1, 0, 0, 0, 8, 0], 7, None, {0: 0, 1: 2}])
def test_what_is_not_a_buffer_is_a_decode_error(not_bytes):
    with pytest.raises(DecodeError, match="expected bytes"):
        get_layout("v1").decode(not_bytes)


def test_a_released_memoryview_is_a_decode_error():
    view = memoryview(bytes.fromhex("0002010034120800"))
    view.release()
    with pytest.raises(DecodeError, match="released"):
        get_layout("v1").decode(view)


def test_shared_memory_over_a_cast_memoryview_writes_through_to_its_bytes():
    """Peers see each other's stores through a u32 view of the memory as through the bytearray."""
    memory = bytearray(8192)
    frame = get_layout("v1").encode("EVENT_USED", "event", {"vq_index": 7}, dev_num=1)
    to_device, _ = create_queue_pair("spsc-2025", memoryview(memory).cast("I"))
    assert to_device.try_push(frame)
    device_end = Spsc2025Queue(memory, 0, 4096)
    assert device_end.try_pop()[: len(frame)] == frame


def test_a_strided_memoryview_cannot_be_shared_memory():
    """Stores through a copy would be lost, so a view that is not contiguous is refused."""
    strided = memoryview(bytearray(2 * 8192))[::2]
    with pytest.raises(DecodeError, match="not C-contiguous"):
        SplitRing.contiguous(strided, 0, 16)
    with pytest.raises(DecodeError, match="not C-contiguous"):
        create_queue_pair("amp-2026", strided)


def test_vsock_and_ffa_decoders_read_a_memoryview_as_its_bytes():
    header = vsock.VsockHeader(2, 3, 1024, 2048, 0, vsock.TYPE_STREAM, vsock.OP_SHMEM)
    sg = vsock.ShmemSgList(vsock.SHMEM_OFFER, vsock.SHMEM_TYPE_FFA, ((0x1000, 4096),))
    packet = vsock.encode_packet(header, vsock.encode_shmem_sg(sg))
    view = memoryview(packet + b"\0" * (-len(packet) % 4)).cast("I")
    decoded_header, payload = vsock.decode_packet(view)
    assert decoded_header == header._replace(len=len(payload))
    assert vsock.decode_shmem_sg(memoryview(payload).cast("c")) == sg
    frame = get_layout("ffa-2026").encode("RESET", "request", {})
    image = ffa.pack_direct_req2(memoryview(frame).cast("c"))
    assert ffa.unpack_direct_req2(memoryview(image).cast("Q")) == frame
    assert ffa.image_to_registers(memoryview(image).cast("I")) == ffa.image_to_registers(image)
    with pytest.raises(DecodeError, match="expected bytes"):
        vsock.decode_header("not a header, 44 characters long............")


@pytest.mark.parametrize("name", ["v9", "", "V1", None, ["v1"]])
def test_an_unknown_layout_is_both_a_decode_and_an_encode_error(name):
    """Whichever codec error a caller already catches also catches a wrong layout name; "" is not v1."""
    with pytest.raises(LayoutError, match="unknown layout") as caught:
        get_layout(name)
    assert isinstance(caught.value, DecodeError) and isinstance(caught.value, EncodeError)


def test_unknown_field_keys_of_mixed_types_name_the_first_given():
    """Keys are not sorted to pick one (1 and "x" do not compare): the first unknown in the caller's order."""
    v1 = get_layout("v1")
    with pytest.raises(EncodeError, match="unknown field 1;"):
        v1.encode("PING", "request", {"data": 1, 1: 2, "x": 3})
    with pytest.raises(EncodeError, match="unknown header field 2;"):
        v1.encode_json({"name": "PING", "kind": "request", "header": {2: 0, "x": 0}, "fields": {"data": 1}})


@pytest.mark.parametrize(("name", "kind"), [(["PING"], "request"), ("PING", {}), ({"PING"}, None)])
def test_a_name_or_kind_that_is_not_a_string_is_an_encode_error(name, kind):
    v1 = get_layout("v1")
    with pytest.raises(EncodeError):
        v1.encode(name, kind, {"data": 1})
    with pytest.raises(EncodeError):
        v1.spec(name, kind)


def test_codec_json_lists_every_type_problem_by_its_path():
    v1 = get_layout("v1")
    message = {
        "name": "GET_DEVICE_FEATURES",
        "kind": {},
        "header": {"dev_num": True, "token": "5"},
        "fields": {"block_index": 1.5, "features": [1, "2", 3]},
        "extra": 0,
    }
    with pytest.raises(EncodeError) as caught:
        v1.encode_json(message)
    assert caught.value.problems == [
        "encode v1: unknown key 'extra'; keys are layout, name, kind, header, fields",
        "encode v1: 'kind' must be a string, got object",
        "encode v1: header.dev_num must be an integer, got boolean",
        "encode v1: header.token must be an integer, got string",
        "encode v1: fields.block_index must be an integer, a hex string or an array of integers, got number",
        "encode v1: fields.features[1] must be an integer, got string",
    ]


def test_an_integer_too_long_to_print_is_still_one_line():
    """Python refuses to print ints of more than 4300 digits; the range error gives its bit length instead."""
    with pytest.raises(EncodeError, match="a 16610-bit integer is out of range 0..4294967295"):
        get_layout("v1").encode("PING", "request", {"data": 10**5000})
