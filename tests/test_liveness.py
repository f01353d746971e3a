"""A device or queue that stops moving while work waits fails the run's checks, naming what stopped and when,
exactly as a safety violation does: a stall must not pass for a fast device."""

from __future__ import annotations

import numpy as np
import pytest
import yaml
from sharing_helpers import shared
from sim_helpers import run, scenario_dict
from test_summary_warnings import overloaded_queues

from vmsim.analysis.liveness import device_stall, liveness_check, queue_stall, with_liveness
from vmsim.cli import main
from vmsim.sim.output import Series
from vmsim.summary import summarize
from vmsim.summary_report import format_check

MS = 1_000_000


def liveness_of(summary: dict) -> dict:
    return next(entry for entry in summary["check"]["checks"] if entry["name"] == "liveness")


def summary_of(data: dict) -> dict:
    _, output = run(data)
    return summarize(output, wall_seconds=0.0, version="test")


def test_a_sender_waiting_out_a_long_retry_fails_the_checks_naming_the_device_and_time():
    """The issue's run: one queue.full, a 10 ms tx_retry in a 10 ms run at 300k/s with 256 B elements; the
    device stops completing early on and the run used to pass with a flattering p99."""
    summary = summary_of(overloaded_queues("10 ms"))
    entry = liveness_of(summary)
    assert summary["check"]["status"] == "failed" and entry["status"] == "failed"
    violation = entry["violations"][0]
    assert violation["component"] == "amp0.dev" and violation["to_ns"] == summary["sim_time_ns"]
    assert violation["from_ns"] < 2 * MS
    printed = "\n".join(format_check(summary["check"]))
    assert "device amp0.dev made no progress from 1.17 ms to the end of the run (10.00 ms)" in printed


def test_a_device_whose_acknowledgement_comes_after_its_timeout_fails_the_checks():
    """ack_delay 5 ms against ack_timeout 1 ms: every share times out, the device serves none of the sends
    while they wait, and the run must not exit 0."""
    data = shared("amp", {"ack_delay": {"dist": "constant", "value": "5 ms"}, "ack_timeout": "1 ms"},
                  requests=None)
    data["duration"] = "10 ms"
    data["workloads"][0]["arrivals"] = {"kind": "poisson", "rate": "48 kHz"}
    summary = summary_of(data)
    violation = liveness_of(summary)["violations"][0]
    assert summary["check"]["status"] == "failed"
    assert violation["kind"] == "device" and violation["component"] == "amp0.dev"
    assert violation["message"].startswith("device amp0.dev made no progress from 1.01 ms to the end of the run")


def test_a_healthy_run_passes_the_liveness_check():
    """The check is not noise: a light open loop on a fast device has short gaps only."""
    data = scenario_dict(duration="5 ms", workloads=[{"name": "load", "device": "dev",
                                                      "arrivals": {"kind": "poisson", "rate": "100 kHz"}}])
    summary = summary_of(data)
    assert liveness_of(summary)["status"] == "ok" and summary["check"]["status"] == "ok"


def test_a_slow_device_that_keeps_serving_is_not_a_stall():
    """Five requests wait up to 100 ms behind 20 ms services, longer than any threshold, but the device serves
    one all the time: busy, not stalled."""
    submit = np.zeros(5, dtype=np.int64)
    start = np.arange(5) * 20 * MS
    assert device_stall(submit, start, start + 20 * MS, None, 100 * MS) is None


def test_a_device_that_stops_serving_while_requests_wait_stalls_from_its_last_completion():
    """Two requests served by 2 ms, the third submitted at 1 ms started only at 9 ms: 7 ms without service."""
    submit = np.array([0, 0, 1]) * MS
    start = np.array([0, 1, 9]) * MS
    complete = np.array([1, 2, 10]) * MS
    assert device_stall(submit, start, complete, None, 10 * MS) == (2 * MS, 9 * MS)


def test_a_gap_with_nothing_waiting_is_not_a_stall():
    """An idle device is not stalled: a 5 ms pause between requests, with none submitted, makes no stretch."""
    submit = np.array([0, 6 * MS])
    start = submit
    complete = submit + 100
    assert device_stall(submit, start, complete, None, 7 * MS) is None


def test_a_request_never_completed_stalls_its_device_from_its_submit_to_the_end():
    """The oldest request still waiting at the end dates the stall when nothing else does."""
    empty = np.array([], dtype=np.int64)
    assert device_stall(empty, empty, empty, 2 * MS, 10 * MS) == (2 * MS, 10 * MS)


def test_a_queue_holding_frames_none_of_which_leave_is_a_stall():
    """Frames arrive at 1 and 2 ms and none leaves until 7 ms: the queue made no progress for 6 ms; the
    stretch from 7 ms (one frame left) to the end at 8 ms is shorter."""
    times = np.array([1, 2, 7]) * MS
    levels = np.array([1, 2, 1])
    assert queue_stall(times, levels, 8 * MS) == (1 * MS, 7 * MS)
    series = {"amp0.to_device.occupancy": Series()}
    for time, level in zip(times, levels):
        series["amp0.to_device.occupancy"].record(int(time), int(level))
    entry = liveness_check(devices=[], submit_ns=[], start_ns=[], complete_ns=[], workloads={}, series=series,
                           sim_time_ns=8 * MS)
    assert entry["status"] == "failed" and entry["violations"][0]["component"] == "amp0.to_device"
    assert entry["violations"][0]["message"].startswith("queue amp0.to_device made no progress from 1.00 ms to 7.00 ms")


def test_the_liveness_verdict_fails_a_run_whose_safety_checks_passed():
    """Folded into `check`, a liveness failure makes the whole verdict fail (the CLI then exits 1)."""
    safe = {"status": "ok", "checks": []}
    stalled = {"name": "liveness", "status": "failed", "violations": [], "violations_total": 1}
    assert with_liveness(safe, stalled)["status"] == "failed"
    assert with_liveness(safe, {**stalled, "status": "ok"})["status"] == "ok"


def test_vmsim_run_exits_1_and_prints_the_stall_as_it_does_a_safety_violation(tmp_path, capsys):
    """The result folder is written, the stall printed under CHECK FAILED, and the exit status is 1: a script
    or CI job running the scenario sees the failure."""
    path = tmp_path / "stalled.yaml"
    path.write_text(yaml.safe_dump(overloaded_queues("10 ms"), sort_keys=False))
    with pytest.raises(SystemExit) as stopped:
        main(["run", str(path), "-o", str(tmp_path / "out"), "--no-plots", "--no-trace"])
    printed = capsys.readouterr().out
    assert stopped.value.code == 1 and (tmp_path / "out" / "summary.json").exists()
    assert "CHECK FAILED" in printed and "    device amp0.dev made no progress from 1.17 ms" in printed
