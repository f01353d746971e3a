"""The 44-byte virtio-vsock packet header and the two published VIRTIO_VSOCK_OP_SHMEM descriptors.

`VIRTIO_VSOCK_OP_SHMEM` (8) offers a shared buffer as an ordinary vsock packet whose `len` bytes of
payload are a descriptor (O-vsock, V-vsock; reference §7). Two incompatible descriptor forms exist and
cannot be told apart from the bytes (a one-entry sg-list is also 16 bytes long), so each has its own
codec: the OP-TEE sg-list form (`ShmemSgList`) and the FF-A dma-heap form (`ShmemDmaBuf`).

Decoders raise only DecodeError (truncation, `len` or `nents` overrunning the bytes, naming the field
and offset); encoders raise only EncodeError.
"""

from __future__ import annotations

import struct
from typing import NamedTuple

from vmsim.errors import EncodeError
from vmsim.wire._view import U32, bad_field, check_span, readable_bytes

HEADER = struct.Struct("<QQIIIHHIII")
HEADER_SIZE = 44
"""`struct virtio_vsock_hdr`, packed little-endian (virtio 1.2 §5.10.6)."""

TYPE_STREAM = 1
TYPE_SEQPACKET = 2
OP_INVALID = 0
OP_REQUEST = 1
OP_RESPONSE = 2
OP_RST = 3
OP_SHUTDOWN = 4
OP_RW = 5
OP_CREDIT_UPDATE = 6
OP_CREDIT_REQUEST = 7
"""Packet types and ops of virtio 1.2 §5.10.6."""
OP_SHMEM = 8
"""`VIRTIO_VSOCK_OP_SHMEM`, the shared-memory offer op after CREDIT_REQUEST (O-vsock, V-vsock)."""
SHUTDOWN_RCV = 1
SHUTDOWN_SEND = 2

SHMEM_OFFER = 0
SHMEM_RELINQUISH = 1
SHMEM_RECLAIM = 2
"""Descriptor `subop` values of the OP-TEE vsock device (O-vsock); Linux userspace calls 1 REVOKE (V-vsock)."""
SHMEM_TYPE_FFA = 1
"""`VSOCK_SHMEM_TYPE_FFA`: addresses are FF-A bus addresses, area_id << 48 | offset (O-vsock)."""

_SHMEM_HDR = struct.Struct("<III")  # subop, type, len (bytes of payload that follow)
_SG = struct.Struct("<QI")          # addr, len
_DMA = struct.Struct("<QQ")         # dma_handle, size
SHMEM_HEADER_SIZE = 12
SG_SIZE = 12
DMA_PAYLOAD_SIZE = 16


class VsockHeader(NamedTuple):
    src_cid: int
    dst_cid: int
    src_port: int
    dst_port: int
    len: int
    type: int
    op: int
    flags: int = 0
    buf_alloc: int = 0
    fwd_cnt: int = 0


class ShmemSgList(NamedTuple):
    """OP-TEE form: payload {nents u32, sgs[nents] {addr u64, len u32}} (O-vsock)."""

    subop: int
    type: int
    sgs: tuple[tuple[int, int], ...]


class ShmemDmaBuf(NamedTuple):
    """FF-A dma-heap form: payload {dma_handle u64 (bus address), size u64} (V-vsock)."""

    subop: int
    type: int
    dma_handle: int
    size: int


def _pack(st: struct.Struct, what: str, *values) -> bytes:
    try:
        return st.pack(*values)
    except (struct.error, TypeError) as exc:
        raise EncodeError(f"{what}: cannot encode {values!r} ({exc})") from None


def encode_header(hdr: VsockHeader) -> bytes:
    return _pack(HEADER, "vsock header", *hdr)


def decode_header(buf, offset: int = 0) -> VsockHeader:
    buf = readable_bytes(buf, "vsock header")
    check_span(buf, offset, HEADER_SIZE, "vsock header")
    return VsockHeader._make(HEADER.unpack_from(buf, offset))


def encode_packet(hdr: VsockHeader, payload: bytes = b"") -> bytes:
    """Header with `len` set to the payload size, then the payload."""
    return encode_header(hdr._replace(len=len(payload))) + bytes(payload)


def decode_packet(buf, offset: int = 0) -> tuple[VsockHeader, bytes]:
    """(header, payload); DecodeError when `len` overruns the bytes that follow the header."""
    buf = readable_bytes(buf, "vsock packet")
    hdr = decode_header(buf, offset)
    start = offset + HEADER_SIZE
    if hdr.len > len(buf) - start:
        raise bad_field("vsock header", "len", offset + 24, hdr.len, f"<= the {len(buf) - start} bytes that follow")
    return hdr, bytes(buf[start:start + hdr.len])


def _shmem_header(buf, offset: int, what: str) -> tuple[int, int, int]:
    check_span(buf, offset, SHMEM_HEADER_SIZE, what)
    subop, typ, length = _SHMEM_HDR.unpack_from(buf, offset)
    rest = len(buf) - offset - SHMEM_HEADER_SIZE
    if length > rest:
        raise bad_field(what, "len", offset + 8, length, f"<= the {rest} bytes that follow")
    return subop, typ, length


def encode_shmem_sg(desc: ShmemSgList) -> bytes:
    sgs = tuple(desc.sgs)
    parts = [_pack(_SHMEM_HDR, "vsock shmem sg", desc.subop, desc.type, 4 + SG_SIZE * len(sgs)),
             _pack(U32, "vsock shmem sg", len(sgs))]
    parts += [_pack(_SG, "vsock shmem sg", *sg) for sg in sgs]
    return b"".join(parts)


def decode_shmem_sg(buf, offset: int = 0) -> ShmemSgList:
    """The sg-list descriptor; `len` must be exactly 4 + 12 * nents and fit the bytes."""
    what = "vsock shmem sg"
    buf = readable_bytes(buf, what)
    subop, typ, length = _shmem_header(buf, offset, what)
    if length < 4:
        raise bad_field(what, "len", offset + 8, length, ">= 4 (the nents field)")
    nents = U32.unpack_from(buf, offset + SHMEM_HEADER_SIZE)[0]
    if 4 + SG_SIZE * nents != length:
        raise bad_field(what, "nents", offset + SHMEM_HEADER_SIZE, nents, f"(len {length} - 4) / {SG_SIZE}")
    base = offset + SHMEM_HEADER_SIZE + 4
    sgs = tuple(_SG.unpack_from(buf, base + SG_SIZE * i) for i in range(nents))
    return ShmemSgList(subop, typ, sgs)


def encode_shmem_dma(desc: ShmemDmaBuf) -> bytes:
    return (_pack(_SHMEM_HDR, "vsock shmem dma", desc.subop, desc.type, DMA_PAYLOAD_SIZE)
            + _pack(_DMA, "vsock shmem dma", desc.dma_handle, desc.size))


def decode_shmem_dma(buf, offset: int = 0) -> ShmemDmaBuf:
    """The dma-heap descriptor; `len` must be 16."""
    what = "vsock shmem dma"
    buf = readable_bytes(buf, what)
    subop, typ, length = _shmem_header(buf, offset, what)
    if length != DMA_PAYLOAD_SIZE:
        raise bad_field(what, "len", offset + 8, length, str(DMA_PAYLOAD_SIZE))
    return ShmemDmaBuf(subop, typ, *_DMA.unpack_from(buf, offset + SHMEM_HEADER_SIZE))
