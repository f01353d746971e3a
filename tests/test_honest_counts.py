"""The summary says what became of every request offered, and throughput counts every completion in the
measured window, so a load the model did not carry cannot pass for a better latency."""

from __future__ import annotations

import numpy as np
from sim_helpers import run, scenario_dict
from test_summary_warnings import overloaded_queues

from vmsim.summary import summarize
from vmsim.summary_report import format_summary
from vmsim.tables import requests_table


def summarized(data: dict):
    _, output = run(data)
    return output, summarize(output, wall_seconds=0.0, version="test")


def test_every_request_offered_is_accounted_for_per_workload_and_in_total():
    """Offered = submitted + held back by the driver; submitted = completed + in flight at the end; and the
    totals are the workloads' sums. The overloaded run holds most of its load back and retried a frame."""
    _, summary = summarized(overloaded_queues("10 ms"))
    counts = summary["counts"]
    for entry in [counts["total"], *counts["workloads"].values()]:
        assert entry["offered"] == entry["submitted"] + entry["backlog"]
        assert entry["submitted"] == entry["completed"] + entry["in_flight"]
    load = counts["workloads"]["load"]
    assert load["offered"] == summary["workloads"]["load"]["submitted"] and load["backlog"] > 1000
    assert load["completed"] == summary["requests_total"] - summary["requests_after_end"]
    assert counts["total"]["frames_retried"] >= 1 and counts["total"]["frames_dropped"] == 0


def test_throughput_counts_completions_in_the_window_whenever_they_were_submitted():
    """A closed loop of 8 keeps 8 requests in flight as the warm-up ends: they complete in the measured window
    and count for throughput, while latency keeps to requests submitted after the warm-up."""
    data = scenario_dict(duration="3 ms", warmup="1 ms",
                         workloads=[{"name": "load", "device": "dev", "arrivals": {"kind": "closed", "outstanding": 8}}])
    output, summary = summarized(data)
    table = requests_table(output)
    submit, complete = (table.column(name).to_numpy() for name in ("submit_ns", "complete_ns"))
    in_window = (complete >= output.warmup_ns) & (complete <= output.sim_time_ns)
    carried_over = int((in_window & (submit < output.warmup_ns)).sum())
    assert carried_over > 0
    assert summary["requests_in_window"] == summary["requests_completed"] + carried_over == int(in_window.sum())
    assert summary["throughput_rps"] == summary["requests_in_window"] / 2e-3
    assert np.isclose(summary["latency_ns"]["mean"],
                      table.column("latency_ns").to_numpy()[in_window & (submit >= output.warmup_ns)].mean())


def test_the_printed_summary_gives_the_counts():
    """Held back, in flight and retried frames are on the one screen a user reads, not only in summary.json."""
    _, summary = summarized(overloaded_queues("10 ms"))
    printed = format_summary(summary)
    total = summary["counts"]["total"]
    assert (f"offered {total['offered']:,}, submitted {total['submitted']:,}, completed {total['completed']:,}, "
            f"in flight at the end {total['in_flight']:,}, held back by the driver {total['backlog']:,}") in printed
    assert "frames retried after a full queue" in printed


def test_the_printed_summary_gives_each_device_its_latency_busiest_first():
    """Two devices on one bus, one 20 times slower: pooled latency hides it, its own line under the bus does
    not, and it comes first because it is the busier."""
    data = scenario_dict(duration="2 ms")
    data["devices"].append({**data["devices"][0], "name": "slow", "dev_num": 2,
                            "service": {"dist": "constant", "value": 40_000}})
    data["workloads"] = [{"name": name, "device": name, "arrivals": {"kind": "closed", "outstanding": 1}}
                         for name in ("dev", "slow")]
    _, summary = summarized(data)
    lines = format_summary(summary).splitlines()
    first = next(row for row, line in enumerate(lines) if line.startswith("by bus     amp0: p50 "))
    assert lines[first + 1].strip().startswith("amp0.slow: p50 4")
    assert lines[first + 2].strip().startswith("amp0.dev: p50 ")
