"""vsock header and the two VIRTIO_VSOCK_OP_SHMEM descriptor forms: bytes, round trips, bad input."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.vsock import (
    HEADER_SIZE,
    OP_CREDIT_REQUEST,
    OP_SHMEM,
    SHMEM_OFFER,
    SHMEM_RECLAIM,
    SHMEM_TYPE_FFA,
    TYPE_STREAM,
    ShmemDmaBuf,
    ShmemSgList,
    VsockHeader,
    decode_header,
    decode_packet,
    decode_shmem_dma,
    decode_shmem_sg,
    encode_header,
    encode_packet,
    encode_shmem_dma,
    encode_shmem_sg,
)

HDR = VsockHeader(src_cid=3, dst_cid=2, src_port=1024, dst_port=9999, len=0, type=TYPE_STREAM, op=OP_SHMEM,
                  flags=0, buf_alloc=0x40000, fwd_cnt=7)


def test_header_is_44_packed_bytes():
    """src_cid @0, dst_cid @8, src_port @16, dst_port @20, len @24, type @28, op @30, flags @32,
    buf_alloc @36, fwd_cnt @40; SHMEM is op 8, right after CREDIT_REQUEST (O-vsock, V-vsock)."""
    raw = encode_header(HDR)
    assert len(raw) == HEADER_SIZE == 44
    assert struct.unpack_from("<QQ", raw, 0) == (3, 2)
    assert struct.unpack_from("<IIIHH", raw, 16) == (1024, 9999, 0, TYPE_STREAM, 8)
    assert struct.unpack_from("<III", raw, 32) == (0, 0x40000, 7)
    assert (OP_CREDIT_REQUEST, OP_SHMEM) == (7, 8)
    assert decode_header(raw) == HDR


def test_sg_list_descriptor_bytes():
    """OP-TEE form: subop, type, len = 4 + 12 * nents, then nents and packed {addr u64, len u32} entries."""
    desc = ShmemSgList(SHMEM_OFFER, SHMEM_TYPE_FFA, ((1 << 48 | 0x1000, 4096), (2 << 48, 0x2000)))
    raw = encode_shmem_sg(desc)
    assert raw.hex() == ("00000000" "01000000" "1c000000" "02000000"
                         "0010000000000100" "00100000" "0000000000000200" "00200000")
    assert decode_shmem_sg(raw) == desc


def test_dma_heap_descriptor_bytes():
    """FF-A dma-heap form: subop, type, len 16, then dma_handle u64 and size u64."""
    desc = ShmemDmaBuf(SHMEM_RECLAIM, SHMEM_TYPE_FFA, 5 << 48 | 0x40, 1 << 20)
    raw = encode_shmem_dma(desc)
    assert raw == struct.pack("<IIIQQ", 2, 1, 16, 5 << 48 | 0x40, 1 << 20)
    assert decode_shmem_dma(raw) == desc


def test_packet_carries_the_descriptor_as_payload():
    """An OP_SHMEM packet is the header with len = descriptor size, then the descriptor."""
    payload = encode_shmem_dma(ShmemDmaBuf(SHMEM_OFFER, SHMEM_TYPE_FFA, 0x1000, 0x1000))
    hdr, body = decode_packet(encode_packet(HDR, payload))
    assert (hdr.len, hdr.op, body) == (28, OP_SHMEM, payload)


@pytest.mark.parametrize(
    ("decoder", "data", "message"),
    [
        (decode_header, bytes(43), "vsock header: needs 44 bytes at offset 0, buffer has 43"),
        (decode_packet, encode_header(HDR._replace(len=5)) + b"abc",
         "vsock header: len at offset 24 is 0x5, expected <= the 3 bytes that follow"),
        (decode_shmem_sg, struct.pack("<III", 0, 1, 16) + bytes(8),
         "vsock shmem sg: len at offset 8 is 0x10, expected <= the 8 bytes that follow"),
        (decode_shmem_sg, struct.pack("<IIII", 0, 1, 16, 5) + bytes(12),
         "vsock shmem sg: nents at offset 12 is 0x5"),
        (decode_shmem_sg, struct.pack("<III", 0, 1, 2) + bytes(2), "len at offset 8 is 0x2, expected >= 4"),
        (decode_shmem_dma, struct.pack("<III", 0, 1, 8) + bytes(8), "len at offset 8 is 0x8, expected 16"),
    ],
)
def test_truncation_and_overruns_name_field_and_offset(decoder, data, message):
    with pytest.raises(DecodeError) as err:
        decoder(data)
    assert message in str(err.value)


def test_out_of_range_values_are_encode_errors():
    with pytest.raises(EncodeError):
        encode_header(HDR._replace(op=1 << 16))
    with pytest.raises(EncodeError):
        encode_shmem_sg(ShmemSgList(0, 1, ((1, 1 << 32),)))
    with pytest.raises(EncodeError):
        encode_shmem_dma(ShmemDmaBuf(-1, 1, 0, 0))


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=120))
def test_fuzz_decoders_only_decode_error_and_round_trip(data):
    """Random bytes either decode, and then re-encode to the same bytes, or raise DecodeError."""
    for decoder, encoder in ((decode_shmem_sg, encode_shmem_sg), (decode_shmem_dma, encode_shmem_dma)):
        try:
            desc = decoder(data)
        except DecodeError:
            continue
        raw = encoder(desc)
        assert data.startswith(raw)
    try:
        hdr, body = decode_packet(data)
        assert encode_packet(hdr, body) == data[:HEADER_SIZE + hdr.len]
    except DecodeError:
        pass


@settings(max_examples=100, deadline=None)
@given(st.integers(0, 3), st.integers(0, 2**32 - 1),
       st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(0, 2**32 - 1)), max_size=8))
def test_sg_round_trip(subop, typ, sgs):
    desc = ShmemSgList(subop, typ, tuple(sgs))
    assert decode_shmem_sg(encode_shmem_sg(desc)) == desc
