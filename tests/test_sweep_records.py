"""Sweep records are trusted only when they prove themselves: each names its run (point, replication,
seed, the key of its resolved scenario) and carries a checksum of its content. On resume a record that
is unreadable, of the wrong shape, of another run than its file name says, or edited, is named in one
warning line and its run done again; the final table still has exactly one row per run. Nothing the
user put in the sweep folder is deleted to make room."""

import hashlib
import json
from pathlib import Path

import pandas as pd
import pytest
from tiny import TINY, working_folder

import vmsim
import vmsim.sweeps.records as records_module
import vmsim.sweeps.simulate as simulate_module
from vmsim.cli import main
from vmsim.sweeps import record_checksum

SIMULATE = simulate_module._simulate  # the real one, whatever a test patched in


PAIR = """\
name: pair
scenario: tiny.yaml
replications: 2
parameters:
  grid:
    workloads.io.arrivals.rate: [50 kHz, 150 kHz]
"""


@pytest.fixture
def finished(tmp_path, monkeypatch):
    """A finished 2-point x 2-replication sweep; returns its points folder (as vmsim names it) and its table."""
    working_folder(tmp_path, monkeypatch, {"tiny.yaml": TINY, "pair.yaml": PAIR})
    table = vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    return Path("results", "pair", "points"), table


def count_runs(monkeypatch) -> list:
    calls = []

    def counted(scenario):
        calls.append(scenario["seed"])
        return SIMULATE(scenario)

    monkeypatch.setattr(simulate_module, "_simulate", counted)
    return calls


def warnings_in(err: str) -> list[str]:
    return [line for line in err.splitlines() if line.startswith("vmsim: warning:")]


def test_a_record_names_its_run_and_carries_a_checksum_of_the_rest(finished):
    """The checksum is sha256 of the record's canonical JSON without the checksum: anyone can check it."""
    points, _ = finished
    record = json.loads((points / "0001-00.json").read_text())
    assert (record["point"], record["replication"]) == (1, 0)
    assert record["key"] and record["seed"] > 0
    content = {key: value for key, value in record.items() if key != "checksum"}
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"))
    assert record["checksum"] == hashlib.sha256(canonical.encode()).hexdigest() == record_checksum(record)


def edit_metric(text: str) -> str:
    record = json.loads(text)
    record["metrics"]["throughput_rps"] *= 10
    return json.dumps(record)


def drop_metrics(text: str) -> str:
    record = json.loads(text)
    del record["metrics"]
    return json.dumps(record)


def metrics_as_list_with_valid_checksum(text: str) -> str:
    """A forged record: wrong shape, checksum recomputed to match."""
    record = json.loads(text)
    record["metrics"] = list(record["metrics"].values())
    return json.dumps({**record, "checksum": record_checksum(record)})


@pytest.mark.parametrize("damage, reason", [
    (edit_metric, "checksum does not match"),
    (drop_metrics, "lacks metrics"),
    (metrics_as_list_with_valid_checksum, "metrics must map names to numbers"),
    (lambda text: "[1, 2]", "holds a JSON list, not a record"),
    (lambda text: "null", "holds a JSON null, not a record"),
    (lambda text: text[: len(text) // 2], "not a JSON record"),
    (lambda text: "", "not a JSON record"),
    (lambda text: text.replace("null", "NaN", 1), "NaN is not strict JSON"),
    (lambda text: "[" * 100_000, "not a JSON record"),
], ids=["edited-metric", "no-metrics", "forged-shape", "json-list", "json-null", "truncated", "empty", "nan", "deep-nesting"])
def test_a_damaged_record_is_named_and_its_run_done_again(finished, monkeypatch, capsys, damage, reason):
    """One damaged record: one warning line naming its file and why, that one run redone, and a table
    equal to the undamaged one (an edited metric is never read into it)."""
    points, table = finished
    record = points / "0001-00.json"
    record.write_text(damage(record.read_text()))
    capsys.readouterr()
    calls = count_runs(monkeypatch)
    again = vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 1 and str(record) in warned[0] and reason in warned[0], warned
    assert len(calls) == 1
    pd.testing.assert_frame_equal(again, table)


def test_a_record_file_larger_than_any_record_is_not_trusted(finished, monkeypatch, capsys):
    """Read at most MAX_RECORD_BYTES (lowered here below every record): a bigger file is no record."""
    _, table = finished
    monkeypatch.setattr(records_module, "MAX_RECORD_BYTES", 100)
    again = vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 4 and all("larger than any record" in line for line in warned)
    pd.testing.assert_frame_equal(again, table)


def test_a_record_copied_over_another_runs_file_is_redone_and_no_row_is_doubled(finished, monkeypatch, capsys):
    """Point 1's record copied over point 0's file: sound on its own, but not the run its name says.
    Trusting it would give point 1 twice and point 0 never; instead point 0 runs again."""
    points, table = finished
    (points / "0000-00.json").write_text((points / "0001-00.json").read_text())
    capsys.readouterr()
    calls = count_runs(monkeypatch)
    again = vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    warned = warnings_in(capsys.readouterr().err)
    assert len(warned) == 1 and "holds point 1 replication 0, not point 0 replication 0" in warned[0]
    assert len(calls) == 1
    assert not again.duplicated(["point", "replication"]).any()
    pd.testing.assert_frame_equal(again, table)


def test_records_of_an_earlier_version_of_the_sweep_are_redone_with_one_note(finished, monkeypatch, capsys):
    """Changing the base scenario makes every record stale: expected, so one line counts them rather
    than one warning per file."""
    Path("tiny.yaml").write_text(TINY.replace("duration: 1 ms", "duration: 2 ms"))
    capsys.readouterr()
    calls = count_runs(monkeypatch)
    vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    warned = warnings_in(capsys.readouterr().err)
    assert len(calls) == 4
    assert len(warned) == 1 and "4 records in" in warned[0] and "another scenario, seed" in warned[0]


def test_a_record_from_before_checksums_is_redone_as_stale_not_as_damaged(finished, monkeypatch, capsys):
    """Records written before records carried a checksum cannot be checked, so their runs are done again,
    counted in the one line for stale records rather than warned about one by one."""
    points, table = finished
    for path in points.iterdir():
        record = json.loads(path.read_text())
        del record["checksum"]
        path.write_text(json.dumps(record))
    capsys.readouterr()
    calls = count_runs(monkeypatch)
    again = vmsim.sweep("pair.yaml", executor="inline", plots=False, progress=False)
    warned = warnings_in(capsys.readouterr().err)
    assert len(calls) == 4 and len(warned) == 1 and warned[0].startswith("vmsim: warning: 4 records in")
    pd.testing.assert_frame_equal(again, table)


def test_points_replaced_by_a_file_is_one_line_and_the_file_is_kept(finished, capsys):
    """vmsim deletes nothing it did not write: a file where `points` belongs stops the sweep before
    anything runs, and stays as it was."""
    points, _ = finished
    for record in points.iterdir():
        record.unlink()
    points.rmdir()
    points.write_text("my notes")
    code, err = run_cli(capsys, "sweep", "pair.yaml", "--executor", "inline", "--no-plots")
    assert code == 2 and len(err.splitlines()) == 1
    assert err.startswith(f"vmsim: error: {points}: is not a folder")
    assert points.read_text() == "my notes"


def test_a_folder_where_a_record_belongs_is_one_line_and_is_kept(finished, capsys):
    points, _ = finished
    record = points / "0001-01.json"
    record.unlink()
    record.mkdir()
    (record / "keep.txt").write_text("mine")
    code, err = run_cli(capsys, "sweep", "pair.yaml", "--executor", "inline", "--no-plots")
    assert code == 2 and len(err.splitlines()) == 1 and "is not a regular file" in err
    assert (record / "keep.txt").read_text() == "mine"


def run_cli(capsys, *argv) -> tuple[int, str]:
    capsys.readouterr()
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, capsys.readouterr().err
