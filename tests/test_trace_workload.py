"""A workload replayed from a CSV trace submits at the trace's times with the trace's sizes."""

import yaml
from sim_helpers import scenario_dict

import vmsim


def test_trace_workload_replays_times_and_sizes(tmp_path):
    (tmp_path / "arrivals.csv").write_text("time,size\n2 ms,100\n2.5 ms,200 B\n4 ms,1 KiB\n")
    data = scenario_dict(workloads=[{"name": "replay", "device": "dev", "requests": 3,
                                     "arrivals": {"kind": "trace", "file": "arrivals.csv"}}])
    (tmp_path / "replay.yaml").write_text(yaml.safe_dump(data))
    result = vmsim.run(tmp_path / "replay.yaml", write=False, plots=False, trace=False)
    requests = result.requests.sort_values("request_id")
    assert requests.size_bytes.tolist() == [100, 200, 1024]
    ready = result.summary["init_done_ns"]["amp0.dev"]
    assert (requests.submit_ns - ready).tolist() == [2_000_000, 2_500_000, 4_000_000]
