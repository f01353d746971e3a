"""Split and packed virtqueues: layout formulas, driver/device ops, notification suppression, wrap-around."""

import struct
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from vmsim.errors import DecodeError, EncodeError
from vmsim.wire.rings import (
    DESC_F_NEXT,
    DESC_F_WRITE,
    EVENT_FLAGS_DESC,
    EVENT_FLAGS_DISABLE,
    EVENT_FLAGS_ENABLE,
    PackedDevice,
    PackedDriver,
    PackedRing,
    SplitDevice,
    SplitDriver,
    SplitRing,
    need_event,
    packed_ring_size,
    split_ring_layout,
)

REQ = [(0x1000, 64, False), (0x2000, 512, True)]  # one request: header out, data in


def split(qsz=8, start_idx=0, event_idx=False):
    buf = bytearray(split_ring_layout(qsz, 16)[3])
    ring = SplitRing.contiguous(buf, 0, qsz, 16).init(start_idx)
    return buf, ring, SplitDriver(ring, event_idx), SplitDevice(ring, event_idx)


def packed(qsz=4):
    buf = bytearray(packed_ring_size(qsz))
    ring = PackedRing.contiguous(buf, 0, qsz).init()
    return buf, ring, PackedDriver(ring), PackedDevice(ring)


def test_split_layout_formulas():
    """virtq_size() with the legacy 4096 alignment, and a compact layout keeping the 16/2/4 alignments."""
    assert split_ring_layout(256) == (0, 4096, 8192, 12288)
    assert split_ring_layout(8) == (0, 128, 4096, 8192)
    assert split_ring_layout(8, 4) == (0, 128, 152, 224)
    assert packed_ring_size(256) == 4104
    with pytest.raises(DecodeError, match="queue size 6 is not a power of two"):
        SplitRing(bytearray(4096), 6, 0, 96, 128)
    with pytest.raises(DecodeError, match="split ring: avail ring at offset 129 is not 2-byte aligned"):
        SplitRing(bytearray(4096), 8, 0, 129, 256)


def test_split_request_round_trip_with_raw_bytes():
    """The driver writes a 2-descriptor chain (NEXT on the first, WRITE on the device-writable one) and the
    head into avail.ring; the device pops it, returns it with the written length, the driver reclaims it."""
    buf, ring, drv, dev = split()
    head = drv.add(REQ, token="req0")
    assert head == 0
    assert struct.unpack_from("<QIHH", buf, 0) == (0x1000, 64, DESC_F_NEXT, 1)
    assert struct.unpack_from("<QIHH", buf, 16) == (0x2000, 512, DESC_F_WRITE, 0)
    assert struct.unpack_from("<HHH", buf, ring.avail) == (0, 1, 0)  # flags, idx, ring[0]
    assert dev.pop() == (0, [(0x1000, 64, 1, 1), (0x2000, 512, 2, 0)])
    assert dev.pop() is None
    dev.push_used(0, 100)
    assert struct.unpack_from("<HHII", buf, ring.used) == (0, 1, 0, 100)
    assert drv.get_used() == ("req0", 100)
    assert drv.get_used() is None and drv.num_free == 8


def test_split_indices_wrap_at_16_bits():
    """avail.idx and used.idx are free-running u16: starting at 0xFFFD, six requests cross 0xFFFF -> 0 and
    ring slots keep following idx mod qsz."""
    buf, ring, drv, dev = split(start_idx=0xFFFD)
    seen = []
    for i in range(6):
        drv.add(REQ, token=i)
        seen.append(struct.unpack_from("<H", buf, ring.avail + 2)[0])
        head, _ = dev.pop()
        dev.push_used(head, i)
        assert drv.get_used() == (i, i)
    assert seen == [0xFFFE, 0xFFFF, 0, 1, 2, 3]
    assert (ring.avail_idx, ring.used_idx) == (3, 3)


def test_split_free_list_runs_out_and_recovers():
    """Four descriptors hold two 2-descriptor chains; the third add waits (None) until one is reclaimed."""
    _, _, drv, dev = split(qsz=4)
    assert [drv.add(REQ, token=t) for t in "abc"] == [0, 2, None]
    dev.push_used(dev.pop()[0], 0)
    assert drv.get_used() == ("a", 0)
    assert drv.add(REQ, token="c") == 0  # the freed chain is reused, head first
    with pytest.raises(EncodeError, match="empty descriptor chain"):
        drv.add([])


def test_split_flags_suppress_kicks_and_interrupts_without_event_idx():
    """Without EVENT_IDX the device sets used.flags NO_NOTIFY to stop kicks and the driver sets
    avail.flags NO_INTERRUPT to stop interrupts."""
    _, ring, drv, dev = split()
    drv.add(REQ)
    dev.set_notify(False)
    drv.add(REQ)
    log = [("kick", drv.kick_needed())]
    dev.set_notify(True)
    drv.add(REQ)
    log.append(("kick", drv.kick_needed()))
    dev.push_used(dev.pop()[0], 1)
    drv.set_interrupts(False)
    log.append(("irq", dev.interrupt_needed()))
    drv.set_interrupts(True)
    dev.push_used(dev.pop()[0], 1)
    log.append(("irq", dev.interrupt_needed()))
    assert log == [("kick", False), ("kick", True), ("irq", False), ("irq", True)]
    assert ring.used_flags == 0 and ring.avail_flags == 0


def test_split_event_idx_suppresses_redundant_notifications():
    """With EVENT_IDX a second add before the device caught up needs no kick (avail_event not passed),
    and a second used entry before the driver reclaimed needs no interrupt (used_event not passed)."""
    _, ring, drv, dev = split(event_idx=True)
    log = []
    drv.add(REQ, token="a")
    log.append(("kick a", drv.kick_needed()))
    drv.add(REQ, token="b")
    log.append(("kick b", drv.kick_needed()))
    a, b = dev.pop()[0], dev.pop()[0]
    log.append(("avail_event", ring.avail_event))
    drv.add(REQ, token="c")
    log.append(("kick c", drv.kick_needed()))
    dev.push_used(a, 1)
    log.append(("irq a", dev.interrupt_needed()))
    dev.push_used(b, 1)
    log.append(("irq b", dev.interrupt_needed()))
    drv.get_used()
    drv.get_used()
    log.append(("used_event", ring.used_event))
    assert log == [("kick a", True), ("kick b", False), ("avail_event", 2), ("kick c", True), ("irq a", True),
                   ("irq b", False), ("used_event", 2)]


def test_need_event_uses_16_bit_arithmetic():
    assert need_event(0xFFFF, 1, 0xFFFE) is True
    assert need_event(5, 3, 1) is False
    assert need_event(3, 4, 3) is True


def test_split_bytes_touched_per_request():
    """One 2-descriptor request: driver writes 2 descriptors + ring slot + idx and reads the flags word;
    device reads idx + slot + descriptors, writes a used element + idx; the driver reads idx + element."""
    _, _, drv, dev = split()
    drv.add(REQ)
    drv.kick_needed()
    dev.push_used(dev.pop()[0], 512)
    dev.interrupt_needed()
    drv.get_used()
    assert (drv.bytes_written, drv.bytes_read) == (32 + 4, 2 + 10)
    assert (dev.bytes_read, dev.bytes_written) == (2 + 2 + 32 + 2, 10)


@pytest.mark.parametrize(
    ("poke", "message"),
    [
        (lambda b, r: struct.pack_into("<H", b, r.avail + 4, 9), "avail.ring[] at offset 132 is 0x9, expected < 8"),
        (lambda b, r: struct.pack_into("<H", b, 14, 8), "desc.next at offset 14 is 0x8, expected < 8"),
        (lambda b, r: struct.pack_into("<H", b, 30, 0), "is longer than the queue size 8"),
        (lambda b, r: struct.pack_into("<H", b, r.avail + 2, 9), "avail.idx at offset 130 is 0x9"),
    ],
)
def test_split_device_rejects_bad_driver_bytes(poke, message):
    """A driver that writes an out-of-range head, next or idx, or a looping chain, gets a DecodeError
    naming the field and offset instead of an IndexError or an endless walk."""
    buf, ring, drv, dev = split()
    drv.add(REQ)
    struct.pack_into("<H", buf, 16 + 12, DESC_F_NEXT)  # second descriptor: NEXT -> desc 0 for the loop case
    poke(buf, ring)
    if "longer" not in message:
        struct.pack_into("<H", buf, 16 + 12, DESC_F_WRITE)
    with pytest.raises(DecodeError, match="split ring: ") as err:
        dev.pop()
    assert message in str(err.value)


def test_split_driver_rejects_unknown_used_ids():
    buf, ring, drv, _dev = split()
    drv.add(REQ)
    struct.pack_into("<HI", buf, ring.used + 2, 1, 5)  # used.idx 1, ring[0].id 5
    with pytest.raises(DecodeError, match="used.ring\\[\\].id at offset 164 is 0x5"):
        drv.get_used()


def test_packed_wrap_counters_flip_avail_and_used_bits():
    """Available: AVAIL == wrap, USED != wrap; used: both == wrap. After the 4-slot ring wraps, the
    driver's wrap counter is 0, so new heads carry USED=1/AVAIL=0 (0x8000) and used entries 0."""
    buf, _ring, drv, dev = packed(4)
    flags = lambda i: struct.unpack_from("<H", buf, 16 * i + 14)[0]
    a, b = drv.add(REQ, "A"), drv.add(REQ, "B")
    assert [flags(i) for i in range(4)] == [0x81, 0x82, 0x81, 0x82]
    assert drv.add(REQ) is None
    bid, chain = dev.pop()
    assert (bid, [d[:2] for d in chain]) == (a, [(0x1000, 64), (0x2000, 512)])
    dev.mark_used(a, 7)
    assert flags(0) == 0x8080 and struct.unpack_from("<IH", buf, 8) == (7, a)
    assert drv.get_used() == ("A", 7)
    c = drv.add(REQ, "C")
    assert [flags(0), flags(1)] == [0x8001, 0x8002]
    assert dev.pop()[0] == b and dev.pop()[0] == c and dev.pop() is None
    dev.mark_used(b, 8)
    dev.mark_used(c, 9)
    assert flags(2) == 0x8080 and flags(0) == 0x0000
    assert [drv.get_used(), drv.get_used(), drv.get_used()] == [("B", 8), ("C", 9), None]
    assert drv.num_free == 4


def test_packed_event_suppression():
    """Device event structure drives kicks, driver event structure drives interrupts: DISABLE suppresses,
    ENABLE always notifies, DESC notifies only when the given ring position (with wrap bit) is passed."""
    buf, ring, drv, dev = packed(8)
    log = []
    dev.set_notify(EVENT_FLAGS_DISABLE)
    drv.add(REQ)
    log.append(("kick disabled", drv.kick_needed()))
    dev.set_notify(EVENT_FLAGS_ENABLE)
    drv.add(REQ)
    log.append(("kick enabled", drv.kick_needed()))
    dev.pop()
    dev.pop()
    dev.set_notify(EVENT_FLAGS_DESC)
    log.append(("device off_wrap", hex(struct.unpack_from("<H", buf, ring.device_event)[0])))
    drv.add(REQ)
    log.append(("kick desc passed", drv.kick_needed()))
    drv.add(REQ)
    log.append(("kick desc again", drv.kick_needed()))
    drv.set_interrupts(EVENT_FLAGS_DESC)
    dev.mark_used(0, 1)
    log.append(("irq desc passed", dev.interrupt_needed()))
    dev.mark_used(1, 1)
    log.append(("irq desc again", dev.interrupt_needed()))
    drv.get_used()
    log.append(("driver off_wrap", hex(struct.unpack_from("<H", buf, ring.driver_event)[0])))
    assert log == [("kick disabled", False), ("kick enabled", True), ("device off_wrap", "0x8004"),
                   ("kick desc passed", True), ("kick desc again", False), ("irq desc passed", True),
                   ("irq desc again", False), ("driver off_wrap", "0x8002")]
    with pytest.raises(EncodeError):
        dev.set_notify(3)


def test_packed_rejects_bad_bytes_and_unknown_ids():
    buf, _ring, drv, dev = packed(4)
    drv.add(REQ)
    struct.pack_into("<HH", buf, 12, 3, 0x8080)  # slot 0 marked used with id 3, never handed out
    with pytest.raises(DecodeError, match="packed ring: desc.id at offset 12 is 0x3"):
        drv.get_used()
    with pytest.raises(EncodeError, match="not in flight"):
        dev.mark_used(2, 0)
    for i in range(4):
        struct.pack_into("<HH", buf, 16 * i + 12, 0, 0x80 | DESC_F_NEXT)
    with pytest.raises(DecodeError, match="longer than the queue size 4"):
        dev.pop()


chains = st.lists(st.one_of(st.integers(1, 3), st.sampled_from(["serve", "reclaim"])), max_size=120)


@pytest.mark.parametrize("kind", ["split", "packed"])
@settings(max_examples=60, deadline=None)
@given(seq=chains)
def test_random_ops_keep_order_and_never_overfill(kind, seq):
    """Random adds of 1-3 descriptors, device services and driver reclaims over an 8-entry ring: an add
    fails exactly when fewer descriptors are free than it needs, and buffers come back in order."""
    if kind == "split":
        _, _, drv, dev = split(8, start_idx=0xFFF0)
        pop, used = dev.pop, dev.push_used
    else:
        _, _, drv, dev = packed(8)
        pop, used = dev.pop, dev.mark_used
    free, token = 8, 0
    queued, in_use = deque(), deque()
    for op in seq:
        if op == "serve":
            got = pop()
            if queued:
                head, chain = got
                tok, k = queued.popleft()
                assert len(chain) == k
                used(head, tok)
                in_use.append((tok, k))
            else:
                assert got is None
        elif op == "reclaim":
            got = drv.get_used()
            if in_use:
                tok, k = in_use.popleft()
                assert got == (tok, tok)
                free += k
            else:
                assert got is None
        else:
            ok = drv.add([(i, 16, i % 2 == 1) for i in range(op)], token=token) is not None
            assert ok == (op <= free)
            if ok:
                queued.append((token, op))
                free -= op
                token += 1


@settings(max_examples=150, deadline=None)
@given(st.binary(min_size=400, max_size=400), st.integers(0, 0xFFFF))
def test_fuzz_rings_over_random_bytes_only_decode_error(data, start):
    """Device pops and driver reclaims over random ring contents raise DecodeError or work."""
    buf = bytearray(data)
    ring = SplitRing(buf, 8, 0, 128, 160)
    struct.pack_into("<H", buf, 130, start)
    drv, dev = SplitDriver(ring, event_idx=True), SplitDevice(ring, event_idx=True)
    buf[130:132] = data[130:132]
    buf[162:164] = data[162:164]
    pring = PackedRing(buf, 16, 0, 256, 260)
    pdrv, pdev = PackedDriver(pring), PackedDevice(pring)
    for op in (dev.pop, drv.get_used, dev.pop, pdev.pop, pdev.pop, pdrv.get_used, drv.kick_needed,
               dev.interrupt_needed, pdrv.kick_needed, pdev.interrupt_needed):
        try:
            op()
        except DecodeError:
            pass


@settings(max_examples=150, deadline=None)
@given(st.integers(-2, 40000), st.integers(-8, 600), st.integers(-8, 600), st.integers(-8, 600),
       st.integers(0, 700))
def test_fuzz_ring_geometry_only_decode_error(qsz, a, b, c, size):
    """Ring constructors given any geometry (from a SET_VQUEUE message, say) accept it or raise DecodeError."""
    for cls in (SplitRing, PackedRing):
        try:
            cls(bytearray(size), qsz, a, b, c)
        except DecodeError:
            pass
