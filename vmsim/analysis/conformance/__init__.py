"""A conformance monitor for virtio-msg frame logs: the transport spec's rules (`rules.RULES`), each naming
its section, checked over a run's event log or a capture from a real system.

    report = conformance_check(output.events)     # an EventLog, an events DataFrame or columns mapping
    report["rules"]["status-order"]               # {"section", "checked", "violations", "not_checkable"}

`ConformanceMonitor.feed` takes a log a chunk at a time (a streamed log's row groups); `vmsim.analysis.
conformance.capture` reads and writes the text formats `vmsim check` takes (docs/conformance.md).
"""

from __future__ import annotations

from vmsim.analysis.conformance.frames import FrameChunk, chunk_from_columns, chunk_from_event_log
from vmsim.analysis.conformance.monitor import ConformanceMonitor
from vmsim.analysis.conformance.rules import RULE_IDS, RULES, Rule, rules_markdown
from vmsim.sim.log import EventLog

__all__ = ["RULES", "RULE_IDS", "ConformanceMonitor", "FrameChunk", "Rule", "conformance_check",
           "rules_markdown", "with_conformance"]


def conformance_check(events, layouts: dict[str, str] | None = None) -> dict:
    """The monitor's report (`ConformanceMonitor.report`) over a whole log: an `EventLog` (its buffered rows,
    layouts known), or an events table as a DataFrame or columns mapping (layouts inferred unless given)."""
    monitor = ConformanceMonitor()
    if isinstance(events, EventLog):
        monitor.feed(chunk_from_event_log(events))
    else:
        monitor.feed(chunk_from_columns(events, 0, layouts))
    return monitor.report()


def with_conformance(check: dict, events, spill=None) -> dict:
    """summary.json's `check` with the conformance report beside the other checks (`check["conformance"]`),
    the overall status failed when either failed. A run whose log streamed to a spill is read back from the
    spill's monitor, fed each row group as it was written (the `EventLog` keeps only its last rows)."""
    conformance = conformance_check(events) if spill is None else spill.conformance.report()
    failed = check.get("status") != "ok" or conformance["status"] != "ok"
    return {**check, "status": "failed" if failed else "ok", "checks": [*check.get("checks", []),
            check_entry(conformance)], "conformance": conformance}


def check_entry(conformance: dict) -> dict:
    """The conformance verdict as one entry of `check["checks"]`, each violation one message naming its row,
    time, bus, device and rule (the one-screen report lists them as it lists the other checks')."""
    violations = [{**violation, "message": f"row {violation['row']} ({violation['time_ns']} ns) bus "
                   f"{violation['bus']} dev {violation['dev_num']}: {violation['rule']}: {violation['message']}"}
                  for violation in conformance["violations"]]
    return {"name": "conformance", "status": conformance["status"], "violations": violations,
            "violations_total": conformance["violations_total"]}
