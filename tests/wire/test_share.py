"""vmsim-share, vmsim's own share messages, against frames written by hand from the table in its docstring;
round trips and fuzzing restricted to the three new messages."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_fuzz_messages import FUZZ, assert_only_decode_error, messages, mutated_frames
from test_layouts import assert_codec, hexcat

from vmsim.wire import DecodeError, get_layout
from vmsim.wire.share import SHM_RELEASE, SHM_SHARE, SHM_UNSHARE, MemType, Op, Result

LAYOUT = get_layout("vmsim-share")
SHARE_SPECS = [spec for spec in LAYOUT.messages if spec.name.startswith("SHM_")]
ONLY_SHARE = SimpleNamespace(messages=SHARE_SPECS, encode=LAYOUT.encode, header=LAYOUT.header)  # what the
# fuzz strategies read of a layout, narrowed to the three new messages
REGION = {"share_id": 7, "mem_type": MemType.NON_CACHEABLE, "count": 4, "bus_address": 0xA000_0001_0000_0000,
          "offset": 0x3000, "size": 0x4000}


def test_a_share_request_is_a_40_byte_bus_request_in_the_implementation_defined_range():
    """type 0x02 (bus request), msg_id 0xA0, dev_num 1, token 5, msg_size 8 + 32 = 40, then share_id @8,
    op @12, mem_type @13, count @14, bus_address @16, offset @24, size @32."""
    wire = hexcat(
        "02", "a0", "0100", "0500", "2800",
        "07000000", "00", "01", "0400",
        "00000000010000a0", "0030000000000000", "0040000000000000",
    )  # fmt: skip
    assert_codec("vmsim-share", "SHM_SHARE", "request", {**REGION, "op": Op.SHARE}, wire, dev_num=1, token=5)
    assert 0x80 <= SHM_SHARE < SHM_UNSHARE <= 0xBF and 0xC0 <= SHM_RELEASE <= 0xFF


def test_the_acknowledgements_are_the_responses():
    """type 0x03 (bus response), 8 + 8 = 16 bytes: share_id, op SHARE_ACK / UNSHARE_ACK, result, reserved."""
    ack = hexcat("03", "a0", "0100", "0500", "1000", "07000000", "02", "00", "0000")
    assert_codec("vmsim-share", "SHM_SHARE", "response", {"share_id": 7, "op": Op.SHARE_ACK,
                                                          "result": Result.SUCCESS}, ack, dev_num=1, token=5)
    busy = hexcat("03", "a1", "0100", "0600", "1000", "07000000", "03", "02", "0000")
    assert_codec("vmsim-share", "SHM_UNSHARE", "response", {"share_id": 7, "op": Op.UNSHARE_ACK,
                                                            "result": Result.BUSY}, busy, dev_num=1, token=6)


def test_a_device_initiated_release_is_a_bus_event_with_the_descriptor():
    """msg_id 0xE0 has bit 6 set: an event (token 0); the device says which region it gave back."""
    wire = hexcat(
        "02", "e0", "0100", "0000", "2800",
        "07000000", "01", "01", "0400",
        "00000000010000a0", "0030000000000000", "0040000000000000",
    )  # fmt: skip
    frame = assert_codec("vmsim-share", "SHM_RELEASE", "event", {**REGION, "op": Op.UNSHARE}, wire, dev_num=1)
    assert frame.bus and frame.kind == "event"


def test_vmsim_share_is_v1_plus_the_three_messages_and_v1_knows_none_of_them():
    v1 = get_layout("v1")
    known = {(spec.name, spec.kind) for spec in v1.messages}
    assert [(spec.name, spec.kind) for spec in LAYOUT.messages if (spec.name, spec.kind) not in known] == [
        ("SHM_SHARE", "request"), ("SHM_SHARE", "response"), ("SHM_UNSHARE", "request"),
        ("SHM_UNSHARE", "response"), ("SHM_RELEASE", "event")]
    with pytest.raises(DecodeError):
        v1.decode(hexcat("02", "e0", "0100", "0000", "0800"))


@FUZZ
@given(data=st.data())
def test_share_messages_round_trip(data):
    spec, fields, dev_num, token = data.draw(messages(ONLY_SHARE))
    wire = LAYOUT.encode(spec.name, spec.kind, fields, dev_num=dev_num, token=token)
    frame = LAYOUT.decode(wire)
    assert (frame.name, frame.kind, frame.dev_num, frame.token) == (spec.name, spec.kind, dev_num, token)
    assert {k: frame.fields[k] for k in fields} == fields
    assert LAYOUT.encode_json(frame.to_json()) == wire


@FUZZ
@given(data=st.data())
def test_mutated_share_frames_only_raise_decode_error(data):
    wire = data.draw(mutated_frames(ONLY_SHARE))
    assert_only_decode_error(LAYOUT, wire)
