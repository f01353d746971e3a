"""Discovery and initialisation: the driver speaks to each device in the order the specs require."""

from sim_helpers import frames, run, scenario, scenario_dict

from vmsim.sim import build
from vmsim.wire import get_layout

INIT_ORDER = [
    "GET_DEVICE_INFO", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS", "SET_DEVICE_STATUS", "GET_DEVICE_FEATURES",
    "SET_DRIVER_FEATURES", "SET_DEVICE_STATUS", "GET_DEVICE_STATUS", "GET_CONFIG", "GET_VQUEUE", "SET_VQUEUE",
    "SET_DEVICE_STATUS",
]


def test_driver_discovers_with_get_devices_then_initialises_in_spec_order():
    """GET_DEVICES finds dev 1; then device info, reset, ACKNOWLEDGE, DRIVER, features, FEATURES_OK read
    back, config, one GET_VQUEUE/SET_VQUEUE pair per queue and DRIVER_OK, each a request answered before the
    next."""
    _, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    requests = [name for component, name, _ in frames(output) if component == "amp0.to_device"]
    assert requests == ["GET_DEVICES"] + INIT_ORDER
    responses = [name for component, name, _ in frames(output) if component == "amp0.to_driver"]
    assert responses == requests
    assert list(output.init_done_ns) == ["amp0.dev"]


def _statuses(output, name: str) -> list[int]:
    """The status each answer to `name` carried back to the driver."""
    layout = get_layout("v1")
    columns = output.events.columns()
    return [layout.decode(w).fields["status"] for w, e, n, c in
            zip(columns["wire"], columns["event"], columns["msg_name"], columns["component"])
            if e == "rx" and n == name and c == "amp0.to_driver"]


def test_the_driver_resets_then_sets_each_status_bit_in_its_own_write():
    """virtio 1.x §3.1.1: reset, ACKNOWLEDGE, DRIVER, FEATURES_OK, DRIVER_OK, one bit added per write, each
    kept by the device; the status read back after FEATURES_OK still has it."""
    _, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    assert _statuses(output, "SET_DEVICE_STATUS") == [0x0, 0x1, 0x3, 0xB, 0xF]
    assert _statuses(output, "GET_DEVICE_STATUS") == [0xB]


def test_a_device_that_drops_features_ok_fails_its_initialisation():
    """A device that refuses the features takes FEATURES_OK back out; the driver sees it in the status it
    reads back, sets up no queue and reports the device failed."""
    model = build(scenario(workloads=[], duration=1_000_000))
    device = model.devices["dev"]
    device._feature_words = lambda _bits, _first, count: [0xFFFFFFFF] * count  # promises more than it takes
    device.offered = 0
    output = model.run()
    requests = [name for component, name, _ in frames(output) if component == "amp0.to_device"]
    assert requests[-1] == "GET_DEVICE_STATUS" and "GET_VQUEUE" not in requests
    assert output.counters["linux"]["devices_failed"] == 1 and not output.init_done_ns


def test_each_queue_gets_its_own_vqueue_pair_and_config_is_read_in_chunks():
    """A 100-byte config space over 64-byte elements needs 3 GET_CONFIG chunks of at most 44 bytes."""
    data = scenario_dict(workloads=[]) | {"duration": 1_000_000}
    data["devices"][0].update(queues=3, config_size=100)
    _, output = run(data)
    requests = [name for component, name, _ in frames(output) if component == "amp0.to_device"]
    assert requests.count("GET_CONFIG") == 3
    assert requests.count("GET_VQUEUE") == 3 and requests.count("SET_VQUEUE") == 3
    assert requests.index("SET_VQUEUE") < requests.index("GET_VQUEUE", requests.index("SET_VQUEUE"))


def test_platform_discovery_skips_get_devices():
    data = scenario_dict(workloads=[]) | {"duration": 1_000_000}
    data["drivers"][0]["discovery"] = "platform"
    _, output = run(data)
    assert [name for _, name, _ in frames(output)][:1] == ["GET_DEVICE_INFO"]


def test_hot_plugged_device_is_announced_with_event_device_then_initialised():
    """A device added at 500 us is absent from GET_DEVICES, announced by EVENT_DEVICE(READY), then set up."""
    data = scenario_dict(workloads=[]) | {"duration": 2_000_000}
    data["devices"].append({"name": "late", "bus": "amp0", "dev_num": 5, "added_at": 500_000})
    _, output = run(data)
    sent_to_driver = [(name, dev) for component, name, dev in frames(output) if component == "amp0.to_driver"]
    assert ("EVENT_DEVICE", 0) in sent_to_driver
    assert output.init_done_ns["amp0.dev"] < 500_000 < output.init_done_ns["amp0.late"]


def _set_config(device, generation: int, data: bytes) -> dict:
    """The device's answer to a SET_CONFIG at offset 0 written with `generation`."""
    layout = get_layout("v1")
    request = layout.encode("SET_CONFIG", "request", {"generation": generation, "offset": 0, "length": len(data),
                                                      "data": data}, dev_num=device.dev_num)
    return layout.decode(device.on_frame(layout.decode(request))).fields


def test_a_set_config_with_a_stale_generation_is_rejected_and_changes_nothing():
    """The device counts config generations: a write made against an older one is refused with length 0 and
    leaves the config as it was; the same write against the current generation lands."""
    model, _ = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    device = model.devices["dev"]
    device.generation = 3
    before = bytes(device.config)

    stale = _set_config(device, 2, b"\xaa\xbb")
    assert (stale["length"], stale["generation"]) == (0, 3)
    assert bytes(device.config) == before

    current = _set_config(device, 3, b"\xaa\xbb")
    assert (current["length"], current["generation"]) == (2, 3)
    assert bytes(device.config[:2]) == b"\xaa\xbb"


def test_a_device_side_config_change_bumps_the_generation_and_the_driver_follows_it():
    """A change made by the device raises the generation first, then tells the driver with EVENT_CONFIG; the
    driver records the new generation, so its next write is accepted while the old generation is refused."""
    model = build(scenario(workloads=[], duration=1_000_000))
    device = model.devices["dev"]
    env = model.sim.env

    def change_after_init():
        yield env.timeout(500_000)  # initialisation is long over
        yield from device.change_config(0, b"\x01\x02\x03")

    env.process(change_after_init())
    output = model.run()
    handle = model.drivers["linux"].handles[("amp0", 1)]
    assert ("amp0.to_driver", "EVENT_CONFIG", 1) in frames(output)
    assert device.generation == handle.generation == 1
    assert bytes(device.config[:3]) == b"\x01\x02\x03"
    assert _set_config(device, handle.generation, b"\x09")["length"] == 1
    assert _set_config(device, 0, b"\x09")["length"] == 0
