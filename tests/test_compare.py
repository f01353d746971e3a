"""`vmsim compare`: bus configurations side by side at several loads, from a sweep file's `compare:` section.
The shipped STM32MP1 comparison runs here with short durations; the rest uses a tiny scenario."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pandas as pd
import pytest
import yaml
from matplotlib.figure import Figure
from tiny import tiny_scenario, working_folder

from vmsim.analysis.plots import colour_of
from vmsim.cli import main
from vmsim.compare import COSTS, compare, knee, load_comparison
from vmsim.errors import ScenarioError, VmsimError

REPO = Path(__file__).resolve().parent.parent
STM32MP1_FORMATS = REPO / "studies" / "stm32mp1-formats.yaml"

TINY = tiny_scenario(duration="2 ms", warmup="200 us", numbered=True)

FORMATS = """\
name: formats
scenario: tiny.yaml
replications: 1
compare:
  load:
    workloads.io0.arrivals.rate: [20 kHz, 100 kHz, 400 kHz]
  configurations:
    amp-2026: {}
    spsc-2025: {buses.amp0.queue_format: spsc-2025}
    polling: {buses.amp0.polling: 2 us}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    return working_folder(tmp_path, monkeypatch, {"tiny.yaml": TINY, "formats.yaml": FORMATS})


def shipped_comparison(duration: str = "40 ms", loads=("1 kHz", "5 kHz")) -> dict:
    """The shipped STM32MP1 compare file, shortened: the same configurations, fewer loads, a shorter run."""
    data = yaml.safe_load(STM32MP1_FORMATS.read_text())
    data["set"] = {**data.get("set", {}), "duration": duration, "warmup": "5 ms"}
    data["compare"]["load"] = {key: list(loads) for key in data["compare"]["load"]}
    return data


def test_the_stm32mp1_comparison_shows_each_formats_cost_per_request():
    """The acceptance table: every configuration of the shipped file at every load, with latency, throughput,
    the knee, and bytes, cache lines, doorbells and CPU per request on the I2C controller's bus."""
    comparison = compare(shipped_comparison(), base_dir=STM32MP1_FORMATS.parent, executor="inline", write=False,
                         progress=False)
    table = comparison.table
    assert comparison.configurations == list(yaml.safe_load(STM32MP1_FORMATS.read_text())["compare"]
                                             ["configurations"])
    assert len(table) == 2 * len(comparison.configurations) and (table["failed"] == 0).all()
    assert {"latency_p50_ns", "latency_p99_ns", "throughput_rps", "knee_rps", "bytes", *COSTS} <= set(table.columns)
    assert (table["latency_p99_ns"] > 230_000).all()  # the 230 us I2C transfer is in every request
    overloaded = table[table["offered_rps"] == 5000]
    assert (overloaded["knee_rps"] == 5000).all(), "5 k/s is past the I2C controller's ~4.3 k/s for every format"
    text = comparison.markdown()
    for header in ("B/req", "lines/req", "doorbells/req", "CPU/req"):
        assert header in text
    figure = comparison.figure(Figure())
    assert len(figure.axes) == 6
    drawn = {line.get_label(): line.get_color() for line in figure.axes[0].get_lines()}
    assert drawn["spsc-2025"] == colour_of("spsc-2025"), "a format has the same colour in every figure"
    assert (table[["bytes", "cache_lines", "cpu_ns"]] > 0).all().all()
    polling = table["configuration"].str.contains("polling")
    assert (table.loc[polling, "doorbells"] < table.loc[~polling, "doorbells"].min()).all(), \
        "a polling driver rings no doorbell for a completion"
    assert (table.loc[~polling, "doorbells"] >= 1).all()


def test_a_comparison_is_a_result_folder_and_the_command_prints_its_table(workdir, capsys):
    main(["compare", "formats.yaml", "--executor", "inline"])
    out = capsys.readouterr().out
    folder = workdir / "results" / "formats"
    marker = json.loads((folder / ".vmsim-result").read_text())
    assert sorted(marker["files"]) == ["compare.csv", "compare.md", "compare.png", "points.parquet"]
    assert out.startswith("# Compare `formats`") and out.rstrip().endswith(f"results    {Path('results/formats')}")
    table = pd.read_csv(folder / "compare.csv")
    assert list(table["configuration"].unique()) == ["amp-2026", "spsc-2025", "polling"]
    assert list(table["offered_rps"][:3]) == [20e3, 100e3, 400e3]
    points = pd.read_parquet(folder / "points.parquet")
    assert len(points) == 9 and set(points["configuration"]) == {"amp-2026", "spsc-2025", "polling"}


def test_the_same_command_again_replaces_its_own_folder_but_nothing_else(workdir, capsys):
    """Results are written like every other result folder: atomically, and only over a vmsim result."""
    (workdir / "results" / "formats").mkdir(parents=True)
    (workdir / "results" / "formats" / "notes.txt").write_text("mine")
    with pytest.raises(SystemExit) as exited:
        main(["compare", "formats.yaml", "--executor", "inline"])
    assert exited.value.code == 2 and "not a vmsim result folder" in capsys.readouterr().err
    assert (workdir / "results" / "formats" / "notes.txt").read_text() == "mine"


def test_the_knee_is_the_first_load_where_the_run_falls_behind_or_p99_departs():
    """Less than 90 % of the offered requests completed, or p99 over 3x the lowest load's p99; NaN if neither.
    Without the counts, throughput against the offered load stands in for what was served."""
    def rows(served, p99, throughput=(1e3, 2e3, 3e3)):
        return pd.DataFrame({"offered_rps": [1e3, 2e3, 3e3], "throughput_rps": throughput, "served": served,
                             "latency_p99_ns": p99})

    assert math.isnan(knee(rows([1.0, 0.99, 0.95], [10, 20, 29])))
    assert knee(rows([1.0, 0.99, 0.85], [10, 11, 12])) == 3e3
    assert knee(rows([1.0, 1.0, 1.0], [10, 31, 12])) == 2e3  # p99 3.1x
    assert knee(rows([1.0, math.nan, 1.0], [10, math.nan, 12])) == 2e3  # a failed load does not keep up
    assert math.isnan(knee(rows([1.0] * 3, [10] * 3, throughput=(0.85e3, 2e3, 3e3)))), \
        "a short Poisson run draws fewer arrivals than its rate: served, not throughput, decides"
    assert knee(rows([math.nan] * 3, [10] * 3, throughput=(1e3, 2e3, 2.6e3))) == 3e3


@pytest.mark.parametrize("edit, expected", [
    (("    polling: {buses.amp0.polling: 2 us}", "    polling: {buses.amp0.poling: 2 us}"),
     ("formats.yaml:10: compare.configurations.polling.buses.amp0.poling: point 6: --set buses.amp0.poling=2 us: "
     "buses[0].poling: unknown key 'poling' (did you mean 'polling'?)")),
    (("    amp-2026: {}", "    amp-2026: {workloads.io0.arrivals.rate: 1 kHz}"),
     "formats.yaml:4: compare: the load key is set by load alone, not by configurations amp-2026"),
    (("  load:", "  bus: amp9\n  load:"), "formats.yaml:5: compare.bus: no bus 'amp9' in the base scenario (it has amp0)"),
    (("compare:", "parameters: {grid: {seed: [1, 2]}}\ncompare:"),
     "formats.yaml:1: give parameters or compare, not both: compare makes the points itself"),
])
def test_a_bad_compare_file_is_one_line_at_its_key_and_nothing_runs(workdir, capsys, edit, expected):
    (workdir / "formats.yaml").write_text(FORMATS.replace(*edit))
    with pytest.raises(SystemExit) as exited:
        main(["compare", "formats.yaml"])
    err = capsys.readouterr().err
    assert exited.value.code == 2 and err.splitlines()[0] == f"vmsim: error: {expected}", err
    assert not (workdir / "results").exists()


def test_a_sweep_file_without_compare_is_refused_by_compare(workdir):
    (workdir / "sweep.yaml").write_text("scenario: tiny.yaml\nparameters: {grid: {seed: [1, 2]}}\n")
    with pytest.raises(VmsimError, match="sweep.yaml: has no compare: section"):
        load_comparison("sweep.yaml")


def test_a_compare_file_can_exclude_a_combination_like_a_sweep(workdir):
    (workdir / "formats.yaml").write_text(FORMATS + "exclude:\n  - {buses.amp0.polling: 2 us, "
                                                    "workloads.io0.arrivals.rate: 400 kHz}\n")
    plan = load_comparison("formats.yaml")
    assert plan.configurations == ["amp-2026"] * 3 + ["spsc-2025"] * 3 + ["polling"] * 2
    with pytest.raises(ScenarioError):
        load_comparison({**yaml.safe_load(FORMATS), "compare": {"configurations": {}}})
