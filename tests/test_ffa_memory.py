"""FF-A memory sharing: one pool at start or an area per request buffer, AREA_SHARE / AREA_UNSHARE with
their FF-A calls, BUSY and the reference backoff, the device's AREA_RELEASE, SHARE versus LEND."""

from ffa_helpers import ffa_dict, one_request, rows
from sim_helpers import run

from vmsim.wire.ffa import bus_address

AREA_CALLS = ("ffa.mem_share", "ffa.mem_lend", "ffa.mem_retrieve_req", "ffa.mem_relinquish", "ffa.mem_reclaim",
              "ffa.busy")


def memory_story(output, since=1_000_000):
    """The memory calls and area messages of a run, (component, event or message, pages or result)."""
    story = []
    for component, event, name, value in rows(output, since):
        if event in AREA_CALLS:
            story.append((component, event, value))
        elif name is not None and name.startswith("AREA_"):
            story.append((component, name, value))
    return story


def test_the_pool_is_shared_once_at_start_and_buffers_live_in_it():
    """`sharing: probe`: before the driver sees the bus, FFA_MEM_SHARE of the whole 4 MiB pool, AREA_SHARE
    of area 1, FFA_MEM_RETRIEVE_REQ by the partition; requests then cost no memory call at all."""
    _, output = run(ffa_dict())
    assert memory_story(output, since=0) == [
        ("ffa0.driver", "ffa.mem_share", 1024), ("ffa0.to_device", "AREA_SHARE", 34),
        ("ffa0.device", "ffa.mem_retrieve_req", 1024), ("ffa0.to_driver", "AREA_SHARE", 12)]
    assert output.counters["ffa0"]["unmapped_access"] == 0
    assert bus_address(1, 0) == 1 << 48


def test_a_buffer_shared_per_request_is_shared_retrieved_unshared_relinquished_and_reclaimed():
    """`sharing: per-buffer`, a 9000-byte request (3 pages): FFA_MEM_SHARE, AREA_SHARE (the partition
    retrieves), ... I/O ..., AREA_UNSHARE (the partition relinquishes), FFA_MEM_RECLAIM."""
    _, output = run(one_request(ffa_dict(sharing="per-buffer"), size=9000))
    assert memory_story(output) == [
        ("ffa0.driver", "ffa.mem_share", 3), ("ffa0.to_device", "AREA_SHARE", 34),
        ("ffa0.device", "ffa.mem_retrieve_req", 3), ("ffa0.to_driver", "AREA_SHARE", 12),
        ("ffa0.to_device", "AREA_UNSHARE", 10), ("ffa0.device", "ffa.mem_relinquish", 3),
        ("ffa0.to_driver", "AREA_UNSHARE", 12), ("ffa0.driver", "ffa.mem_reclaim", 3)]
    counts = output.counters["ffa0"]
    assert (counts["shares"], counts["reclaims"], counts["mem_busy"]) == (1, 1, 0)  # no pool with per-buffer


def test_an_unshare_while_the_device_still_maps_is_busy_and_retried_with_the_reference_backoff():
    """The device drops its mapping 30 ms after serving (a lazy unmap): AREA_UNSHARE is answered BUSY,
    the driver sleeps 20 ms, BUSY again, sleeps 40 ms (doubling, at most 100 ms: L-26 common.c), then
    the partition relinquishes. The request completes only after the reclaim: about 60 ms."""
    _, output = run(one_request(ffa_dict(sharing="per-buffer", unmap_delay="30 ms"), size=9000))
    assert memory_story(output)[4:] == [
        ("ffa0.to_device", "AREA_UNSHARE", 10), ("ffa0.to_driver", "AREA_UNSHARE", 12), ("ffa0.driver", "ffa.busy", 1),
        ("ffa0.to_device", "AREA_UNSHARE", 10), ("ffa0.to_driver", "AREA_UNSHARE", 12), ("ffa0.driver", "ffa.busy", 2),
        ("ffa0.to_device", "AREA_UNSHARE", 10), ("ffa0.device", "ffa.mem_relinquish", 3),
        ("ffa0.to_driver", "AREA_UNSHARE", 12), ("ffa0.driver", "ffa.mem_reclaim", 3)]
    assert 60_000_000 < output.requests.columns()["latency_ns"][0] < 61_000_000
    assert output.counters["ffa0"]["mem_busy"] == 2


def test_a_device_that_releases_its_areas_spares_the_driver_the_unshare():
    """`release: device`: the partition relinquishes the area when it is done with the buffer and says so
    with AREA_RELEASE (drained before the EVENT_USED that follows it); the driver only reclaims."""
    _, output = run(one_request(ffa_dict(sharing="per-buffer", release="device"), size=9000))
    assert memory_story(output)[4:] == [
        ("ffa0.device", "ffa.mem_relinquish", 3), ("ffa0.to_driver", "AREA_RELEASE", 10),
        ("ffa0.driver", "ffa.mem_reclaim", 3)]


def test_lending_pays_the_owner_s_tlb_maintenance_and_the_fifo_region_is_always_shared():
    """FFA_MEM_LEND takes the pages out of the driver's stage 2 (one more TLB maintenance, 2 us here);
    the FIFO rings stay shared, since both ends write them."""
    def latency(**bus):
        _, output = run(one_request(ffa_dict(sharing="per-buffer", **bus), size=9000))
        return output, output.requests.columns()["latency_ns"][0]

    output, lent = latency(share_op="lend", method="fifo")
    _, shared = latency(method="fifo")
    assert lent - shared == 2000
    calls = [event for _, event, _ in memory_story(output, since=0) if event in ("ffa.mem_share", "ffa.mem_lend")]
    assert calls == ["ffa.mem_share", "ffa.mem_lend"]  # the FIFO region, the buffer


def test_per_buffer_areas_are_limited_by_the_partition_s_area_table():
    """The driver takes area ids up to VERSION's max_areas: with two areas and eight requests in flight,
    the others wait for a reclaim (the driver kicks what it published before it waits), and every
    request still completes."""
    data = ffa_dict(sharing="per-buffer")
    data["platform"]["ffa"]["partitions"]["optee"]["max_areas"] = 2
    data["workloads"][0]["arrivals"]["outstanding"] = 8
    _, output = run(data)
    assert len(output.requests) == 50
    assert output.counters["ffa0"]["reclaims"] == 50
