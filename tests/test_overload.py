"""A load the model cannot carry stops the run early with one line, instead of minutes and gigabytes.

An open-loop workload offered faster than its device serves piles requests up without bound. Below
the scenario's `limits.backlog` the run goes on (a saturated queue is a legitimate study point);
past it the run stops with an `OverloadError` naming the workload, the backlog, the time and the key
that raises the limit.
"""

from __future__ import annotations

import pytest
from sim_helpers import run, scenario_dict

from vmsim.cli import main
from vmsim.errors import OverloadError, VmsimError

# 2 us of service per request: the device completes at most 500k requests per second.
OPEN_LOOP = [{"name": "load", "device": "dev", "arrivals": {"kind": "constant", "rate": "1 MHz"}}]


def test_a_backlog_past_the_limit_stops_the_run_with_the_key_that_raises_it():
    data = scenario_dict(workloads=OPEN_LOOP, duration="1 ms", limits={"backlog": 50})
    with pytest.raises(OverloadError) as raised:
        run(data)
    message = str(raised.value)
    assert "workload load: 51 requests waiting" in message
    assert "limits.backlog = 50" in message and "--set limits.backlog=N" in message
    assert isinstance(raised.value, VmsimError)  # the CLI prints it on one line and exits 2


def test_the_same_overload_under_a_raised_limit_runs_to_its_end():
    """1 ms at over twice the capacity leaves hundreds of requests waiting: a saturated, finite study point."""
    _, output = run(scenario_dict(workloads=OPEN_LOOP, duration="1 ms", limits={"backlog": 10_000}))
    load = output.workloads["load"]
    assert output.sim_time_ns == 1_000_000
    assert load["arrivals"] == "constant"
    assert load["submitted"] > 900 and load["submitted"] - load["completed"] > 500  # starts after device init


def test_a_closed_loop_never_trips_the_guard_however_small_the_limit():
    """Its backlog is its `outstanding` count by construction."""
    _, output = run(scenario_dict(limits={"backlog": 2}))
    assert output.workloads["load"] == {
        "arrivals": "closed", "device": "amp0.dev", "submitted": 50, "completed": 50, "completed_by_end": 50,
        "backlog": 0, "on_ring": 0, "oldest_waiting_ns": None}


def test_the_cli_prints_an_overload_on_one_line_and_exits_2(tmp_path, capsys):
    with pytest.raises(SystemExit) as exited:
        main(["run", "scenarios/studies/doorbell-or-polling.yaml", "--set", "workloads.io.arrivals.rate=1e9",
              "--out", str(tmp_path / "out")])
    assert exited.value.code == 2
    lines = capsys.readouterr().err.splitlines()
    assert len(lines) == 1 and lines[0].startswith("vmsim: error: workload io: 100,001 requests waiting")
    assert not (tmp_path / "out").exists()


def test_a_saturated_open_loop_run_says_so_in_its_summary():
    """Below the guard the run completes, but its summary must not pass for a healthy one."""
    from vmsim.summary import summarize

    _, output = run(scenario_dict(workloads=OPEN_LOOP, duration="1 ms", limits={"backlog": 10_000}))
    warnings = summarize(output, wall_seconds=0.0, version="test")["warnings"]
    assert len(warnings) == 1
    assert warnings[0].startswith("workload load completed ") and "the load exceeds what the model carries" in warnings[0]


def test_a_run_within_capacity_has_no_warning():
    from vmsim.summary import summarize

    light = [{"name": "load", "device": "dev", "arrivals": {"kind": "constant", "rate": "50 kHz"}}]
    _, output = run(scenario_dict(workloads=light, duration="1 ms"))
    assert summarize(output, wall_seconds=0.0, version="test")["warnings"] == []


def test_nothing_completed_after_the_warm_up_is_a_warning():
    from vmsim.summary import summarize

    _, output = run(scenario_dict(duration="1 ms", warmup="1 ms",
                                  workloads=[{"name": "load", "device": "dev",
                                              "arrivals": {"kind": "closed", "outstanding": 1}}]))
    assert summarize(output, wall_seconds=0.0, version="test")["warnings"] == [
        "no request submitted after the warm-up (1.00 ms) completed: latency and throughput are empty"]
