"""The 2026 FF-A FIFO rings: header bytes, full/empty, the notify-after-full hint, validation."""

import struct
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.fifo import FifoRing, create_fifo_pair, open_fifo_pair


def test_header_bytes_at_their_offsets():
    """magic "VFFAFIFO" @0, version @8, message_size @16, depth @18, next_offset @24, read @64, write @128,
    entries from 0xC0 (L-26 virtio_msg_ffa_fifo_hdr)."""
    buf = bytearray(4096)
    tx, rx = create_fifo_pair(buf, 0, 4096)
    assert buf[0:8] == b"VFFAFIFO"
    assert struct.unpack_from("<HHHI", buf, 8)[0] == 0
    assert struct.unpack_from("<HH", buf, 16) == (104, 17)  # (2048 - 192) // 104
    assert struct.unpack_from("<I", buf, 24)[0] == 2048 and rx.header.next_offset == 0
    tx.try_push(b"m" * 10)
    assert struct.unpack_from("<H", buf, 128)[0] == 1 and struct.unpack_from("<H", buf, 64)[0] == 0
    assert buf[0xC0:0xC0 + 10] == b"m" * 10


def test_full_empty_and_notify_after_draining_a_full_ring():
    """Empty read == write, full (write + 1) % depth == read; the pop that frees a slot in a full ring
    reports was_full so the consumer kicks the producer, later pops do not (L-26 xfer_fifo.c)."""
    ring = FifoRing.create(bytearray(192 + 4 * 104), 0, depth=4)
    log = []
    log.append(("pop empty", ring.try_pop(), ring.was_full))
    log += [("push", ring.try_push(bytes([i]))) for i in range(4)]
    log.append(("pop", ring.try_pop()[:1], ring.was_full))
    log.append(("pop", ring.try_pop()[:1], ring.was_full))
    assert log == [("pop empty", None, False), ("push", True), ("push", True), ("push", True), ("push", False),
                   ("pop", b"\x00", True), ("pop", b"\x01", False)]
    assert (ring.capacity, len(ring)) == (3, 1)


def test_entries_are_zero_filled_before_the_copy():
    """Unlike the AMP queues, a short message never carries stale bytes of an older one."""
    ring = FifoRing.create(bytearray(192 + 2 * 104), 0, depth=2)
    ring.try_push(b"L" * 104)
    ring.try_pop()
    ring.try_push(b"L" * 104)
    ring.try_pop()
    ring.try_push(b"s")
    assert ring.try_pop() == b"s" + bytes(103)
    assert (ring.bytes_written, ring.bytes_read) == (3 * (104 + 2) + 3 * 2, 6 * 4 + 3 * 104)


@pytest.mark.parametrize(
    ("offset", "fmt", "value", "message"),
    [
        (0, "<B", ord("X"), "ffa fifo: magic at offset 0 is b'XFFAFIFO', expected b'VFFAFIFO'"),
        (8, "<H", 1, "version at offset 8 is 0x1, expected 0"),
        (16, "<H", 100, "message_size at offset 16 is 0x64, expected >= 104"),
        (18, "<H", 1, "depth at offset 18 is 0x1, expected >= 2"),
        (18, "<H", 100, "depth at offset 18 is 0x64, expected 100 entries of 104 bytes inside"),
        (64, "<H", 17, "read_index at offset 64 is 0x11, expected < depth 17"),
        (128, "<H", 99, "write_index at offset 128 is 0x63, expected < depth 17"),
        (24, "<I", 100, "next_offset at offset 24 is 0x64, expected >= 1960"),
    ],
)
def test_bad_headers_name_field_and_offset(offset, fmt, value, message):
    buf = bytearray(4096)
    create_fifo_pair(buf, 0, 4096)
    struct.pack_into(fmt, buf, offset, value)
    with pytest.raises(DecodeError) as err:
        open_fifo_pair(buf)
    assert message in str(err.value)


def test_open_pair_follows_next_offset_and_create_checks_arguments():
    buf = bytearray(8192)
    tx, _ = create_fifo_pair(buf, 0, 8192, message_size=128)
    tx.try_push(b"req")
    tx2, rx2 = open_fifo_pair(buf)
    assert (tx2.slots, tx2.element_size, len(tx2), rx2.header.offset) == (30, 128, 1, 4096)
    with pytest.raises(EncodeError):
        FifoRing.create(bytearray(4096), 0, depth=8, message_size=64)
    with pytest.raises(EncodeError):
        FifoRing.create(bytearray(400), 0, depth=8)
    with pytest.raises(EncodeError, match="message of 129 bytes"):
        tx.try_push(b"x" * 129)


@settings(max_examples=60, deadline=None)
@given(seq=st.lists(st.one_of(st.binary(min_size=1, max_size=104), st.none()), max_size=150))
def test_random_push_pop_keeps_fifo_order(seq):
    """Against a deque model: pushes succeed below capacity, pops return the oldest message zero-padded,
    was_full is True exactly when the model held `capacity` messages before the pop."""
    ring = FifoRing.create(bytearray(192 + 7 * 104), 0, depth=7)
    model = deque()
    for item in seq:
        if item is None:
            full = len(model) == ring.capacity
            got = ring.try_pop()
            assert got == (model.popleft().ljust(104, b"\0") if model else None)
            assert ring.was_full == (full and got is not None)
        else:
            assert ring.try_push(item) == (len(model) < ring.capacity)
            if len(model) < ring.capacity:
                model.append(item)
        assert len(ring) == len(model)


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=700))
def test_fuzz_random_bytes_only_decode_error(data):
    for prefix in (b"", b"VFFAFIFO\0\0"):
        try:
            tx, rx = open_fifo_pair(bytearray(prefix + data))
            tx.try_push(b"x")
            rx.try_pop()
        except DecodeError:
            pass
