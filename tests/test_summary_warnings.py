"""The summary never hides a stall: requests completed after the end are left out, latency is given per bus
and device, and a device that stops (or never starts) completing, or a queue found full, is a warning."""

from __future__ import annotations

import json

from sharing_helpers import shared
from sim_helpers import run, scenario_dict

from vmsim.summary import summarize
from vmsim.summary_report import format_summary


def summary_of(data: dict) -> dict:
    _, output = run(data)
    return summarize(output, wall_seconds=0.0, version="test")


def overloaded_queues(tx_retry: str) -> dict:
    """256-byte elements in two-element queues, both sides slow to handle frames, at 300k requests/s: the
    queues fill within the first millisecond."""
    data = scenario_dict(duration="10 ms", workloads=[{"name": "load", "device": "dev",
                                                       "arrivals": {"kind": "poisson", "rate": "300 kHz"},
                                                       "size": {"dist": "constant", "value": 256}}])
    data["buses"][0].update(element_size=256, queue_elements=2, tx_retry=tx_retry, event_idx=False)
    data["platform"]["cpus"]["big"]["frame_handling"] = 20_000
    data["platform"]["cpus"]["little"]["frame_handling"] = 20_000
    data["devices"][0]["service"] = {"dist": "constant", "value": 1000}
    return data


def test_a_full_queue_is_a_warning_naming_the_queue():
    """The sender waited `tx_retry` each time: time the completed requests' latency does not show."""
    warnings = summary_of(overloaded_queues("2 ms"))["warnings"]
    assert any(warning.startswith("amp0.to_driver: the sender found the queue full") for warning in warnings)


def test_a_device_that_stops_completing_after_a_full_queue_is_a_stall():
    """The issue's run: one queue.full, a 10 ms retry in a 10 ms run; the device completes nothing for the
    rest of the run, and the warning names it and the time of its last completion."""
    warnings = summary_of(overloaded_queues("10 ms"))["warnings"]
    stalls = [warning for warning in warnings if "stalled" in warning or "never made progress" in warning]
    assert stalls and "device amp0.dev" in stalls[0]


def test_a_device_whose_acknowledgement_comes_too_late_never_made_progress():
    """ack_delay 5 ms against ack_timeout 1 ms: every share times out and the device serves nothing."""
    data = shared("amp", {"ack_delay": {"dist": "constant", "value": "5 ms"}, "ack_timeout": "1 ms"},
                  requests=None)
    data["duration"] = "10 ms"
    data["workloads"][0]["arrivals"] = {"kind": "poisson", "rate": "48 kHz"}
    warnings = summary_of(data)["warnings"]
    assert any(warning.startswith("device amp0.dev completed none of the") for warning in warnings)


def test_a_healthy_open_loop_run_has_no_warnings():
    """The warnings are not noise: a light load on a fast device raises none."""
    data = scenario_dict(duration="2 ms", workloads=[{"name": "load", "device": "dev",
                                                      "arrivals": {"kind": "poisson", "rate": "100 kHz"}}])
    assert summary_of(data)["warnings"] == []


def test_latency_is_given_per_bus_and_per_device():
    """Each device's own latency, and its bus's, sit next to the pooled figure; with one device all agree."""
    summary = summary_of(scenario_dict())
    bus = summary["buses"]["amp0"]
    assert bus["latency_ns"] == summary["latency_ns"]
    assert bus["devices"]["amp0.dev"]["latency_ns"] == summary["latency_ns"]
    assert summary["requests_after_end"] == 0


def test_requests_the_teardown_completes_after_the_end_are_not_counted():
    """Giving shared regions back runs simulated time after the end, and requests complete meanwhile; they
    are counted apart (`requests_after_end`) and left out of latency and throughput."""
    data = shared("amp", {"ack_delay": {"dist": "constant", "value": "100 us"}, "release": "lazy"}, requests=None)
    data["duration"] = "3 ms"
    data["workloads"][0]["arrivals"] = {"kind": "poisson", "rate": "100 kHz"}
    summary = summary_of(data)
    assert summary["requests_after_end"] > 0
    assert summary["requests_completed"] + summary["requests_after_end"] == summary["requests_total"]
    assert summary["latency_ns"]["max"] <= summary["sim_time_ns"] - 1_000_000  # the workload starts at 1 ms
    assert summary["throughput_rps"] == summary["requests_completed"] / 3e-3


def test_the_printed_summary_gives_each_bus_its_latency_when_there_are_several():
    """One bus: the pooled line says it all. Two: one line per bus under the pooled line."""
    summary = summary_of(scenario_dict())
    assert "by bus" not in format_summary(summary)
    slow = json.loads(json.dumps(summary["buses"]["amp0"]))
    slow["latency_ns"].update(p50=2_000_000, p99=5_000_000, max=9_000_000)
    summary["buses"]["amp1"] = slow
    lines = format_summary(summary).splitlines()
    assert "           amp1: p50 2.00 ms  p99 5.00 ms  max 9.00 ms" in lines
    assert any(line.startswith("by bus     amp0: p50 ") for line in lines)
