"""The 2026 AMP shared-memory window: placement, validation, handshake, queues and notifications."""

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.amp import (
    INIT,
    PEER_DEAD,
    READY,
    RUN,
    SHUTDOWN,
    AmpLayout,
    AmpQueuePeer,
)

WINDOW = 8192


def make_window(**kwargs):
    buf = bytearray(WINDOW)
    AmpLayout.init(buf, **kwargs)
    return buf


def running_pair(buf):
    drv, dev = AmpQueuePeer(buf, role="driver"), AmpQueuePeer(buf, role="device")
    drv.start()
    dev.start()
    drv.poll_handshake()
    dev.poll_handshake()
    drv.poll_handshake()
    assert drv.state == dev.state == RUN
    return drv, dev


def test_qemu_placement_of_the_8k_window():
    """The device side places the window as QEMU's vmamp_shmem_dev_init: heads right after the 64-byte
    layout, elements at align8(80), N = (8192 - 80) / 128 = 63, device elements first (Q-amp26)."""
    buf = make_window()
    lay = AmpLayout(buf).validate()
    assert buf[0:2] == b"\x4f\x4c"  # "LO", little-endian 0x4C4F
    assert (lay.length, lay.version, lay.num_queue_elements, lay.size_queue_elements) == (64, 1, 63, 64)
    assert (lay.dev_queue_head_offset, lay.drv_queue_head_offset) == (64, 72)
    assert (lay.dev_queue_elements_offset, lay.drv_queue_elements_offset) == (80, 4112)
    assert (lay.num_notif, lay.dev_notif_offset, lay.drv_notif_offset) == (0, 0, 0)
    assert struct.unpack_from("<6Q", buf, 16) == (0, 64, 80, 0, 72, 4112)


def test_notification_words_sit_between_heads_and_elements():
    """With notification words (QEMU uses none) vmsim puts dev then drv tx,rx,mask arrays at 80 and the
    elements after them; the layout still validates."""
    buf = make_window(num_notif=2, vq_notif_per_device=4, masked_notif=True)
    lay = AmpLayout(buf).validate()
    assert (lay.dev_notif_offset, lay.drv_notif_offset, lay.dev_queue_elements_offset) == (80, 128, 176)
    assert lay.num_queue_elements == (WINDOW - 176) // 128


def corrupt(buf, fmt, offset, value):
    struct.pack_into(fmt, buf, offset, value)
    return buf


@pytest.mark.parametrize(
    ("fmt", "offset", "value", "message"),
    [
        ("<H", 0, 0x1234, "amp layout: magic at offset 0 is 0x1234, expected 0x4C4F"),
        ("<H", 2, 48, "length at offset 2 is 0x30, expected 64"),
        ("<H", 4, 2, "version at offset 4 is 0x2"),
        ("<H", 6, 2, "features at offset 6 is 0x2"),
        ("<B", 8, 65, "num_notif at offset 8 is 0x41"),
        ("<H", 10, 1, "num_queue_elements at offset 10 is 0x1, expected >= 2"),
        ("<H", 12, 0, "size_queue_elements at offset 12 is 0x0"),
        ("<H", 14, 1, "reserved at offset 14 is 0x1, expected 0"),
        ("<Q", 24, 0, "dev_queue_head_offset at offset 24 is 0x0, expected non-zero"),
        ("<Q", 48, 73, "drv_queue_head_offset at offset 48 is 0x49, expected 2-byte aligned"),
        ("<Q", 32, 4200, "dev_queue_elements_offset at offset 32 is 0x1068, expected a 4032-byte region inside"),
        ("<Q", 56, 1000, ("drv_queue_elements_offset at offset 56 is 0x3E8, expected no overlap with "
                         "dev_queue_elements_offset")),
        ("<Q", 24, 32, "dev_queue_head_offset at offset 24 is 0x20, expected no overlap with layout"),
    ],
)
def test_layout_validation_names_field_and_offset(fmt, offset, value, message):
    """A reader refuses a window before trusting any offset (L-amp26 checks), and says which field at
    which byte offset is wrong, so a user can find the bad byte in a dump."""
    buf = corrupt(make_window(), fmt, offset, value)
    with pytest.raises(DecodeError, match="^amp layout: ") as err:
        AmpLayout(buf).validate()
    assert message in str(err.value)


def test_notification_checks_apply_only_with_notification_words():
    """num_vq_notif_per_device must be 1,2,4,8,16 and notif offsets 8-aligned, but only when num_notif > 0."""
    buf = corrupt(make_window(), "<B", 9, 3)
    AmpLayout(buf).validate()
    buf = corrupt(make_window(num_notif=1), "<B", 9, 3)
    with pytest.raises(DecodeError, match="num_vq_notif_per_device at offset 9 is 0x3"):
        AmpLayout(buf).validate()
    buf = corrupt(make_window(num_notif=1), "<Q", 16, 84)
    with pytest.raises(DecodeError, match="dev_notif_offset at offset 16 is 0x54, expected 8-byte aligned"):
        AmpLayout(buf).validate()


def test_truncated_window_and_bad_init_arguments():
    """A buffer shorter than the header is a DecodeError; creator arguments that cannot fit are EncodeError."""
    with pytest.raises(DecodeError, match="amp layout: needs 64 bytes at offset 0, buffer has 10"):
        AmpLayout(bytearray(10))
    with pytest.raises(EncodeError, match="gives 1 elements"):
        AmpLayout.init(bytearray(300))
    with pytest.raises(EncodeError):
        AmpLayout.init(bytearray(WINDOW), num_notif=1, vq_notif_per_device=3)


def test_handshake_between_two_peers_over_one_buffer():
    """INIT -> READY -> RUN as step functions (vmamp_shmem_queue_init without sleeping): a peer waits for
    the other's magic, then for it to leave INIT; each step returns the new state."""
    buf = make_window()
    drv, dev = AmpQueuePeer(buf, role="driver"), AmpQueuePeer(buf, role="device")
    log = [("drv.start", drv.start()), ("drv.poll", drv.poll_handshake())]
    log += [("dev.start", dev.start()), ("drv.poll", drv.poll_handshake()), ("dev.poll", dev.poll_handshake()),
            ("drv.poll", drv.poll_handshake()), ("dev.poll", dev.poll_handshake())]
    assert log == [("drv.start", INIT), ("drv.poll", INIT), ("dev.start", INIT), ("drv.poll", READY),
                   ("dev.poll", RUN), ("drv.poll", RUN), ("dev.poll", RUN)]
    assert buf[72:74] == b"\x4f\x51" and buf[64:66] == b"\x4f\x51"  # "QO" magic in both heads


def test_teardown_waits_for_the_peer_and_restart_refuses_a_dead_link():
    """queue_dead marks PEER_DEAD and is done only once the peer is back at READY or below (e.g. it
    restarted at INIT); a restarting peer that sees PEER_DEAD (beyond RUN) goes to SHUTDOWN: the -EIO case."""
    buf = make_window()
    drv, dev = running_pair(buf)
    log = [("drv.peer_dead", drv.peer_dead()), ("drv.state", drv.state)]
    log += [("dev.start", dev.start()), ("drv.peer_dead", drv.peer_dead()), ("dev.poll", dev.poll_handshake())]
    drv.shutdown()
    log.append(("drv.state", drv.state))
    assert log == [("drv.peer_dead", False), ("drv.state", PEER_DEAD), ("dev.start", INIT),
                   ("drv.peer_dead", True), ("dev.poll", SHUTDOWN), ("drv.state", SHUTDOWN)]


def test_send_receive_full_and_empty_keep_one_slot_unused():
    """Full is (my.tail + 1) % N == peer.head and empty my.head == peer.tail: 62 of 63 elements usable,
    and indices wrap back to 0."""
    drv, dev = running_pair(make_window())
    assert dev.receive() is None
    for i in range(62):
        assert drv.send(bytes([i]) * 8)
    assert drv.send(b"x") is False
    assert len(drv.tx) == 62
    got = [dev.receive()[0] for _ in range(62)]
    assert got == list(range(62)) and dev.receive() is None
    for i in range(5):
        assert drv.send(bytes([100 + i]))
        assert dev.receive()[0] == 100 + i
    assert drv.me.tail == dev.me.head == 4


def test_index_naming_tail_is_the_producer_in_2026():
    """In the 2026 head struct tail (@+4) is the producer index of my own queue and head (@+6) the consumer
    index into the peer's queue (inverted against 2024/2025 spsc, where head is the producer)."""
    buf = make_window()
    drv, dev = running_pair(buf)
    drv.send(b"abc")
    assert struct.unpack_from("<HH", buf, 72 + 4) == (1, 0)  # driver head struct: tail 1, head 0
    assert struct.unpack_from("<HH", buf, 64 + 4) == (0, 0)
    dev.receive()
    assert struct.unpack_from("<HH", buf, 64 + 4) == (0, 1)  # device head struct: head 1


def test_frames_copy_only_their_bytes_and_receive_gets_the_whole_element():
    """Linux sends msg_size bytes and reads a whole element: stale bytes of an earlier longer frame remain."""
    drv, dev = running_pair(make_window())
    for _ in range(63):
        drv.send(b"A" * 64)
        dev.receive()
    drv.send(b"BB")
    assert dev.receive() == b"BB" + b"A" * 62
    with pytest.raises(EncodeError, match="frame of 65 bytes"):
        drv.send(b"x" * 65)


def test_bytes_touched_per_operation():
    """The simulator charges shared-memory cost from these counters: 2+2 index bytes read per op, the frame
    plus the tail written on send, the whole element read plus the head written on receive."""
    drv, dev = running_pair(make_window())
    drv.send(b"x" * 40)
    dev.receive()
    assert (drv.tx.bytes_read, drv.tx.bytes_written) == (4, 42)
    assert (dev.rx.bytes_read, dev.rx.bytes_written) == (4 + 64, 2)
    assert dev.bytes_read == 68


def test_out_of_range_index_from_the_peer_is_a_decode_error():
    """A peer that writes head >= N must not make us index outside the element array."""
    buf = make_window()
    drv, _ = running_pair(buf)
    struct.pack_into("<H", buf, 64 + 6, 63)
    with pytest.raises(DecodeError, match="amp queue: head at offset 70 is 0x3F, expected < 63"):
        drv.send(b"x")


def test_notification_xor_rule_and_mask():
    """Raising toggles my.tx; pending = my.rx XOR peer.tx; acknowledge with my.rx ^= pending. Raising a bit
    that is still pending changes nothing (a second toggle would cancel the first). A mask bit in the
    receiver's array tells the sender not to interrupt, but the bit is still pending (L-amp26)."""
    drv, dev = running_pair(make_window(num_notif=2, masked_notif=True))
    log = []
    log.append(("notify 3", drv.notif.notify(3)))
    log.append(("pending", dev.notif.pending(0)))
    log.append(("ack", dev.notif.acknowledge(0)))
    log.append(("pending", dev.notif.pending(0)))
    log.append(("notify 3 again", drv.notif.notify(3)))
    log.append(("pending", dev.notif.pending(0)))
    log.append(("notify 3 while pending", drv.notif.notify(3)))
    log.append(("pending", dev.notif.pending(0)))
    dev.notif.acknowledge(0)
    dev.notif.set_mask(1, 1 << 6)
    log.append(("notify 70 masked", drv.notif.notify(70)))
    log.append(("pending w1", dev.notif.pending(1)))
    assert log == [("notify 3", True), ("pending", 8), ("ack", 8), ("pending", 0), ("notify 3 again", True),
                   ("pending", 8), ("notify 3 while pending", False), ("pending", 8),
                   ("notify 70 masked", False), ("pending w1", 1 << 6)]
    with pytest.raises(EncodeError):
        drv.notif.notify(128)


def test_unmasked_layout_has_no_mask_words():
    drv, _ = running_pair(make_window(num_notif=1))
    assert drv.notif.notify(0) is True
    with pytest.raises(EncodeError, match="no mask words"):
        drv.notif.set_mask(0, 1)


@settings(max_examples=200, deadline=None)
@given(st.binary(min_size=0, max_size=400), st.sampled_from(["driver", "device"]))
def test_fuzz_random_bytes_only_decode_error(data, role):
    """Any bytes handed to the reader either validate or raise DecodeError; nothing else escapes."""
    try:
        AmpLayout(bytearray(data)).validate()
        AmpQueuePeer(bytearray(data), role=role)
    except DecodeError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.integers(0, 255), st.integers(0, 255)), min_size=1, max_size=6))
def test_fuzz_mutated_window_then_operations_only_decode_error(mutations):
    """A valid window with a few corrupted bytes in the header area: constructing a peer and running
    handshake, send, receive and notifications raises DecodeError or works, never anything else."""
    buf = make_window(num_notif=1, masked_notif=True)
    AmpQueuePeer(buf, role="driver").start()
    for off, value in mutations:
        buf[off] = value
    try:
        peer = AmpQueuePeer(buf, role="device")
        peer.start()
        peer.poll_handshake()
        peer.send(b"frame")
        peer.receive()
        len(peer.rx)
        if peer.notif is not None:  # a mutated num_notif of 0 leaves the window without notification words
            peer.notif.notify(1)
            peer.notif.acknowledge(0)
    except DecodeError:
        pass


def test_storing_an_out_of_range_value_is_an_encode_error():
    """Field setters refuse what the field cannot hold and name the field and its byte offset."""
    drv, _ = running_pair(make_window())
    with pytest.raises(EncodeError, match="amp queue head: cannot store 65536 in tail at offset 76"):
        drv.me.tail = 1 << 16
    with pytest.raises(EncodeError, match="state 32"):
        drv.me.state = 32
