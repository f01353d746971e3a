"""FF-A bus RESET and ERROR on the wire, and an EVENT_POLL refused busy through every retry: who sends what,
what the peer does, and how the run gets past it."""

import re
from pathlib import Path

import numpy as np
from ffa_helpers import ffa_dict
from sim_helpers import run

import vmsim
from vmsim.buses.ffa.bus import FfaBus
from vmsim.wire import get_layout
from vmsim.wire.ffa import ERROR, VERSION

OPTEE_VSOCK = Path(__file__).resolve().parents[1] / "scenarios" / "ffa-optee-vsock.yaml"
BUSY = ["buses[0].yield_probability=0.3", "buses[0].when_busy=busy-response"]


def story(output, since: int = 0) -> list[tuple]:
    """(component, event, msg_name) of every frame row from `since` on."""
    c = output.events.columns()
    return [(comp, event, name) for t, comp, event, name in zip(c["time_ns"], c["component"], c["event"],
                                                                  c["msg_name"])
            if t >= since and event in ("tx", "rx")]


def test_a_bus_reset_resets_every_device_and_the_driver_brings_each_back():
    """`reset_at`: the driver sends RESET; the partition resets its devices, forgets its event configuration
    and answers SUCCESS; the driver sends EVENT_CONFIGURE again, then resets and initialises the device
    (SET_DEVICE_STATUS 0 first), and every request still completes."""
    _, output = run(ffa_dict(reset_at=450_000))
    after = [(comp, name) for comp, event, name in story(output, 450_000) if event == "tx"]
    assert after[:4] == [("ffa0.to_device", "RESET"), ("ffa0.to_driver", "RESET"),
                         ("ffa0.to_device", "EVENT_CONFIGURE"), ("ffa0.to_driver", "EVENT_CONFIGURE")]
    c = output.events.columns()
    reset = next(w for t, e, n, w in zip(c["time_ns"], c["event"], c["msg_name"], c["wire"])
                 if t >= 450_000 and e == "tx" and n == "RESET" and w[0] & 1)
    assert get_layout("ffa-2026").decode(reset).fields == {"result": 0}  # SUCCESS
    statuses = [n for comp, n in after[4:] if comp == "ffa0.to_device" and n.endswith("DEVICE_STATUS")]
    assert statuses[:2] == ["SET_DEVICE_STATUS", "GET_DEVICE_STATUS"]
    assert output.counters["ffa0"]["bus_resets"] == 1 and output.counters["linux"]["resets"] == 1
    assert output.workloads["load1"]["completed"] == 50


def test_the_rfc2025_bus_resets_with_its_empty_answer():
    """The 2025 RESET response has no result field, and that generation has no EVENT_CONFIGURE to repeat."""
    _, output = run(ffa_dict(layout="ffa-2025", reset_at=450_000))
    sent = [(comp, name) for comp, event, name in story(output, 450_000) if event == "tx"]
    assert [comp for comp, name in sent if name == "RESET"] == ["ffa0.to_device", "ffa0.to_driver"]
    assert "EVENT_CONFIGURE" not in {name for _comp, name in sent}
    assert output.workloads["load1"]["completed"] == 50


def test_a_request_damaged_on_the_way_is_answered_error_and_sent_again():
    """The partition cannot decode a damaged VERSION: it answers ERROR(original msg_id) with the request's
    token instead of staying silent, and the driver sends the request again, which goes through."""
    data = ffa_dict()
    data["faults"] = [{"kind": "frame-corrupted", "target": "ffa0.to_device", "end": 1400}]
    _, output = run(data)
    c = output.events.columns()
    sent = [(comp, name) for comp, event, name in zip(c["component"], c["event"], c["msg_name"]) if event == "tx"]
    assert sent[:4] == [("ffa0.to_device", "VERSION"), ("ffa0.to_driver", "ERROR"),
                        ("ffa0.to_device", "VERSION"), ("ffa0.to_driver", "VERSION")]
    error = next(w for e, n, w in zip(c["event"], c["msg_name"], c["wire"]) if e == "tx" and n == "ERROR")
    assert error[1] == ERROR and error[8] == VERSION  # original_msg_id: the damage left the msg_id readable
    counts = output.counters["ffa0"]
    assert (counts["errors_sent"], counts["errors_received"], counts["error_resends"]) == (1, 1, 1)
    assert output.counters["faults"] == {"injected.frame-corrupted": 1, "lost": 0, "recovered": 1}
    assert output.workloads["load1"]["completed"] == 50


def test_a_request_for_a_device_the_partition_does_not_have_is_refused_with_error():
    """A transport request to a device number the partition does not serve is answered ERROR, echoing
    that device number and the token, where a silent discard would leave the driver waiting."""
    bus = run_bus()
    frame = bus.encode("GET_DEVICE_STATUS", "request", {}, dev_num=9, token=77)
    response, dev_num = bus.answer(frame)
    decoded = bus.layout.decode(response)
    assert (decoded.name, decoded.dev_num, decoded.token, decoded.fields) == ("ERROR", 9, 77,
                                                                              {"original_msg_id": frame[1]})
    assert dev_num == 9 and bus.counts["errors_sent"] == 1


def test_events_and_the_2025_bus_are_never_answered_error():
    """An event has no answer to carry (token 0), and the RFC 2025 bus has no ERROR message: both stay
    silent discards."""
    bus = run_bus()
    event = bus.encode("EVENT_AVAIL", "event", {"vq_index": 0, "next_offset": 0}, dev_num=9)
    assert bus.answer(event) is None
    old = run_bus(layout="ffa-2025")
    assert old.answer(old.encode("GET_DEVICE_STATUS", "request", {}, dev_num=9, token=77)) is None
    assert old.counts["errors_sent"] == 0 and old.counts["discarded"] == 1


def run_bus(**bus) -> FfaBus:
    """The FF-A bus of a finished small run, for answering frames by hand."""
    from vmsim.pipeline import load
    from vmsim.sim import build

    model = build(load(ffa_dict(**bus)).scenario)
    model.run()
    return model.buses["ffa0"]


def test_a_lost_event_poll_is_polled_again_and_the_device_keeps_serving():
    """The issue's case: with yields and busy answers an EVENT_POLL is refused through all 3 retries. The
    partition's events would wait forever (nothing rings again); the driver polls again after its sleep,
    so vsock0 keeps completing requests to the end of the run."""
    output = vmsim.run(OPTEE_VSOCK, write=False, set=BUSY).output
    counts = output.counters["ffa0"]
    assert counts["polls_lost"] > 0 and counts["repolls"] > 0
    complete = np.asarray(output.requests.columns()["complete_ns"])
    assert complete.max() > 190_000_000  # still completing in the run's last 10 ms (of 200)


def test_without_the_repoll_the_lost_poll_stalls_the_device_and_the_summary_says_so():
    """`lost_poll: wait` keeps the old behaviour for comparison: the device completes nothing after the
    lost poll, the summary names the device and the time it stalled, and the liveness check fails on it."""
    result = vmsim.run(OPTEE_VSOCK, write=False, set=[*BUSY, "buses[0].lost_poll=wait"])
    assert result.output.counters["ffa0"]["polls_lost"] > 0
    stalled = [w for w in result.summary["warnings"] if "stalled" in w]
    assert len(stalled) == 1 and re.search(r"ffa0\.vsock0 stalled: it completed nothing after 13\.\d\d ms", stalled[0])
    liveness = next(check for check in result.summary["check"]["checks"] if check["name"] == "liveness")
    assert result.summary["check"]["status"] == "failed" and liveness["status"] == "failed"
    assert [(v["component"], v["to_ns"]) for v in liveness["violations"]] == [("ffa0.vsock0", 200_000_000)]
