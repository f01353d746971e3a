"""Xen scenarios at load time: the shipped profiles, and bad configurations as one line naming
file:line: key, exit status 2 from the command line.

The base scenario is valid; each test edits one line (keeping line numbers), so the expected
`file:line` can be read straight off the text.
"""

from pathlib import Path

import pytest

from vmsim.cli import main
from vmsim.errors import ScenarioError
from vmsim.scenario import load, load_platform

BASE = """\
name: xen-demo
duration: 1 ms
platform: xen-arm
drivers:
  - {name: linux, cpu: guest-kernel}
domains:
  - {name: domu1, vcpus: 1}
  - {name: dom0, kind: dom0, vcpus: 4}
buses:
  - kind: xen
    name: xen0
    driver: linux
    frontend: domu1
    backend: dom0
    queue_bytes: 1 KiB
    shared_page: grant
    memory: ram
    doorbell: evtchn
    grants: map-unmap
devices:
  - {name: net0, kind: net, bus: xen0, dev_num: 0, cpu: qemu-dm}
workloads:
  - {name: tx, device: net0, arrivals: {kind: poisson, rate: 10 kHz}, size: {dist: constant, value: 1 KiB}}
"""


def write(tmp_path, text):
    path = tmp_path / "xen.yaml"
    path.write_text(text)
    return path


def edited(old, new):
    assert old in BASE, old
    return BASE.replace(old, new, 1)


def problems(tmp_path, text):
    path = write(tmp_path, text)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return [line.removeprefix(f"{path}:") for line in caught.value.problems]


def test_the_base_scenario_loads_with_its_domains_and_costs(tmp_path):
    scenario = load(write(tmp_path, BASE))
    assert [(d.name, d.kind, d.vcpus, d.pcpu) for d in scenario.domains] == [
        ("domu1", "domu", 1, "pinned"), ("dom0", "dom0", 4, "pinned")]
    bus = scenario.buses[0]
    assert (bus.queue_bytes, bus.layout, bus.queue_format, bus.element_size) == (1024, "v1", "spsc-2024", 64)
    assert scenario.platform.xen.hypercall == 157


@pytest.mark.parametrize("old, new, expected", [
    ("backend: dom0", "backend: dom9",
     ("14: buses[0].backend: no domain named 'dom9' (did you mean 'dom0'?) (declare it under domains:; "
     "the device side runs in a domain)")),
    ("frontend: domu1", "frontend: domu2",
     ("13: buses[0].frontend: no domain named 'domu2' (did you mean 'domu1'?) (declare it under domains:, "
     "or use xen for the hypervisor's proxy)")),
    ("queue_bytes: 1 KiB", "queue_bytes: 3 KiB",
     "15: buses[0].queue_bytes: two queues of 3072 bytes do not fit the 4096-byte shared page (at most 2048 each)"),
    ("queue_bytes: 1 KiB", "queue_bytes: 200 B",
     "15: buses[0].queue_bytes: a spsc-2024 queue of 200 bytes has 1 slots, not 2 or more"),
    ("grants: map-unmap", "grants: persistant",
     "19: buses[0].grants: Input should be 'map-unmap', 'persistent', 'copy' or 'directory' (got 'persistant')"),
])
def test_a_bad_xen_configuration_is_one_line_naming_file_line_and_key(tmp_path, old, new, expected):
    assert problems(tmp_path, edited(old, new)) == [expected]


def test_a_driver_domain_serves_a_granted_page_and_any_event_channel_doorbell_will_do(tmp_path):
    text = edited("{name: dom0, kind: dom0, vcpus: 4}", "{name: dom0, kind: domd, vcpus: 4}")
    assert load(write(tmp_path, text.replace("doorbell: evtchn", "doorbell: evtchn-io-out"))).domains[1].kind == "domd"


def test_a_foreign_mapping_needs_a_privileged_backend(tmp_path):
    text = edited("{name: dom0, kind: dom0, vcpus: 4}", "{name: dom0, kind: domd, vcpus: 4}")
    assert problems(tmp_path, text.replace("shared_page: grant", "shared_page: foreign")) == [
        ("16: buses[0].shared_page: a foreign mapping needs a privileged device model: backend 'dom0' is a "
        "domd, not dom0 (or share the page by grant)")]


def test_domains_are_unique_and_there_is_one_dom0(tmp_path):
    text = edited("  - {name: domu1, vcpus: 1}", "  - {name: xen}\n  - {name: dom0, kind: dom0}")
    assert problems(tmp_path, text) == [
        "7: domains[0].name: domain name 'xen' is the hypervisor's own name",
        "9: domains[2].name: domain name 'dom0' is already used by another domain",
        "9: domains[2].kind: a host has one dom0; make this a driver domain (domd) or a domu",
        ("14: buses[0].frontend: no domain named 'domu1' (did you mean 'dom0'?) (declare it under domains:, "
        "or use xen for the hypervisor's proxy)"),
    ]


def test_a_xen_bus_notifies_by_event_channel_and_its_backend_is_another_domain(tmp_path):
    text = BASE.replace("platform: xen-arm", "platform: {profile: xen-arm, doorbells: {ipi: {kind: ipi}}}")
    text = text.replace("doorbell: evtchn", "doorbell: ipi").replace("backend: dom0", "backend: domu1")
    assert problems(tmp_path, text) == [
        "14: buses[0].backend: domain 'domu1' is already the bus's frontend",
        "18: buses[0].doorbell: doorbell 'ipi' has kind ipi; a xen bus notifies by event channel (kind evtchn)",
    ]


def test_a_buffer_must_fit_the_grant_directory(tmp_path):
    text = edited("grants: map-unmap", "grants: directory\n    directory_pages: 1").replace("1 KiB}}", "6 KiB}}")
    assert problems(tmp_path, text) == [
        ("24: workloads[0].size: a 6144-byte buffer spans 2 pages, more than the 1 of its bus's grant directory "
        "(directory_pages)"),
    ]


def test_validate_exits_2_with_the_one_line_error(tmp_path, capsys):
    path = write(tmp_path, edited("backend: dom0", "backend: dom9"))
    with pytest.raises(SystemExit) as exited:
        main(["validate", str(path)])
    assert exited.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith(f"vmsim: error: {path}:14: buses[0].backend: no domain named 'dom9'")
    assert err.count("\n") == 1


@pytest.mark.parametrize("name", ["xen-arm", "xen-x86"])
def test_xen_profiles_cite_the_published_hypervisor_figures(name):
    """Hypercall and VM switch are Dall et al.'s cycle counts over the clock (A.5 rows 27-28); the I/O
    doorbells add up to rows 29's out/in latencies with the send hypercall."""
    platform = load_platform(name)
    clock = {"xen-arm": 2.4, "xen-x86": 2.9}[name]
    cycles = {"xen-arm": (376, 8799, 16491, 15650), "xen-x86": (1228, 10534, 11262, 10050)}[name]
    hypercall, switch, out, back = (round(c / clock) for c in cycles)
    assert platform.xen.hypercall == hypercall and platform.xen.vm_switch == switch
    for bell, total in (("evtchn-io-out", out), ("evtchn-io-in", back)):
        door = platform.doorbells[bell]
        assert door.kind == "evtchn" and door.ring == hypercall and abs(door.ring + door.latency - total) <= 1
        assert "row 29" in platform.provenance[f"doorbells.{bell}.latency"]
    assert "row 27" in platform.provenance["xen.hypercall"]


SCENARIOS = Path(__file__).resolve().parents[1] / "scenarios"


@pytest.mark.parametrize("path", sorted([*SCENARIOS.glob("xen-*.yaml"), SCENARIOS / "sharing" / "xen-vsock.yaml"]),
                         ids=lambda p: p.stem)
def test_the_shipped_xen_scenarios_speak_pr28_s_8_byte_header(path):
    """Issue 15: the pre-PR28 6-byte header (draft-6b) stays available, but no shipped Xen scenario falls
    back to it; they run v1 or v1 with vmsim's share messages."""
    buses = [bus for bus in load(path).buses if bus.kind == "xen"]
    assert buses and {bus.layout for bus in buses} <= {"v1", "vmsim-share"}
