"""The RFC 2025 FF-A bus (`layout: ffa-2025`) told as stories: it starts with the five-field 2025 VERSION
and enumerates with GET_DEVICES(0, 0xFF); with no EVENT_CONFIGURE its device events reach the driver as
indirect messages on the RX-buffer-full path even on a direct bus; its areas sit at `area_id << 56`; and
what the 2025 bus cannot do (FIFO, event configuration, more than 16 devices) is one line at its key."""

import pytest
import yaml
from ffa_helpers import ffa_dict, one_request, rows
from test_ffa_scenarios import BASE
from test_shipped_scenarios import INIT_ORDER

from vmsim.buses.ffa.bus import rfc2025_method
from vmsim.errors import ScenarioError
from vmsim.scenario import Scenario, load, load_dict, resolved_dict
from vmsim.sim import build
from vmsim.sim.core import SimulationError
from vmsim.wire import get_layout
from vmsim.wire.ffa import AREA_SHIFT_RFC2025, BusFeature

LAYOUT = get_layout("ffa-2025")


def wires_sent(output) -> list[bytes]:
    """The bytes of every frame put on the bus, in log order."""
    c = output.events.columns()
    return [w for e, w in zip(c["event"], c["wire"]) if e == "tx" and w is not None]


def frames_sent(output) -> list:
    """Every frame put on the bus, decoded as an ffa-2025 frame, in log order."""
    return [LAYOUT.decode(w) for w in wires_sent(output)]


def run_2025(data: dict):
    model = build(Scenario.model_validate(data))
    return model, model.run()


def test_the_bus_starts_with_the_2025_version_then_asks_for_0xff_devices():
    """The driver's first frame is the 2025 VERSION: driver_version 1, vmsg_revision 1, vmsg_features 0, its
    four DIRECT/INDIRECT RX/TX bits and area_num 0xFF (26 bytes); the answer carries the partition's 2025 bits
    only. No EVENT_CONFIGURE follows: the driver enumerates with GET_DEVICES(offset 0, count 0xFF), whose answer
    holds a 32-byte bitmap, and then initialises each device in the usual order."""
    _, output = run_2025(ffa_dict(devices=2, layout="ffa-2025", sharing="per-buffer"))
    sent = frames_sent(output)
    answer, enumerate_, listing = sent[1:4]
    assert wires_sent(output)[0].hex() == (  # bus request 0x80, token 2, msg_size 26
        "0280000002001a00" "01000000" "01000000" "00000000" "0f000000" "ff00")
    assert (answer.name, answer.kind) == ("VERSION", "response")
    assert answer.fields == {"device_version": 1, "vmsg_revision": 1, "vmsg_features": 0,
                             "features": int(BusFeature.DIRECT_RX | BusFeature.DIRECT_TX
                                             | BusFeature.INDIRECT_RX | BusFeature.INDIRECT_TX),
                             "area_num": 0xFF}
    assert (enumerate_.name, enumerate_.kind, enumerate_.fields) == ("GET_DEVICES", "request",
                                                                    {"offset": 0, "count": 0xFF})
    assert listing.fields["count"] == 0xFF and listing.fields["next_offset"] == 0
    assert listing.fields["bitmap"] == bytes([0b110]) + bytes(31)  # dev_num 1 and 2
    assert not {"EVENT_CONFIGURE", "FIFO_CONFIGURE", "EVENT_POLL"} & {frame.name for frame in sent}
    for dev_num in (1, 2):
        names = [f.name for f in sent if not f.bus and f.dev_num == dev_num and f.kind == "request"]
        assert [n for n in names if n != "GET_CONFIG"][:len(INIT_ORDER)] == INIT_ORDER
    assert len(output.requests) == 100


def test_events_reach_the_driver_as_indirect_messages_even_on_a_direct_bus():
    """The kick goes by FFA_MSG_SEND_DIRECT_REQ2 and its RESP2 carries nothing; the partition then sends
    EVENT_USED with FFA_MSG_SEND2 into the driver's RX buffer, whose "RX buffer full" notification makes
    the driver read it and hand the buffer back with FFA_RX_RELEASE: no notification set, no EVENT_POLL."""
    _, output = run_2025(one_request(ffa_dict(layout="ffa-2025")))
    counters = output.counters["ffa0"]
    assert (counters["method"], counters["event_delivery"], counters["event_polls"]) == ("direct", "indirect", 0)
    assert rows(output, since=1_000_000, events=("tx", "rx")) == [
        ("ffa0.driver", "ffa.msg_send_direct_req2", None, 16), ("ffa0.to_device", "tx", "EVENT_AVAIL", 16),
        ("ffa0.to_device", "rx", "EVENT_AVAIL", 16), ("ffa0.device", "ffa.msg_send_direct_resp2", None, 0),
        ("ffa0.device", "ffa.msg_send2", None, 12), ("ffa0.to_driver", "tx", "EVENT_USED", 12),
        ("ffa0.driver", "ffa.rx_release", None, 0), ("ffa0.to_driver", "rx", "EVENT_USED", 12)]
    assert output.counters["ffa0.to_driver.doorbell"]["rung"] >= 1


def test_a_partition_without_direct_messages_makes_an_indirect_bus_answers_included():
    """By its properties a partition that takes no direct requests gets indirect messages both ways: VERSION
    and every answer come back by FFA_MSG_SEND2 too."""
    _, output = run_2025(ffa_dict(layout="ffa-2025", partition="no-direct", method="indirect"))
    assert output.counters["ffa0"]["method"] == "indirect"
    assert rows(output)[:6] == [
        ("ffa0.driver", "ffa.msg_send2", None, 26), ("ffa0.to_device", "tx", "VERSION", 26),
        ("ffa0.device", "ffa.rx_release", None, 0), ("ffa0.device", "ffa.msg_send2", None, 26),
        ("ffa0.to_driver", "tx", "VERSION", 26), ("ffa0.driver", "ffa.rx_release", None, 0)]
    assert len(output.requests) == 50


def test_the_method_follows_the_partition_s_properties_checked_against_version():
    """Direct if the partition receives direct requests, else indirect; a VERSION answer that does not
    offer the chosen method ends the probe (the bus cannot run on a method its device denies)."""
    direct = BusFeature.DIRECT_RX | BusFeature.DIRECT_TX
    indirect = BusFeature.INDIRECT_RX | BusFeature.INDIRECT_TX
    assert rfc2025_method(direct | indirect, direct | indirect) == "direct"
    assert rfc2025_method(indirect, indirect) == "indirect"
    with pytest.raises(SimulationError, match="does not offer direct"):
        rfc2025_method(direct, indirect)


def test_areas_sit_at_area_id_shifted_by_56():
    """Each buffer shared per request is addressed `area_id << 56 | offset` (8-bit area ids): the device sees
    the id in bits 63:56 and finds the area it retrieved, so no access is unmapped; areas number at most 0xFF."""
    data = ffa_dict(layout="ffa-2025", sharing="per-buffer")
    model = build(Scenario.model_validate(data))
    bus = model.buses["ffa0"]
    seen = []
    original = bus.mechanism.map_buffer

    def spy(device, vq, chain):
        seen.extend(descriptor[0] for descriptor in chain)
        return (yield from original(device, vq, chain))

    bus.mechanism.map_buffer = spy
    output = model.run()
    assert seen and all(1 <= address >> AREA_SHIFT_RFC2025 <= 0xFF for address in seen)
    assert all(address & ((1 << AREA_SHIFT_RFC2025) - 1) == 0 for address in seen)
    assert output.counters["ffa0"]["unmapped_access"] == 0
    assert output.counters["ffa0"]["shares"] == output.counters["ffa0"]["reclaims"] == 50


def test_every_frame_of_a_2025_run_decodes_as_an_ffa_2025_frame_and_the_config_loads_back():
    """Sharing per buffer and a partition giving areas back itself use the 2025 AREA_* forms; the resolved
    scenario writes `events: indirect`, the generation's own, and loads back to the same scenario."""
    for bus in ({"sharing": "per-buffer"}, {"sharing": "per-buffer", "release": "device"}):
        data = ffa_dict(layout="ffa-2025", **bus)
        _, output = run_2025(data)
        sent = frames_sent(output)
        assert {"AREA_SHARE", "EVENT_USED"} <= {frame.name for frame in sent}
        assert len(output.requests) == 50
    scenario = load_dict(ffa_dict(layout="ffa-2025"), source="story")
    assert scenario.buses[0].events == "indirect"
    assert load_dict(resolved_dict(scenario), source="resolved") == scenario


# --- what a 2025 bus cannot be -------------------------------------------------------------------------


def problems(tmp_path, text):
    path = tmp_path / "ffa.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return path, caught.value.problems


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    method: direct", "    layout: ffa-2025\n    method: fifo",
     ("12: buses[0].method: an ffa-2025 bus has no FIFO method (FIFO_CONFIGURE came in 2026): use direct or "
     "indirect")),
    ("    method: direct", "    layout: ffa-2025\n    method: direct\n    events: poll",
     ("13: buses[0].events: an ffa-2025 bus has no EVENT_CONFIGURE, so no 'poll' events: device events arrive "
      "as indirect messages (leave `events` out or write `events: indirect`)")),
    ("    method: direct", "    layout: ffa-2025\n    method: direct\n    events: notif",
     ("13: buses[0].events: an ffa-2025 bus has no EVENT_CONFIGURE, so no 'notif' events: device events arrive "
      "as indirect messages (leave `events` out or write `events: indirect`)")),
    ("    method: direct", "    layout: ffa-2025\n    method: indirect",
     ("12: buses[0].method: an ffa-2025 bus takes its method from the partition's properties: 'optee' takes "
      "direct requests, so the bus is direct: write `method: direct`")),
    ("    method: direct", "    method: direct\n    events: indirect",
     ("12: buses[0].events: an ffa-2026 bus configures device events with EVENT_CONFIGURE: `notif` or `poll` "
      "(indirect and FIFO buses send them as messages)")),
])
def test_what_the_2025_bus_lacks_is_one_line_at_its_key(tmp_path, old, new, expected):
    """A 2025 bus has no FIFO and no EVENT_CONFIGURE, and its driver picks the method itself: asking for
    any of these is an error at the key that asks, not a silently different run."""
    assert old in BASE
    path, found = problems(tmp_path, BASE.replace(old, new, 1))
    assert found == [f"{path}:{expected}"]


def test_a_2025_bus_carries_at_most_16_devices(tmp_path):
    """The RFC 2025 driver supports 16 devices: the 17th device on a 2025 bus is the error, at its `bus`."""
    devices = "".join(f"  - {{name: vsock{n}, bus: ffa0, dev_num: {n}, kind: vsock}}\n" for n in range(17))
    text = BASE.replace("    method: direct", "    layout: ffa-2025\n    method: direct", 1)
    text = text.replace("  - {name: vsock0, bus: ffa0, dev_num: 0, kind: vsock}\n", devices)
    path, found = problems(tmp_path, text)
    assert found == [(f"{path}:32: devices[16].bus: bus 'ffa0' is an ffa-2025 bus, whose driver supports at most "
                     "16 devices: this is its 17th")]
    sixteen = yaml.safe_load(text.replace(devices.splitlines()[-1] + "\n", ""))
    assert len(load_dict(sixteen, source="sixteen").devices) == 16
