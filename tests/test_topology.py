"""The topology graph: who drives which bus, which devices sit on it, what loads them."""

from pathlib import Path

import pytest

from vmsim import topology
from vmsim.errors import ScenarioError
from vmsim.scenario import load, load_dict, resolved_dict
from vmsim.scenario.models import Scenario


def scenario_dict(buses=1, devices_per_bus=2, **bus_options):
    """A generated scenario on the ideal profile: one driver per 10 buses, one workload per device."""
    data = {
        "name": "gen",
        "duration": "1 ms",
        "platform": "ideal",
        "drivers": [],
        "buses": [],
        "devices": [],
        "workloads": [],
    }
    for b in range(buses):
        if b % 10 == 0:
            data["drivers"].append({"name": f"drv{b // 10}"})
        data["buses"].append(
            {
                "kind": "amp",
                "name": f"bus{b}",
                "driver": f"drv{b // 10}",
                "memory": "ideal",
                "doorbell": "ideal",
                **bus_options,
            }
        )
        for d in range(devices_per_bus):
            device = f"bus{b}_dev{d}"
            data["devices"].append({"name": device, "bus": f"bus{b}", "dev_num": d})
            data["workloads"].append(
                {"name": f"{device}_load", "device": device, "arrivals": {"kind": "poisson", "rate": "1 kHz"}}
            )
    return data


def test_the_graph_has_one_node_per_component_and_edges_along_references():
    """driver -> bus -> device <- workload: the simulator builds one component per node."""
    graph = topology.build_graph(load_dict(scenario_dict()))
    assert graph.nodes["drv0"]["kind"] == "driver"
    assert graph.nodes["bus0"] | {"config": None} == {
        "kind": "bus",
        "name": "bus0",
        "index": 0,
        "config": None,
        "bus_kind": "amp",
        "layout": "v1",
        "max_msg_size": 64,
    }
    assert graph.nodes["bus0_dev1"]["dev_num"] == 1
    assert sorted(graph.edges) == [
        ("bus0", "bus0_dev0"),
        ("bus0", "bus0_dev1"),
        ("bus0_dev0_load", "bus0_dev0"),
        ("bus0_dev1_load", "bus0_dev1"),
        ("drv0", "bus0"),
    ]
    assert graph.edges["bus0", "bus0_dev1"]["dev_num"] == 1


def test_problems_of_a_scenario_built_in_code_come_as_key_paths():
    """Without a file, each problem is its key path and message; the loader places them at file:line."""
    data = scenario_dict()
    data["platform"] = {"name": "bare", "memory": {"ideal": {}}, "doorbells": {"ideal": {"kind": "ideal"}}}
    data["devices"][1]["dev_num"] = 0
    data["buses"][0]["driver"] = "nobody"
    scenario = Scenario.model_validate(data)
    assert topology.problems(scenario, topology.build_graph(scenario)) == [
        (("buses", 0, "driver"), "no driver named 'nobody'"),
        (("devices", 1, "dev_num"), "dev_num 0 is already used on bus 'bus0' by device 'bus0_dev0'"),
    ]


TWO_CORES = {
    "profile": "ideal",
    "cpus": {"cortex-a7": {"frame_handling": "2 us"}, "cortex-m4": {"frame_handling": "5 us"}},
}


def test_the_devices_of_one_bus_share_its_device_side_core():
    """The bus charges one core per frame on its device side, so a device naming another cpu is
    refused at its key, naming the bus, both devices and both cpus."""
    data = scenario_dict(devices_per_bus=3)
    data["platform"] = TWO_CORES
    for device, cpu in zip(data["devices"], ["cortex-m4", "cortex-m4", "cortex-a7"]):
        device["cpu"] = cpu
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [
        (
            "<dict>: devices[2].cpu: device 'bus0_dev2' names cpu 'cortex-a7', device 'bus0_dev0' names cpu "
            "'cortex-m4': the device side of bus 'bus0' runs on one core, so every device on it names the "
            "same cpu"
        )
    ]


def test_devices_on_different_buses_may_run_on_different_cores():
    """Each bus has its own device side: one bus's devices on the M4, another's on the A7."""
    data = scenario_dict(buses=2)
    data["platform"] = TWO_CORES
    for device in data["devices"]:
        device["cpu"] = "cortex-m4" if device["bus"] == "bus0" else "cortex-a7"
    scenario = load_dict(data)
    assert [(device.bus, device.cpu) for device in scenario.devices] == [
        ("bus0", "cortex-m4"), ("bus0", "cortex-m4"), ("bus1", "cortex-a7"), ("bus1", "cortex-a7")
    ]


def test_an_unreachable_device_is_reported_once_at_the_cause():
    """A bus without a driver strands all its devices; one line at the bus says so, not one per device."""
    data = scenario_dict(devices_per_bus=5)
    data["buses"][0]["driver"] = "drv9"
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == ["<dict>: buses[0].driver: no driver named 'drv9' (did you mean 'drv0'?)"]


def test_a_device_whose_bus_names_a_workload_has_no_bus():
    """The workload's edge points into the device, but it is no bus: a device on it once passed the
    checks and crashed the run."""
    data = scenario_dict(devices_per_bus=1)
    data["devices"][0]["bus"] = "bus0_dev0_load"
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == ["<dict>: devices[0].bus: no bus named 'bus0_dev0_load'"]


def test_a_replayed_trace_is_checked_with_its_largest_size(tmp_path):
    """A trace's sizes are requests like any other: a 4 GiB row on a bus whose grant directory holds 256
    pages once passed the checks (the size distribution was the default 64 B) and crashed the run."""
    (tmp_path / "trace.csv").write_text("time,size\n0,64\n1 us,4 GiB\n")
    data = resolved_dict(load(Path(__file__).parents[1] / "scenarios" / "xen-proxy-block.yaml"))
    data["workloads"][0]["arrivals"] = {"kind": "trace", "file": str(tmp_path / "trace.csv")}
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [("<dict>: workloads[0].arrivals.file: a 4294967296-byte buffer spans 1048576 "
                                     "pages, more than the 256 of its bus's grant directory (directory_pages)")]


def test_a_trace_shorter_than_the_requests_asked_for_is_refused_when_nothing_else_ends_the_run(tmp_path):
    """Seven arrivals cannot make a thousand requests: without `duration` the run would wait for ever (the
    scenario fuzzer found the model stalled); with one, the run simply ends."""
    (tmp_path / "trace.csv").write_text("time\n" + "\n".join(f"{i} us" for i in range(7)) + "\n")
    data = resolved_dict(load(Path(__file__).parents[1] / "scenarios" / "published" / "ti-am64x-linux-m4f.yaml"))
    data["workloads"][0]["arrivals"] = {"kind": "trace", "file": str(tmp_path / "trace.csv")}
    data.pop("duration", None)
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [
        ("<dict>: workloads[0].requests: 1000 requests, but the trace replayed has 7 rows and the scenario has no "
         "duration, so the run would never end: ask for at most 7, or give `duration`")]
    load_dict({**data, "duration": "1 ms"})


def test_duplicate_names_are_reported_alone():
    """With two components of one name the graph is ambiguous, so other checks would mislead."""
    data = scenario_dict()
    data["workloads"][0]["name"] = "bus0"
    data["workloads"][1]["vq"] = 3
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [
        (
            "<dict>: workloads[0].name: name 'bus0' is already used by buses[0]; names "
            "must be unique across drivers, buses, devices and workloads"
        )
    ]


@pytest.mark.parametrize(
    ("layout", "size"), [("v1", 48), ("draft-6b", 42), ("fixed40", 40), ("linux-2026", 52)]
)
def test_the_largest_frame_of_each_layout(layout, size):
    """GET/SET_VQUEUE (48 bytes in v1) or GET_DEVICE_INFO (52 in linux-2026) sets the smallest element."""
    assert topology.largest_frame(layout, 64)[0] == size


def test_many_feature_bits_can_outgrow_the_bus():
    """The driver moves all feature blocks in one frame, so 512 feature bits need 16 + 64 bytes."""
    assert topology.largest_frame("v1", 512)[0] == 80
    data = scenario_dict()
    data["devices"][0]["feature_bits"] = 512
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [
        (
            "<dict>: devices[0].feature_bits: 512 feature bits make SET_DRIVER_FEATURES "
            "80 bytes, more than bus 'bus0' carries (64 bytes)"
        )
    ]


def test_max_msg_size_may_narrow_but_not_widen_the_element():
    """A frame always travels in one queue element, so max_msg_size above element_size is a mistake."""
    with pytest.raises(ScenarioError, match=r"buses\[0\].max_msg_size: 128 bytes exceeds element_size 64"):
        load_dict(scenario_dict(max_msg_size=128))
    assert load_dict(scenario_dict(max_msg_size=52)).buses[0].max_msg_size == 52


@pytest.mark.parametrize(
    ("bus_options", "queues", "devices", "expected"),
    [
        (
            {"queue_format": "spsc-2025", "element_size": 48},
            1,
            1,
            "buses[0].element_size: spsc-2025 queues have fixed 64-byte slots, not 48",
        ),
        (
            {"queue_format": "spsc-2024", "notify": "out-of-band"},
            1,
            1,
            "buses[0].notify: out-of-band notification needs the amp-2026 notification words, not spsc-2024",
        ),
        (
            {"notify": "out-of-band"},
            17,
            2,
            "devices[0].queues: 17 virtqueues on out-of-band bus 'bus0': at most 16 per device",
        ),
        (
            {"notify": "out-of-band"},
            16,
            257,
            (
                "buses[0].notify: 257 devices x 16 notification bits exceed the 4096 bits of amp-2026's "
                "notification words"
            ),
        ),
    ],
)
def test_queue_formats_limit_slot_size_and_out_of_band_notification(bus_options, queues, devices, expected):
    """The spsc formats have fixed 64-byte slots; out-of-band notification needs amp-2026's
    notification words, which hold at most 16 bits per device and 4096 bits per bus."""
    data = scenario_dict(devices_per_bus=devices, **bus_options)
    for device in data["devices"]:
        device["queues"] = queues
    with pytest.raises(ScenarioError) as caught:
        load_dict(data)
    assert caught.value.problems == [f"<dict>: {expected}"]


def test_a_thousand_devices_on_a_hundred_buses_build_and_check_in_one_pass():
    """Large topologies are a use case (how many devices can a queue pair carry?): every check is
    a dictionary lookup per component, never a comparison of all pairs."""
    scenario = load_dict(scenario_dict(buses=100, devices_per_bus=10))
    graph = topology.build_graph(scenario)
    assert topology.problems(scenario, graph) == []
    assert graph.number_of_nodes() == 10 + 100 + 1000 + 1000
    assert graph.number_of_edges() == 100 + 1000 + 1000


def test_draw_lays_the_topology_out_in_layers():
    """Drivers left, buses, devices, workloads to the right; one column per kind, titled with its count."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    graph = topology.build_graph(load_dict(scenario_dict(buses=2)))
    ax = topology.draw(graph)
    assert [tick.get_text() for tick in ax.get_xticklabels()] == ["drivers (1)", "buses (2)", "devices (4)",
                                                                  "workloads (4)"]
    labels = {text.get_text(): text.get_position() for text in ax.texts}
    assert labels["drv0"][0] == 0 and labels["bus1"][0] == 1 and labels["bus1_dev0"][0] == 2
    assert labels["bus0_dev0"][1] > labels["bus1_dev0"][1]  # devices stay next to their bus
    plt.close(ax.figure)
