"""The shipped sharing scenarios: one vsock-like stream over AMP, Xen and FF-A, each bus under several
policies side by side; a short run of each passes every safety check and leaves nothing shared."""

from pathlib import Path

import pytest

from vmsim.analysis.checks import check_events
from vmsim.scenario import load
from vmsim.sim import build

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios" / "sharing").glob("*.yaml"))


def policy(device) -> tuple:
    sharing = device.sharing
    return sharing.policy, sharing.batch, sharing.release, sharing.bounce


def test_the_same_workload_runs_on_each_bus_under_at_least_two_policies():
    kinds = {}
    for path in SCENARIOS:
        scenario = load(path)
        kinds[scenario.buses[0].kind] = scenario
        assert len({policy(device) for device in scenario.devices}) >= 2
        assert {(w.vq, w.arrivals.rate, w.size.value) for w in scenario.workloads} == {(1, 10_000.0, 4096)}
    assert set(kinds) == {"amp", "xen", "ffa"}


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_a_short_run_is_clean(path):
    output = build(load(path, ["duration=5ms", "warmup=0ns"])).run()
    assert check_events(output.events)["status"] == "ok"
    shared_bytes = [counts["bytes_shared"] for name, counts in output.counters.items()
                    if name.endswith(".share.driver")]
    assert len(shared_bytes) == 3 and set(shared_bytes) == {0}
