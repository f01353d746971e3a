"""Sharing read back from a run: one row per region lifetime, and the bytes a device held over time."""

from sharing_helpers import START, one, shared
from sim_helpers import run

from vmsim.analysis.sharing import lifetimes, shared_bytes
from vmsim.tables import events_table

FRAME_TRIP = 375 + 1100 + 955
"""Send (300 + 11 lines written + the two heads' indices read, a line each), doorbell ring + latency, receive
(ack 50 + 700 + a 64-byte element and the two indices read, its index written, and the last look of the
drain before, paid with this one)."""
ANSWER_TRIP = 745 + 1100 + 555
"""The answer back the same way, on the faster CPU."""


def test_on_the_amp_carve_out_a_share_costs_one_frame_trip_each_way():
    """Share latency = SHM_SHARE to the device and its ack back, summed by hand from the story costs (4830
    ns); the release is the same round trip with SHM_UNSHARE, so the reclaim comes 4830 ns after it was asked."""
    _, output = run(one("amp"))
    row = lifetimes(output.events).iloc[0]
    assert (row["bus"], row["device"], row["dev_num"], row["id"]) == ("amp0", "dev", 1, 1)
    assert row["share_requested_ns"] == START and row["share_latency_ns"] == FRAME_TRIP + ANSWER_TRIP == 4830
    assert (row["share_requests"], row["accesses"], row["released_by"]) == (1, 1, "driver")
    assert row["reclaim_latency_ns"] == 4830


def test_lifetimes_read_the_same_from_events_parquet_and_mark_who_released():
    _, output = run(shared("xen", {"release": "device"}, requests=6))
    table = lifetimes(output.events)
    assert len(table) == 6 and set(table["released_by"]) == {"device"}
    assert table.equals(lifetimes(events_table(output).to_pandas()))


def test_shared_bytes_step_up_at_each_acknowledged_share_and_down_at_each_reclaim():
    _, output = run(shared("amp", {"policy": "pool", "pool": 3}, requests=4))
    steps = shared_bytes(output)
    assert list(steps["bytes"]) == [4096, 8192, 12288, 8192, 4096, 0]
    assert set(steps["device"]) == {"amp0.dev"}
