"""Discovery and initialisation: the driver speaks to each device in the order the specs require."""

from sim_helpers import frames, run, scenario_dict

from vmsim.wire import get_layout

INIT_ORDER = [
    "GET_DEVICE_INFO", "SET_DEVICE_STATUS", "GET_DEVICE_FEATURES", "SET_DRIVER_FEATURES", "SET_DEVICE_STATUS",
    "GET_CONFIG", "GET_VQUEUE", "SET_VQUEUE", "SET_DEVICE_STATUS",
]


def test_driver_discovers_with_get_devices_then_initialises_in_spec_order():
    """GET_DEVICES finds dev 1; then device info, ACKNOWLEDGE|DRIVER, features, FEATURES_OK, config,
    one GET_VQUEUE/SET_VQUEUE pair per queue and DRIVER_OK, each a request answered before the next."""
    _, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    requests = [name for component, name, _ in frames(output) if component == "amp0.to_device"]
    assert requests == ["GET_DEVICES"] + INIT_ORDER
    responses = [name for component, name, _ in frames(output) if component == "amp0.to_driver"]
    assert responses == requests
    assert list(output.init_done_ns) == ["amp0.dev"]


def test_status_answers_carry_features_ok_and_driver_ok():
    """The driver checks FEATURES_OK in the device's answer; the last status written is 0xF."""
    _, output = run(scenario_dict(workloads=[]) | {"duration": 1_000_000})
    layout = get_layout("v1")
    columns = output.events.columns()
    statuses = [layout.decode(w).fields["status"] for w, e, n, c in
                zip(columns["wire"], columns["event"], columns["msg_name"], columns["component"])
                if e == "rx" and n == "SET_DEVICE_STATUS" and c == "amp0.to_driver"]
    assert statuses == [0x3, 0xB, 0xF]


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
