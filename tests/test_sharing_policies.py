"""Sharing policies on the AMP carve-out (40 requests of 512 bytes, two in flight): when regions are shared,
how many buffers one share covers, when they are given back, and what the heap holds; each run ends with
everything reclaimed and the safety checks clean. Then the scenario errors a `sharing:` section can cause."""

import pytest
from sharing_helpers import START, counts, lifecycle, one, shared, verdict
from sim_helpers import SLOW_MEMORY, run

from vmsim.errors import ScenarioError
from vmsim.scenario import load_dict


def mean_latency(output):
    return output.requests.columns()["latency_ns"].mean()


def marks(output, event, side="driver"):
    columns = output.events.columns()
    return [time for time, component, name in zip(columns["time_ns"], columns["component"], columns["event"])
            if name == event and component.endswith(side)]


def test_on_first_use_puts_each_share_on_its_request_s_path_and_at_allocation_shares_ahead():
    """One share per request either way, but at allocation the next region is shared while the current
    request runs (one more share: the reserve left at the end), so a request rarely waits for a share. The
    share ahead still holds the driver's core, so a third of the time is won, not all of the share's."""
    _, first_use = run(shared("amp"))
    _, ahead = run(shared("amp", {"policy": "at-allocation"}))
    assert (counts(first_use, "amp")["shares"], counts(ahead, "amp")["shares"]) == (40, 41)
    assert mean_latency(ahead) < 0.7 * mean_latency(first_use)
    assert verdict(first_use) == verdict(ahead) == {}


def test_a_pool_is_shared_once_before_the_first_request_and_given_back_only_at_the_end():
    _, output = run(shared("amp", {"policy": "pool", "pool": 4}))
    shared_at, released_at = marks(output, "share.done"), marks(output, "release.request")
    assert len(shared_at) == len(released_at) == 4
    first_access = min(marks(output, "share.access", "device"))
    assert max(shared_at) < first_access and min(released_at) >= output.sim_time_ns
    assert counts(output, "amp")["bytes_shared_max"] == 4 * 4096  # a page per buffer: regions are whole pages
    assert verdict(output) == {}


def test_a_batch_shares_four_buffers_with_one_message():
    _, output = run(shared("amp", {"batch": 4}))
    assert counts(output, "amp")["shares"] == 10
    columns = output.events.columns()
    assert sum(1 for event, name in zip(columns["event"], columns["msg_name"])
               if event == "tx" and name == "SHM_SHARE") == 2 * 10  # request and ack
    assert verdict(output) == {}


def test_lazy_release_keeps_a_retired_region_shared_for_reuse_then_gives_it_back_after_linger():
    """Regions linger 1 ms after their buffers retired: back to back, new buffers live in them with no share
    (2 shares for 40 requests); a request 5 ms after the last finds its region given back and shares again."""
    _, busy = run(shared("amp", {"release": "lazy", "linger": "1 ms"}))
    assert (counts(busy, "amp")["shares"], counts(busy, "amp")["reuses"]) == (2, 38)
    data = shared("amp", {"release": "lazy", "linger": "1 ms"}, requests=2)
    data["workloads"][0]["arrivals"] = {"kind": "constant", "rate": "200 Hz"}
    _, sparse = run(data)
    first_access, second_access = marks(sparse, "share.access", "device")
    first_release = min(marks(sparse, "release.request"))
    assert first_access + 1_000_000 <= first_release < second_access
    assert counts(sparse, "amp")["shares"] == 2
    assert verdict(busy) == verdict(sparse) == {}


def test_heap_pressure_takes_lingering_regions_back_before_their_time():
    """A 12 KiB heap and buffers of 512 B or 8 KiB: a lingering 512-byte region cannot hold an 8 KiB buffer,
    so the allocation gives lingering regions back (a 1 s linger is never waited out) and waits for the pages."""
    data = shared("amp", {"release": "lazy", "linger": "1 s", "heap": "12 KiB"})
    data["workloads"][0]["size"] = {"dist": "empirical", "values": ["512 B", "8 KiB"]}
    _, output = run(data)
    assert len(output.requests) == 40
    assert counts(output, "amp")["heap_waits"] > 0 and counts(output, "amp")["bytes_shared_max"] <= 12 * 1024
    assert max(output.requests.columns()["complete_ns"]) < START + 10_000_000
    assert verdict(output) == {}


def test_a_device_that_releases_what_it_consumed_spares_the_driver_every_unshare():
    _, output = run(shared("amp", {"release": "device"}))
    assert (counts(output, "amp")["device_releases"], counts(output, "amp")["releases"]) == (40, 0)
    assert marks(output, "release.request", "driver") == []
    assert len(marks(output, "release.request", "device")) == 40
    assert verdict(output) == {}


def test_buffers_live_for_their_uses_or_their_lifetime():
    _, five_uses = run(shared("amp", buffers={"uses": 5}))
    assert counts(five_uses, "amp")["shares"] == 8  # 40 requests over buffers of 5 uses each
    _, aged = run(shared("amp", buffers={"uses": 1000, "lifetime": "20 us"}))
    assert 1 < counts(aged, "amp")["shares"] < 40
    assert verdict(five_uses) == verdict(aged) == {}


def test_bounce_buffers_cost_a_copy_into_the_carve_out_per_request():
    """bounce: the device cannot reach the heap, so the driver copies each request's 512 bytes into the
    carve-out before publishing it: 128 lines of 4 bytes written at 5 ns each, 640 ns on the latency."""
    _, direct = run(one("amp"))
    _, bounced = run(one("amp", {"bounce": True}))
    lines = 512 // SLOW_MEMORY["line_bytes"]
    assert mean_latency(bounced) - mean_latency(direct) == lines * SLOW_MEMORY["write_per_line"] == 640
    assert counts(bounced, "amp")["bounce_bytes"] == 512


def test_what_is_still_shared_when_the_run_ends_is_given_back_after_it():
    """A duration-limited run: the measured time stops at `duration`; then every region is given back
    (acknowledged) and reclaimed, in simulated time after the end."""
    data = shared("amp", {"policy": "pool", "pool": 2}, requests=None)
    data["duration"] = "2 ms"
    _, output = run(data)
    assert output.sim_time_ns == 2_000_000
    assert [event for side, event, _ in lifecycle(output, "amp")].count("reclaim") == 2
    assert min(marks(output, "reclaim")) > 2_000_000
    assert counts(output, "amp")["bytes_shared"] == 0
    assert verdict(output) == {}


@pytest.mark.parametrize("kind", ["amp", "xen", "ffa"])
@pytest.mark.parametrize("duration", range(1_100_000, 1_150_000, 10_000))
def test_requests_published_but_not_yet_kicked_when_the_run_ends_are_served_and_their_regions_reclaimed(
        kind, duration):
    """On first use the next request's share is on the publish pass, so the end of the run finds requests
    added to the ring but not kicked yet; the stopped sharer kicks them before it waits, else their
    regions could never be given back."""
    data = shared(kind, {}, requests=None)
    data["workloads"][0]["arrivals"] = {"kind": "constant", "rate": "200 kHz"}
    data["duration"] = f"{duration} ns"
    _, output = run(data)
    assert counts(output, kind)["bytes_shared"] == counts(output, kind)["leaked"] == 0
    assert verdict(output) == {}


@pytest.mark.parametrize("change, message", [
    (lambda d: d["buses"][0].update(layout="v1"),
     "devices[0].sharing: bus 'amp0' speaks v1, which has no share messages: give it `layout: vmsim-share`"),
    (lambda d: d["devices"][0]["sharing"].update(policy="pool", release="lazy"),
     "devices[0].sharing.release: a pool stays shared until the run ends"),
    (lambda d: d["devices"][0]["sharing"].update(heap="4 KiB", batch=2, policy="at-allocation"),
     "devices[0].sharing.heap: 4096 bytes do not hold a batch of 2 buffers of 4096 bytes (8192 bytes"),
    (lambda d: d["devices"][0]["sharing"].update(release="device") or d["workloads"][0].update(buffers={"uses": 2}),
     "workloads[0].buffers: with `release: device` the device gives each buffer back once consumed"),
    (lambda d: (d["devices"][0].pop("sharing"), d["workloads"][0].update(buffers={"uses": 2})),
     "workloads[0].buffers: device 'dev' has no `sharing:`"),
    (lambda d: d["devices"][0]["sharing"].update(policy="sometimes"),
     "devices[0].sharing.policy: Input should be 'on-first-use', 'at-allocation' or 'pool' (got 'sometimes')"),
    (lambda d: d["devices"][0]["sharing"].update(ack_loss=1),
     "devices[0].sharing.ack_loss: Input should be less than 1"),
    (lambda d: d["devices"][0].update(added_at="5 ms", removed_at="2 ms"),
     "devices[0].removed_at: 2000000 ns is not after the device appears"),
])
def test_a_bad_sharing_section_is_one_line_naming_the_key(change, message):
    data = shared("amp", {}, size=4096)
    change(data)
    with pytest.raises(ScenarioError) as caught:
        load_dict(data, source="story.yaml")
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith("story.yaml: " + message)


def test_bounce_is_for_the_amp_carve_out_only():
    data = shared("xen", {"bounce": True})
    with pytest.raises(ScenarioError, match=r"devices\[0\]\.sharing\.bounce: bounce buffers are for an AMP"):
        load_dict(data, source="story.yaml")
