"""A setting that does nothing where it stands is an error at its key, in one line saying why: a sweep over it
would draw a flat line and a wrong conclusion."""

from __future__ import annotations

import pytest
import yaml
from ffa_helpers import ffa_dict
from sharing_helpers import shared
from sim_helpers import scenario_dict

from vmsim.errors import ScenarioError
from vmsim.scenario.loader import load


def problem_of(data: dict, tmp_path) -> str:
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    with pytest.raises(ScenarioError) as caught:
        load(path)
    (line,) = str(caught.value).splitlines()
    return line


def test_a_pool_size_under_another_sharing_policy_is_an_error_at_its_line(tmp_path):
    """`pool: 32` with `policy: on-first-use` is never read: the user thinks the pool is bigger."""
    data = shared("amp", {"policy": "on-first-use", "pool": 32})
    line = problem_of(data, tmp_path)
    assert "scenario.yaml:" in line and "devices[0].sharing.pool:" in line
    assert "`policy: on-first-use` never reads it, so it has no effect" in line


def test_linger_without_lazy_release_is_an_error(tmp_path):
    """Only `release: lazy` keeps a retired region shared; with eager release linger changes nothing."""
    line = problem_of(shared("amp", {"release": "eager", "linger": "5 ms"}), tmp_path)
    assert "devices[0].sharing.linger:" in line and "`release: eager` never keeps one" in line


def test_settings_left_at_their_default_are_never_reported(tmp_path):
    """A resolved config writes every field out: the default pool size under another policy must load back."""
    data = shared("amp", {"policy": "on-first-use", "pool": 16, "linger": "1 ms"})
    path = tmp_path / "scenario.yaml"
    path.write_text(yaml.safe_dump(data, sort_keys=False))
    assert load(path).devices[0].sharing.pool == 16


def test_a_workload_starting_after_the_end_of_the_run_is_an_error(tmp_path):
    """A workload whose start lies beyond `duration` submits nothing; the run would pass with it silent."""
    data = scenario_dict(duration="5 ms", workloads=[{"name": "late", "device": "dev", "start": "8 ms",
                                                      "arrivals": {"kind": "poisson", "rate": "10 kHz"}}])
    line = problem_of(data, tmp_path)
    assert "workloads[0].start:" in line and "after the run ends (duration 5.00 ms): it submits nothing" in line


def test_a_device_removal_after_the_end_of_the_run_is_an_error(tmp_path):
    data = scenario_dict(duration="5 ms", workloads=[{"name": "load", "device": "dev",
                                                      "arrivals": {"kind": "poisson", "rate": "10 kHz"}}])
    data["devices"][0]["removed_at"] = "6 ms"
    assert "devices[0].removed_at:" in problem_of(data, tmp_path)


def test_a_fifo_size_on_a_direct_ffa_bus_is_an_error(tmp_path):
    """Only `method: fifo` shares a FIFO region; on a direct bus its size is never read."""
    line = problem_of(ffa_dict(method="direct", fifo_size="64 KiB"), tmp_path)
    assert "buses[0].fifo_size:" in line and "a direct bus shares none, so it has no effect" in line
