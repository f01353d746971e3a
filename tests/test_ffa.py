"""FF-A bus stories: the direct register image, busy and yield, negotiation and fallback, one request per
method frame by frame and call by call, a hand-summed direct latency, partitions shared between buses."""

import itertools

import pytest
from ffa_helpers import BIG, LEG, LITTLE, ffa_dict, one_request, rows
from sim_helpers import MAILBOX, run

from vmsim.buses.ffa.protocol import FEATURES, bootstrap_method, negotiate, partition_features
from vmsim.wire import get_layout
from vmsim.wire.ffa import EventMethod, image_to_registers, pack_direct_req2

# the notification doorbell of ffa_helpers has the mailbox's round numbers
RING, LATENCY, ACK = MAILBOX["ring"], MAILBOX["latency"], MAILBOX["ack"]


def read(nbytes):  # SLOW_MEMORY: 4-byte lines, 10 ns per line read
    return -(-nbytes // 4) * 10


def write(nbytes):  # 5 ns per line written
    return -(-nbytes // 4) * 5


def sent_frames(output, name):
    c = output.events.columns()
    return [w for e, n, w in zip(c["event"], c["msg_name"], c["wire"]) if e == "tx" and n == name]


def test_the_first_frame_is_version_in_the_x4_to_x17_registers():
    """The bus bootstraps with VERSION over FFA_MSG_SEND_DIRECT_REQ2: the 20-byte frame sits at the start of
    x4..x17, little-endian, and the other eleven registers are zero (L-26 xfer_direct.c)."""
    _, output = run(ffa_dict())
    frame = sent_frames(output, "VERSION")[0]
    assert frame.hex() == "0280000002001400" "00000100" "01000000" "02000100"  # bus 1.0, revision 1, FF-A 1.2
    assert image_to_registers(pack_direct_req2(frame)) == (
        0x0014_0002_0000_8002, 0x0000_0001_0001_0000, 0x0000_0000_0001_0002, *[0] * 11)


def test_single_direct_request_latency_equals_the_hand_sum():
    """One 512-byte request to OP-TEE over direct messages with NOTIF events, pool shared at start.

    Driver: publishes (descriptor 16 B + avail 4 B written, avail_event read); EVENT_AVAIL goes by
    DIRECT_REQ2: driver software, one leg (EL3 switch + SPMD context + SPMC dispatch), the partition's
    software, which kicks the queue. Device: pops (20 B), serves 2 us, pushes used (10 B, reads
    used_event), queues EVENT_USED and sets the driver's notification (an SPMC call there and back,
    then the doorbell). Driver: acknowledges, drains with EVENT_POLL (software, leg, partition, leg back:
    the answer is EVENT_USED) and reclaims (used idx 2 + element 8 + idx 2 read, used_event written).
    """
    _, output = run(one_request(ffa_dict()))
    submit = write(20) + read(2)
    avail = BIG + LEG + LITTLE
    pop, service, used = read(20), 2000, write(10) + read(2)
    notification = 2 * 50 + RING + LATENCY + ACK
    poll = BIG + LEG + LITTLE + LEG
    reclaim = read(12) + write(2)
    requests = output.requests.columns()
    assert requests["latency_ns"].tolist() == [submit + avail + pop + service + used + notification + poll + reclaim]
    assert requests["start_ns"].tolist() == [1_000_000 + submit + avail + pop]


@pytest.mark.parametrize(("method", "story"), [
    ("direct", [
        ("ffa0.driver", "ffa.msg_send_direct_req2", None, 16), ("ffa0.to_device", "tx", "EVENT_AVAIL", 16),
        ("ffa0.to_device", "rx", "EVENT_AVAIL", 16), ("ffa0.device", "ffa.msg_send_direct_resp2", None, 0),
        ("ffa0.device", "ffa.notification_set", None, 0),
        ("ffa0.driver", "ffa.msg_send_direct_req2", None, 8), ("ffa0.to_device", "tx", "EVENT_POLL", 8),
        ("ffa0.to_device", "rx", "EVENT_POLL", 8), ("ffa0.device", "ffa.msg_send_direct_resp2", None, 12),
        ("ffa0.to_driver", "tx", "EVENT_USED", 12), ("ffa0.to_driver", "rx", "EVENT_USED", 12)]),
    ("indirect", [
        ("ffa0.driver", "ffa.msg_send2", None, 16), ("ffa0.to_device", "tx", "EVENT_AVAIL", 16),
        ("ffa0.device", "ffa.rx_release", None, 0), ("ffa0.to_device", "rx", "EVENT_AVAIL", 16),
        ("ffa0.device", "ffa.msg_send2", None, 12), ("ffa0.to_driver", "tx", "EVENT_USED", 12),
        ("ffa0.driver", "ffa.rx_release", None, 0), ("ffa0.to_driver", "rx", "EVENT_USED", 12)]),
    ("fifo", [
        ("ffa0.to_device", "tx", "EVENT_AVAIL", 16), ("ffa0.driver", "ffa.notification_set", None, 2),
        ("ffa0.to_device", "rx", "EVENT_AVAIL", 16),
        ("ffa0.to_driver", "tx", "EVENT_USED", 12), ("ffa0.device", "ffa.notification_set", None, 1),
        ("ffa0.to_driver", "rx", "EVENT_USED", 12)]),
])
def test_one_request_per_method_frame_by_frame_and_call_by_call(method, story):
    """After initialisation a request costs: direct, two synchronous calls (the kick, then the EVENT_POLL
    whose answer is the event) and one notification; indirect, one FFA_MSG_SEND2 each way, each receiver
    handing its RX buffer back; FIFO, one ring entry each way, each kicked by an FF-A notification."""
    _, output = run(one_request(ffa_dict(method=method)))
    assert output.counters["ffa0"]["method"] == method
    assert rows(output, since=1_000_000, events=("tx", "rx")) == story


def test_every_frame_of_a_run_decodes_as_an_ffa_2026_frame():
    layout = get_layout("ffa-2026")
    for method in ("direct", "indirect", "fifo"):
        _, output = run(ffa_dict(method=method, sharing="per-buffer"))
        wires = [w for w in output.events.columns()["wire"] if w is not None]
        assert wires and all(layout.decode(w).msg_size == len(w) for w in wires)
        assert len(output.requests) == 50


# --- busy partitions ---------------------------------------------------------------------------------


def busy_story(when_busy: str) -> dict:
    """Two devices behind one single-vCPU OP-TEE: dev1 serves 50 us from 1 ms; dev2's request arrives
    10 us later, while the vCPU is taken."""
    data = ffa_dict(devices=2, when_busy=when_busy)
    data["devices"][0]["service"] = {"dist": "constant", "value": 50_000}
    data["workloads"] = [
        {"name": f"one{n}", "device": f"dev{n}", "requests": 1, "start": start,
         "arrivals": {"kind": "constant", "rate": "1 kHz"}} for n, start in ((1, 1_000_000), (2, 1_010_000))]
    data["duration"] = "5 ms"
    return data


def test_a_busy_partition_answers_the_zero_sentinel_and_the_driver_gives_up_after_three_tries():
    """With `when_busy: busy-response` the partition answers the all-zero RESP2 while its vCPU serves dev1;
    the driver retries at once, three times in all (L-26), then the kick is lost and dev2's request
    never completes."""
    _, output = run(busy_story("busy-response"))
    kicks = rows(output, since=1_010_000)[:9]
    assert kicks == [item for attempt in (1, 2, 3) for item in (
        ("ffa0.driver", "ffa.msg_send_direct_req2", None, 16), ("ffa0.to_device", "tx", "EVENT_AVAIL", 16),
        ("ffa0.driver", "ffa.busy", None, attempt))]
    assert output.counters["ffa0"]["tx_failed"] == 1
    assert output.counters["partition.optee"]["busy_answers"] == 3
    assert output.requests.columns()["device"] == ["ffa0.dev1"]


def test_by_default_the_call_waits_for_the_partition_instead():
    """`when_busy: wait`: the SPMC runs the call when the vCPU frees, so dev2 starts right after dev1."""
    _, output = run(busy_story("wait"))
    requests = output.requests.columns()
    assert list(requests["device"]) == ["ffa0.dev1", "ffa0.dev2"]
    first_done = requests["start_ns"][0] + requests["service_ns"][0]
    assert first_done <= requests["start_ns"][1] < first_done + 2_000
    assert output.counters["ffa0"]["busy"] == 0


def test_ffa_yield_makes_the_driver_sleep_then_run_again():
    """A partition that yields hands its CPU back; Linux sleeps (1-2 ms, here 1.5 ms), then FFA_RUN:
    both calls on the request's path pay two legs and the sleep."""
    _, plain = run(one_request(ffa_dict(), start=100_000_000))
    _, yielding = run(one_request(ffa_dict(yield_probability=1.0, driver_sleep={"dist": "constant", "value": "1.5 ms"}),
                                  start=100_000_000))
    extra = yielding.requests.columns()["latency_ns"][0] - plain.requests.columns()["latency_ns"][0]
    assert extra == 2 * (2 * LEG + 1_500_000)
    marks = [event for _, event, _, _ in rows(yielding, since=100_000_000) if event in ("ffa.yield", "ffa.run")]
    assert marks == ["ffa.yield", "ffa.run"] * 2


# --- negotiation --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("features", "wanted", "events", "expected"), [
    (["direct", "indirect", "notif", "fifo"], "fifo", "notif", ("fifo", EventMethod.FIFO)),
    (["direct", "indirect", "notif", "fifo"], "direct", "poll", ("direct", EventMethod.POLL)),
    (["direct", "notif"], "fifo", "notif", ("direct", EventMethod.NOTIF)),
    (["direct"], "direct", "notif", ("direct", EventMethod.POLL)),
    (["indirect", "notif"], "direct", "notif", ("indirect", EventMethod.INDIRECT)),
    (["indirect", "fifo"], "fifo", "notif", ("fifo", EventMethod.FIFO)),
])
def test_negotiation_falls_back_like_the_reference_driver(features, wanted, events, expected):
    """The wanted method if both its bits are set, else the bootstrap method (direct if the partition takes
    direct requests, else indirect); NOTIF needs both notification bits, else POLL (L-26)."""
    assert negotiate(wanted, events, partition_features(features)) == expected


def test_feature_bits_are_the_2026_bus_features():
    assert partition_features(["direct", "notif"]) == 0b11_0011 == FEATURES["direct"] | FEATURES["notif"]
    assert bootstrap_method(partition_features(["indirect"])) == "indirect"


def test_a_partition_without_notifications_is_polled_every_100_ms():
    """Asked for FIFO and NOTIF, a direct-only partition keeps the bus on direct messages and the driver
    falls back to EVENT_POLL every 100 ms, so each completion waits for the next poll."""
    data = ffa_dict(partition="direct-only", method="fifo")
    data["workloads"][0].update(requests=4, arrivals={"kind": "closed", "outstanding": 1})
    _, output = run(data)
    counts = output.counters["ffa0"]
    assert (counts["method"], counts["event_delivery"]) == ("direct", "poll")
    latency = output.requests.columns()["latency_ns"]
    assert len(latency) == 4 and min(latency) > 50_000_000
    assert output.sim_time_ns > 400_000_000


def test_a_partition_without_direct_messages_bootstraps_over_indirect():
    """VERSION itself travels by FFA_MSG_SEND2 when the partition does not take direct requests."""
    _, output = run(ffa_dict(partition="no-direct", method="direct"))
    story = rows(output)
    assert story[:2] == [("ffa0.driver", "ffa.msg_send2", None, 20), ("ffa0.to_device", "tx", "VERSION", 20)]
    assert output.counters["ffa0"]["method"] == "indirect"
    assert len(output.requests) == 50


def test_the_driver_holds_its_core_for_its_frames_its_legs_of_each_call_and_its_memory_calls():
    """The driver's side of an FF-A bus runs on the driver's core (`linux.cpu`): frame handling per direct call,
    the leg there and back of each call (the caller spins through the world switches), the probe-time
    FFA_MEM_SHARE of the 4 MiB pool with its crossing, and the notification's acknowledgement in its handler."""
    _, output = run(one_request(ffa_dict()))
    core = output.processors["linux.cpu"]
    work = core["by_activity_ns"]
    calls = output.counters["ffa0"]["direct_calls"]
    pool_share = 2 * LEG + 10_000 + 1024 * 200
    assert work["calls"] == pool_share + calls * 2 * LEG
    assert work["frames"] in (calls * BIG, (calls + 1) * BIG)  # the run may stop in the next call's frame handling
    assert work["notify"] == ACK and core["irq_items"] >= 1
    assert 0 < core["utilisation"] <= 1


# --- partitions --------------------------------------------------------------------------------------


def test_two_buses_to_one_single_vcpu_partition_never_serve_at_once():
    """The partition's vCPU is shared: while a device on one bus serves, the other bus's device waits."""
    data = ffa_dict()
    second = dict(data["buses"][0], name="ffa1")
    data["buses"].append(second)
    data["devices"].append(dict(data["devices"][0], name="dev2", bus="ffa1"))
    data["workloads"].append(dict(data["workloads"][0], name="load2", device="dev2"))
    _, output = run(data)
    requests = output.requests.columns()
    spans = sorted(zip(requests["start_ns"], requests["start_ns"] + requests["service_ns"]))
    assert len(spans) == 100
    assert all(end <= next_start for (_, end), (next_start, _) in itertools.pairwise(spans))
    assert 0.5 < output.counters["partition.optee"]["utilisation"] <= 1


def test_a_hafnium_partition_adds_the_s_el2_switch_and_a_vm_the_hypervisor():
    """Per leg: Hafnium adds its S-EL2 vCPU switch to OP-TEE's path; a VM behind Xen pays the trap and
    the mediator's forward instead of EL3, plus the VM switch."""
    def kick(**bus):
        _, output = run(one_request(ffa_dict(**bus)))
        return output.requests.columns()["start_ns"][0]

    optee = kick()
    assert kick(partition="sp") - optee == 400
    assert kick(partition="vm", hypervisor="xen") - optee == (300 + 500 + 3000) - LEG
