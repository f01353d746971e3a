"""Every shipped scenario validates, runs briefly, initialises each device in spec order, every frame it logs
decodes with `vmsim.wire`, and none of its modelled cores is more than 100 % busy."""

from pathlib import Path

import pytest

from vmsim import pipeline
from vmsim.scenario import load
from vmsim.wire import get_layout

SCENARIOS = sorted((Path(__file__).parent.parent / "scenarios").rglob("*.yaml"))
INIT_ORDER = ["GET_DEVICE_INFO", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS",  # reset, ACK, DRIVER
              "GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES", "SET_DEVICE_STATUS", "GET_DEVICE_STATUS",
              "GET_VQUEUE", "SET_VQUEUE"]  # GET_CONFIG only when there is config space


def brief(path: Path) -> list[str]:
    """Overrides that keep a run short: a few hundred requests per workload, or a few ms, a millisecond more
    per device past five (32 devices initialising through one Cortex-M4 take about 8 ms before the first
    request)."""
    scenario = load(path)
    if all(w.requests for w in scenario.workloads) and scenario.workloads:
        return [f"workloads.{w.name}.requests=300" for w in scenario.workloads]
    return [f"duration={max(5, len(scenario.devices))}ms", "warmup=0ns"]


def test_the_issue_s_scenarios_are_shipped():
    names = {p.relative_to(p.parents[1] if p.parent.name in ("validation", "bench") else p.parent).as_posix()
             for p in SCENARIOS}
    assert {"validation/mm1.yaml", "validation/md1.yaml", "bench/amp-closed-loop.yaml"} <= names
    assert len(SCENARIOS) >= 7


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda p: p.stem)
def test_scenario_runs_every_frame_decodes_and_no_core_is_over_busy(path):
    ran = pipeline.run(path, brief(path))
    scenario, output = ran.checked.scenario, ran.output
    assert len(output.requests) > 0
    # AMP buses model their cores, FF-A buses the driver's, Xen buses their domains' vCPUs
    assert {f"{bus.driver}.cpu" for bus in scenario.buses if bus.kind == "ffa"} <= set(output.processors)
    assert {f"domain.{name}" for bus in scenario.buses if bus.kind == "xen"
            for name in (bus.frontend, bus.backend) if name != "xen"} <= set(output.processors)
    assert bool(output.processors) == bool(scenario.buses)
    for name, processor in output.processors.items():  # work on a core waits its turn: never above 100 %
        assert 0 <= processor["utilisation"] <= 1 + 1e-9, name
        assert processor["busy_ns"] <= output.sim_time_ns * processor["cores"] + 1, name
    assert output.init_done_ns  # a large scenario may still be initialising its last devices when cut short
    columns = output.events.columns()
    layouts = {bus.name: get_layout(bus.layout) for bus in scenario.buses}
    per_device: dict[tuple, list[str]] = {}
    for bus, wire, event, component in zip(columns["bus"], columns["wire"], columns["event"], columns["component"]):
        if wire is None:
            continue
        frame = layouts[bus].decode(wire)
        if event == "tx" and component.endswith("to_device") and not frame.bus:
            per_device.setdefault((bus, frame.dev_num), []).append(frame.name)
    for names in per_device.values():
        names = [name for name in names if name != "GET_CONFIG"]
        assert names[:len(INIT_ORDER)] == INIT_ORDER
        assert names.index("SET_VQUEUE") > names.index("GET_VQUEUE")
