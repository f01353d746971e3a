"""Injected faults (`faults:`): each kind strikes where it aims and when, is counted as injected, lost and
recovered, never crashes a receiver, and leaves a run without faults exactly as it was."""

from pathlib import Path

import pytest
from sim_helpers import run, scenario_dict

import vmsim
from vmsim.errors import DecodeError, ScenarioError
from vmsim.pipeline import load
from vmsim.sim.faults import corrupt
from vmsim.summary import run_warnings
from vmsim.wire import get_layout

LIFECYCLE_AMP = Path(__file__).resolve().parents[1] / "scenarios" / "lifecycle" / "amp-lifecycle.yaml"
LOAD = [{"name": "load", "device": "dev", "arrivals": {"kind": "closed", "outstanding": 2}, "requests": 500}]
TIMEOUTS = {"response": 1_000_000, "queue_stall": 200_000}  # the driver's recovery (sim/driver.py)


def faulty(*faults, timeouts=None, duration=5_000_000) -> dict:
    """The small AMP story with 500 closed-loop requests (done by about 1.5 ms) and the given faults."""
    data = scenario_dict(faults=list(faults), duration=duration, workloads=LOAD)
    if timeouts is not None:
        data["drivers"][0]["timeouts"] = timeouts
    return data


def fault_rows(output) -> list[tuple]:
    c = output.events.columns()
    return [(t, comp, event) for t, comp, event in zip(c["time_ns"], c["component"], c["event"])
            if event.startswith("fault.")]


def test_a_fault_whose_window_the_run_never_reaches_changes_nothing():
    """The plan draws nothing and touches nothing outside a fault's window: every request completes at the
    same nanosecond as in the run without a `faults:` section."""
    _, plain = run(faulty())
    _, late = run(faulty({"kind": "frame-dropped", "target": "amp0.to_driver", "start": 4_000_000,
                          "probability": 0.5}))
    assert list(late.requests.columns()["complete_ns"]) == list(plain.requests.columns()["complete_ns"])
    assert late.counters["faults"] == {"injected.frame-dropped": 0, "lost": 0, "recovered": 0}
    assert "faults" not in plain.counters


def test_a_delayed_doorbell_makes_each_request_later_by_the_delay():
    """Every ring to the driver is delivered 5 us late: nothing is lost, and the 500 requests take longer."""
    _, plain = run(faulty())
    _, delayed = run(faulty({"kind": "doorbell-delayed", "target": "amp0.to_driver.doorbell", "start": 100_000,
                             "delay": 5000}))
    counts = delayed.counters["faults"]
    assert counts["injected.doorbell-delayed"] > 100 and counts["lost"] == 0
    assert delayed.sim_time_ns > plain.sim_time_ns + 100 * 5000
    assert delayed.workloads["load"]["completed"] == 500


def test_a_lost_doorbell_with_nothing_to_recover_it_stays_lost_and_the_device_stalls():
    """One EVENT_USED ring lost: the driver never reclaims, the device (event index) never rings again. The
    counters say one ring was lost and none recovered; the run completes only what came before."""
    _, output = run(faulty({"kind": "doorbell-lost", "target": "amp0.to_driver.doorbell", "start": 100_000,
                            "probability": 0.3}))
    assert output.counters["faults"] == {"injected.doorbell-lost": 1, "lost": 1, "recovered": 0}
    assert output.workloads["load"]["completed"] < 50
    [(when, target, event)] = fault_rows(output)
    assert (target, event) == ("amp0.to_driver.doorbell", "fault.doorbell-lost") and when >= 100_000


def test_a_loss_nothing_made_good_is_a_warning_of_the_summary():
    """What the faults left lost is one line of summary.json's warnings; a run whose losses were all
    recovered (the shipped AMP lifecycle scenario) has no such line."""
    _, output = run(faulty({"kind": "doorbell-lost", "target": "amp0.to_driver.doorbell", "start": 100_000,
                            "probability": 0.3}))
    expected = ("injected faults: 1 lost by the end, 0 recovered (doorbell-lost 1); see other_counters.faults "
                "and the fault.* rows of the event log")
    assert [w for w in run_warnings(output, 1) if w.startswith("injected faults")] == [expected]
    recovered = vmsim.run(LIFECYCLE_AMP, write=False)
    assert recovered.summary["other_counters"]["faults"]["recovered"] > 0
    assert not [w for w in recovered.summary["warnings"] if w.startswith("injected faults")]


def test_a_corrupted_frame_is_rejected_by_the_decoder_and_counted_never_a_crash():
    """A damaged EVENT_USED reaches the driver's side: the decoder rejects it, the bus counts it discarded
    and the run goes on to its end (the log keeps what was sent, so reading it back works too)."""
    _, output = run(faulty({"kind": "frame-corrupted", "target": "amp0.to_driver", "start": 100_000,
                            "probability": 0.1}))
    assert output.counters["faults"]["injected.frame-corrupted"] == 1
    assert output.counters["amp0"]["discarded"] == 1
    assert output.sim_time_ns == 5_000_000
    assert "EVENT_USED" in set(output.events.columns()["msg_name"])  # the log reads back whole


@pytest.mark.parametrize("layout", ["v1", "draft-6b", "fixed40", "linux-2026", "ffa-2025", "ffa-2026"])
def test_every_layout_rejects_a_corrupted_frame(layout):
    """The damage (a reserved bit of the type byte) is caught by each layout's decoder, and the msg_id, device
    number and token an ERROR answer echoes stay as they were."""
    codec = get_layout(layout)
    frame = codec.encode("GET_DEVICE_STATUS", "request", {}, dev_num=1)
    damaged = corrupt(frame)
    with pytest.raises(DecodeError, match="reserved bits"):
        codec.decode(damaged)
    assert damaged[1:] == frame[1:]


def test_with_the_drivers_timeouts_a_silent_peer_is_recovered_from():
    """The driver's side ignores every frame for 50 us (a peer that stopped answering): the EVENT_USED it
    dropped is made good when the next one arrives after the driver's queue watchdog kicked the queue;
    all 500 requests complete."""
    _, output = run(faulty({"kind": "peer-silent", "target": "amp0.to_driver", "start": 100_000, "end": 150_000},
                           timeouts=TIMEOUTS))
    assert output.counters["faults"] == {"injected.peer-silent": 1, "lost": 0, "recovered": 1}
    assert output.workloads["load"]["completed"] == 500
    assert [event for _t, _c, event in fault_rows(output)] == ["fault.peer-silent", "fault.recovered"]


def test_dropped_frames_are_counted_lost_until_the_same_message_comes_through_again():
    """Frames to the driver dropped with probability 0.1: each is lost until a later frame of the same message
    and device gets through; injected = lost at the end + recovered."""
    _, output = run(faulty({"kind": "frame-dropped", "target": "amp0.to_driver", "start": 100_000,
                            "probability": 0.1}, timeouts=TIMEOUTS, duration=20_000_000))
    counts = output.counters["faults"]
    assert counts["injected.frame-dropped"] > 10 and counts["recovered"] > 0
    assert counts["injected.frame-dropped"] == counts["lost"] + counts["recovered"]


def test_a_hot_unplug_removes_the_device_mid_run_and_the_driver_is_told():
    """`hot-unplug` at 300 us: the bus sends EVENT_DEVICE to the driver then; the workload stops short."""
    _, output = run(faulty({"kind": "hot-unplug", "target": "amp0.dev", "start": 300_000}))
    c = output.events.columns()
    removed = [t for t, e, n in zip(c["time_ns"], c["event"], c["msg_name"]) if e == "tx" and n == "EVENT_DEVICE"]
    assert removed and removed[0] >= 300_000
    assert output.counters["faults"]["injected.hot-unplug"] == 1
    assert output.workloads["load"]["completed"] < 500


def test_the_same_seed_strikes_the_same_frames_and_another_fault_does_not_shift_its_draws():
    """Each fault draws from a stream of its target's own: a second fault elsewhere leaves the first's
    strikes where they were."""
    drop = {"kind": "frame-dropped", "target": "amp0.to_driver", "start": 100_000, "probability": 0.2}
    _, once = run(faulty(drop, timeouts=TIMEOUTS))
    _, again = run(faulty(drop, timeouts=TIMEOUTS))
    _, both = run(faulty(drop, {"kind": "doorbell-delayed", "target": "amp0.to_driver.doorbell", "start": 200_000,
                                "delay": 10}, timeouts=TIMEOUTS))
    def drops(output, before=10**12):
        return [row for row in fault_rows(output) if row[2] == "fault.frame-dropped" and row[0] < before]

    assert drops(once) == drops(again) and len(drops(once)) > 0
    assert both.counters["faults"]["injected.doorbell-delayed"] > 0
    assert drops(both, 200_000) == drops(once, 200_000) != []


def test_a_fault_that_aims_at_nothing_is_a_scenario_error_naming_its_entry():
    data = faulty({"kind": "doorbell-lost", "target": "amp0.to_host.doorbell"})
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.target: no doorbell named 'amp0.to_host.doorbell'"):
        run(data)


def test_a_hot_unplug_before_the_device_is_plugged_in_is_a_scenario_error():
    data = faulty({"kind": "hot-unplug", "target": "amp0.dev", "start": 100_000})
    data["devices"][0]["added_at"] = 200_000
    with pytest.raises(ScenarioError, match=r"faults\[0\]\.start: amp0.dev is hot-plugged at 200000 ns"):
        run(data)


@pytest.mark.parametrize("fault, message", [
    ({"kind": "doorbell-delayed", "target": "amp0.to_device.doorbell"}, "needs `delay`"),
    ({"kind": "frame-dropped", "target": "amp0.to_device", "delay": "1 us"}, "doorbell-delayed faults only"),
    ({"kind": "peer-silent", "target": "amp0.to_device"}, "needs `end`"),
    ({"kind": "frame-dropped", "target": "amp0.to_device", "start": "2 ms", "end": "1 ms"}, "must come after"),
    ({"kind": "hot-unplug", "target": "amp0.dev", "probability": 0.5}, "happens once"),
])
def test_a_fault_entry_that_does_not_fit_its_kind_is_rejected_at_load(fault, message):
    with pytest.raises(ScenarioError, match=message):
        load(faulty(fault))
