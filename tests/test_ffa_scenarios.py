"""FF-A scenarios and profiles: bad configurations are one error line at file:line: key (exit 2), the
shipped profiles cite every FF-A number and keep A.6's round-trip bands, and a run's FF-A frames decode
in the results layer."""

from pathlib import Path

import pytest
import yaml
from ffa_helpers import ffa_dict

import vmsim
from vmsim.buses.ffa.partition import FfaPath
from vmsim.cli import main
from vmsim.errors import ScenarioError
from vmsim.scenario import load, load_dict, load_platform, resolved_dict

SCENARIOS = Path(__file__).parent.parent / "scenarios"
BASE = """\
name: ffa-demo
duration: 10 ms
platform: ffa-neoverse-n1
drivers:
  - name: linux
buses:
  - kind: ffa
    name: ffa0
    driver: linux
    partition: optee
    method: direct
    memory: coherent
    notification: ffa-notif
devices:
  - {name: vsock0, bus: ffa0, dev_num: 0, kind: vsock}
"""


def problems(tmp_path, old, new):
    assert old in BASE
    path = tmp_path / "ffa.yaml"
    path.write_text(BASE.replace(old, new, 1))
    with pytest.raises(ScenarioError) as caught:
        load(path)
    return path, caught.value.problems


@pytest.mark.parametrize(("old", "new", "expected"), [
    ("    method: direct", "    method: direct\n    max_msg_size: 128",
     "12: buses[0].max_msg_size: 128 bytes do not fit a direct message: x4..x17 carry at most 104 bytes of frame"),
    ("    method: direct", "    method: shared-memory",
     "11: buses[0].method: Input should be 'direct', 'indirect' or 'fifo' (got 'shared-memory')"),
    ("    partition: optee", "    partition: optea",
     ("10: buses[0].partition: platform 'ffa-neoverse-n1' has no ffa partition 'optea' (did you mean 'optee'? "
     "it has: optee, hafnium-sp, vm-backend)")),
    ("    partition: optee", "    partition: vm-backend",
     ("7: buses[0].hypervisor: partition 'vm-backend' is a normal-world VM: name the hypervisor that mediates "
     "between the VMs")),
    ("    partition: optee", "    partition: optee\n    hypervisor: kvn",
     ("11: buses[0].hypervisor: platform 'ffa-neoverse-n1' has no ffa hypervisor 'kvn' (did you mean 'kvm'? "
     "it has: xen, kvm)")),
    ("    method: direct", "    method: fifo\n    max_msg_size: 1 KiB\n    fifo_size: 4 KiB",
     "13: buses[0].fifo_size: 4096 bytes hold no two rings of two 1024-byte entries after their 192-byte headers"),
    ("    method: direct", "    method: direct\n    release: device",
     ("12: buses[0].release: the device releases areas it was lent per buffer: `release: device` needs "
     "`sharing: per-buffer`")),
    ("kind: vsock}", "kind: vsock, feature_bits: 768}",
     ("15: devices[0].feature_bits: 768 feature bits make SET_DRIVER_FEATURES 112 bytes, more than bus 'ffa0' "
     "carries (104 bytes)")),
])
def test_a_bad_ffa_configuration_is_one_line_at_its_key(tmp_path, old, new, expected):
    path, found = problems(tmp_path, old, new)
    assert found == [f"{path}:{expected}"]


def test_the_cli_prints_it_on_one_line_and_exits_2(tmp_path, capsys):
    path, _ = problems(tmp_path, "    method: direct", "    method: direct\n    max_msg_size: 128")
    with pytest.raises(SystemExit) as caught:
        main(["validate", str(path)])
    err = capsys.readouterr().err
    assert caught.value.code == 2
    assert err.count("\n") == 1 and f"{path}:12: buses[0].max_msg_size" in err


@pytest.mark.parametrize("name", ["ffa-neoverse-n1", "ffa-cortex-a53"])
def test_every_ffa_number_of_a_profile_is_sourced_or_an_explained_estimate(name):
    platform = load_platform(name)
    ffa = platform.ffa
    keys = [f"ffa.{field}" for field in ("el3_switch", "spmd_context", "spmc_dispatch", "sel2_switch",
                                         "tlb_maintenance")]
    keys += [f"ffa.{op}.{part}" for op in ("mem_share", "mem_retrieve", "mem_relinquish", "mem_reclaim")
             for part in ("fixed", "per_page")]
    keys += [f"ffa.hypervisors.{name}.{field}" for name in ffa.hypervisors for field in ("trap", "forward", "vm_switch")]
    keys += [f"ffa.partitions.{name}.{field}" for name in ffa.partitions for field in ("vcpus", "max_areas")]
    for key in keys:
        assert platform.provenance[key].startswith(("source: ", "estimate: ")), key


@pytest.mark.parametrize(("name", "partition", "low", "high"), [
    ("ffa-neoverse-n1", "optee", 1_000, 3_000),
    ("ffa-neoverse-n1", "hafnium-sp", 3_000, 6_000),
    ("ffa-cortex-a53", "optee", 5_000, 10_000),
])
def test_direct_round_trips_built_from_the_smc_figures_stay_in_the_a6_bands(name, partition, low, high):
    """No FF-A round trip is published: the profiles build it from TF-A's SMC round trips (A.6 rows 33/34)
    and must land in A.6's estimate for the class of core (Neoverse 1-3 us, Hafnium 3-6 us, A53 5-10 us)."""
    ffa = load_platform(name).ffa
    path = FfaPath(ffa, ffa.partitions[partition].kind, None)
    assert low <= 2 * path.leg <= high


def test_a_run_s_ffa_frames_decode_in_the_results_layer():
    """Frames of an FF-A bus are `ffa-2026` frames: the event table names them, bus messages included."""
    result = vmsim.run(SCENARIOS / "ffa-methods.yaml", write=False, set={"duration": "2 ms"})
    events = result.events
    names = set(events.msg_name.dropna())
    assert {"VERSION", "EVENT_CONFIGURE", "FIFO_CONFIGURE", "AREA_SHARE", "EVENT_POLL", "EVENT_USED"} <= names
    assert {"ffa.msg_send_direct_req2", "ffa.msg_send2", "ffa.notification_set", "ffa.mem_share",
            "ffa.mem_retrieve_req"} <= set(events.event)
    assert result.summary["buses"]["fifo"]["counters"]["method"] == "fifo"


def test_the_resolved_config_of_an_ffa_scenario_loads_back_to_the_same_scenario(tmp_path):
    """FF-A numbers keep their provenance through config.resolved.yaml: from the profile, from an override,
    or left at their schema default (here an inline platform's partition without `vcpus`)."""
    overridden = load(SCENARIOS / "ffa-methods.yaml", ["platform.ffa.partitions.sp-fifo.max_areas=16"])
    inline = load_dict(ffa_dict())
    assert overridden.platform.provenance["ffa.partitions.sp-fifo.max_areas"] == (
        "override: --set platform.ffa.partitions.sp-fifo.max_areas=16")
    assert inline.platform.provenance["ffa.partitions.optee.vcpus"] == "default: schema default, no source"
    for scenario in (overridden, inline):
        path = tmp_path / "config.resolved.yaml"
        path.write_text(yaml.safe_dump(resolved_dict(scenario), sort_keys=False))
        again = load(path)
        assert again == scenario and again.platform.provenance == scenario.platform.provenance
