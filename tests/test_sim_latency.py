"""A single request's latency is the hand sum of every cost on its path, to the nanosecond."""

from sim_helpers import MAILBOX, run, scenario_dict


def read(nbytes):  # SLOW_MEMORY: 4-byte lines, 10 ns per line read
    return -(-nbytes // 4) * 10


def write(nbytes):  # 5 ns per line written
    return -(-nbytes // 4) * 5


def test_single_request_latency_equals_the_hand_sum():
    """One 512-byte request on an idle AMP bus (amp-2026) with in-band notifications and event-index suppression,
    on memory of 4-byte accesses: amp-2026's two 16-bit indices lie in different words, so reading both is two.

    Driver: adds one descriptor (16 B) and its avail slot + idx (4 B), reads avail_event (2 B); after 300 ns of
    driver software sends EVENT_AVAIL: reads both indices, writes the 16 B frame and its tail (2 B); rings.
    Device: doorbell ack, 700 ns software, and the time of its handler's last look at the queue after the
    start-up's last message (both indices), which nothing waited on and which is paid with the next frame;
    its pop reads both indices and the whole 64-byte element and writes its head. Its task pops the ring
    (avail idx 2 + slot 2 + descriptor 16), serves 2 us, pushes used (8 + idx 2) and reads used_event; sends
    EVENT_USED (12 B) the same way. Driver: ack, 300 ns, its own last look from start-up, pops the element;
    reclaims (used idx 2, element 8, next used idx 2; writes used_event 2) and completes the request. (This
    request's last looks, at the queues and the rings, are paid with the next steps, after it.)
    """
    data = scenario_dict(workloads=[{"name": "one", "device": "dev", "requests": 1, "start": 1_000_000,
                                     "arrivals": {"kind": "constant", "rate": "1 kHz"},
                                     "size": {"dist": "constant", "value": 512}}])
    _, output = run(data)
    ring, latency, ack = MAILBOX["ring"], MAILBOX["latency"], MAILBOX["ack"]
    big, little, service = 300, 700, 2000
    both_indices = read(2) + read(2)
    submit = write(20) + read(2)
    avail_frame = big + both_indices + write(16) + write(2) + ring + latency
    last_look = both_indices
    device_rx = ack + little + last_look + both_indices + read(64) + write(2)
    pop = read(20)
    used = write(10) + read(2)
    used_frame = little + both_indices + write(12) + write(2) + ring + latency
    driver_rx = ack + big + last_look + both_indices + read(64) + write(2)
    reclaim = read(12) + write(2)
    expected = submit + avail_frame + device_rx + pop + service + used + used_frame + driver_rx + reclaim

    requests = output.requests.columns()
    assert requests["submit_ns"].tolist() == [1_000_000]
    assert requests["latency_ns"].tolist() == [expected]
    assert requests["start_ns"].tolist() == [1_000_000 + submit + avail_frame + device_rx + pop]
    assert requests["service_ns"].tolist() == [service]
