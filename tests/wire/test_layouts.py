"""The other generations and the FF-A bus, against frames written by hand from the offset tables.

Each expected frame is spelled out field by field in the order of the reference tables
(reference §2 headers, §3.1/§3.3 payloads, §4.3 FF-A), with the arithmetic in a comment:
nothing here is produced by the code under test.
"""

from __future__ import annotations

import pytest

from vmsim.wire import DecodeError, EncodeError, ffa, get_layout, layout_names


def hexcat(*parts: str) -> bytes:
    return bytes.fromhex("".join(parts))


def assert_codec(layout_name, name, kind, fields, wire, *, dev_num=0, token=0):
    """Encoding gives the hand-written bytes; decoding them gives the message and fields back."""
    layout = get_layout(layout_name)
    assert layout.encode(name, kind, fields, dev_num=dev_num, token=token) == wire
    frame = layout.decode(wire)
    assert (frame.name, frame.kind, frame.dev_num) == (name, kind, dev_num)
    assert frame.msg_size == len(wire)
    for field, value in fields.items():
        assert frame.fields[field] == value, field
    assert layout.encode_json(frame.to_json()) == wire
    return frame


def test_every_layout_is_selectable_with_its_header_size():
    sizes = {name: get_layout(name).header_size for name in layout_names()}
    assert sizes == {"v1": 8, "draft-6b": 6, "fixed40": 4, "linux-2026": 8, "ffa-2025": 8, "ffa-2026": 8,
                     "vmsim-share": 8}
    assert get_layout() is get_layout("v1")


# -- draft-6b: 6-byte header type, msg_id, dev_num, msg_size; no reserved words ------------------


def test_draft_6b_get_vqueue_response_has_no_reserved_word():
    """6 + 36 = 42 (0x2a) bytes: desc_addr sits at 6 + 12 = 18, not 8-byte aligned."""
    wire = hexcat(
        "01", "09", "0300", "2a00",  # response, GET_VQUEUE, dev 3, msg_size 42
        "01000000", "00010000", "80000000",  # index 1, max_size 256, cur_size 128 @6/@10/@14
        "0010000000000000", "0020000000000000", "0030000000000000",  # addresses @18/@26/@34
    )  # fmt: skip
    fields = {"index": 1, "max_size": 256, "cur_size": 128, "desc_addr": 0x1000, "driver_addr": 0x2000}
    frame = assert_codec(
        "draft-6b", "GET_VQUEUE", "response", {**fields, "device_addr": 0x3000}, wire, dev_num=3
    )
    assert frame.token is None
    assert "token" not in frame.to_json()["header"]


def test_draft_6b_set_vqueue_has_one_unused_word():
    wire = hexcat(
        "00", "0a", "0100", "2a00",  # request, SET_VQUEUE, dev 1, 6 + 36 = 42
        "00000000", "00000000", "00010000",  # index 0, reserved (unused) 0, size 256
        "0010004000000000", "0020004000000000", "0030004000000000",
    )  # fmt: skip
    fields = {"index": 0, "size": 256, "desc_addr": 0x40001000, "driver_addr": 0x40002000}
    assert_codec("draft-6b", "SET_VQUEUE", "request", {**fields, "device_addr": 0x40003000}, wire, dev_num=1)


def test_draft_6b_ignores_the_token():
    """EVENT_AVAIL: 6 + 8 = 14 (0x0e); a token keyword has nowhere to go and is ignored."""
    wire = hexcat("00", "41", "0100", "0e00", "00000000", "05000080")
    fields = {"vq_index": 0, "next_offset": 0x80000005}
    assert get_layout("draft-6b").encode("EVENT_AVAIL", "event", fields, dev_num=1, token=99) == wire
    assert_codec("draft-6b", "EVENT_AVAIL", "event", fields, wire, dev_num=1)


# -- fixed40: 4-byte header type, msg_id, dev_id; always 40 bytes, zero-filled ------------------

ZERO = "00"


def test_fixed40_get_config_packs_a_24_bit_offset_below_the_size():
    """offset 0x123456, size 6 -> le32 0x06123456 = 56 34 12 06; 4 + 4 = 8, then 32 zero bytes."""
    wire = hexcat("00", "06", "0200", "56341206", ZERO * 32)
    assert len(wire) == 40
    assert_codec("fixed40", "GET_CONFIG", "request", {"offset": 0x123456, "length": 6}, wire, dev_num=2)


def test_fixed40_event_config_carries_up_to_16_data_bytes():
    """status 0x0f; offset 0x10 | size 2 << 24 = 0x02000010; data aa bb in a 16-byte slot @12."""
    wire = hexcat("00", "10", "0100", "0f000000", "10000002", "aabb", ZERO * 26)  # 14 + 26 = 40
    fields = {"device_status": 0x0F, "offset": 0x10, "length": 2, "data": b"\xaa\xbb"}
    assert_codec("fixed40", "EVENT_CONFIG", "event", fields, wire, dev_num=1)


def test_fixed40_features_are_32_bytes_as_eight_blocks():
    """index @4, then features[8] le32 @8..40 (L-2024's le64[4], same bytes)."""
    wire = hexcat("01", "04", "0100", "00000000", "20000000", "01000000", ZERO * 24)
    fields = {"index": 0, "features": [0x20, 1, 0, 0, 0, 0, 0, 0]}
    assert_codec("fixed40", "GET_DEVICE_FEATURES", "response", fields, wire, dev_num=1)


def test_fixed40_events_and_connect():
    """Events are 0x10-0x12 (type 0x00); CONNECT 0x01 has no payload."""
    avail = hexcat("00", "11", "0100", "01000000", "05000000", "01000000", ZERO * 24)
    assert_codec(
        "fixed40", "EVENT_AVAIL", "event", {"vq_index": 1, "next_offset": 5, "next_wrap": 1}, avail, dev_num=1
    )
    connect = hexcat("00", "01", "0000", ZERO * 36)
    frame = assert_codec("fixed40", "CONNECT", "request", {}, connect)
    assert frame.msg_size == 40 and frame.token is None
    assert get_layout("fixed40").spec("GET_CONFIG_GEN", "response").size == 40


@pytest.mark.parametrize(
    ("data", "field", "offset"),
    [
        (hexcat("00", "01", "0000", ZERO * 35), "frame", 39),  # 39 bytes: not a fixed frame
        (hexcat("00", "01", "0000", ZERO * 36, "00"), "frame", 40),
        (hexcat("00", "01", "0000", ZERO * 20, "01", ZERO * 15), "padding", 24),  # non-zero padding
        (hexcat("01", "06", "0000", "00000021", ZERO * 32), "length", 7),  # size 33 > 32-byte slot
        (hexcat("01", "06", "0000", "00000001", "aa", "bb", ZERO * 30), "padding", 9),  # past size 1
        (hexcat("00", "13", "0000", ZERO * 36), "msg_id", 1),  # no event 0x13
    ],
)
def test_fixed40_rejects_frames_that_would_not_re_encode(data, field, offset):
    with pytest.raises(DecodeError) as info:
        get_layout("fixed40").decode(data)
    assert f"'{field}'" in str(info.value) and f"offset {offset}" in str(info.value), str(info.value)


def test_fixed40_slot_sizes_bound_the_arrays():
    layout = get_layout("fixed40")
    with pytest.raises(EncodeError, match="data"):
        layout.encode("SET_CONFIG", "request", {"offset": 0, "data": bytes(33)})
    with pytest.raises(EncodeError, match="features"):
        layout.encode("SET_DRIVER_FEATURES", "request", {"index": 0, "features": [1, 2]})
    with pytest.raises(EncodeError, match="offset"):
        layout.encode("GET_CONFIG", "request", {"offset": 1 << 24, "length": 1})


# -- linux-2026: L-26@f3796dd7 ----------------------------------------------------------------


def test_linux_2026_device_info_has_uuid_and_feature_blocks():
    """device_id@8, vendor@12, uuid[16]@16, blocks@32, config@36, max_vq@40, admin le32 @44/@48 -> 52."""
    wire = hexcat(
        "01", "02", "0100", "3412", "3400",  # response, GET_DEVICE_INFO, dev 1, token 0x1234, 52
        "01000000", "51454d55",  # device_id 1, vendor 'QEMU'
        "00112233445566778899aabbccddeeff",  # device_uuid
        "02000000", "10000000", "02000000", "00000000", "00000000",
    )  # fmt: skip
    fields = {
        "device_id": 1,
        "vendor_id": 0x554D4551,
        "device_uuid": bytes.fromhex("00112233445566778899aabbccddeeff"),
        "num_feature_blocks": 2,
        "config_size": 16,
        "max_virtqueues": 2,
        "admin_vq_start": 0,
        "admin_vq_count": 0,
    }
    frame = assert_codec("linux-2026", "GET_DEVICE_INFO", "response", fields, wire, dev_num=1, token=0x1234)
    assert frame.to_json()["fields"]["device_uuid"] == "00112233445566778899aabbccddeeff"
    with pytest.raises(EncodeError, match="device_uuid"):
        get_layout("linux-2026").encode("GET_DEVICE_INFO", "response", {**fields, "device_uuid": b"short"})


def test_linux_2026_get_shm_is_64_bit():
    """shmid@8, reserved@12, length le64 @16, address le64 @24 -> 32 (0x20)."""
    wire = hexcat(
        "01", "0c", "0100", "3412", "2000", "00000000", "00000000", "0000100000000000", "0000005000000000"
    )
    fields = {"shmid": 0, "length": 1 << 20, "address": 0x50000000}
    assert_codec("linux-2026", "GET_SHM", "response", fields, wire, dev_num=1, token=0x1234)


def test_linux_2026_get_devices_response_is_reordered():
    """offset@8, next_offset@10, count@12, bitmap@14 (v1 has count before next_offset)."""
    wire = hexcat("03", "02", "0000", "4200", "1000", "0000", "1000", "1000", "2500")
    fields = {"offset": 0, "next_offset": 16, "count": 16, "bitmap": b"\x25\x00"}
    assert_codec("linux-2026", "GET_DEVICES", "response", fields, wire, token=0x42)


def test_linux_2026_set_vqueue_carries_flags():
    wire = hexcat(
        "00", "0a", "0100", "3412", "3000",
        "00000000", "01000000", "00010000", "00000000",  # index 0, flags ENABLE, size 256, reserved
        "0010004000000000", "0020004000000000", "0030004000000000",
    )  # fmt: skip
    fields = {"index": 0, "flags": 1, "size": 256, "desc_addr": 0x40001000, "driver_addr": 0x40002000}
    assert_codec(
        "linux-2026",
        "SET_VQUEUE",
        "request",
        {**fields, "device_addr": 0x40003000},
        wire,
        dev_num=1,
        token=0x1234,
    )


# -- FF-A bus messages (type 0x02 / 0x03, dev_num 0) -------------------------------------------


def test_ffa_2025_version_request():
    """driver_version@8, vmsg_revision@12, vmsg_features@16, features@20, area_num le16 @24 -> 26."""
    wire = hexcat("02", "80", "0000", "0100", "1a00", "01000000", "01000000", "00000000", "03000000", "ff00")
    features = ffa.BusFeature.DIRECT_RX | ffa.BusFeature.DIRECT_TX
    fields = {
        "driver_version": 1,
        "vmsg_revision": 1,
        "vmsg_features": 0,
        "features": int(features),
        "area_num": 0xFF,
    }
    assert_codec("ffa-2025", "VERSION", "request", fields, wire, token=1)


def test_ffa_2025_area_share_has_unaligned_64_bit_fields():
    """area_id le16 @8, mem_handle le64 @10, tag le64 @18, count @26, attr @30 -> 34 (0x22)."""
    wire = hexcat(
        "02",
        "81",
        "0000",
        "0200",
        "2200",
        "0100",
        "8877665544332211",
        "0000000000000000",
        "04000000",
        "00000000",
    )
    fields = {"area_id": 1, "mem_handle": 0x1122334455667788, "tag": 0, "count": 4, "attr": 0}
    assert_codec("ffa-2025", "AREA_SHARE", "request", fields, wire, token=2)
    reply = hexcat("03", "81", "0000", "0200", "0c00", "0100", "0000")  # area_id 1, result SUCCESS
    assert_codec(
        "ffa-2025", "AREA_SHARE", "response", {"area_id": 1, "result": ffa.Result.SUCCESS}, reply, token=2
    )


def test_ffa_2025_area_release_is_a_bus_event_and_reset_is_empty():
    release = hexcat("02", "c0", "0000", "0000", "0a00", "0500")
    frame = assert_codec("ffa-2025", "AREA_RELEASE", "event", {"area_id": 5}, release)
    assert frame.bus
    assert_codec("ffa-2025", "RESET", "request", {}, hexcat("02", "83", "0000", "0300", "0800"), token=3)


def test_ffa_2025_does_not_know_the_2026_messages():
    with pytest.raises(DecodeError, match="msg_id"):
        get_layout("ffa-2025").decode(hexcat("02", "85", "0000", "0300", "0c00", "01", "00", "0500"))


def test_ffa_2026_version_response():
    """bus_version 1.0 = 0x00010000, revision 1, FF-A 1.2 = 0x00010002, bus_features @24, max_areas @28 -> 30."""
    wire = hexcat(
        "03", "80", "0000", "0200", "1e00", "00000100", "01000000", "02000100", "00000000", "33000000", "ffff"
    )
    features = (
        ffa.BusFeature.DIRECT_RX
        | ffa.BusFeature.DIRECT_TX
        | ffa.BusFeature.NOTIF_RX
        | ffa.BusFeature.NOTIF_TX
    )
    fields = {
        "bus_version": ffa.BUS_VERSION_1_0,
        "transport_revision": 1,
        "ffa_version": 0x00010002,
        "feature_bits": 0,
        "bus_features": int(features),
        "max_areas": 0xFFFF,
    }
    assert_codec("ffa-2026", "VERSION", "response", fields, wire, token=2)


def test_ffa_2026_event_and_fifo_configure():
    configure = hexcat("02", "85", "0000", "0300", "0c00", "01", "00", "0500")  # NOTIF, reserved, notif 5
    assert_codec(
        "ffa-2026",
        "EVENT_CONFIGURE",
        "request",
        {"event_method": ffa.EventMethod.NOTIF, "notif_id": 5},
        configure,
        token=3,
    )
    fifo = hexcat("02", "86", "0000", "0400", "1400", "bbaa000000000000", "0400", "0700")  # 8 + 12 = 20
    assert_codec(
        "ffa-2026",
        "FIFO_CONFIGURE",
        "request",
        {"mem_handle": 0xAABB, "page_count": 4, "driver_notif_id": 7},
        fifo,
        token=4,
    )
    reply = hexcat("03", "86", "0000", "0400", "0c00", "0000", "0900")
    assert_codec(
        "ffa-2026", "FIFO_CONFIGURE", "response", {"result": 0, "device_notif_id": 9}, reply, token=4
    )


def test_ffa_2026_error_echoes_the_failing_dev_num_and_reset_reports_a_result():
    error = hexcat("03", "87", "0300", "0500", "0a00", "0500")
    assert_codec("ffa-2026", "ERROR", "response", {"original_msg_id": 5}, error, dev_num=3, token=5)
    reset = hexcat("03", "83", "0000", "0600", "0a00", "0200")
    assert_codec("ffa-2026", "RESET", "response", {"result": ffa.Result.BUSY}, reset, token=6)


def test_ffa_2026_area_share_with_the_default_sharing_attributes():
    wire = hexcat(
        "02",
        "81",
        "0000",
        "0800",
        "2200",
        "0200",
        "0100000000000000",
        "0000000000000000",
        "01000000",
        "f4060000",
    )
    fields = {"area_id": 2, "mem_handle": 1, "mem_tag": 0, "page_count": 1, "sharing_attrs": 0x6F4}
    assert_codec("ffa-2026", "AREA_SHARE", "request", fields, wire, token=8)


def test_ffa_2026_event_poll_response_is_empty_or_the_pending_event():
    """An empty EVENT_POLL response is header-only; a pending event simply decodes as that event."""
    layout = get_layout("ffa-2026")
    assert layout.decode(hexcat("03", "84", "0000", "0700", "0800")).name == "EVENT_POLL"
    pending = layout.decode(hexcat("00", "42", "0100", "0000", "0c00", "01000000"))
    assert (pending.name, pending.kind, pending["vq_index"]) == ("EVENT_USED", "event", 1)


# -- FF-A helpers --------------------------------------------------------------------------------


def test_sharing_attributes_default_is_share_rw_xn_inner_wb_normal_ns():
    """SHARE 0 | W 1<<2 | inner 3<<4 | WB 3<<6 | normal 2<<8 | NS 1<<10 = 0x4+0x30+0xc0+0x200+0x400 = 0x6f4."""
    assert ffa.SharingAttrs().encode() == ffa.SHARE_RW_XN_INNER_WB_NORMAL_NS == 0x6F4
    assert ffa.SharingAttrs.decode(0x6F4) == ffa.SharingAttrs()


def test_sharing_attributes_round_trip_every_field():
    """LEND 1 | X 1<<3 | non-shareable 0 | non-cacheable 1<<6 | device 1<<8 | retention 1<<11 = 0x949."""
    attrs = ffa.SharingAttrs(
        type=ffa.SharingType.LEND,
        writeable=False,
        executable=True,
        shareability=ffa.Shareability.NON,
        cacheability=ffa.Cacheability.NON,
        memory_type=ffa.MemoryType.DEVICE,
        non_secure=False,
        driver_retention=True,
    )
    assert attrs.encode() == 0x949
    assert ffa.SharingAttrs.decode(0x949) == attrs


def test_sharing_attributes_reject_reserved_bits_and_wide_values():
    with pytest.raises(DecodeError, match="reserved bits"):
        ffa.SharingAttrs.decode(0x1000 | 0x6F4)
    with pytest.raises(EncodeError, match="shareability"):
        ffa.SharingAttrs(shareability=4).encode()


def test_bus_addresses_put_the_area_id_above_the_offset():
    """2026 / L-ffa-8b: area_id << 48; RFC 2025: area_id << 56."""
    assert ffa.bus_address(3, 0x1000) == 0x0003_0000_0000_1000
    assert ffa.split_bus_address(0x0003_0000_0000_1000) == (3, 0x1000)
    assert ffa.bus_address(3, 0x1000, ffa.AREA_SHIFT_RFC2025) == 0x0300_0000_0000_1000
    assert ffa.split_bus_address(0x0300_0000_0000_1000, ffa.AREA_SHIFT_RFC2025) == (3, 0x1000)
    with pytest.raises(EncodeError, match="area_id"):
        ffa.bus_address(0x100, 0, ffa.AREA_SHIFT_RFC2025)
    with pytest.raises(EncodeError, match="offset"):
        ffa.bus_address(1, 1 << 48)
    with pytest.raises(DecodeError):
        ffa.split_bus_address(1 << 64)


def test_direct_req2_image_holds_the_frame_in_x4_to_x17():
    """A 12-byte EVENT_USED goes at byte 0 of the 112-byte image; x4 holds its first 8 bytes."""
    frame = hexcat("00", "42", "0100", "0000", "0c00", "01000000")
    image = ffa.pack_direct_req2(frame)
    assert len(image) == 112 and image == frame + bytes(100)
    registers = ffa.image_to_registers(image)
    assert len(registers) == 14
    assert registers[0] == 0x000C_0000_0001_4200  # x4: type, msg_id, dev_num, token, msg_size (LE)
    assert registers[1] == 1 and registers[2:] == (0,) * 12
    assert ffa.registers_to_image(registers) == image
    assert ffa.unpack_direct_req2(image) == frame


def test_direct_req2_busy_sentinel_and_limits():
    """All-zero RESP2 = busy (None); frames beyond 104 bytes do not fit the FF-A bus."""
    assert ffa.unpack_direct_req2(bytes(112)) is None
    too_big = get_layout("ffa-2026").encode(
        "SET_CONFIG", "request", {"generation": 0, "offset": 0, "data": bytes(85)}
    )  # 20 + 85 = 105
    with pytest.raises(EncodeError, match="msg_size"):
        ffa.pack_direct_req2(too_big)
    garbage = bytearray(ffa.pack_direct_req2(hexcat("02", "84", "0000", "0700", "0800")))
    garbage[50] = 1
    with pytest.raises(DecodeError, match="offset 50"):
        ffa.unpack_direct_req2(bytes(garbage))
    with pytest.raises(DecodeError, match="msg_size"):
        ffa.unpack_direct_req2(bytes(6) + b"\x70\x00" + bytes(104))


def test_ffa_2025_get_devices_asks_for_0xff_device_numbers():
    """The RFC 2025 FF-A driver asks GET_DEVICES(offset 0, count 0xFF), not a multiple of 8: ffa-2025 takes it,
    the answer's bitmap holding one byte per 8 device numbers started (32 bytes, msg_size 46); v1 still
    requires whole bitmap bytes, and a bitmap too short for the count is refused."""
    layout = get_layout("ffa-2025")
    assert_codec("ffa-2025", "GET_DEVICES", "request", {"offset": 0, "count": 0xFF},
                 hexcat("02", "02", "0000", "0100", "0c00", "0000", "ff00"), token=1)
    bitmap = bytes([0b101]) + bytes(31)  # devices 0 and 2
    answer = layout.encode("GET_DEVICES", "response", {"offset": 0, "count": 0xFF, "next_offset": 0,
                                                       "bitmap": bitmap}, token=1)
    assert len(answer) == 46 and layout.decode(answer).fields["bitmap"] == bitmap
    with pytest.raises(EncodeError, match="not a multiple of 8"):
        get_layout("v1").encode("GET_DEVICES", "request", {"offset": 0, "count": 0xFF})
    with pytest.raises(EncodeError, match="bitmap has 31 elements"):
        layout.encode("GET_DEVICES", "response", {"offset": 0, "count": 0xFF, "next_offset": 0,
                                                  "bitmap": bytes(31)})
