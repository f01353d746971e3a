"""Result folders: summary numbers a user can recompute by hand, lossless tables, atomic writes."""

import json
import os
import subprocess
import sys
from pathlib import Path

import handmade
import pandas as pd
import pyarrow.parquet as pq
import pytest
from matplotlib.figure import Figure

import vmsim
from vmsim.analysis import plots
from vmsim.errors import VmsimError
from vmsim.result_folder import MARKER_FILE, check_destination
from vmsim.results import RunResult
from vmsim.sim.log import EVENT_ROW, REQUEST_ROW
from vmsim.sim.output import Series
from vmsim.summary import summarize
from vmsim.summary_report import format_summary
from vmsim.tables import column_table

README = Path(__file__).resolve().parents[1] / "results" / "README.md"


def make_result(**kwargs) -> RunResult:
    output = handmade.output(**kwargs)
    return RunResult(handmade.scenario(), output, summarize(output, wall_seconds=0.25, version="test"))


def test_summary_counts_only_requests_submitted_after_warmup():
    """The two requests submitted before the 1 us warm-up are left out, so the steady state is
    measured: latencies 200, 400, 600, 800 ns -> mean 500, p50 500, max 800, and 4 requests in
    the 10 us after warm-up is 400,000 requests per second."""
    summary = make_result().summary
    assert summary["requests_total"] == 6
    assert summary["requests_completed"] == 4
    assert summary["throughput_rps"] == pytest.approx(4 / 10e-6)
    latency = summary["latency_ns"]
    assert latency["mean"] == 500 and latency["p50"] == 500 and latency["max"] == 800
    assert latency["p90"] == pytest.approx(740)  # 600 + 0.7 * (800 - 600)
    assert (summary["scenario"], summary["seed"], summary["vmsim_version"]) == ("handmade", 3, "test")
    assert (summary["sim_time_ns"], summary["events_logged"]) == (11_000, 7)
    assert summary["init_done_ns"] == {"amp0.dev1": 700}
    assert summary["check"]["status"] == "ok"


def test_summary_groups_counters_by_bus_with_doorbells_and_utilisation():
    """The bus's own counters, its queues, doorbells and devices land under `amp0`; a queue
    without its own utilisation gets busy_ns / sim_time (550 / 11000 = 5%); the bus reports its
    busiest queue (25%), not the busier device, since bus sizing is the question it answers."""
    summary = make_result().summary
    bus = summary["buses"]["amp0"]
    assert (bus["frames"], bus["bytes"]) == (3, 36)
    assert sorted(bus["queues"]) == ["amp0.to_device", "amp0.to_driver"]
    assert bus["queues"]["amp0.to_device"]["utilisation"] == pytest.approx(0.05)
    assert bus["utilisation_max"] == 0.25
    assert bus["doorbells"] == {"amp0.to_device.doorbell": {"kind": "ipi", "rung": 1, "coalesced": 0,
                                                            "delivered": 1}}
    assert bus["devices"] == {"amp0.dev1": {"served": 6, "busy_ns": 1_900, "utilisation": 0.17}}
    assert bus["counters"] == {"requests": 1, "responses": 1, "events": 1}
    assert summary["other_counters"] == {"drv0": {"devices_ready": 1}}


def test_too_few_requests_for_an_interval_gives_null_not_nan():
    """Four measured requests cannot fill 20 batches: the interval is null (strict JSON has no
    NaN), while the method and batch count still say how it would have been computed."""
    interval = make_result().summary["latency_ci95_ns"]
    assert interval["half_width"] is None and interval["mean"] == 500
    assert interval["batches"] == 20 and "batch means" in interval["method"]


def test_summary_with_a_run_long_enough_for_batch_means():
    """400 requests after warm-up: the batch-means interval is present and contains the mean."""
    requests = [(1_000 + 10 * i, 1_000 + 10 * i, 1_000 + 10 * i + 100 + (i % 7)) for i in range(400)]
    interval = make_result(requests=requests).summary["latency_ci95_ns"]
    assert interval["batch_size"] == 20
    assert interval["low"] <= interval["mean"] <= interval["high"]


def test_parquet_tables_round_trip_with_the_frame_bytes(tmp_path):
    """events.parquet keeps the exact bytes of every frame (a binary column, None for marks) and
    the decoded header columns; requests.parquet keeps every request with its latency."""
    result = make_result()
    folder = result.write(tmp_path / "out", plots=False, trace=False)
    events = pd.read_parquet(folder / "events.parquet")
    assert list(events.columns) == ["time_ns", "component", "event", "bus", "dev_num", "type", "msg_id",
                                    "msg_name", "token", "msg_size", "value", "wire"]
    assert events["wire"][0] == handmade.STATUS_REQUEST
    assert events["wire"][3] == handmade.STATUS_RESPONSE
    assert events["wire"][1] is None and events["event"][1] == "doorbell.ring"
    assert events["msg_name"][5] == "EVENT_AVAIL" and events["token"][0] == 7
    requests = pd.read_parquet(folder / "requests.parquet")
    assert requests["latency_ns"].tolist() == [100, 300, 200, 400, 600, 800]
    pd.testing.assert_frame_equal(requests, result.requests)


def test_the_parquet_columns_are_the_declared_log_rows(tmp_path):
    """Each log row is declared once (`vmsim.sim.log`): the logs' columns and the files' schemas follow it."""
    result = make_result()
    folder = result.write(tmp_path / "out", plots=False, trace=False)
    for file_name, row, log in (("events.parquet", EVENT_ROW, result.output.events),
                                ("requests.parquet", REQUEST_ROW, result.output.requests)):
        schema = pq.read_schema(folder / file_name)
        assert [(field.name, str(field.type)) for field in schema] == \
            [(column.name, column.arrow_type) for column in row]
        assert list(log.columns()) == [column.name for column in row]


def test_the_readme_describes_every_declared_column():
    """results/README.md's column tables are derived from the declarations; paste `column_table(ROW)` after
    changing a column."""
    text = README.read_text()
    for row in (EVENT_ROW, REQUEST_ROW):
        assert column_table(row) in text, "results/README.md should hold:\n" + column_table(row)


def test_written_summary_is_strict_json_with_the_resolved_config(tmp_path):
    """summary.json parses with a strict parser; config.resolved.yaml is written when given."""
    result = make_result()
    folder = result.write(tmp_path / "out", plots=False, trace=True, resolved_config={"name": "handmade"})
    summary = json.loads((folder / "summary.json").read_text(), parse_constant=pytest.fail)
    trace = summary["trace"]
    assert {key: trace[key] for key in ("file", "events", "limit", "truncated", "bytes")} == {
        "file": "trace.perfetto-trace", "events": 31, "limit": 200_000, "truncated": False,
        "bytes": (folder / "trace.perfetto-trace").stat().st_size}
    assert trace["write_seconds"] >= 0
    assert (folder / "config.resolved.yaml").read_text() == "name: handmade\n"
    assert sorted(path.name for path in folder.iterdir()) == [
        ".vmsim-result", "config.resolved.yaml", "events.parquet", "requests.parquet", "summary.json",
        "trace.perfetto-trace"]


def test_a_failure_mid_write_leaves_nothing_behind(tmp_path, monkeypatch):
    """A plot that raises half-way through: no result folder, no temporary folder, no parent
    folder created for it. Readers never see half a result."""
    def broken(*args, **kwargs):
        raise RuntimeError("plotting broke")

    monkeypatch.setattr(plots, "latency_cdf", broken)
    with pytest.raises(RuntimeError, match="plotting broke"):
        make_result().write(tmp_path / "results" / "handmade", plots=True, trace=True)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_result_is_replaced_only_on_success(tmp_path, monkeypatch):
    """The previous result stays intact when the new write fails, and is fully replaced when it succeeds:
    trace.perfetto-trace of the first run is gone after a run without a trace. No hidden temporary or old folders
    remain either way."""
    folder = tmp_path / "handmade"
    make_result().write(folder, plots=False, trace=True)

    monkeypatch.setattr(plots, "latency_cdf", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError):
        make_result().write(folder, plots=True, trace=False)
    assert (folder / "trace.perfetto-trace").exists() and (folder / "summary.json").exists()

    make_result().write(folder, plots=False, trace=False)
    assert not (folder / "trace.perfetto-trace").exists() and (folder / "summary.json").exists()
    assert [path.name for path in tmp_path.iterdir()] == ["handmade"]


def test_every_result_carries_a_marker_listing_the_files_vmsim_wrote(tmp_path):
    """`.vmsim-result` is what makes a folder replaceable by the next run: it names vmsim and its version
    and lists exactly the other files of the folder."""
    folder = make_result().write(tmp_path / "out", plots=False, trace=False)
    marker = json.loads((folder / MARKER_FILE).read_text())
    assert marker == {"vmsim_result": 1, "vmsim_version": vmsim.__version__,
                      "files": ["events.parquet", "requests.parquet", "summary.json"]}
    assert sorted(path.name for path in folder.iterdir()) == [MARKER_FILE, *marker["files"]]


def test_refuses_to_replace_a_folder_that_is_not_a_result(tmp_path):
    """Replacing deletes the old folder: pointing --out at a folder of other files is refused."""
    (tmp_path / "notes.txt").write_text("precious")
    with pytest.raises(VmsimError, match="not a vmsim result folder"):
        make_result().write(tmp_path, plots=False, trace=False)
    assert (tmp_path / "notes.txt").read_text() == "precious"


def test_refuses_a_folder_holding_a_summary_next_to_other_files_and_leaves_it_intact(tmp_path):
    """A summary.json alone does not make a folder vmsim's: a project folder that happens to hold one (next
    to its sources and notes) is refused, with how to proceed, and every file stays."""
    project = tmp_path / "p"
    (project / "src").mkdir(parents=True)
    (project / "summary.json").write_text("{}\n")
    (project / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "NOTES.md").write_text("notes\n")
    before = tree(project)
    with pytest.raises(VmsimError, match="no .vmsim-result marker.*remove it or choose another --out"):
        make_result().write(project, plots=False, trace=False)
    assert tree(project) == before
    assert sorted(path.name for path in tmp_path.iterdir()) == ["p"]


def test_refuses_an_unmarked_result_of_an_older_vmsim(tmp_path):
    """A result written before the marker existed cannot be told from a folder a user added files to, so it
    is refused too; the message says to remove it or choose another --out."""
    folder = make_result().write(tmp_path / "old", plots=False, trace=False)
    (folder / MARKER_FILE).unlink()
    with pytest.raises(VmsimError, match="older vmsim.*remove it or choose another --out"):
        make_result().write(folder, plots=False, trace=False)
    assert sorted(path.name for path in folder.iterdir()) == ["events.parquet", "requests.parquet", "summary.json"]


def test_refuses_a_result_folder_holding_files_vmsim_did_not_write(tmp_path):
    """A user's notes added to a result folder would be deleted with it: the folder is refused and the
    message names the file."""
    folder = make_result().write(tmp_path / "out", plots=False, trace=False)
    (folder / "analysis.ipynb").write_text("{}")
    with pytest.raises(VmsimError, match=r"did not write \(analysis.ipynb\)"):
        make_result().write(folder, plots=False, trace=False)
    assert (folder / "analysis.ipynb").read_text() == "{}"


def test_writes_into_an_empty_folder(tmp_path):
    """An empty folder holds nothing to lose: the result takes its place."""
    (tmp_path / "out").mkdir()
    folder = make_result().write(tmp_path / "out", plots=False, trace=False)
    assert (folder / "summary.json").is_file()
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_a_symlinked_destination_is_followed_and_stays_a_symlink(tmp_path):
    """`--out` at a symlink writes into its target, first into an empty folder, then replacing its own result
    there; the symlink stays a symlink and no hidden folder is left beside either."""
    (tmp_path / "disk").mkdir()
    (tmp_path / "disk" / "real").mkdir()
    link = tmp_path / "link"
    link.symlink_to(tmp_path / "disk" / "real", target_is_directory=True)
    for trace in (True, False):
        assert make_result().write(link, plots=False, trace=trace) == link
        assert link.is_symlink() and (tmp_path / "disk" / "real" / "summary.json").is_file()
    assert not (tmp_path / "disk" / "real" / "trace.perfetto-trace").exists()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["disk", "link"]
    assert [path.name for path in (tmp_path / "disk").iterdir()] == ["real"]


def test_a_write_killed_with_sigkill_is_cleaned_up_by_the_next_write(tmp_path):
    """kill -9 in the middle of the write leaves `.NAME.partial-PID-*`; the next write to the same
    destination removes it, since its writer is dead, and leaves only the result."""
    child = subprocess.Popen([sys.executable, "-c", KILLED_WRITER, str(tmp_path / "out")],
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline().strip() == "filling", "the writer never reached its fill"
        child.kill()
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    leftovers = [path.name for path in tmp_path.iterdir()]
    assert len(leftovers) == 1 and leftovers[0].startswith(f".out.partial-{child.pid}-"), leftovers
    make_result().write(tmp_path / "out", plots=False, trace=False)
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


KILLED_WRITER = """\
import sys, time
from vmsim.result_folder import write_atomically

def fill(folder):
    (folder / "events.parquet").write_bytes(b"half")
    print("filling", flush=True)
    time.sleep(600)

write_atomically(sys.argv[1], fill)
"""


def test_stale_old_and_empty_partial_folders_of_dead_writers_are_cleaned(tmp_path):
    """A writer killed between renaming the previous result away and deleting it leaves `.NAME.old-PID-*`, a
    complete marked result; one killed right after creating its partial folder leaves it empty. Both go."""
    dead = dead_pid()
    old = make_result().write(tmp_path / f".out.old-{dead}-0123abcd", plots=False, trace=False)
    (tmp_path / f".out.partial-{dead}-4567cdef").mkdir()
    make_result().write(tmp_path / "out", plots=False, trace=False)
    assert not old.exists()
    assert [path.name for path in tmp_path.iterdir()] == ["out"]


def test_folders_of_live_writers_and_look_alikes_are_left_alone(tmp_path):
    """Cleaning removes only what is surely vmsim's leftover: not the partial folder of a writer still
    running, not one of a dead writer holding an unmarked file, not a folder of another name or a symlink."""
    dead = dead_pid()
    live = tmp_path / f".out.partial-{os.getppid()}-0123abcd"
    live.mkdir()
    (live / "events.parquet").write_bytes(b"being written")
    unmarked = tmp_path / f".out.partial-{dead}-4567cdef"
    unmarked.mkdir()
    (unmarked / "mine.txt").write_text("not vmsim's")
    other_name = tmp_path / f".outer.partial-{dead}-89abcdef"
    other_name.mkdir()
    (tmp_path / "elsewhere").mkdir()
    (tmp_path / f".out.old-{dead}-0000aaaa").symlink_to(tmp_path / "elsewhere", target_is_directory=True)
    before = tree(tmp_path)
    make_result().write(tmp_path / "out", plots=False, trace=False)
    after = tree(tmp_path)
    assert {path for path in after if not path.startswith("out")} == before


def test_a_destination_under_a_file_is_refused_before_writing(tmp_path):
    """A parent that is a file can never hold a folder: one line naming it, and nothing created."""
    (tmp_path / "notes.txt").write_text("mine")
    with pytest.raises(VmsimError, match="notes.txt is a file, not a folder"):
        check_destination(tmp_path / "notes.txt" / "run" / "out")
    assert [path.name for path in tmp_path.iterdir()] == ["notes.txt"]


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into a mode 0555 folder, so it is not read-only for root")
def test_a_read_only_destination_is_refused(tmp_path):
    """A folder this user cannot write into is found by the check, not after the run."""
    locked = tmp_path / "locked"
    locked.mkdir(mode=0o555)
    try:
        with pytest.raises(VmsimError, match="cannot be written, .*locked: Permission denied"):
            check_destination(locked / "results" / "out")
    finally:
        locked.chmod(0o755)


@pytest.mark.parametrize("out", [".", "..", "/"])
def test_the_working_directory_and_the_folders_holding_it_are_refused(tmp_path, monkeypatch, out):
    """Replacing `.` (or a folder above it) would pull the ground from under the run and everything beside
    the result: refused whatever it holds."""
    monkeypatch.chdir(tmp_path)
    with pytest.raises(VmsimError, match="working directory"):
        check_destination(out)


def dead_pid() -> int:
    """The id of a process that has exited (and been reaped), as a killed writer's would be."""
    process = subprocess.Popen(["true"])
    process.wait()
    return process.pid


def tree(root) -> set[str]:
    """Every path under `root`, relative, with file contents, so any change shows."""
    return {f"{path.relative_to(root)}:{path.read_bytes() if path.is_file() and not path.is_symlink() else ''}"
            for path in root.rglob("*")}


def test_init_sequence_lists_the_device_frames_up_to_driver_ok():
    """The bring-up conversation of dev1, one row per frame sent (tx), in order, stopping at the
    device's init_done_ns (700 ns), so the later EVENT_AVAIL is not part of it."""
    sequence = make_result().init_sequence("dev1")
    assert sequence["msg_name"].tolist() == ["GET_DEVICE_STATUS", "GET_DEVICE_STATUS"]
    assert sequence["type"].tolist() == [0, 1]
    assert sequence["wire"].tolist() == [handmade.STATUS_REQUEST, handmade.STATUS_RESPONSE]
    with pytest.raises(VmsimError, match="no device 'nope'"):
        make_result().init_sequence("nope")


def test_plot_helpers_draw_into_a_given_axes():
    """Notebook helpers draw into the caller's axes (no pyplot window needed)."""
    result = make_result()
    for method in (result.plot_latency_cdf, result.plot_throughput, result.plot_occupancy):
        ax = Figure().add_subplot()
        assert method(ax=ax) is ax
        assert ax.lines or ax.patches


def test_one_screen_summary_names_the_numbers_with_units():
    text = format_summary(make_result().summary, "results/handmade")
    assert "handmade" in text and "seed 3" in text
    assert "p50 500 ns" in text and "max 800 ns" in text and "400,000 req/s" in text
    assert "bus amp0" in text and "25.0%" in text and "amp0.dev1: 17.0% busy" in text
    assert text.endswith("results    results/handmade")


def test_a_large_topology_keeps_the_report_on_one_screen():
    """Fifty buses of ten devices: the report names how many buses there are, shows the four busiest (busiest
    first) with their four busiest devices and says how many more there are; summary.json keeps them all."""
    summary = make_result().summary
    template = summary["buses"]["amp0"]
    summary["buses"] = {}
    for bus in range(50):
        entry = json.loads(json.dumps(template))
        entry["utilisation_max"] = bus / 100
        entry["devices"] = {f"amp{bus}.dev{d}": {"utilisation": d / 100 + bus / 1000} for d in range(10)}
        summary["buses"][f"amp{bus}"] = entry
    lines = format_summary(summary).splitlines()
    assert len(lines) <= 40
    assert "buses      50, the 4 busiest below (all in summary.json)" in lines
    assert [line.split()[1] for line in lines if line.startswith("bus ")] == ["amp49", "amp48", "amp47", "amp46"]
    first = next(row for row, line in enumerate(lines) if line.startswith("bus amp49"))
    assert [line.split(":")[0].strip() for line in lines[first + 1:first + 5]] == [
        "amp49.dev9", "amp49.dev8", "amp49.dev7", "amp49.dev6"]
    assert lines[first + 5] == "  ... and 6 more devices"


def test_a_run_with_nothing_measured_still_summarises():
    """All requests inside the warm-up: latencies are null, throughput zero, and the one-screen
    summary prints dashes instead of failing, so a too-short run is visible, not a crash."""
    summary = make_result(warmup_ns=10_000).summary
    assert summary["requests_completed"] == 0 and summary["throughput_rps"] == 0
    assert summary["latency_ns"]["p99"] is None and summary["latency_ci95_ns"]["mean"] is None
    assert "mean -" in format_summary(summary)


def test_occupancy_of_many_queues_draws_the_busiest_and_says_so():
    """Twenty queues: queue k holds k frames from 0 to 1 us. The plot keeps the twelve with the highest time
    average (k = 8..19), each labelled with it, and its title says how many of how many are drawn."""
    series = {}
    for k in range(20):
        steps = series[f"amp{k}.to_device.occupancy"] = Series()
        steps.record(0, k)
    ax = plots.occupancy(series, Figure().add_subplot(), sim_time_ns=1_000)
    assert ax.get_title() == "Queue occupancy: the 12 busiest of 20 queues (mean, max per window)"
    labels = [patch.get_label() for patch in ax.patches if patch.get_label()]
    assert sorted(labels) == sorted(f"amp{k}.to_device (mean {k:.2f}, max {k})" for k in range(8, 20))
