"""The v1 layout against the 30 golden frames, and the codec contract around them.

The golden frames (tests/data/virtio-msg-v1.json) are the S-pr28 structs compiled with gcc and
cross-checked against the Linux uapi header L-8b: matching them byte for byte is the proof that
the field tables are right.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from vmsim.errors import VmsimError
from vmsim.wire import DecodeError, EncodeError, Frame, get_layout

GOLDEN = json.loads((Path(__file__).parent.parent / "data" / "virtio-msg-v1.json").read_text())["entries"]
HEADER = ("type", "msg_id", "dev_num", "token", "msg_size")
V1 = get_layout("v1")


def golden_id(entry: dict) -> str:
    return entry["name"]


def expected_kind(golden_name: str) -> str:
    if golden_name.endswith(".req"):
        return "request"
    return "response" if golden_name.endswith(".resp") else "event"


def payload_of(entry: dict) -> dict:
    """The golden payload fields, byte arrays back to bytes (the file stores them as hex)."""
    spec = V1.spec(*name_kind(entry))
    byte_fields = {spec.array.name} if spec.array is not None and spec.array.is_bytes else set()
    return {
        name: bytes.fromhex(value) if name in byte_fields else value
        for name, value in entry["fields"].items()
        if name not in HEADER and name != "note"
    }


def name_kind(entry: dict) -> tuple[str, str]:
    name = entry["name"].split(".")[0].removeprefix("BUS_")
    return name, expected_kind(entry["name"])


def test_there_are_thirty_golden_frames():
    assert len(GOLDEN) == 30


@pytest.mark.parametrize("entry", GOLDEN, ids=golden_id)
def test_decoding_a_golden_frame_gives_every_field_it_was_built_from(entry):
    """Header and payload values equal the ones gcc packed; the message is named by its header."""
    wire = bytes.fromhex(entry["hex"])
    frame = V1.decode(wire)
    name, kind = name_kind(entry)
    assert (frame.name, frame.kind) == (name, kind)
    assert frame.bus == entry["name"].startswith("BUS_")
    assert frame.msg_size == entry["size"] == len(wire)
    for field in HEADER:
        if field in entry["fields"]:
            assert getattr(frame, field) == entry["fields"][field], field
    payload = payload_of(entry)
    for field, value in payload.items():
        assert frame.fields[field] == value, field
        assert frame[field] == value, field


@pytest.mark.parametrize("entry", GOLDEN, ids=golden_id)
def test_encoding_the_golden_fields_gives_the_golden_bytes(entry):
    """msg_size is computed; array counts may be given (checked) or left out (derived)."""
    wire = bytes.fromhex(entry["hex"])
    name, kind = name_kind(entry)
    fields = entry["fields"]
    payload = payload_of(entry)
    assert V1.encode(name, kind, payload, dev_num=fields["dev_num"], token=fields["token"]) == wire
    spec = V1.spec(name, kind)
    if spec.array is not None and spec.array.name in payload:
        without_count = {k: v for k, v in payload.items() if k != spec.array.count}
        assert V1.encode(name, kind, without_count, dev_num=fields["dev_num"], token=fields["token"]) == wire


@pytest.mark.parametrize("entry", GOLDEN, ids=golden_id)
def test_json_round_trip_gives_the_golden_bytes(entry):
    """decode -> to_json -> (through real JSON text) -> encode_json is the identity on bytes."""
    wire = bytes.fromhex(entry["hex"])
    as_json = V1.decode(wire).to_json()
    assert set(as_json) == {"layout", "name", "kind", "header", "fields"}
    assert list(as_json["header"]) == list(HEADER)
    assert V1.encode_json(json.loads(json.dumps(as_json))) == wire


@pytest.mark.parametrize("entry", GOLDEN, ids=golden_id)
def test_fast_paths_give_the_same_bytes_as_the_contract(entry):
    """spec.encode (dict) and spec.pack (positional) skip the name look-up, not the result."""
    wire = bytes.fromhex(entry["hex"])
    frame = V1.decode(wire)
    spec = V1.spec(frame.name, frame.kind)
    assert spec.encode(frame.fields, frame.dev_num, frame.token) == wire
    assert spec.pack(frame.dev_num, frame.token, *frame.fields.values()) == wire
    assert spec.encode_checked(frame.fields, frame.dev_num, frame.token) == wire
    assert spec.decode_checked(wire) == frame


def test_decode_accepts_bytearray_and_memoryview():
    wire = bytes.fromhex(GOLDEN[7]["hex"])  # GET_CONFIG.resp, with a data[] array
    frame = V1.decode(wire)
    assert V1.decode(bytearray(wire)) == frame
    assert V1.decode(memoryview(wire)) == frame
    assert type(V1.decode(memoryview(wire)).fields["data"]) is bytes


def test_the_contract_example_round_trips():
    data = V1.encode("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, dev_num=1, token=0)
    frame = V1.decode(data)
    assert isinstance(frame, Frame)
    assert (frame.name, frame.kind, frame.type, frame.msg_id) == ("EVENT_AVAIL", "event", 0x00, 0x41)
    assert (frame.dev_num, frame.token, frame.msg_size, frame.bus) == (1, 0, 16, False)
    assert frame.fields == {"vq_index": 0, "next_offset": 0}


def test_layout_lists_its_messages_with_sizes():
    """Fixed messages have a size; ones with a trailing array only a minimum."""
    specs = {(s.name, s.kind): s for s in V1.messages}
    assert len(specs) == 30
    assert specs["GET_VQUEUE", "response"].size == 48
    assert specs["SET_VQUEUE", "request"].size == 48
    assert specs["GET_CONFIG", "response"].size is None
    assert specs["GET_CONFIG", "response"].min_size == 20
    assert specs["GET_DEVICES", "response"].bus and specs["GET_DEVICES", "response"].msg_id == 0x02
    assert V1.spec("EVENT_USED") is specs["EVENT_USED", "event"]


def test_set_config_response_may_omit_the_echo():
    """S-pr28: the response's data[] is an optional echo; length still says what was written."""
    wire = V1.encode("SET_CONFIG", "response", {"generation": 8, "offset": 0, "length": 2}, dev_num=1)
    assert len(wire) == 20
    frame = V1.decode(wire)
    assert frame.fields == {"generation": 8, "offset": 0, "length": 2, "data": b""}
    assert V1.encode_json(frame.to_json()) == wire


def test_reserved_words_may_be_omitted_and_are_kept_when_decoding():
    """Reserved words encode as 0 if omitted; non-zero ones survive so frames re-encode exactly."""
    fields = {"index": 0, "size": 256, "desc_addr": 1, "driver_addr": 2, "device_addr": 3}
    wire = V1.encode("SET_VQUEUE", "request", fields, dev_num=1, token=7)
    assert V1.decode(wire).fields == {**fields, "reserved0": 0, "reserved1": 0}
    odd = bytearray(wire)
    odd[12] = 0xAA  # reserved0 at absolute offset 12
    assert V1.decode(bytes(odd))["reserved0"] == 0xAA


# -- encoding errors name the field --------------------------------------------------------


@pytest.mark.parametrize(
    ("name", "kind", "fields", "extra", "named"),
    [
        ("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, {"dev_num": 0x10000}, "dev_num"),
        ("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, {"token": -1}, "token"),
        ("EVENT_AVAIL", "event", {"vq_index": 1 << 32, "next_offset": 0}, {}, "vq_index"),
        ("EVENT_AVAIL", "event", {"vq_index": "0", "next_offset": 0}, {}, "vq_index"),
        ("EVENT_AVAIL", "event", {"vq_index": 0}, {}, "next_offset"),
        ("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0, "wrap": 1}, {}, "wrap"),
        ("GET_CONFIG", "response", {"generation": 1, "offset": 0, "length": 3, "data": b"ab"}, {}, "length"),
        ("GET_CONFIG", "response", {"generation": 1, "offset": 0, "data": "ab"}, {}, "data"),
        ("GET_DEVICE_FEATURES", "response", {"block_index": 0, "features": [1 << 32]}, {}, "features[0]"),
        ("GET_DEVICES", "request", {"offset": 4, "count": 8}, {}, "offset"),
        (
            "GET_DEVICES",
            "response",
            {"offset": 0, "next_offset": 0, "bitmap": b"\x01", "count": 7},
            {},
            "count",
        ),
        ("GET_CONFIG", "response", {"generation": 1, "offset": 0, "data": bytes(65516)}, {}, "msg_size"),
        ("NOT_A_MESSAGE", "request", {}, {}, "NOT_A_MESSAGE"),
        ("EVENT_AVAIL", "request", {}, {}, "event"),
    ],
)
def test_encoding_a_bad_value_raises_encode_error_naming_it(name, kind, fields, extra, named):
    with pytest.raises(EncodeError, match=named.replace("[", r"\[").replace("]", r"\]")) as info:
        V1.encode(name, kind, fields, **extra)
    assert isinstance(info.value, VmsimError)


def test_unknown_layout_names_the_valid_ones():
    with pytest.raises(VmsimError, match="v1, draft-6b, fixed40, linux-2026, ffa-2025, ffa-2026"):
        get_layout("v2")


@pytest.mark.parametrize(
    ("obj", "named"),
    [
        ([], "JSON object"),
        ({"fields": {}}, "'name'"),
        ({"name": "PING", "fields": {"data": 1}}, "kind"),
        ({"layout": "draft-6b", "name": "EVENT_USED", "fields": {"vq_index": 1}}, "layout"),
        ({"name": "EVENT_USED", "header": {"msg_id": 0x41}, "fields": {"vq_index": 1}}, "msg_id"),
        ({"name": "EVENT_USED", "header": {"flags": 1}, "fields": {"vq_index": 1}}, "flags"),
        (
            {
                "name": "GET_CONFIG",
                "kind": "response",
                "fields": {"generation": 0, "offset": 0, "data": "zz"},
            },
            "data",
        ),
        ({"name": "EVENT_USED", "extra": 1}, "extra"),
    ],
)
def test_encode_json_rejects_malformed_objects_naming_the_key(obj, named):
    with pytest.raises(EncodeError, match=named):
        V1.encode_json(obj)


# -- decoding errors: only DecodeError, naming field and byte offset --------------------------

EVENT_AVAIL = bytes.fromhex("00410100000010000000000005000080")
FEATURES_RESP = bytes.fromhex("010301003412180000000000020000002000000001000000")
GET_DEVICES_RESP = bytes.fromhex("03020000420010000000100010002500")


def patched(wire: bytes, offset: int, *values: int) -> bytes:
    data = bytearray(wire)
    data[offset : offset + len(values)] = bytes(values)
    return bytes(data)


@pytest.mark.parametrize(
    ("data", "field", "offset"),
    [
        (b"", "type", 0),
        (EVENT_AVAIL[:5], "token", 4),  # truncated inside the header
        (EVENT_AVAIL[:12], "msg_size", 6),  # the buffer disagrees with msg_size 16
        (patched(EVENT_AVAIL, 6, 12)[:12], "next_offset", 12),  # msg_size says 12: truncated payload
        (EVENT_AVAIL + b"\x00", "msg_size", 6),
        (patched(EVENT_AVAIL + bytes(4), 6, 20), "msg_size", 6),  # consistent, but too long for the message
        (patched(EVENT_AVAIL, 1, 0x55), "msg_id", 1),  # unknown msg_id
        (patched(EVENT_AVAIL, 0, 0x01), "msg_id", 1),  # an event id cannot be a response
        (patched(EVENT_AVAIL, 0, 0x04), "type", 0),  # reserved type bits
        (patched(FEATURES_RESP, 12, 3), "num_blocks", 12),  # count overruns the frame
        (patched(FEATURES_RESP, 12, 1), "num_blocks", 12),  # count leaves trailing bytes
        (patched(GET_DEVICES_RESP, 8, 4), "offset", 8),  # GET_DEVICES offset not a multiple of 8
        (patched(GET_DEVICES_RESP, 10, 12), "count", 10),  # count not a multiple of 8
        (bytes.fromhex("0202000042000c0000000f00"), "count", 10),  # the request, count 15
    ],
)
def test_bad_bytes_raise_decode_error_naming_field_and_offset(data, field, offset):
    with pytest.raises(DecodeError) as info:
        V1.decode(data)
    message = str(info.value)
    assert f"'{field}'" in message and f"offset {offset}" in message, message


def test_decoding_something_that_is_not_bytes_is_a_decode_error():
    with pytest.raises(DecodeError, match="expected bytes"):
        V1.decode("0041")
