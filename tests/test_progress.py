"""A run reports its progress whether it ends on a request count or on simulated time."""

from __future__ import annotations

from sim_helpers import scenario

from vmsim.sim import build


def test_a_run_bounded_by_requests_reports_the_share_of_requests_completed():
    seen = []
    build(scenario()).run(progress=seen.append)
    assert seen[0] == 0.02 and seen[-1] == 1.0  # 50 requests: one report per completion, then the end


def test_a_run_bounded_by_duration_reports_the_share_of_simulated_time():
    seen = []
    open_loop = [{"name": "load", "device": "dev", "arrivals": {"kind": "poisson", "rate": "10 kHz"}}]
    build(scenario(workloads=open_loop, duration="1 ms")).run(progress=seen.append)
    assert seen == [step / 100 for step in range(1, 100)] + [1.0]
