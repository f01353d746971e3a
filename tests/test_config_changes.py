"""Device-side configuration changes with generation counts: the device changes its config space at the times
a scenario gives (`config_changes`), and the driver's chunked read starts over until the generation its first
chunk carries is the one its last chunk carries (virtio 1.2 §2.5.1); once the device is live it says so with
EVENT_CONFIG, and the driver reads the config again."""

from __future__ import annotations

from pathlib import Path

import pytest
from sim_helpers import frames, run, scenario_dict

from vmsim.errors import VmsimError
from vmsim.pipeline import run as run_file
from vmsim.scenario.loader import load_dict
from vmsim.wire import get_layout

SCENARIOS = Path(__file__).parent.parent / "scenarios"


def _chunked(**device) -> dict:
    """A 100-byte config space over 64-byte elements: 3 GET_CONFIG chunks per read; no workload."""
    data = scenario_dict(workloads=[]) | {"duration": 1_000_000}
    data["devices"][0].update(config_size=100, **device)
    return data


def _config_reads(output) -> list[tuple[int, int, int]]:
    """(time, offset, generation) of each GET_CONFIG answer the driver received."""
    layout = get_layout("v1")
    columns = output.events.columns()
    return [(t, layout.decode(w).fields["offset"], layout.decode(w).fields["generation"])
            for t, w, e, n, c in zip(columns["time_ns"], columns["wire"], columns["event"], columns["msg_name"],
                                     columns["component"])
            if e == "rx" and n == "GET_CONFIG" and c == "amp0.to_driver"]


def test_a_change_in_the_middle_of_a_chunked_read_makes_the_driver_read_again():
    """The device changes its config between the first and the last chunk of the set-up's read: the chunks
    carry generations 0 then 1, so the driver reads all three again and keeps only bytes of generation 1."""
    _, quiet = run(_chunked())
    assert [(offset, generation) for _, offset, generation in _config_reads(quiet)] == [(0, 0), (44, 0), (88, 0)]
    first_answer = int(_config_reads(quiet)[0][0])

    model, output = run(_chunked(config_changes=[first_answer + 1]))  # the second request is not yet sent
    reads = _config_reads(output)
    assert [(offset, generation) for _, offset, generation in reads] == [
        (0, 0), (44, 1), (88, 1), (0, 1), (44, 1), (88, 1)]
    handle = model.drivers["linux"].handles[("amp0", 1)]
    assert handle.generation == model.devices["dev"].generation == 1
    assert handle.config == bytes([1]) * 100
    assert not [name for _, name, _ in frames(output) if name == "EVENT_CONFIG"]  # not live yet: no event


def test_a_change_on_a_live_device_is_announced_and_the_driver_reads_the_config_again():
    """At 500 us, long after DRIVER_OK, the device changes its config: EVENT_CONFIG reaches the driver, which
    reads the whole config again and ends with the device's bytes and generation."""
    model, output = run(_chunked(config_changes=["500 us"]))
    sent = [(component, name) for component, name, _ in frames(output)]
    event = sent.index(("amp0.to_driver", "EVENT_CONFIG"))
    assert sent[event + 1:].count(("amp0.to_device", "GET_CONFIG")) == 3
    handle = model.drivers["linux"].handles[("amp0", 1)]
    assert (handle.generation, handle.config) == (1, bytes(model.devices["dev"].config)) == (1, bytes([1]) * 100)


def test_config_changes_out_of_order_are_refused_naming_the_key():
    data = _chunked(config_changes=["2 ms", "1 ms"])
    with pytest.raises(VmsimError, match=r"devices\[0\].*config_changes must be in increasing order"):
        load_dict(data)


def test_the_linux_to_linux_scenario_puts_config_changes_on_the_wire():
    """The shipped linux-linux-2026 changes the vsock's config at 1 and 3 ms: EVENT_CONFIG appears, each
    followed by a GET_CONFIG, and the driver ends on the device's generation."""
    ran = run_file(SCENARIOS / "linux-linux-2026.yaml", ["duration=5ms", "warmup=0ns"])
    names = [name for _, name, dev_num in frames(ran.output) if dev_num == 1]
    assert names.count("EVENT_CONFIG") == 2
    assert names.count("GET_CONFIG") >= 2 * 3  # the set-up's read and one after each event, request and answer
    assert names.index("GET_CONFIG", names.index("EVENT_CONFIG")) > names.index("EVENT_CONFIG")


def test_changes_close_together_leave_the_driver_on_the_newest_generation():
    """A second change lands at many moments of the driver's read after the first (mid-read, after its last
    chunk, before its EVENT_CONFIG arrives): each time the driver ends with the device's bytes and generation."""
    stale = {}
    for gap in range(1_000, 40_000, 1_000):
        model, _ = run(_chunked(config_changes=[500_000, 500_000 + gap]))
        handle = model.drivers["linux"].handles[("amp0", 1)]
        if (handle.generation, handle.config) != (2, bytes([2]) * 100):
            stale[gap] = (handle.generation, handle.config[:1])
    assert stale == {}
