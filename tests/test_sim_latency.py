"""A single request's latency is the hand sum of every cost on its path, to the nanosecond."""

from sim_helpers import MAILBOX, run, scenario_dict


def read(nbytes):  # SLOW_MEMORY: 4-byte lines, 10 ns per line read
    return -(-nbytes // 4) * 10


def write(nbytes):  # 5 ns per line written
    return -(-nbytes // 4) * 5


def test_single_request_latency_equals_the_hand_sum():
    """One 512-byte request on an idle AMP bus with in-band notifications and event-index suppression.

    Driver: adds one descriptor (16 B) and its avail slot + idx (4 B), reads avail_event (2 B); sends
    EVENT_AVAIL (16 B frame + 2 B tail, reads the peer head 2 B) after 300 ns of driver software; rings.
    Device: doorbell ack, 700 ns software, reads the whole 64-byte element and the tail, writes its head;
    pops (avail idx 2 + slot 2 + descriptor 16), serves 2 us, pushes used (8 + idx 2), reads used_event;
    sends EVENT_USED (12 B) the same way. Driver: ack, 300 ns, element read; reclaims (used idx 2,
    element 8, next used idx 2; writes used_event 2).
    """
    data = scenario_dict(workloads=[{"name": "one", "device": "dev", "requests": 1, "start": 1_000_000,
                                     "arrivals": {"kind": "constant", "rate": "1 kHz"},
                                     "size": {"dist": "constant", "value": 512}}])
    _, output = run(data)
    ring, latency, ack = MAILBOX["ring"], MAILBOX["latency"], MAILBOX["ack"]
    big, little, service = 300, 700, 2000
    submit = write(20) + read(2)
    avail_frame = big + write(16 + 2) + read(2) + ring + latency
    device_rx = ack + little + read(64) + read(2) + write(2)
    pop = read(20)
    used = write(10) + read(2)
    used_frame = little + write(12 + 2) + read(2) + ring + latency
    driver_rx = ack + big + read(64) + read(2) + write(2)
    reclaim = read(12) + write(2)
    expected = submit + avail_frame + device_rx + pop + service + used + used_frame + driver_rx + reclaim

    requests = output.requests.columns()
    assert requests["submit_ns"].tolist() == [1_000_000]
    assert requests["latency_ns"].tolist() == [expected]
    assert requests["start_ns"].tolist() == [1_000_000 + submit + avail_frame + device_rx + pop]
    assert requests["service_ns"].tolist() == [service]
