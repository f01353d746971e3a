"""Shipped platform profiles: they load, and every number says where it comes from."""

import pytest

from vmsim.errors import ScenarioError
from vmsim.profiles import profile_names
from vmsim.scenario import load_dict, load_platform

SHIPPED = ["ffa-cortex-a53", "ffa-neoverse-n1", "ideal", "linux-linux-coherent", "pcie-x86-arm", "qemu-ivshmem",
           "stm32mp1", "ti-am64x", "xen-arm", "xen-x86"]


def numeric_keys(platform):
    """Every number a profile states; an optional one left out (copy_line_bytes: as line_bytes) is none."""
    for section in ("memory", "doorbells", "cpus", "software"):
        for name, entry in getattr(platform, section).items():
            for field in type(entry).model_fields:
                if field != "kind" and getattr(entry, field) is not None:
                    yield f"{section}.{name}.{field}"
    if platform.xen is not None:
        for field in type(platform.xen).model_fields:
            yield f"xen.{field}"


def test_the_shipped_profiles_are_the_documented_ones():
    """docs/scenario-reference.md lists these; a new profile should be added there too."""
    assert profile_names() == SHIPPED


@pytest.mark.parametrize("name", SHIPPED)
def test_every_number_of_a_shipped_profile_is_sourced_or_an_explained_estimate(name):
    """No schema default slips through: a shipped profile states every cost, each with its origin."""
    platform = load_platform(name)
    assert platform.name == name
    assert platform.memory and platform.doorbells and platform.cpus
    for key in numeric_keys(platform):
        origin = platform.provenance[key]
        assert origin.startswith(("source: ", "estimate: ")), (key, origin)
        assert len(origin) > len("estimate: ") + 10, (key, origin)


@pytest.mark.parametrize("name", SHIPPED)
def test_a_scenario_runs_on_every_shipped_profile(name):
    """The first memory, doorbell and cpu kinds of each profile make a valid one-device scenario."""
    platform = load_platform(name)
    memory, doorbell, cpu = (
        next(iter(platform.memory)),
        next(iter(platform.doorbells)),
        next(iter(platform.cpus)),
    )
    scenario = load_dict(
        {
            "name": "probe",
            "duration": "1 ms",
            "platform": name,
            "drivers": [{"name": "drv", "cpu": cpu}],
            "buses": [
                {"kind": "amp", "name": "bus0", "driver": "drv", "memory": memory, "doorbell": doorbell}
            ],
            "devices": [{"name": "dev", "bus": "bus0", "dev_num": 0, "cpu": cpu}],
        }
    )
    assert scenario.platform == platform


def test_ideal_costs_nothing():
    """The M/M/1 and M/D/1 oracles need a platform whose only delays are the service times."""
    platform = load_platform("ideal")
    for section in (platform.memory, platform.doorbells, platform.cpus):
        for entry in section.values():
            assert all(value == 0 for field, value in entry if field not in ("kind", "line_bytes", "copy_line_bytes"))


def test_stm32mp1_uses_the_nearest_published_mailbox_figure_and_says_so():
    """ST publishes no IPCC latency; TI's AM64x R5F->M4F notify stands in, cited as such."""
    platform = load_platform("stm32mp1")
    assert platform.doorbells["ipcc"].latency == 1430
    assert platform.doorbells["ipcc"].kind == "mailbox"
    origin = platform.provenance["doorbells.ipcc.latency"]
    assert "A.2 row 8" in origin and "nearest published" in origin.lower()
    assert set(platform.cpus) == {"cortex-a7", "cortex-m4"}


def test_pcie_profile_separates_mmio_local_and_dma_memory():
    """Host MMIO reads are round trips (~1 us), posted writes are cheap, DMA has a fixed cost."""
    platform = load_platform("pcie-x86-arm")
    mmio = platform.memory["host-mmio"]
    assert mmio.read_per_line == 1000 and 100 <= mmio.write_per_line <= 300
    assert platform.memory["pcie-dma"].read_fixed + platform.memory["pcie-dma"].read_per_line == 546
    assert {name: bell.kind for name, bell in platform.doorbells.items()} == {
        "bar-doorbell": "pcie-bar",
        "msi-x": "msi-x",
    }
    assert set(platform.memory) == {"host-mmio", "card-local", "pcie-dma"}


def test_a_profile_given_by_path_loads_and_reports_its_own_lines(tmp_path):
    """A user's own profile file gets the same checks and file:line messages as a shipped one."""
    path = tmp_path / "mine.yaml"
    path.write_text("memory:\n  m:\n    read_fixed: {value: 3 kHz, source: x}\n")
    with pytest.raises(ScenarioError) as caught:
        load_platform(path)
    assert caught.value.problems[0].startswith(
        f"{path}:3: platform.memory.m.read_fixed: unknown duration unit"
    )


@pytest.mark.parametrize(("text", "problem"), [
    ("memory:\n  m:\n    read_fixed: 3 ns\n",
     ":3: memory.m.read_fixed: bare number '3 ns': every profile number needs a citation"),
    ("memory:\n  m:\n    read_fixed: {value: 3 ns}\n",
     ":3: memory.m.read_fixed: give exactly one of source or estimate beside value"),
    ("memory:\n  m:\n    read_fixed: {value: 3 ns, source: a, estimate: b}\n",
     ":3: memory.m.read_fixed: give exactly one of source or estimate beside value"),
    ("memory:\n  m:\n    read_fixed: {value: 3 ns, source: x, note: y}\n",
     ":3: memory.m.read_fixed: unexpected key 'note' beside value (use one of source, estimate)"),
    ("memory:\n  m:\n    read_fixed: {value: 3 ns, source: '  '}\n",
     ":3: memory.m.read_fixed.source: the citation must be non-empty text"),
    ("memory:\n  m:\n    read_fixed: {value: [1, 2], source: x}\n",
     ":3: memory.m.read_fixed: value must be a single number or unit string"),
    ("provenance: {a: b}\n", ":1: provenance: provenance is built by the loader"),
    ("- memory\n", ":1: a profile must be a mapping of platform keys"),
], ids=["bare", "uncited", "cited-twice", "stray-key", "empty-citation", "list", "provenance", "not-a-mapping"])
def test_a_profile_number_without_a_proper_citation_is_one_problem_at_its_line(tmp_path, text, problem):
    """Every number a profile gives says where it comes from, exactly once and in words; anything else is
    reported at the file and line of the number, and nothing loads."""
    path = tmp_path / "mine.yaml"
    path.write_text(text)
    with pytest.raises(ScenarioError) as caught:
        load_platform(path)
    assert len(caught.value.problems) == 1
    assert caught.value.problems[0].startswith(f"{path}{problem}")
