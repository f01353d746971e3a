"""Sweeps skip the combinations a study does not want (`exclude:`), and `len(list)=N` counts items the same way
on the command line (`--set`) as in a sweep file. Everything here is checked before anything runs, so no
test simulates."""

from __future__ import annotations

import pytest
from tiny import tiny_scenario, working_folder

from vmsim.cli import main
from vmsim.errors import ScenarioError
from vmsim.scenario import load
from vmsim.sweeps import load_sweep

TINY = tiny_scenario(2, duration="2 ms", warmup=None, numbered=True)

FORMATS = """\
scenario: tiny.yaml
replications: 1
parameters:
  grid:
    buses.amp0.queue_format: [amp-2026, spsc-2025, spsc-2024]
    buses.amp0.element_size: [64 B, 256 B]
exclude:
  - {buses.amp0.queue_format: [spsc-2025, spsc-2024], buses.amp0.element_size: 256 B}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    return working_folder(tmp_path, monkeypatch, {"tiny.yaml": TINY, "formats.yaml": FORMATS})


def test_excluded_combinations_are_never_loaded(workdir):
    """spsc queues have fixed 64-byte slots, so spsc with 256 B elements is a scenario error: without `exclude`
    the grid could not be written at all; with it the four valid points remain, numbered from 0."""
    plan = load_sweep("formats.yaml")
    assert [(point["buses.amp0.queue_format"], point["buses.amp0.element_size"]) for point in plan.points] == [
        ("amp-2026", "64 B"), ("amp-2026", "256 B"), ("spsc-2025", "64 B"), ("spsc-2024", "64 B")]
    assert plan.excluded == 2 and plan.describe()["excluded"] == 2
    assert [task.point for task in plan.tasks] == [0, 1, 2, 3]


def test_without_the_exclusion_the_invalid_combination_is_reported(workdir):
    (workdir / "formats.yaml").write_text(FORMATS.split("exclude:")[0])
    with pytest.raises(ScenarioError, match="spsc-2025 queues have fixed 64-byte slots"):
        load_sweep("formats.yaml")


@pytest.mark.parametrize("entry, expected", [
    ("{buses.amp0.elemnt_size: 256 B}",
     ("formats.yaml:8: exclude[0].buses.amp0.elemnt_size: not a parameter of this sweep (they are "
     "buses.amp0.queue_format, buses.amp0.element_size)")),
    ("{buses.amp0.element_size: 256B}",
     ("formats.yaml:8: exclude[0].buses.amp0.element_size: no point has buses.amp0.element_size = '256B', so "
     "this excludes nothing (the values must be spelled as in parameters)")),
    ("{}", "formats.yaml:8: exclude[0]: an empty entry would exclude every point: name a parameter"),
    ("{buses.amp0.element_size: [64 B, 256 B]}", "formats.yaml:7: exclude: excludes all 6 points: nothing to run"),
])
def test_an_exclusion_that_cannot_be_meant_is_one_line_at_its_key(workdir, capsys, entry, expected):
    """An entry that names no parameter or a value no point has would exclude nothing without a word (a typo
    runs the very points meant to be skipped), so it is refused where it stands, before anything runs."""
    (workdir / "formats.yaml").write_text(FORMATS.split("exclude:")[0] + f"exclude:\n  - {entry}\n")
    with pytest.raises(SystemExit) as exited:
        main(["sweep", "formats.yaml"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err == f"vmsim: error: {expected}\n"
    assert not (workdir / "results").exists()


def test_set_len_keeps_the_first_items_as_a_sweep_does(workdir):
    """`--set len(workloads)=1` is the sweep file's `len(workloads): 1`: the first item kept, the rest dropped."""
    scenario = load("tiny.yaml", ["len(workloads)=1", "len(devices)=1"])
    assert [workload.name for workload in scenario.workloads] == ["io0"]
    assert [device.name for device in scenario.devices] == ["blk0"]
    swept = load_sweep({"scenario": "tiny.yaml", "replications": 1,
                        "parameters": {"grid": {"len(workloads)": [1]}}})
    assert swept.tasks[0].scenario["workloads"] == [workload.model_dump(mode="json") for workload in
                                                     load("tiny.yaml", ["len(workloads)=1"]).workloads]


@pytest.mark.parametrize("argument, expected", [
    ("len(workloads)=3", "--set len(workloads)=3: 3 is not a count from 1 to 2 (workloads has 2 items)"),
    ("len(workloads)=0", "--set len(workloads)=0: 0 is not a count from 1 to 2 (workloads has 2 items)"),
    ("len(workloads)=true", "--set len(workloads)=true: True is not a count from 1 to 2 (workloads has 2 items)"),
    ("len(duration)=1", "--set len(duration)=1: duration is not a list, so it has no items to keep"),
    ("len(buses.amp0.devices)=1", "--set len(buses.amp0.devices)=1: there is no list buses.amp0.devices to keep items of"),
])
def test_a_count_the_list_cannot_give_is_one_line_naming_the_argument(workdir, capsys, argument, expected):
    with pytest.raises(SystemExit) as exited:
        main(["validate", "tiny.yaml", "--set", argument])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err == f"vmsim: error: {expected}\n", err
