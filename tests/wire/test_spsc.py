"""The three queue formats behind one interface: slot counts, index naming, full/empty, FIFO order."""

import struct
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.spsc import QUEUE_FORMATS, Spsc2024Queue, Spsc2025Queue, create_queue_pair


def test_slot_counts_follow_each_formula():
    """Q-v1: (4096 - 128) / 64 = 62 slots; Zero ASIC spsc_capacity: (mapsize - 192) / 64 + 1 = 62 for
    4 KiB and 14 for the 1 KiB Xen queues. One slot always stays empty, so 61 (13) frames fit."""
    buf = bytearray(8192)
    q25, q24, xen = Spsc2025Queue.create(buf, 0), Spsc2024Queue.create(buf, 4096), Spsc2024Queue.create(buf, 0, 1024)
    assert (q25.slots, q25.capacity) == (62, 61)
    assert (q24.slots, q24.capacity) == (62, 61)
    assert (xen.slots, xen.capacity) == (14, 13)
    amp = create_queue_pair("amp-2026", bytearray(8192)).to_device
    assert (amp.slots, amp.capacity) == (63, 62)


def test_index_naming_is_inverted_between_2024_and_2026():
    """After one push, the 2024/2025 producer index is `head` (u32 at +0) and tail (+64) stays 0; in the
    2026 window the producer index is the driver head struct's `tail` (+4) while its `head` (+6) stays 0."""
    for fmt in ("spsc-2024", "spsc-2025"):
        buf = bytearray(8192)
        create_queue_pair(fmt, buf).to_device.try_push(b"frame")
        assert struct.unpack_from("<I", buf, 0)[0] == 1, fmt
        assert struct.unpack_from("<I", buf, 64)[0] == 0, fmt
        assert buf[128:133] == b"frame"
    buf = bytearray(8192)
    create_queue_pair("amp-2026", buf).to_device.try_push(b"frame")
    assert struct.unpack_from("<HH", buf, 72 + 4) == (1, 0)
    assert buf[4112:4117] == b"frame"


@pytest.mark.parametrize("fmt", QUEUE_FORMATS)
def test_fill_drain_and_wrap(fmt):
    """Each format holds exactly `capacity` frames, refuses the next one, gives them back in order, is
    empty again, and keeps working after the indices wrap past the last slot."""
    q = create_queue_pair(fmt, bytearray(8192)).to_device
    assert q.try_pop() is None and len(q) == 0
    for i in range(q.capacity):
        assert q.try_push(bytes([i, 0xEE]))
    assert q.try_push(b"full") is False
    assert len(q) == q.capacity
    assert [q.try_pop()[0] for _ in range(q.capacity)] == list(range(q.capacity))
    assert q.try_pop() is None
    for i in range(q.slots + 3):
        assert q.try_push(bytes([i]))
        assert q.try_pop()[:1] == bytes([i])


def test_2025_sanitises_indices_modulo_the_slot_count():
    """The hardened Q-v1 queue takes indices modulo capacity on load, so a bogus head cannot index out."""
    buf = bytearray(4096)
    q = Spsc2025Queue.create(buf)
    struct.pack_into("<I", buf, 0, 62 + 5)
    assert len(q) == 5


def test_2024_rejects_out_of_range_indices():
    """The Zero ASIC queue trusts its indices; here a bad one is a DecodeError naming the field and offset."""
    buf = bytearray(4096)
    q = Spsc2024Queue.create(buf)
    struct.pack_into("<i", buf, 0, 62)
    with pytest.raises(DecodeError, match="spsc-2024: head at offset 0 is 0x3E, expected 0..61"):
        q.try_push(b"x")
    struct.pack_into("<i", buf, 0, 0)
    struct.pack_into("<i", buf, 64, -1)
    with pytest.raises(DecodeError, match="tail at offset 64 is -1"):
        q.try_pop()


def test_producer_reloads_the_consumer_index_only_when_it_looks_full():
    """spsc_queue.h caches the peer index: a push reads only its own head (4 bytes) until the cached tail
    says full, then it reloads tail (4 more); pops likewise. This is what the simulator charges."""
    q = Spsc2024Queue.create(bytearray(1024), 0, 1024)
    q.try_push(b"a" * 40)
    assert (q.bytes_read, q.bytes_written) == (4, 44)
    q.try_pop()
    assert (q.bytes_read, q.bytes_written) == (4 + 4 + 4 + 64, 48)  # tail, head reload (cache said empty), slot


def test_factory_errors():
    """Unknown names and element sizes a format cannot carry are EncodeError at set-up time."""
    with pytest.raises(EncodeError, match="unknown queue format 'spsc-1999'"):
        create_queue_pair("spsc-1999", bytearray(8192))
    with pytest.raises(EncodeError, match="fixed at 64"):
        create_queue_pair("spsc-2025", bytearray(8192), element_size=256)
    with pytest.raises(EncodeError):
        create_queue_pair("spsc-2024", bytearray(300))
    big = create_queue_pair("amp-2026", bytearray(8192), element_size=256).to_driver
    assert (big.element_size, big.slots) == (256, (8192 - 80) // 512)
    with pytest.raises(EncodeError, match="frame of 65 bytes"):
        create_queue_pair("spsc-2025", bytearray(8192)).to_device.try_push(b"x" * 65)


def test_q_v1_pair_after_the_reserved_page():
    """Q-v1: 0-4 KiB reserved, driver->device queue at 4 KiB, device->driver at 8 KiB."""
    buf = bytearray(16384)
    pair = create_queue_pair("spsc-2025", buf, offset=4096, size=8192)
    pair.to_driver.try_push(b"resp")
    assert struct.unpack_from("<I", buf, 8192)[0] == 1 and buf[8192 + 128:8192 + 132] == b"resp"


ops = st.lists(st.one_of(st.binary(min_size=1, max_size=64), st.none()), max_size=200)


@pytest.mark.parametrize("fmt", QUEUE_FORMATS)
@settings(max_examples=60, deadline=None)
@given(seq=ops)
def test_random_push_pop_keeps_fifo_order_and_capacity(fmt, seq):
    """Against a deque model: a push succeeds exactly when fewer than `capacity` frames are queued, every
    pop returns the oldest frame (padded to the slot with stale bytes), len() always matches."""
    q = create_queue_pair(fmt, bytearray(4096)).to_device
    model = deque()
    for item in seq:
        if item is None:
            got = q.try_pop()
            if model:
                assert got[:len(model[0])] == model.popleft()
            else:
                assert got is None
        else:
            assert q.try_push(item) == (len(model) < q.capacity)
            if len(model) < q.capacity:
                model.append(item)
        assert len(q) == len(model) <= q.capacity


@pytest.mark.parametrize("cls", [Spsc2024Queue, Spsc2025Queue])
@settings(max_examples=100, deadline=None)
@given(data=st.binary(max_size=1200), size=st.integers(0, 1200))
def test_fuzz_random_bytes_only_decode_error(cls, data, size):
    """Attaching to random bytes and pushing/popping either works or raises DecodeError."""
    try:
        q = cls(bytearray(data), 0, size)
        q.try_push(b"x")
        q.try_pop()
        len(q)
    except DecodeError:
        pass
