"""Accounting over the measured window: per-request costs leave the start-up out.

The model copies its counters and its processors' reports once, when the warm-up ends
(`SimOutput.at_warmup`); summary.json's `accounting` keeps the whole run's `totals` and gives the
`window` (the end less the warm-up's end) and `per_request` (the window over the requests completed in
it, the ones throughput counts). The stories run one AMP bus with one request outstanding at a time
(256-byte requests), so that every request of the steady state costs the same: discovery and the queue
handshake before the first request are the start-up.
"""

from __future__ import annotations

from collections import Counter

import pytest
from sim_helpers import run, scenario_dict

import vmsim
from vmsim.accounting import QUANTITIES, accounting, accounting_table
from vmsim.summary import summarize

WARMUP_NS = 200_000  # the device is ready after about 63 us: the warm-up covers the start-up
STEADY = ("bytes_read", "bytes_written", "cache_lines", "doorbells", "interrupts", "frames", "cpu_ns")


def one_at_a_time(think_ns: int, *, warmup: int = WARMUP_NS, requests: int | None = None) -> dict:
    """A closed loop with one request outstanding that thinks `think_ns` between requests (the load), for
    2 ms or for `requests` requests."""
    data = scenario_dict(warmup=warmup)
    if requests is None:
        data["duration"] = 2_000_000
    data["workloads"] = [{"name": "load", "device": "dev", "requests": requests,
                          "arrivals": {"kind": "closed", "outstanding": 1,
                                       "think": {"dist": "constant", "value": think_ns}},
                          "size": {"dist": "constant", "value": 256}}]
    return data


def amp0(output) -> dict:
    return accounting(output)["buses"]["amp0"]


def whole_run_per_request(output, quantity: str) -> float:
    """What the accounting reported before it had a window: the run's total over every completed request."""
    return amp0(output)["totals"][quantity] / output.workloads["load"]["completed_by_end"]


def test_per_request_costs_agree_at_a_low_and_a_high_load_once_start_up_is_left_out():
    """At 200 us of think time the run completes 10 requests, with none nearly 300: over the whole run the
    start-up doubles a request's bytes at the low load; over the window the two loads agree within 1 %."""
    low, high = run(one_at_a_time(200_000))[1], run(one_at_a_time(0))[1]
    assert (amp0(low)["requests_in_window"], amp0(high)["requests_in_window"]) == (9, pytest.approx(270, rel=0.1))
    assert whole_run_per_request(low, "bytes_written") > 2 * whole_run_per_request(high, "bytes_written")
    for quantity in STEADY:
        assert amp0(low)["per_request"][quantity] == pytest.approx(amp0(high)["per_request"][quantity],
                                                                   rel=0.01), quantity


def test_a_request_of_the_window_costs_what_one_more_request_adds_to_a_run():
    """The warm-up ends while the loop thinks, so the window holds whole requests: what a request costs in it
    is, to the byte and the nanosecond, what a fourth request adds to a run of three."""
    runs = [amp0(run(one_at_a_time(200_000, warmup=0, requests=requests))[1])["totals"] for requests in (3, 4)]
    one_more = {quantity: runs[1][quantity] - runs[0][quantity] for quantity in QUANTITIES}
    assert one_more["frames"] == 2  # a request and its response: the start-up is not in it
    assert amp0(run(one_at_a_time(200_000))[1])["per_request"] == one_more


def test_without_a_warm_up_the_window_is_the_whole_run():
    """`warmup: 0` measures from the start: nothing is copied, and the window, its requests and its regions
    are the run's."""
    _, output = run(one_at_a_time(20_000, warmup=0))
    entry = amp0(output)
    assert output.at_warmup == {}
    assert entry["window"] == entry["totals"]
    assert entry["regions_in_window"] == entry["regions"]
    assert entry["requests_in_window"] == output.workloads["load"]["completed_by_end"]
    assert entry["per_request"] == pytest.approx({quantity: whole_run_per_request(output, quantity)
                                                  for quantity in QUANTITIES})


def test_the_warm_up_copy_holds_the_counts_as_they_stood_when_the_warm_up_ended():
    """Checked against the event log and the cores' busy periods: the frames each queue sent and the doorbells
    rung and delivered before `warmup_ns`, each core's work done by then, and the requests completed before
    it; the window's frames are the ones sent from then on."""
    _, output = run(one_at_a_time(20_000))
    at_warmup = output.at_warmup
    columns = output.events.columns()
    before = Counter((component, event) for time, component, event
                     in zip(columns["time_ns"], columns["component"], columns["event"]) if time < WARMUP_NS)
    for queue in ("amp0.to_device", "amp0.to_driver"):
        assert at_warmup["counters"][queue]["frames"] == before[queue, "tx"] > 0
        doorbell = at_warmup["counters"][f"{queue}.doorbell"]
        assert (doorbell["rung"], doorbell["delivered"]) == (before[f"{queue}.doorbell", "doorbell.ring"],
                                                            before[f"{queue}.doorbell", "doorbell.deliver"])
    for name, cores in output.busy_periods.items():
        done = sum(min(end, WARMUP_NS) - start for core in cores for start, end in zip(core.starts, core.ends)
                   if start < WARMUP_NS)
        assert at_warmup["processors"][name]["busy_ns"] == done > 0
    assert at_warmup["completed"] == {"load": sum(1 for complete in output.requests.columns()["complete_ns"]
                                                  if complete < WARMUP_NS)}
    sent_in_window = sum(1 for time, event in zip(columns["time_ns"], columns["event"])
                         if event == "tx" and time >= WARMUP_NS)
    assert amp0(output)["window"]["frames"] == sent_in_window


def test_per_request_divides_by_the_requests_throughput_counts():
    """Poisson arrivals complete requests while the warm-up ends: the bus's window holds exactly the
    summary's `requests_in_window`, its one device all of them, and the table's region rows divide the
    window's bytes by them."""
    data = scenario_dict(warmup=WARMUP_NS, duration=2_000_000)
    data["workloads"][0] = {"name": "load", "device": "dev", "arrivals": {"kind": "poisson", "rate": 200_000},
                            "size": {"dist": "constant", "value": 256}}
    _, output = run(data)
    summary = summarize(output, wall_seconds=0.0)
    entry = summary["accounting"]["buses"]["amp0"]
    requests = summary["requests_in_window"]
    assert 0 < requests < output.workloads["load"]["completed_by_end"]
    assert entry["requests_in_window"] == entry["devices"]["amp0.dev"]["requests_in_window"] == requests
    assert entry["per_request"] == {quantity: value / requests for quantity, value in entry["window"].items()}
    table = accounting_table(summary)
    queue = table[(table.region == "queue") & (table.side == "device") & (table.quantity == "bytes_read")]
    window = entry["regions_in_window"]["queue"]["device"]["bytes_read"]
    assert (queue.window.item(), queue.per_request.item()) == (window, pytest.approx(window / requests))
    assert queue.total.item() == entry["regions"]["queue"]["device"]["bytes_read"] > window


def test_the_window_s_cpu_time_is_the_cores_work_after_the_warm_up():
    """With two buses on one driver core, each bus gets its device core's work after the warm-up and the
    driver core's work after it in proportion to the requests it completed in the window: together, all of
    the cores' work in the window."""
    data = scenario_dict(warmup=WARMUP_NS)
    data["buses"].append(dict(data["buses"][0], name="amp1"))
    data["devices"].append(dict(data["devices"][0], name="dev2", bus="amp1"))
    data["workloads"].append(dict(data["workloads"][0], name="load2", device="dev2", requests=150))
    _, output = run(data)
    buses = accounting(output)["buses"]
    work = {name: report["busy_ns"] - output.at_warmup["processors"][name]["busy_ns"]
            for name, report in output.processors.items()}
    in_window = {bus: buses[bus]["requests_in_window"] for bus in buses}
    assert in_window["amp0"] < in_window["amp1"]
    for bus in buses:
        share = in_window[bus] / sum(in_window.values())
        assert buses[bus]["window"]["cpu_ns"] == pytest.approx(work[f"{bus}.device_cpu"] + share * work["linux.cpu"])
    assert sum(entry["window"]["cpu_ns"] for entry in buses.values()) == pytest.approx(sum(work.values()))


def test_a_run_that_ends_within_its_warm_up_has_an_empty_window():
    """Five requests done long before a 10 ms warm-up: the run's totals stand, the window is empty and there is
    no per-request figure, as there is no throughput."""
    _, output = run(one_at_a_time(0, warmup=10_000_000, requests=5))
    entry = amp0(output)
    assert entry["totals"]["frames"] > 0
    assert entry["window"] == dict.fromkeys(QUANTITIES, 0)
    assert entry["requests_in_window"] == 0
    assert set(entry["per_request"].values()) == {None}


def test_a_result_s_summary_reports_the_window(tmp_path):
    """Through `vmsim.run`: the shipped STM32MP1 pair with a warm-up reports per-request figures below the
    whole run's, whose start-up they leave out."""
    result = vmsim.run(_shipped("stm32mp1-i2c.yaml"), write=False, set={"warmup": "5 ms"})
    summary = result.summary
    (entry,) = summary["accounting"]["buses"].values()
    completed = summary["counts"]["total"]["completed"]
    assert entry["requests_in_window"] == summary["requests_in_window"] < completed
    assert entry["per_request"]["frames"] < entry["totals"]["frames"] / completed


def _shipped(name: str) -> str:
    from pathlib import Path

    return str(Path(__file__).resolve().parents[1] / "scenarios" / name)
