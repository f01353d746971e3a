"""Faults while memory is shared: acknowledgements lost or late (timeout, retry), a device reset with buffers
shared, a device removed with buffers outstanding. Every request that can complete does, nothing leaks and
the safety checks stay clean, on every bus."""

import pytest
from sharing_helpers import BUS, counts, lifecycle, one, shared, verdict
from sim_helpers import run

from vmsim.scenario.models import Scenario
from vmsim.sim import build

KINDS = ("amp", "xen", "ffa")


def run_losing(data, lose):
    """Run with the device's acknowledgements number `lose` (1, 2, ...) lost on their way to the driver."""
    model = build(Scenario.model_validate(data))
    sharer = next(iter(next(iter(model.buses.values())).sharers.values()))
    answered = iter(range(1, 1000))
    sharer.ack_fault = lambda: (next(answered) in lose, 0)
    return model.run()


def test_a_lost_share_ack_times_out_and_the_device_answers_the_retry_without_mapping_twice():
    """The backend maps the region and acknowledges, but the answer is lost: 1 ms later the driver times out
    and asks again; the backend still holds the region, so it acknowledges again with no second map."""
    output = run_losing(one("xen", {"ack_timeout": "1 ms"}), lose={1})
    assert lifecycle(output, "xen")[:6] == [
        ("driver", "share.request", 1), ("device", "share.ack", 1), ("driver", "share.timeout", 1),
        ("driver", "share.request", 1), ("device", "share.ack", 1), ("driver", "share.done", 1)]
    assert output.counters["xen0"]["grant.map"] == 2  # the shared page at connect, the region once
    columns = output.events.columns()
    asked = [t for t, e in zip(columns["time_ns"], columns["event"]) if e == "share.request"]
    assert asked[1] - asked[0] == 20 + 1_000_000  # the page's grant entry, then the timeout from the request
    assert counts(output, "xen")["share_timeouts"] == 1 and verdict(output) == {}


def test_a_lost_unshare_ack_is_asked_again_and_the_region_reclaimed_once():
    """The device gives the region up and says so; the answer is lost. The driver asks again: the device no
    longer holds it and answers at once (no second release.ack); only then does the driver reclaim."""
    output = run_losing(one("amp", {"ack_timeout": "1 ms"}), lose={2})
    assert [(side, event) for side, event, _ in lifecycle(output, "amp")][4:] == [
        ("driver", "release.request"), ("device", "release.ack"), ("driver", "release.timeout"),
        ("driver", "release.request"), ("driver", "release.done"), ("driver", "reclaim")]
    assert verdict(output) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_lost_acks_are_retried_until_answered_and_nothing_leaks(kind):
    """A fifth of the acknowledgements lost: shares and unshares time out and are asked again; every
    request completes, every region is reclaimed and no share is left unanswered."""
    _, output = run(shared(kind, {"ack_loss": 0.2, "ack_timeout": "1 ms"}, requests=30))
    tally = counts(output, kind)
    assert len(output.requests) == 30
    assert tally["acks_lost"] > 0 and tally["share_timeouts"] + tally["release_timeouts"] == tally["acks_lost"]
    assert (tally["leaked"], tally["bytes_shared"], tally["reclaims"]) == (0, 0, tally["shares"] + tally["share_failures"])
    assert verdict(output) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_late_acks_answer_a_retry_or_are_discarded_and_nothing_leaks(kind):
    """Acknowledgements 0.5-1.5 ms late against a 1 ms timeout: some come after the driver asked again; the
    late one answers the retry (matched by token) and the retry's own answer is discarded as late. On FF-A
    the bus runs the FIFO rings: a direct call is synchronous, so its answer cannot be late, and the single RX
    buffer of indirect messages turns every collision into a 1-2 ms retry."""
    bus = {"method": "fifo"} if kind == "ffa" else None
    late = {"dist": "uniform", "low": "500 us", "high": "1500 us"}
    _, output = run(shared(kind, {"ack_delay": late, "ack_timeout": "1 ms"}, requests=30, bus=bus))
    tally = counts(output, kind)
    assert len(output.requests) == 30 and tally["share_timeouts"] > 0
    assert output.counters[BUS[kind]]["discarded"] > 0 and output.counters[BUS[kind]]["token_mismatch"] == 0
    assert (tally["leaked"], tally["bytes_shared"]) == (0, 0)
    assert verdict(output) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_a_device_reset_with_buffers_shared_gives_every_region_back_before_the_device_comes_back(kind):
    """At 1.1 ms the driver resets the device while it serves a 50 us request: status 0, every region given
    back (acknowledged: a region still being served is BUSY until its service ends), the initialisation
    again, and what was in flight is published again: all 40 requests complete."""
    data = shared(kind, reset_at="1.1 ms", service={"dist": "constant", "value": "50 us"})
    _, output = run(data)
    assert len(output.requests) == 40 and output.counters["linux"]["resets"] == 1
    columns = output.events.columns()
    status = [(t, w[8]) for t, e, n, w in zip(columns["time_ns"], columns["event"], columns["msg_name"],
                                             columns["wire"]) if e == "tx" and n == "SET_DEVICE_STATUS" and not w[0] & 1]
    resets = [t for t, value in status if value == 0]  # the initialisation's own reset, then the one at 1.1 ms
    reset_at, reinit_at = resets[1], status[-1][0]  # status 0, then DRIVER_OK
    assert len(resets) == 2 and reset_at >= 1_100_000
    marks = [(t, e) for t, c, e in zip(columns["time_ns"], columns["component"], columns["event"]) if ".share." in c]
    assert any(e == "reclaim" for t, e in marks if reset_at < t < reinit_at)
    assert not any(e == "share.access" for t, e in marks if reset_at < t < reinit_at)
    assert counts(output, kind)["bytes_shared"] == 0 and verdict(output) == {}


@pytest.mark.parametrize("kind", KINDS)
def test_a_removed_device_s_regions_are_all_given_back_and_reclaimed(kind):
    """At 1.1 ms the bus removes the device in the middle of a 50 us request (EVENT_DEVICE REMOVED): the
    driver stops publishing and gives back every region; the device side still answers the unshares."""
    data = shared(kind, requests=None, removed_at="1.1 ms", service={"dist": "constant", "value": "50 us"})
    data["duration"] = "30 ms"
    _, output = run(data)
    columns = output.events.columns()
    removed = [t for t, e, n, w in zip(columns["time_ns"], columns["event"], columns["msg_name"], columns["wire"])
               if e == "rx" and n == "EVENT_DEVICE" and w[10] == 2]
    assert len(removed) == 1
    tally = counts(output, kind)
    assert (tally["leaked"], tally["bytes_shared"], tally["reclaims"]) == (0, 0, tally["shares"])
    assert verdict(output) == {}


@pytest.mark.parametrize("kind, at", [("amp", "1.13 ms"), ("xen", "1.11 ms"), ("ffa", "1.13 ms")])
def test_a_publish_pass_waiting_for_a_buffer_kicks_no_removed_device(kind, at):
    """An open-loop stream is in the middle of a publish pass (waiting for its next share) when the device
    goes: the pass kicks before each wait, but a halted queue kicks nothing, so no EVENT_AVAIL follows the
    removal."""
    data = shared(kind, requests=None, removed_at=at)
    data["workloads"][0]["arrivals"] = {"kind": "constant", "rate": "200 kHz"}
    data["duration"] = "3 ms"
    _, output = run(data)
    columns = output.events.columns()
    rows = list(zip(columns["time_ns"], columns["event"], columns["msg_name"], columns["wire"]))
    removed = next(t for t, e, n, w in rows if e == "rx" and n == "EVENT_DEVICE" and w[10] == 2)
    assert not [t for t, e, n, _ in rows if e == "tx" and n == "EVENT_AVAIL" and t >= removed]
    assert verdict(output) == {}
