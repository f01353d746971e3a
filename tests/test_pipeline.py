"""One run pipeline: `vmsim.run`, the sweeps and the tests take the same steps, and each step happens once."""

import yaml
from sim_helpers import scenario_dict

import vmsim
from vmsim import pipeline, topology
from vmsim.results import RunResult
from vmsim.scenario import trace
from vmsim.sim.log import RequestLog
from vmsim.sweeps.simulate import _simulate, flat_metrics
from vmsim.sweeps.spec import offered_rps


def replay_scenario(tmp_path):
    (tmp_path / "arrivals.csv").write_text("time,size\n2 ms,100\n2.5 ms,200 B\n4 ms,1 KiB\n")
    data = scenario_dict(workloads=[{"name": "replay", "device": "dev", "requests": 3,
                                     "arrivals": {"kind": "trace", "file": "arrivals.csv"}}])
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(data))
    return tmp_path / "replay.yaml"


def counting(monkeypatch, owner, name: str) -> list:
    """Replace `owner.name` by a wrapper that records each call; returns the record."""
    calls = []
    original = getattr(owner, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(owner, name, wrapper)
    return calls


def test_a_run_builds_its_topology_graph_once_and_parses_its_trace_once(tmp_path, monkeypatch):
    """Loading checks the topology on a graph and reads the trace to check it; the run uses both as they
    are (the API once built the graph again and asked for every trace again)."""
    path = replay_scenario(tmp_path)
    trace._read.cache_clear()
    graphs = counting(monkeypatch, topology, "build_graph")
    parsed = counting(monkeypatch, trace, "read_bounded")
    result = vmsim.run(path, write=False)
    assert result.graph.number_of_nodes() > 0  # the plots' graph is the one the checks built
    assert len(graphs) == 1 and len(parsed) == 1


def test_the_requests_log_is_turned_into_a_table_once(monkeypatch):
    """The summary reads the same requests table the result keeps for `result.requests`."""
    columns = counting(monkeypatch, RequestLog, "columns")
    ran = pipeline.run(scenario_dict(), name="story")
    result = RunResult.of(ran.checked.scenario, ran.output, wall_seconds=ran.wall_seconds)
    assert len(result.requests) == result.summary["requests_total"] == 50
    assert len(columns) == 1


def test_a_sweep_point_and_vmsim_run_give_the_same_numbers(tmp_path):
    """A sweep's run is the notebook's run in memory: the same metrics, to the last digit."""
    data = scenario_dict()
    (tmp_path / "story.yaml").write_text(yaml.safe_dump(data))
    result = vmsim.run(tmp_path / "story.yaml", write=False)
    expected = flat_metrics(result.summary, offered_rps(result.scenario))
    assert _simulate(data) == expected
