"""The transport paths past initialisation, each as a story: a virtqueue reset with and without ring reset
negotiated, shared memory regions (GET_SHM), configuration writes (SET_CONFIG), a device that needs a reset,
and what the driver does when its peer goes silent: retry, reset, keepalive, give up with FAILED."""

from __future__ import annotations

from itertools import pairwise

import pytest
from ffa_helpers import ffa_dict
from sim_helpers import frames, run, scenario_dict
from test_device_removal import SCENARIOS, _after_removal, _watched_run
from test_xen import xen_dict

from vmsim.errors import VmsimError
from vmsim.scenario.loader import load, load_dict
from vmsim.scenario.models import Scenario
from vmsim.sim import build
from vmsim.wire import get_layout
from vmsim.wire.virtio import DEVICE_NEEDS_RESET, FAILED

LAYOUT = get_layout("v1")


def _busy(duration: int = 1_000_000, **device) -> dict:
    """The story scenario with a closed loop that never runs out, for `duration`; `device` adds device keys."""
    data = scenario_dict(duration=duration)
    data["workloads"][0]["requests"] = None
    data["devices"][0].update(device)
    return data


def _sent(output, component: str = "amp0.to_device") -> list[str]:
    return [name for c, name, _ in frames(output) if c == component]


def _decoded(output, name: str, component: str = "amp0.to_device", event: str = "tx") -> list[tuple[int, object]]:
    """(time, decoded frame) of every `name` frame logged `event` on `component`."""
    columns = output.events.columns()
    return [(t, LAYOUT.decode(bytes(w))) for t, c, e, n, w in zip(
        columns["time_ns"], columns["component"], columns["event"], columns["msg_name"], columns["wire"])
        if c == component and e == event and n == name]


def _silent_from(model, at: int, until: int | None = None, bus_name: str = "amp0") -> None:
    """From `at` (to `until`) the device side of `bus_name` answers nothing: no response, no PING echo."""
    bus = model.buses[bus_name]
    answer = bus.answer

    def silent(data):
        now = bus.env.now
        return None if at <= now and (until is None or now < until) else answer(data)

    bus.answer = silent


def _run_model(model):
    return model, model.run()


# --- ring reset ---------------------------------------------------------------------------------------------


def test_a_virtqueue_reset_sets_the_queue_up_again_and_its_requests_go_on():
    """With VIRTIO_F_RING_RESET offered and negotiated, at 300 us the driver sends RESET_VQUEUE for vq 0, then
    SET_VQUEUE for it again, without resetting the device; the device drops what the queue held, the driver
    publishes it again, and the closed loop keeps completing requests afterwards."""
    _, output = run(_busy(ring_reset=True, vqueue_resets=[{"at": "300 us", "vq": 0}]))
    sent = _sent(output)
    reset = sent.index("RESET_VQUEUE")
    assert sent[reset + 1] == "SET_VQUEUE" and sent.count("SET_DEVICE_STATUS") == 5  # no device reset
    assert output.counters["amp0.dev"]["vqueue_resets"] == 1
    (reset_at, _), = _decoded(output, "RESET_VQUEUE")
    completed_after = [t for t in output.requests.columns()["complete_ns"] if t > reset_at]
    assert len(completed_after) > 100


def test_a_virtqueue_reset_without_ring_reset_negotiated_is_refused_by_the_device():
    """A device that did not offer ring reset answers RESET_VQUEUE without touching the queue and counts the
    refusal: the queue goes on serving as if nothing was asked."""
    model = build(Scenario.model_validate(_busy()))
    driver = model.drivers["linux"]

    def out_of_turn():
        handle = driver.handle(model.buses["amp0"], 1)
        yield handle.ready
        yield model.sim.env.timeout(300_000)
        yield from driver._ask(handle, "RESET_VQUEUE", {"index": 0})

    model.sim.env.process(out_of_turn())
    _, output = _run_model(model)
    counts = output.counters["amp0.dev"]
    assert counts["vqueue_resets_refused"] == 1 and "vqueue_resets" not in counts
    (asked_at, _), = _decoded(output, "RESET_VQUEUE")
    assert len([t for t in output.requests.columns()["complete_ns"] if t > asked_at]) > 100


def test_vqueue_resets_without_ring_reset_are_refused_at_load_naming_the_device():
    with pytest.raises(VmsimError, match=r"devices\[0\].*vqueue_resets need ring_reset: true"):
        load_dict(_busy(vqueue_resets=[{"at": "1 ms"}]))


# --- shared memory regions --------------------------------------------------------------------------------


def test_get_shm_gives_the_driver_the_regions_the_device_declares():
    """A virtio-fs device with an 8 MiB DAX window (region 0): during initialisation the driver asks for it
    with GET_SHM and keeps its address and length; the answer on the wire carries them."""
    model, output = run(_busy(200_000, kind="fs", shm=[{"id": 0, "length": "8 MiB"}, {"id": 3, "length": "4 KiB"}]))
    handle = model.drivers["linux"].handles[("amp0", 1)]
    address, length = model.devices["dev"].shm[0]
    assert handle.shm == {0: (address, 8 * 1024 * 1024)}
    (_, answer), = _decoded(output, "GET_SHM", "amp0.to_driver")
    assert (answer.fields["index"], answer.fields["length"], answer.fields["address"]) == (0, length, address)


def test_a_region_the_device_does_not_have_is_answered_with_length_zero():
    model, output = run(_busy(200_000, kind="fs"))
    (_, answer), = _decoded(output, "GET_SHM", "amp0.to_driver")
    assert answer.fields["length"] == 0 and model.drivers["linux"].handles[("amp0", 1)].shm == {}


# --- configuration writes ---------------------------------------------------------------------------------


def test_a_config_write_against_a_stale_generation_is_refused_and_made_again_after_a_read():
    """The driver writes the config at 300 us with the generation it read (0); the device moved to generation 1
    just before, not yet announced: the write is refused (length 0), the driver reads the config again and
    writes once more with generation 1, accepted; both sides then hold the bytes written."""
    model = build(Scenario.model_validate(_busy(config_size=16, config_writes=["300 us"])))
    device = model.devices["dev"]

    def change_unannounced():  # the device bumps its generation without telling the driver yet
        yield model.sim.env.timeout(299_000)
        device.generation += 1

    model.sim.env.process(change_unannounced())
    _, output = _run_model(model)
    answers = [frame.fields for _, frame in _decoded(output, "SET_CONFIG", "amp0.to_driver")]
    assert [(a["generation"], a["length"]) for a in answers] == [(1, 0), (1, 16)]
    assert output.counters["linux"]["config_writes_refused"] == 1
    assert bytes(device.config) == model.drivers["linux"].handles[("amp0", 1)].config == b"\xff" * 16


# --- a device that needs a reset --------------------------------------------------------------------------


def test_a_device_that_needs_a_reset_is_reset_and_initialised_again_and_requests_go_on():
    """At 300 us the device sets DEVICE_NEEDS_RESET and stops serving; EVENT_CONFIG carries the status, the
    driver reads it with GET_DEVICE_STATUS, resets the device (status 0, read back 0) and initialises it again;
    what was in flight is published again and the closed loop goes on."""
    model, output = run(_busy(needs_reset_at=["300 us"]))
    (event_at, event), = _decoded(output, "EVENT_CONFIG", "amp0.to_driver")
    assert event.fields["device_status"] & DEVICE_NEEDS_RESET
    asked = _decoded(output, "GET_DEVICE_STATUS") + _decoded(output, "SET_DEVICE_STATUS") + _decoded(
        output, "GET_DEVICE_INFO")
    sent = [(t, f.name, f.fields.get("status")) for t, f in sorted(asked, key=lambda row: row[0]) if t > event_at]
    assert [(name, status) for _, name, status in sent[:4]] == [
        ("GET_DEVICE_STATUS", None), ("SET_DEVICE_STATUS", 0), ("GET_DEVICE_STATUS", None), ("GET_DEVICE_INFO", None)]
    assert output.counters["linux"]["needs_reset"] == output.counters["amp0.dev"]["needs_reset"] == 1
    assert model.devices["dev"].status == 0xF
    assert len([t for t in output.requests.columns()["complete_ns"] if t > event_at + 100_000]) > 100


# --- a silent peer ------------------------------------------------------------------------------------------


def _guarded(duration: int = 2_000_000, **driver) -> dict:
    data = _busy(duration)
    data["drivers"][0].update(driver)
    return data


def test_a_lost_answer_is_asked_for_again_and_initialisation_goes_on():
    """The device side loses its first answer to GET_VQUEUE: the driver waits `response`, sends the request
    again with a new token, and the device becomes ready; nothing else is lost."""
    model = build(Scenario.model_validate(_guarded(timeouts={"response": "50 us"})))
    bus = model.buses["amp0"]
    answer = bus.answer
    lost = []

    def lose_first_get_vqueue(data):
        if LAYOUT.decode(data).name == "GET_VQUEUE" and not lost:
            lost.append(data)
            return None
        return answer(data)

    bus.answer = lose_first_get_vqueue
    _, output = _run_model(model)
    asked = [frame.token for _, frame in _decoded(output, "GET_VQUEUE")]
    assert len(asked) == 2 and asked[0] != asked[1]
    assert output.counters["linux"]["timeouts"] == output.counters["linux"]["retries"] == 1
    assert output.counters["linux"]["devices_ready"] == 1 and len(output.requests) > 100


@pytest.mark.parametrize("outcome", ["fail", "reset"])
def test_keepalive_finds_a_silent_bus_and_gives_up_on_its_device_with_failed(outcome):
    """From 500 us the device side answers nothing. PINGs every 100 us go unanswered; after 2 misses allowed,
    the third makes the outcome: `fail` writes FAILED at once; `reset` tries a reset first, whose requests time
    out too, and then (resets: 1 used) writes FAILED. Either way the device is given up on and its workload's
    requests stop."""
    model = build(Scenario.model_validate(_guarded(
        timeouts={"response": "20 us", "retries": 1, "resets": 1},
        keepalive={"period": "100 us", "timeout": "20 us", "misses": 2, "outcome": outcome})))
    _silent_from(model, 500_000)
    _, output = _run_model(model)
    counts = output.counters["linux"]
    assert counts["pings_missed"] == 3 and counts["devices_failed"] == 1
    assert counts.get("recoveries", 0) == (1 if outcome == "reset" else 0)
    (failed_at,) = [t for t, f in _decoded(output, "SET_DEVICE_STATUS") if f.fields["status"] & FAILED]
    assert 700_000 <= failed_at < 1_000_000
    assert max(output.requests.columns()["complete_ns"]) < failed_at
    why = model.drivers["linux"].handles[("amp0", 1)].failed
    assert why == ("amp0: no answer to PING" if outcome == "fail" else
                   "SET_DEVICE_STATUS to amp0 dev 1: no answer after 2 tries")  # the reset's first request


def test_keepalive_resets_a_device_that_comes_back_and_requests_go_on():
    """The device side is silent from 500 to 800 us: the keepalive's third miss resets the device; by then it
    answers again, so the reset and re-initialisation succeed and the closed loop completes requests again."""
    model = build(Scenario.model_validate(_guarded(
        timeouts={"response": "20 us", "retries": 1, "resets": 1},
        keepalive={"period": "100 us", "timeout": "20 us", "misses": 2})))
    _silent_from(model, 500_000, 800_000)
    _, output = _run_model(model)
    counts = output.counters["linux"]
    assert counts["recoveries"] == 1 and counts["devices_failed"] == 0
    assert len([t for t in output.requests.columns()["complete_ns"] if t > 900_000]) > 100


FAMILIES = {"amp": (scenario_dict, "amp0"), "xen": (xen_dict, "xen0"), "ffa": (ffa_dict, "ffa0")}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_on_every_bus_family_a_silent_spell_ends_in_a_reset_and_requests_go_on(family):
    """The device side of the bus answers nothing from 1.0 to 1.4 ms. The keepalive (a miss allowed) finds it
    and resets the device; the reset's own requests time out while the silence lasts, and the next recovery
    (of the 5 allowed) succeeds once it is over: the device is ready again and its closed loop goes on."""
    make, bus = FAMILIES[family]
    data = make()
    data["duration"] = 3_000_000
    data["workloads"] = [{"name": "loop", "device": data["devices"][0]["name"],
                          "arrivals": {"kind": "closed", "outstanding": 2}}]
    data["drivers"][0].update(timeouts={"response": "100 us", "retries": 1, "resets": 5},
                              keepalive={"period": "100 us", "timeout": "50 us", "misses": 1})
    model = build(Scenario.model_validate(data))
    _silent_from(model, 1_000_000, 1_400_000, bus)
    _, output = _run_model(model)
    counts = output.counters["linux"]
    assert (counts["pings_missed"], counts["recoveries"], counts["devices_failed"]) == (3, 2, 0)
    assert len([t for t in output.requests.columns()["complete_ns"] if t > 2_000_000]) > 100


def test_a_lost_used_notification_stalls_the_queue_until_the_watchdog_looks_again():
    """One used-buffer notification to the driver is lost at 300 us, and with event-index suppression no other
    comes: the closed loop stalls. With `queue_stall` the driver sees no progress for a period, reclaims from
    its used ring itself and kicks the device again, and the loop goes on."""
    model = build(Scenario.model_validate(_guarded(timeouts={"response": "50 us", "queue_stall": "100 us"})))
    driver = model.drivers["linux"]
    on_used = driver.on_used
    lost = []

    def lose_one(bus, dev_num, vq):
        if model.sim.env.now > 300_000 and not lost:
            lost.append(model.sim.env.now)
            return None
        return on_used(bus, dev_num, vq)

    driver.on_used = lose_one
    _, output = _run_model(model)
    assert lost and output.counters["linux"]["queue_stalls"] == 1
    completes = sorted(output.requests.columns()["complete_ns"])
    stalled = [later - earlier for earlier, later in pairwise(completes) if later - earlier > 50_000]
    assert len(stalled) == 1 and 100_000 <= stalled[0] <= 200_000
    assert len([t for t in completes if t > lost[0] + 200_000]) > 100


def test_without_timeouts_a_silent_device_is_waited_for_as_before():
    """The default has no timeout: nothing is retried, no PING is sent, nothing is counted."""
    model = build(Scenario.model_validate(_busy(300_000)))
    _silent_from(model, 0)
    _, output = _run_model(model)
    assert _sent(output) == ["GET_DEVICES"] and "timeouts" not in output.counters["linux"]


def test_a_keepalive_with_a_reset_outcome_needs_timeouts():
    data = _guarded(keepalive={"period": "100 us", "timeout": "20 us"})
    with pytest.raises(VmsimError, match=r"drivers\[0\].*keepalive outcome reset needs `timeouts`"):
        load_dict(data)


def test_a_device_removed_while_the_driver_resets_it_is_handed_nothing_more():
    """The driver resets the device at 300 us and the bus removes it a few microseconds later, at many moments
    of the reset's exchange, under response timeouts (so an unanswered request would be sent again): once
    EVENT_DEVICE(REMOVED) is taken in, the reset ends, and the driver hands the bus nothing more for the device
    (not even a retry), so nothing goes on the wire for it."""
    late = {}
    for removed_at in range(300_000, 340_000, 2_000):
        data = _busy(500_000, reset_at="300 us", removed_at=removed_at)
        data["drivers"][0]["timeouts"] = {"response": "20 us"}
        story, written = _watched_run(Scenario.model_validate(data))
        assert ("removed", "amp0", 1) in story
        if found := _after_removal(story) + written:
            late[removed_at] = found
    assert late == {}


def test_a_lifecycle_setting_that_cannot_work_is_one_line_naming_the_file_and_line(tmp_path):
    """vqueue_resets on a device that does not offer ring reset: refused at load, at the device's line."""
    lifecycle = (SCENARIOS / "lifecycle" / "amp-lifecycle.yaml").read_text()
    broken = tmp_path / "broken.yaml"
    broken.write_text(lifecycle.replace("ring_reset: true", "ring_reset: false"))
    with pytest.raises(VmsimError) as caught:
        load(broken)
    line = next(n for n, text in enumerate(lifecycle.splitlines(), 1) if "name: vsock" in text)
    assert str(caught.value) == (f"{broken}:{line}: devices[0]: vqueue_resets need ring_reset: true "
                                 "(VIRTIO_F_RING_RESET offered by the device)")
