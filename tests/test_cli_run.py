"""`vmsim run` / `vmsim validate` and `vmsim.run`: one-line user errors that write nothing, and a
complete, reproducible result folder when all is well. Runs the real simulator on a tiny scenario."""

import errno
import fcntl
import json
import os
import pty
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import time

import pandas as pd
import pytest
from tiny import TINY, working_folder

import vmsim
from vmsim.cli import main
from vmsim.scenario.overrides import override_arguments


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """An empty working directory holding only the scenario, so anything written shows up."""
    return working_folder(tmp_path, monkeypatch, {"tiny.yaml": TINY})


def cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err


def assert_one_line_error(code, err, *fragments):
    assert code == 2
    assert err.startswith("vmsim: error: ") and err.count("\n") == 1, err
    for fragment in fragments:
        assert fragment in err


def test_validate_prints_one_ok_line(workdir, capsys):
    code, out, _ = cli(capsys, "validate", "tiny.yaml")
    assert (code, out) == (0, "ok: tiny (1 drivers, 1 buses, 1 devices, 1 workloads)\n")


def test_validate_reports_a_bad_override_on_one_line(workdir, capsys):
    code, _, err = cli(capsys, "validate", "tiny.yaml", "--set", "buses.amp0.queue_elements=1")
    assert_one_line_error(code, err, "queue_elements")


@pytest.mark.parametrize("argv, fragment", [
    (["run", "missing.yaml"], "missing.yaml"),
    (["run", "tiny.yaml", "--set", "no-equals-sign"], "KEY=VALUE"),
    (["run", "tiny.yaml", "--set", "buses.amp0.queue_elements=1"], "queue_elements"),
    (["run", "tiny.yaml", "--set", "buses.amp9.doorbell=ipi"], "amp9"),
    (["run", "tiny.yaml", "--seed", "-1"], "--seed"),
])
def test_run_with_bad_arguments_exits_2_and_writes_nothing(workdir, capsys, argv, fragment):
    """User errors are found before anything is simulated or created: one line, exit 2, and the
    working directory still holds only the scenario (no results/ folder, no temporary folder)."""
    code, out, err = cli(capsys, *argv)
    assert_one_line_error(code, err, fragment)
    assert out == ""
    assert [path.name for path in workdir.iterdir()] == ["tiny.yaml"]


TWO_CORES = TINY.replace(
    "  doorbells:\n", "  cpus: {a7: {frame_handling: 2 us}, m4: {frame_handling: 5 us}}\n  doorbells:\n"
).replace(
    "  - {name: blk0, bus: amp0, dev_num: 1, kind: block,",
    "  - {name: rng0, bus: amp0, dev_num: 2, kind: rng, cpu: a7}\n"
    "  - {name: blk0, bus: amp0, dev_num: 1, cpu: m4, kind: block,",
)


@pytest.mark.parametrize("command", ["validate", "run"])
def test_devices_of_one_bus_on_two_cores_exit_2_and_write_nothing(workdir, capsys, command):
    """Two devices of one bus naming different cpus is a scenario error like a dev_num clash: one line at
    the second device's cpu, exit 2, no traceback and no result folder."""
    (workdir / "two-cores.yaml").write_text(TWO_CORES)
    code, out, err = cli(capsys, command, "two-cores.yaml")
    assert_one_line_error(
        code, err, "two-cores.yaml:18: devices[1].cpu: device 'blk0' names cpu 'm4', device 'rng0' names "
        "cpu 'a7': the device side of bus 'amp0' runs on one core")
    assert "Traceback" not in err and out == ""
    assert sorted(path.name for path in workdir.iterdir()) == ["tiny.yaml", "two-cores.yaml"]


def test_run_refuses_to_overwrite_a_folder_that_is_not_a_result(workdir, capsys):
    """`--out` at a folder of other files would delete them on replace: refused up front."""
    (workdir / "notes").mkdir()
    (workdir / "notes" / "keep.txt").write_text("mine")
    code, _, err = cli(capsys, "run", "tiny.yaml", "--out", "notes")
    assert_one_line_error(code, err, "not a vmsim result folder")
    assert [path.name for path in (workdir / "notes").iterdir()] == ["keep.txt"]


def test_run_refuses_a_folder_holding_a_summary_next_to_other_files_and_leaves_it_intact(workdir, capsys):
    """A project folder with a summary.json beside its sources is not a result: exit 2, one line saying how
    to proceed, every file kept (this once deleted the whole folder)."""
    project = workdir / "p"
    (project / "src").mkdir(parents=True)
    (project / "summary.json").write_text("{}\n")
    (project / "src" / "main.c").write_text("int main(void) { return 0; }\n")
    (project / "NOTES.md").write_text("notes\n")
    code, out, err = cli(capsys, "run", "tiny.yaml", "--out", "p")
    assert_one_line_error(code, err, "p: has a summary.json but no .vmsim-result marker",
                          "remove it or choose another --out")
    assert out == ""
    assert sorted(str(path.relative_to(project)) for path in project.rglob("*")) == [
        "NOTES.md", "src", "src/main.c", "summary.json"]
    assert (project / "summary.json").read_text() == "{}\n" and (project / "NOTES.md").read_text() == "notes\n"


def test_a_second_run_replaces_the_first_ones_result(workdir, capsys):
    """The folder a run wrote is marked as its own, so running again with the same --out replaces it."""
    assert cli(capsys, "run", "tiny.yaml", "--out", "same", "--no-plots", "--seed", "1")[0] == 0
    assert cli(capsys, "run", "tiny.yaml", "--out", "same", "--no-plots", "--no-trace", "--seed", "2")[0] == 0
    assert json.loads((workdir / "same" / "summary.json").read_text())["seed"] == 2
    assert not (workdir / "same" / "trace.perfetto-trace").exists()
    assert sorted(path.name for path in workdir.iterdir()) == ["same", "tiny.yaml"]


@pytest.mark.parametrize("out, fragment", [
    ("tiny.yaml/result", "tiny.yaml is a file, not a folder"),
    (".", "working directory"),
    ("..", "working directory"),
])
def test_an_unwritable_destination_is_found_before_simulating(workdir, capsys, monkeypatch, out, fragment):
    """A destination that can never be written is one line and exit 2 before the model is even built, not a
    traceback after the whole simulation; nothing is created."""
    monkeypatch.setattr("vmsim.sim.build", lambda *args, **kwargs: pytest.fail("simulated before checking --out"))
    code, out_text, err = cli(capsys, "run", "tiny.yaml", "--out", out)
    assert_one_line_error(code, err, fragment)
    assert out_text == "" and "Traceback" not in err
    assert [path.name for path in workdir.iterdir()] == ["tiny.yaml"]


def test_run_writes_a_complete_result_folder(workdir, capsys):
    """The default folder is results/<scenario name>/ with tables, summary, config, plots and
    trace; stdout shows the one-screen summary; the tables agree with the summary's counts."""
    code, out, _ = cli(capsys, "run", "tiny.yaml", "--seed", "9")
    assert code == 0
    folder = workdir / "results" / "tiny"
    assert sorted(path.name for path in folder.iterdir()) == [
        ".vmsim-result", "config.resolved.yaml", "cpu_time.png", "events.parquet", "latency_cdf.png",
        "occupancy.png", "requests.parquet", "summary.json", "throughput.png", "topology.png",
        "trace.perfetto-trace"]
    assert [path.name for path in (workdir / "results").iterdir()] == ["tiny"]
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["seed"] == 9 and summary["scenario"] == "tiny"
    requests = pd.read_parquet(folder / "requests.parquet")
    assert len(requests) == summary["requests_total"]
    assert (requests["submit_ns"] >= summary["warmup_ns"]).sum() == summary["requests_completed"]
    assert len(pd.read_parquet(folder / "events.parquet")) == summary["events_logged"]
    assert summary["trace"]["bytes"] == (folder / "trace.perfetto-trace").stat().st_size > 0
    assert "seed 9" in out and "p99" in out and "results/tiny" in out


def test_run_writes_the_json_trace_when_asked(workdir, capsys):
    """`--trace-format json` keeps the Chrome trace-event JSON instead of Perfetto's protobuf."""
    code, _, _ = cli(capsys, "run", "tiny.yaml", "--out", "json", "--no-plots", "--trace-format", "json")
    assert code == 0
    assert json.loads((workdir / "json" / "trace.json").read_text())["traceEvents"]
    assert not (workdir / "json" / "trace.perfetto-trace").exists()
    assert json.loads((workdir / "json" / "summary.json").read_text())["trace"]["file"] == "trace.json"


def test_an_unknown_trace_format_exits_2_and_writes_nothing(workdir, capsys):
    code, out, err = cli(capsys, "run", "tiny.yaml", "--trace-format", "svg")
    assert_one_line_error(code, err, "--trace-format: unknown format 'svg' (one of perfetto, json)")
    assert out == "" and [path.name for path in workdir.iterdir()] == ["tiny.yaml"]


def test_run_without_plots_and_trace(workdir, capsys):
    code, _, _ = cli(capsys, "run", "tiny.yaml", "--out", "quick", "--no-plots", "--no-trace")
    assert code == 0
    names = sorted(path.name for path in (workdir / "quick").iterdir())
    assert names == [".vmsim-result", "config.resolved.yaml", "events.parquet", "requests.parquet", "summary.json"]
    assert json.loads((workdir / "quick" / "summary.json").read_text())["trace"] is None


def test_same_scenario_and_seed_give_identical_requests(workdir):
    """Determinism: a result can be reproduced from its scenario and seed alone."""
    first = vmsim.run("tiny.yaml", seed=4, write=False)
    second = vmsim.run("tiny.yaml", seed=4, write=False)
    pd.testing.assert_frame_equal(first.requests, second.requests)
    assert first.path is None and not (workdir / "results").exists()


def test_api_overrides_dotted_keys_and_keywords(workdir):
    """`set=` takes the --set syntax as a dict (or list); keywords use `__` for dots."""
    result = vmsim.run("tiny.yaml", write=False, set={"buses.amp0.queue_elements": 16}, duration="500 us",
                       devices__blk0__queue_size=32)
    assert result.scenario.buses[0].queue_elements == 16
    assert result.scenario.duration == 500_000
    assert result.scenario.devices[0].queue_size == 32
    assert result.summary["sim_time_ns"] == 500_000


def test_override_arguments_keep_values_exactly():
    """Dict values are written as YAML, so the loader reads back the very value given."""
    assert override_arguments({"a.b": 16, "name": "true", "c": [1, 2]}, seed=3, x__y="10 kHz") == [
        "a.b=16", "name='true'", "c=[1, 2]", "x.y=10 kHz", "seed=3"]
    assert override_arguments(["a=1"]) == ["a=1"]


def test_ctrl_c_stops_a_run_with_one_line_and_leaves_no_half_result(workdir):
    """Ctrl-C during a long run: `vmsim: interrupted`, exit status 130, no traceback, and neither the result
    folder, nor a hidden partial one, nor the parents it would have created.

    The run's stderr is a terminal, so it shows its progress bar as a user would see it; the signal is sent
    once the bar shows the simulation under way (below 100 %), never before it starts or after it ends.
    The child gets Python's SIGINT handler back (`pytest &` from a script starts pytest with SIGINT
    ignored, and children inherit that) and is killed if it outlives the test."""
    (workdir / "long.yaml").write_text(TINY.replace("duration: 1 ms", "duration: 100 s").replace(
        "rate: 50 kHz}}", "rate: 50 kHz}, requests: 500000}"))  # a count of requests: the bar knows its total
    terminal, child_end = pty.openpty()
    fcntl.ioctl(child_end, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))  # a terminal 80 columns wide
    run = subprocess.Popen([sys.executable, "-c", PYTHON_M_VMSIM_WITH_SIGINT, "run", "long.yaml",
                            "--out", "deep/er/result"],
                           stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=child_end)
    os.close(child_end)
    try:
        shown = read_terminal(terminal, until=re.compile(r"(?<!\d)\d{1,2}%\|"))
        assert re.search(r"(?<!\d)\d{1,2}%\|", shown), f"no progress bar below 100 % before the run ended: {shown!r}"
        run.send_signal(signal.SIGINT)
        err = shown + read_terminal(terminal)
        assert run.wait(timeout=TERMINAL_TIMEOUT_S) == 130
    finally:
        os.close(terminal)
        if run.poll() is None:
            run.kill()
            run.wait()
    lines = [line.strip() for line in re.split(r"[\r\n]+", err) if line.strip()]
    assert lines[-1] == "vmsim: interrupted" and "Traceback" not in err, err
    assert sorted(path.name for path in workdir.iterdir()) == ["long.yaml", "tiny.yaml"]


TERMINAL_TIMEOUT_S = 120  # a bound on a hung child, far above the few seconds the test takes


# `python -m vmsim ARGS` with Python's own SIGINT handler installed, which Python skips at start-up when the
# signal arrives ignored.
PYTHON_M_VMSIM_WITH_SIGINT = (
    "import runpy, signal, sys; signal.signal(signal.SIGINT, signal.default_int_handler); "
    "sys.argv[0] = 'vmsim'; runpy.run_module('vmsim', run_name='__main__', alter_sys=True)")


def read_terminal(terminal: int, until: re.Pattern | None = None) -> str:
    """What the child wrote to its terminal, up to a match of `until` or the child closing it.

    Bounded by TERMINAL_TIMEOUT_S so a child that hangs fails the test instead of hanging it."""
    text = ""
    deadline = time.monotonic() + TERMINAL_TIMEOUT_S
    while until is None or not until.search(text):
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"the child wrote nothing expected within {TERMINAL_TIMEOUT_S} s: {text!r}"
        ready, _, _ = select.select([terminal], [], [], remaining)
        if not ready:
            continue
        try:
            chunk = os.read(terminal, 4096)
        except OSError as exc:  # EIO: every holder of the child's end has closed it
            if exc.errno != errno.EIO:
                raise
            break
        if not chunk:
            break
        text += chunk.decode(errors="replace")
    return text
