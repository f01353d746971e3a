"""The calibration suite runs each published point of a scenario and says how far vmsim is from it.

The stories use the M/D/1 validation scenario with the closed-form answer standing in for a published
figure: the machinery (points, overrides, metric, scale, tolerance, fitted or not, the folder) is what is
pinned here, not any platform's numbers.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from vmsim.calibration import PARITY_FILE, TABLE_FILE, calibrate, format_table, write
from vmsim.cli import main
from vmsim.errors import ScenarioError

MD1 = Path(__file__).resolve().parents[1] / "scenarios" / "validation" / "md1.yaml"


def published_md1(tmp_path: Path, **published) -> Path:
    """md1.yaml, shortened, with a `published:` section: W = 15 us at 50 kHz, 11.67 us at 25 kHz (M/D/1)."""
    data = yaml.safe_load(MD1.read_text())
    data["workloads"][0]["requests"] = 20_000
    data["warmup"] = "20 ms"
    data["published"] = {
        "figure": "M/D/1 mean time in system (closed form, standing in for a measurement)",
        "source": "latency-anchors D.2", "conditions": "Poisson arrivals, 10 us constant service",
        "metric": "latency_ns.mean", "tolerance": "5%",
        "points": [{"label": "rho 0.5", "value": "15 us"},
                   {"label": "rho 0.25", "value": "11.667 us", "set": {"workloads[0].arrivals.rate": "25 kHz"}}],
        **published,
    }
    path = tmp_path / "md1-published.yaml"
    path.write_text(yaml.safe_dump(data))
    return path


def test_each_point_runs_under_its_own_overrides_and_lands_within_tolerance(tmp_path):
    table = calibrate([published_md1(tmp_path)])
    assert list(table["point"]) == ["rho 0.5", "rho 0.25"]
    assert table["published"].tolist() == [15_000, 11_667]
    assert table["within"].all()
    assert (table["error"].abs() < 0.05).all()


def test_a_scale_turns_a_round_trip_into_the_one_way_figure_a_vendor_publishes(tmp_path):
    """Half the M/D/1 sojourn against half the value: the same errors, and far outside when the scale is wrong."""
    halved = calibrate([published_md1(tmp_path, scale=0.5, points=[{"label": "rho 0.5", "value": "7.5 us"}])])
    assert halved["within"].all()
    unscaled = calibrate([published_md1(tmp_path, points=[{"label": "rho 0.5", "value": "7.5 us"}])])
    assert not unscaled["within"].any() and unscaled["error"].iloc[0] == pytest.approx(1.0, abs=0.05)


def test_the_printed_table_puts_figures_nothing_was_fitted_to_first_and_marks_misses(tmp_path):
    table = calibrate([published_md1(tmp_path, points=[{"label": "rho 0.5", "value": "30 us"}])])
    text = format_table(table)
    assert text.splitlines()[0] == "not fitted to (these test the model):"
    assert "MISS md1-published rho 0.5: published 30.00 us" in text
    assert "0 of 1 within tolerance" in text


def test_a_metric_the_summary_lacks_is_an_error_naming_the_file(tmp_path):
    path = published_md1(tmp_path, metric="latency_ns.p42")
    with pytest.raises(ScenarioError, match=r"md1-published.yaml: published.metric: summary.json has no"):
        calibrate([path])


def test_a_scenario_without_a_published_section_is_refused_before_anything_runs(tmp_path):
    with pytest.raises(ScenarioError, match="no `published:` section"):
        calibrate([published_md1(tmp_path), MD1])


def test_the_suite_folder_holds_the_table_and_the_parity_plot(tmp_path):
    table = calibrate([published_md1(tmp_path)])
    folder = write(table, tmp_path / "out")
    assert sorted(entry.name for entry in folder.iterdir()) == [".vmsim-result", TABLE_FILE, PARITY_FILE]
    assert (folder / TABLE_FILE).read_text().splitlines()[0].startswith("scenario,figure,point,metric,published")


def test_the_cli_prints_the_table_and_exits_1_when_a_figure_is_missed(tmp_path, capsys):
    path = published_md1(tmp_path, points=[{"label": "rho 0.5", "value": "30 us"}])
    with pytest.raises(SystemExit) as exited:
        main(["calibrate", str(path), "--out", str(tmp_path / "out"), "--no-plots"])
    assert exited.value.code == 1
    assert "MISS md1-published rho 0.5" in capsys.readouterr().out
    assert (tmp_path / "out" / TABLE_FILE).is_file()


SUITE = Path(__file__).resolve().parents[1] / "scenarios" / "published"
KNOWN_MISSES = {
    # The A53 RTOS software is the R5F's fitted cycles scaled by DMIPS/MHz; the published path is ~1.2 us slower
    # one way at every size (the slope matches), which matters most at the smallest message.
    ("ti-am64x-rpmsg-r5f-a53", "32 B"),
}


def test_the_shipped_suite_reproduces_every_published_figure_but_the_known_misses():
    """Every figure in scenarios/published/ within its tolerance, fitted or not, except those named above with
    the reason; a new miss, or a known one fixed, fails this test until the list says so."""
    table = calibrate([path for path in sorted(SUITE.glob("ti-*.yaml"))])
    misses = {(row.scenario, row.point) for row in table.itertuples() if not row.within}
    assert misses == KNOWN_MISSES
    assert (table.loc[table["fitted"] != "", "error"].abs() < 0.10).all()
    assert len(table[table["fitted"] == ""]) >= 9  # figures nothing was fitted to: the ones that test the model
