"""Sweeps: every run written as it finishes, an interrupted sweep resumed to the same table, a failing
point recorded while the others complete, the same numbers on every executor, and sweep files
checked up front with one `file:line: key` line per problem. Runs the real simulator on a tiny
scenario (2 ms simulated per run)."""

import json
import os
import signal
import socket
import subprocess
import sys
import time
import types

import pandas as pd
import psutil
import pytest
from distributed import Client
from tiny import tiny_scenario, working_folder

import vmsim
import vmsim.sweeps
import vmsim.sweeps.executors as executors_module
import vmsim.sweeps.simulate as simulate_module
from vmsim.cli import main
from vmsim.errors import ScenarioError, VmsimError
from vmsim.sweeps import Axes, Target, capacity, derive_seed, knee, load_sweep, summary_table

SIMULATE = simulate_module._simulate  # the real one, whatever a test patched in

TINY = tiny_scenario(2, duration="2 ms", warmup="200 us", numbered=True)

LOAD = """\
name: load
scenario: tiny.yaml
replications: 2
set:
  duration: 2 ms
parameters:
  grid:
    buses.amp0.polling: [null, 2 us]
    workloads.io0.arrivals.rate: [50 kHz, 150 kHz]
metrics: [throughput_rps, latency_p99_ns, amp0.blk0.utilisation]
target: {metric: latency_p99_ns, at_most: 100 us}
"""


@pytest.fixture
def workdir(tmp_path, monkeypatch):
    """A working directory holding the tiny scenario and a 4-point x 2-replication sweep over it."""
    return working_folder(tmp_path, monkeypatch, {"tiny.yaml": TINY, "load.yaml": LOAD})


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """The uninterrupted sweep, run inline once for the whole module: the table every other run must equal."""
    folder = tmp_path_factory.mktemp("reference")
    (folder / "tiny.yaml").write_text(TINY)
    (folder / "load.yaml").write_text(LOAD)
    vmsim.sweep(folder / "load.yaml", out=folder / "out", executor="inline", plots=False)
    return pd.read_parquet(folder / "out" / "points.parquet")


def count_runs(monkeypatch, fail_when=lambda scenario: False) -> list:
    """Wrap the simulation so a test sees which runs happened; `fail_when(scenario)` makes one raise."""
    calls = []

    def counted(scenario):
        calls.append(scenario["seed"])
        if fail_when(scenario):
            raise RuntimeError("the model fell over")
        return SIMULATE(scenario)

    monkeypatch.setattr(simulate_module, "_simulate", counted)
    return calls


def test_each_run_is_written_and_the_table_has_a_row_per_point_and_replication(workdir, reference):
    """4 points x 2 replications: 8 record files, 8 rows with the parameters, status and metrics."""
    points = vmsim.sweep("load.yaml", executor="inline", plots=False)
    assert sorted(p.name for p in (workdir / "results" / "load" / "points").iterdir()) == [
        f"{point:04d}-{replication:02d}.json" for point in range(4) for replication in range(2)]
    assert list(points[["point", "replication"]].itertuples(index=False, name=None)) == [
        (point, replication) for point in range(4) for replication in range(2)]
    assert set(points["status"]) == {"ok"}
    assert list(points["buses.amp0.polling"][::2]) == ["null", "null", "2 us", "2 us"]
    assert list(points["offered_rps"][::2]) == [100e3, 200e3, 100e3, 200e3]
    assert (points["requests_completed"] > 0).all()
    pd.testing.assert_frame_equal(points, reference)


def test_replications_share_seeds_across_points_for_common_random_numbers(reference):
    """Replication r of every point runs with one seed derived from (base seed, r), so points differ only
    by their parameters; replications differ from each other."""
    seeds = reference.pivot(index="point", columns="replication", values="seed")
    assert (seeds.nunique() == 1).all() and seeds.iloc[0].nunique() == 2
    assert list(seeds.iloc[0]) == [derive_seed(5, 0), derive_seed(5, 1)]


def test_without_common_random_numbers_the_point_enters_the_seed(workdir):
    (workdir / "load.yaml").write_text(LOAD + "common_random_numbers: false\n")
    seeds = [task.seed for task in load_sweep("load.yaml").tasks]
    assert len(set(seeds)) == len(seeds) == 8


def test_an_interrupted_sweep_resumes_and_ends_with_the_same_table(workdir, reference, monkeypatch):
    """Ctrl-C during the fourth run: three records are on disk. The same call again runs only the
    five missing runs and writes a points.parquet equal to the uninterrupted one."""
    calls = []

    def interrupted(scenario):
        if len(calls) == 3:  # three runs done, the fourth interrupted
            raise KeyboardInterrupt
        calls.append(scenario["seed"])
        return SIMULATE(scenario)

    monkeypatch.setattr(simulate_module, "_simulate", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vmsim.sweep("load.yaml", executor="inline", plots=False)
    assert len(list((workdir / "results" / "load" / "points").glob("*.json"))) == 3
    assert not (workdir / "results" / "load" / "points.parquet").exists()

    calls = count_runs(monkeypatch)
    points = vmsim.sweep("load.yaml", executor="inline", plots=False)
    assert len(calls) == 5
    pd.testing.assert_frame_equal(pd.read_parquet(workdir / "results" / "load" / "points.parquet"), reference)
    pd.testing.assert_frame_equal(points, reference)


def test_a_killed_worker_stops_the_sweep_and_the_next_run_resumes(workdir, reference, monkeypatch):
    """One pool worker dies mid-run (as under the OOM killer): the sweep stops with a one-line error
    saying the finished runs are kept; the same command then completes the table."""
    marker = workdir / "killed-once"

    def dies_once(scenario):
        try:
            os.close(os.open(marker, os.O_CREAT | os.O_EXCL))
        except FileExistsError:
            return SIMULATE(scenario)
        os._exit(9)

    monkeypatch.setattr(simulate_module, "_simulate", dies_once)
    with pytest.raises(VmsimError, match="worker process died.*run the same command again"):
        vmsim.sweep("load.yaml", executor="process", workers=2, plots=False)
    points = vmsim.sweep("load.yaml", executor="process", workers=2, plots=False)
    pd.testing.assert_frame_equal(points, reference)


def test_a_failing_point_is_recorded_and_the_others_complete(workdir, monkeypatch, capsys):
    """Point 3 raises in both replications: its rows say why, the six other runs are there, summary.md
    lists the failures, and `vmsim sweep` exits 1. Once the cause is gone, a re-run redoes only them."""
    calls = count_runs(monkeypatch, fail_when=lambda scenario: scenario["buses"][0]["polling"] == 2000
                       and scenario["workloads"][0]["arrivals"]["rate"] == 150e3)
    code = run_cli(capsys, "sweep", "load.yaml", "--executor", "inline", "--no-plots")[0]
    assert code == 1 and len(calls) == 8
    points = pd.read_parquet(workdir / "results" / "load" / "points.parquet")
    failed = points[points["status"] == "error"]
    assert list(failed["point"]) == [3, 3]
    assert set(failed["error"]) == {"RuntimeError: the model fell over"}
    assert failed["latency_p99_ns"].isna().all() and (failed["offered_rps"] == 200e3).all()
    assert (points[points["point"] != 3]["status"] == "ok").all()
    report = (workdir / "results" / "load" / "summary.md").read_text()
    assert "## Failed runs" in report and "RuntimeError: the model fell over" in report

    calls = count_runs(monkeypatch)
    code = run_cli(capsys, "sweep", "load.yaml", "--executor", "inline", "--no-plots")[0]
    assert code == 0 and len(calls) == 2


@pytest.mark.parametrize("executor", ["process", "dask"])
def test_every_executor_gives_the_same_numbers(workdir, reference, executor):
    """A run is a pure function of its task: a local pool and a local Dask cluster of two workers give
    exactly the inline table."""
    points = vmsim.sweep("load.yaml", executor=executor, workers=2, plots=False)
    pd.testing.assert_frame_equal(points, reference)


def test_a_dask_cluster_started_elsewhere_runs_the_sweep_given_its_address(workdir, reference, tmp_path_factory):
    """`--scheduler tcp://host:port` hands the runs to a cluster vmsim did not start: a scheduler and two
    workers launched as separate processes (as on a real cluster) give exactly the inline table, and the
    cluster is still up afterwards."""
    cluster = tmp_path_factory.mktemp("cluster")
    address_file = cluster / "scheduler.json"
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "cwd": cluster}
    scheduler = subprocess.Popen([sys.executable, "-m", "dask", "scheduler", "--host", "127.0.0.1", "--port", "0",
                                  "--no-dashboard", "--scheduler-file", str(address_file)], **quiet)
    workers = None
    try:
        deadline = time.monotonic() + 60
        while not address_file.is_file() or not address_file.read_text().strip():
            assert time.monotonic() < deadline and scheduler.poll() is None, "the scheduler did not come up"
            time.sleep(0.2)
        address = json.loads(address_file.read_text())["address"]
        workers = subprocess.Popen([sys.executable, "-m", "dask", "worker", address, "--nworkers", "2",
                                    "--nthreads", "1", "--no-dashboard"], **quiet)
        with Client(address, timeout="60s") as client:
            client.wait_for_workers(2, timeout=60)
        points = vmsim.sweep("load.yaml", scheduler=address, plots=False, progress=False)
        pd.testing.assert_frame_equal(points, reference)
        assert scheduler.poll() is None and workers.poll() is None
    finally:
        for process in (workers, scheduler):
            if process is not None:
                process.terminate()
                process.wait(timeout=30)


@pytest.mark.parametrize("address", ["garbage!!", "tcp://host", "tcp://host:99999", "http://host:8786",
                                     "tcp://host:８７８６", "tcp://host:8786\nmore"])
def test_a_scheduler_address_that_is_not_one_is_one_line_and_nothing_runs(workdir, capsys, address):
    code, _, err = run_cli(capsys, "sweep", "load.yaml", "--scheduler", address)
    assert code == 2 and len(err.splitlines()) == 1, err
    assert "is not a Dask scheduler address (write tcp://HOST:PORT" in err
    assert not (workdir / "results").exists()


def test_a_scheduler_that_accepts_but_never_answers_is_one_line_after_the_timeout(workdir, capsys, monkeypatch):
    """A port that accepts TCP but where no Dask scheduler speaks: Dask would wait on its handshake for
    good; vmsim gives up after its timeout (20 s, shortened here) with one line, having written nothing."""
    with socket.create_server(("127.0.0.1", 0)) as silent:  # the kernel accepts connections; nobody speaks
        address = f"tcp://127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(VmsimError, match=f"scheduler at {address} did not answer within 0.5 s"):
            executors_module.connect_scheduler(address, timeout_s=0.5)
        monkeypatch.setattr(executors_module, "SCHEDULER_TIMEOUT_S", 0.5)
        code, _, err = run_cli(capsys, "sweep", "load.yaml", "--scheduler", address)
    assert code == 2 and len(err.splitlines()) == 1 and "did not answer within 0.5 s" in err, err
    assert not (workdir / "results").exists()


SLEEPING_SWEEP = """\
import multiprocessing, os, time
import vmsim
import vmsim.sweeps.simulate as simulate_module

multiprocessing.set_start_method("fork")  # so the workers run the sleeping simulation patched in below

def sleeps(scenario):
    open(os.path.join("started", str(os.getpid())), "w").close()
    time.sleep(3600)

simulate_module._simulate = sleeps
vmsim.sweep("load.yaml", executor="process", workers=2, plots=False, progress=False)
"""

WATCHING_ONLY = """\
import os, sys, time
from vmsim.sweeps import die_with_parent
sys.platform = "darwin"  # no prctl: the watching thread alone must end this process
die_with_parent(os.getppid())
print(os.getpid(), flush=True)
time.sleep(3600)
"""


def alive(pid: int) -> bool:
    """Running, not a zombie waiting for whoever adopted it to reap it."""
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


def wait_until_gone(pids: list[int], seconds: float = 10) -> list[int]:
    """The pids still alive after `seconds` (a bound for a loaded machine, not a measured time)."""
    deadline = time.monotonic() + seconds
    while any(alive(pid) for pid in pids) and time.monotonic() < deadline:
        time.sleep(0.05)
    return [pid for pid in pids if alive(pid)]


def test_pool_workers_die_with_a_sweep_killed_with_sigkill(workdir):
    """kill -9 gives the sweep no chance to stop its pool: each worker, asleep in a run, must see its
    parent gone and exit on its own instead of sleeping on."""
    (workdir / "started").mkdir()
    sweep = subprocess.Popen([sys.executable, "-c", SLEEPING_SWEEP], cwd=workdir, stderr=subprocess.DEVNULL)
    workers: list[int] = []
    try:
        deadline = time.monotonic() + 60
        while len(workers) < 2:
            assert time.monotonic() < deadline and sweep.poll() is None, "the sweep's workers did not start"
            time.sleep(0.05)
            workers = [int(path.name) for path in (workdir / "started").iterdir()]
        assert all(psutil.Process(pid).ppid() == sweep.pid for pid in workers)
        os.kill(sweep.pid, signal.SIGKILL)
        sweep.wait()
        assert wait_until_gone(workers) == []
    finally:
        for pid in workers:
            if alive(pid):
                os.kill(pid, signal.SIGKILL)
        if sweep.poll() is None:
            sweep.kill()
            sweep.wait()


def test_a_worker_without_prctl_still_dies_with_its_parent(tmp_path):
    """Where the kernel offers no death signal, the watching thread sees the process handed to another
    parent and ends it: a parent starts a watcher, prints its pid, and is killed with -9."""
    parent_code = ("import subprocess, sys, time\n"
                   f"subprocess.Popen([sys.executable, '-c', {WATCHING_ONLY!r}])\n"
                   "time.sleep(3600)\n")
    parent = subprocess.Popen([sys.executable, "-c", parent_code], stdout=subprocess.PIPE, text=True, cwd=tmp_path)
    watcher = None
    try:
        watcher = int(parent.stdout.readline())
        os.kill(parent.pid, signal.SIGKILL)
        parent.wait()
        assert wait_until_gone([watcher]) == []
    finally:
        if watcher is not None and alive(watcher):
            os.kill(watcher, signal.SIGKILL)
        if parent.poll() is None:
            parent.kill()
            parent.wait()
        parent.stdout.close()


def test_a_changed_sweep_reruns_only_what_changed(workdir, monkeypatch):
    """Records are keyed by the resolved scenario and seed: adding a replication runs only the new
    runs; changing a value every point uses (duration) makes every record stale; `fresh` redoes all."""
    vmsim.sweep("load.yaml", executor="inline", plots=False)
    calls = count_runs(monkeypatch)
    (workdir / "load.yaml").write_text(LOAD.replace("replications: 2", "replications: 3"))
    vmsim.sweep("load.yaml", executor="inline", plots=False)
    assert len(calls) == 4
    (workdir / "load.yaml").write_text(LOAD.replace("duration: 2 ms", "duration: 1 ms"))
    vmsim.sweep("load.yaml", executor="inline", plots=False)
    assert len(calls) == 4 + 8
    vmsim.sweep("load.yaml", executor="inline", plots=False, fresh=True)
    assert len(calls) == 4 + 8 + 8


def test_the_cli_writes_the_summary_and_plots_and_prints_the_report(workdir, capsys):
    code, out, _ = run_cli(capsys, "sweep", "load.yaml", "--executor", "inline", "--out", "study")
    assert code == 0
    assert "| point | buses.amp0.polling | workloads.io0.arrivals.rate | offered |" in out
    assert "## Per series" in out and out.endswith("results    study\n")
    written = {path.name for path in (workdir / "study").iterdir()}
    assert written == {"sweep.json", "points", "points.parquet", "summary.csv", "summary.md",
                       "latency_vs_load.png", "throughput_vs_load.png", "utilisation_vs_load.png"}
    summary = pd.read_csv(workdir / "study" / "summary.csv")
    assert list(summary.columns[:6]) == ["point", "buses.amp0.polling", "workloads.io0.arrivals.rate",
                                         "offered_rps", "replications", "failed"]
    assert {"latency_p99_ns_mean", "latency_p99_ns_low", "latency_p99_ns_high"} <= set(summary.columns)


def test_vmsim_sweep_is_the_function_even_after_importing_the_sweeps_package(workdir):
    """`vmsim.sweep` names the function; its code lives in the package `vmsim.sweeps` (imported by this
    file), whose name differs, so importing it hides nothing and `vmsim.sweep` runs a sweep."""
    assert vmsim.sweep is vmsim.sweeps.sweep and isinstance(vmsim.sweep, types.FunctionType)
    points = vmsim.sweep("load.yaml", executor="inline", write=False, progress=False)
    assert len(points) == 8 and not (workdir / "results").exists()


def test_len_keeps_the_first_items_of_a_base_list(workdir):
    """`len(workloads): N` keeps the first N workloads of the base scenario: a device-count axis. A count
    the base list cannot give is an error at its line."""
    (workdir / "count.yaml").write_text(
        "scenario: tiny.yaml\nreplications: 1\nparameters:\n  grid:\n    len(workloads): [1, 2]\n")
    plan = load_sweep("count.yaml")
    assert [len(task.scenario["workloads"]) for task in plan.tasks] == [1, 2]
    assert plan.offered_rps == [50e3, 100e3]
    (workdir / "count.yaml").write_text(
        "scenario: tiny.yaml\nparameters:\n  grid:\n    len(workloads): [3]\n")
    with pytest.raises(ScenarioError) as caught:
        load_sweep("count.yaml")
    assert str(caught.value) == ("count.yaml:4: parameters.grid.len(workloads): 3 is not a count from 1 to 2 "
                                 "(the base scenario's workloads has 2 items)")


# --- sweep files checked up front ---------------------------------------------------------------


@pytest.mark.parametrize("edit, fragments", [
    (("replications: 2", "replication: 2"), ["load.yaml:3: replication: unknown key 'replication'",
                                              "did you mean 'replications'"]),
    (("buses.amp0.polling", "buses.amp0.poling"),
     ["load.yaml:8: parameters.grid.buses.amp0.poling: point 0: --set buses.amp0.poling=null",
      "unknown key 'poling'"]),
    (("150 kHz", "150 parsecs"), ["load.yaml:9: parameters.grid.workloads.io0.arrivals.rate: point 1:",
                                  "unknown rate unit 'parsecs'"]),
    (("duration: 2 ms", "duraton: 2 ms"), ["load.yaml:5: set.duraton:", "unknown key 'duraton'"]),
    (("amp0.blk0.utilisation", "amp9.blk0.utilisation"), ["load.yaml:10: metrics[2]: unknown metric"]),
    (("scenario: tiny.yaml", "scenario: nowhere.yaml"), ["load.yaml:2: scenario: base scenario", "not found"]),
])
def test_a_bad_sweep_file_is_one_line_per_problem_and_nothing_runs(workdir, capsys, edit, fragments):
    (workdir / "load.yaml").write_text(LOAD.replace(*edit))
    code, _, err = run_cli(capsys, "sweep", "load.yaml")
    assert code == 2, err
    first = err.splitlines()[0]
    for fragment in fragments:
        assert fragment in first
    assert not (workdir / "results").exists()


def test_zip_lists_must_match_and_a_key_belongs_to_one_form(workdir):
    (workdir / "bad.yaml").write_text("scenario: tiny.yaml\nparameters:\n  zip: {a: [1, 2], b: [1]}\n"
                                      "  grid: {a: [1]}\n")
    with pytest.raises(ScenarioError) as caught:
        load_sweep("bad.yaml")
    assert "same length (a: 2, b: 1)" in str(caught.value)
    (workdir / "bad.yaml").write_text("scenario: tiny.yaml\nparameters:\n  zip: {a: [1]}\n  grid: {a: [1]}\n")
    with pytest.raises(ScenarioError, match="only one of grid, zip and points: a"):
        load_sweep("bad.yaml")


def test_a_folder_that_is_not_a_sweep_is_never_written_into(workdir):
    (workdir / "mine").mkdir()
    (workdir / "mine" / "thesis.tex").write_text("precious")
    with pytest.raises(VmsimError, match="not a vmsim sweep folder"):
        vmsim.sweep("load.yaml", out="mine", executor="inline")
    assert [p.name for p in (workdir / "mine").iterdir()] == ["thesis.tex"]


def test_an_unknown_executor_is_refused_before_anything_runs(workdir):
    with pytest.raises(VmsimError, match="unknown executor 'threads'"):
        vmsim.sweep("load.yaml", executor="threads")
    assert not (workdir / "results").exists()


# --- reading the results ------------------------------------------------------------------------


def test_summary_is_the_mean_with_a_student_t_interval_per_point():
    """Replications 10, 12, 14: mean 12, sd 2, half-width t(0.975, 2) * 2 / sqrt(3) = 4.303 * 1.1547;
    a failed run counts as failed, not as a value; one value gives no interval."""
    points = pd.DataFrame({"point": [0, 0, 0, 0, 1], "status": ["ok", "ok", "ok", "error", "ok"],
                           "offered_rps": [1e3] * 4 + [2e3], "latency_p99_ns": [10.0, 12.0, 14.0, None, 7.0]})
    summary = summary_table(points, ["latency_p99_ns"])
    first, second = summary.iloc[0], summary.iloc[1]
    assert (first["replications"], first["failed"], first["latency_p99_ns_mean"]) == (3, 1, 12.0)
    assert first["latency_p99_ns_high"] - 12.0 == pytest.approx(4.302653 * 2 / 3**0.5, rel=1e-6)
    assert second["latency_p99_ns_mean"] == 7.0 and pd.isna(second["latency_p99_ns_high"])


def test_knee_and_capacity_are_read_along_each_series():
    """Series: element size (each covers the same loads); x: offered load. The knee is the last load that
    throughput keeps within 2% of, or whose interval reaches it (at 200k the 64 B series does both, the
    256 B neither); capacity is the last load whose p99 meets 50 us, by its mean or its upper bound."""
    summary = pd.DataFrame({
        "element_size": ["64 B"] * 3 + ["256 B"] * 3,
        "offered_rps": [100e3, 200e3, 300e3] * 2,
        "throughput_rps_mean": [100e3, 197e3, 240e3, 99e3, 190e3, 190e3],
        "throughput_rps_high": [101e3, 201e3, 250e3, 99.5e3, 195e3, 195e3],
        "latency_p99_ns_mean": [10e3, 40e3, 900e3, 30e3, 60e3, 900e3],
        "latency_p99_ns_high": [12e3, 55e3, 990e3, 35e3, 70e3, 990e3],
    })
    axes = Axes.of(summary, ["element_size"])
    assert (axes.x, axes.series) == ("offered_rps", ["element_size"])
    target = Target(metric="latency_p99_ns", at_most="50 us")
    found = {label: (knee(rows), capacity(rows, axes.x, target), capacity(rows, axes.x, target, "high"))
             for label, rows in axes.groups(summary)}
    assert found == {"element_size=64 B": (200e3, 200e3, 100e3), "element_size=256 B": (100e3, 100e3, 100e3)}


def test_a_record_is_strict_json_even_when_a_metric_is_nan(workdir):
    """A run with no request after warm-up has no latency: the record says null, not NaN."""
    (workdir / "quiet.yaml").write_text("scenario: tiny.yaml\nreplications: 1\nset: {warmup: 2 ms}\n")
    vmsim.sweep("quiet.yaml", executor="inline", plots=False)
    record = json.loads((workdir / "results" / "quiet" / "points" / "0000-00.json").read_text(),
                        parse_constant=lambda name: pytest.fail(f"{name} in a record"))
    assert record["metrics"]["latency_p99_ns"] is None and record["status"] == "ok"


def run_cli(capsys, *argv) -> tuple[int, str, str]:
    try:
        main(list(argv))
        code = 0
    except SystemExit as exc:
        code = exc.code
    captured = capsys.readouterr()
    return code, captured.out, captured.err
