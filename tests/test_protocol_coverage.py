"""Every message of the transport text (virtio-msg PR #28) goes on the wire in the shipped scenarios: the 14
transport messages and the 3 bus messages, on each bus family (AMP, Xen, FF-A) by its lifecycle scenario;
and FF-A's own RESET and ERROR bus messages in the shipped FF-A scenarios."""

from __future__ import annotations

from pathlib import Path

import pytest

from vmsim import pipeline
from vmsim.scenario import load
from vmsim.wire import get_layout

SCENARIOS = Path(__file__).parent.parent / "scenarios"
PR28_TRANSPORT = (
    "GET_DEVICE_INFO", "GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES", "GET_CONFIG", "SET_CONFIG",
    "GET_DEVICE_STATUS", "SET_DEVICE_STATUS", "GET_VQUEUE", "SET_VQUEUE", "RESET_VQUEUE", "GET_SHM",
    "EVENT_CONFIG", "EVENT_AVAIL", "EVENT_USED",
)
PR28_BUS = ("GET_DEVICES", "PING", "EVENT_DEVICE")
LIFECYCLE = {"amp": "lifecycle/amp-lifecycle.yaml", "xen": "lifecycle/xen-lifecycle.yaml",
             "ffa": "lifecycle/ffa-lifecycle.yaml"}

FFA_BUS_ON_THE_WIRE: tuple[str, ...] = ("RESET", "ERROR")
"""FF-A bus messages of its own that some shipped FF-A scenario must put on the wire: RESET and ERROR (the
lifecycle scenario's bus reset and damaged requests)."""
FFA_BUS_AWAITED: tuple[str, ...] = ()
"""FF-A bus messages expected on the wire that no shipped scenario sends yet."""


def _on_the_wire(path: Path, overrides=()) -> set[str]:
    """The names of every frame a run of `path` put on a bus (logged `tx`), requests, responses and events."""
    output = pipeline.run(path, list(overrides)).output
    columns = output.events.columns()
    return {name for name, event in zip(columns["msg_name"], columns["event"]) if name and event == "tx"}


def test_the_lists_are_the_transport_text_s():
    """14 transport and 3 bus messages, each a message of the v1 layout; the FF-A ones are FF-A bus messages
    and each is either checked on the wire or awaited, never both."""
    v1 = {(spec.name, spec.bus) for spec in get_layout("v1").messages}
    assert len(PR28_TRANSPORT) == 14 and {(name, False) for name in PR28_TRANSPORT} <= v1
    assert len(PR28_BUS) == 3 and {(name, True) for name in PR28_BUS} <= v1
    ffa_bus = {spec.name for spec in get_layout("ffa-2026").messages if spec.bus} - set(PR28_BUS)
    assert set(FFA_BUS_ON_THE_WIRE) | set(FFA_BUS_AWAITED) <= ffa_bus
    assert set(FFA_BUS_ON_THE_WIRE) & set(FFA_BUS_AWAITED) == set()
    assert set(FFA_BUS_ON_THE_WIRE) | set(FFA_BUS_AWAITED) >= {"RESET", "ERROR"}


@pytest.mark.parametrize("family", sorted(LIFECYCLE))
def test_each_bus_family_s_lifecycle_scenario_puts_every_pr28_message_on_the_wire(family):
    """Hot-plug and removal, a config change and a write, queue and device resets, a device needing a reset,
    GET_SHM and keepalive: every transport and bus message of PR #28 goes over this family's bus at least once,
    in its shipped 5 ms run, and no device is given up on."""
    path = SCENARIOS / LIFECYCLE[family]
    assert {bus.kind for bus in load(path).buses} == {family}
    ran = pipeline.run(path, [])
    columns = ran.output.events.columns()
    sent = {name for name, event in zip(columns["msg_name"], columns["event"]) if name and event == "tx"}
    assert set(PR28_TRANSPORT + PR28_BUS) - sent == set()
    drivers = [driver.name for driver in ran.checked.scenario.drivers]
    assert [ran.output.counters[name]["devices_failed"] for name in drivers] == [0] * len(drivers)


def test_ffa_bus_messages_listed_are_on_the_wire_in_the_shipped_ffa_scenarios():
    """Each FF-A bus message listed goes on the wire in at least one shipped FF-A scenario, run briefly."""
    missing = set(FFA_BUS_ON_THE_WIRE)
    for path in sorted(SCENARIOS.rglob("*.yaml")):
        if not missing:
            break
        if any(bus.kind == "ffa" for bus in load(path).buses):
            missing -= _on_the_wire(path, ["duration=5ms", "warmup=0ns"])
    assert missing == set()


@pytest.mark.parametrize("family", sorted(LIFECYCLE))
def test_each_lifecycle_scenario_keeps_to_the_transport_rules(family):
    """Resets, re-initialisations, hot-plug and removal, a device needing a reset: the conformance monitor finds
    no frame out of order (requests and events only while the device may take them, a reset read back as 0)."""
    conformance = pytest.importorskip("vmsim.analysis.conformance")
    report = conformance.conformance_check(pipeline.run(SCENARIOS / LIFECYCLE[family], []).output.events)
    assert (report["violations_total"], report["violations"]) == (0, [])
