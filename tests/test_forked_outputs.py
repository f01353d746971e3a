"""A run's plots are drawn by a child process while the parent writes the trace: same files, same failures."""

import os
import signal
import threading
import time
from pathlib import Path

import pytest

import vmsim
from vmsim import forked
from vmsim.analysis import plots
from vmsim.errors import VmsimError
from vmsim.forked import ForkedWorker

SCENARIO = Path(__file__).resolve().parents[1] / "scenarios" / "bench" / "amp-closed-loop.yaml"
SMALL = ["workloads.closed.requests=40"]
FORKS = pytest.mark.skipif(not forked.fork_is_safe(), reason="forks only on Linux, with no other thread")


@FORKS
def test_plots_drawn_by_a_child_are_the_plots_drawn_in_process(tmp_path, monkeypatch):
    """The child sees the run as the parent has it: every file of the folder is byte for byte the same as
    when this process draws the plots itself (no fork)."""
    vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "forked")
    monkeypatch.setattr(forked, "fork_is_safe", lambda: False)
    vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "here")
    names = sorted(path.name for path in (tmp_path / "here").iterdir())
    assert sorted(path.name for path in (tmp_path / "forked").iterdir()) == names and "latency_cdf.png" in names
    for name in names:
        if name not in ("summary.json", ".vmsim-result"):  # wall times differ
            assert (tmp_path / "forked" / name).read_bytes() == (tmp_path / "here" / name).read_bytes(), name


@FORKS
def test_the_topology_is_drawn_while_the_run_simulates(tmp_path, monkeypatch):
    """The one plot that needs nothing of the run is drawn by the plotting child as soon as it has imported
    what it draws with: it is in the spill folder before the simulation is over."""
    from vmsim import pipeline

    simulate, seen = pipeline.simulate, []

    def watched(checked, progress=None, *, spill=None):
        drawn = spill.spill_folder / "topology.png"
        deadline = time.monotonic() + 60
        while not drawn.exists() and time.monotonic() < deadline:
            time.sleep(0.02)
        seen.append(drawn.exists())
        return simulate(checked, progress, spill=spill)

    monkeypatch.setattr(pipeline, "simulate", watched)
    vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "r")
    assert seen == [True]
    assert (tmp_path / "r" / "topology.png").stat().st_size > 0


@FORKS
def test_a_plot_failing_in_the_child_fails_the_run_and_writes_nothing(tmp_path, monkeypatch):
    """The child's exception is raised by the parent as if it had drawn the plot itself, and the result
    folder is never swapped in."""
    monkeypatch.setattr(plots, "latency_cdf", lambda *args, **kwargs: 1 / 0)
    with pytest.raises(ZeroDivisionError, match="division by zero"):
        vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "deep" / "result")
    assert list(tmp_path.iterdir()) == []


@FORKS
def test_a_child_that_dies_fails_the_run_with_one_line(tmp_path, monkeypatch):
    """Killed (out of memory, a signal), the child leaves no exception: the run fails with a user-facing
    line saying so, and writes nothing."""
    assert forked.fork_is_safe()  # else the signal would be this process's
    monkeypatch.setattr(plots, "latency_cdf", lambda *args, **kwargs: os.kill(os.getpid(), signal.SIGKILL))
    with pytest.raises(VmsimError, match=r"^plots: the process drawing them ended with status -9$"):
        vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "result")
    assert list(tmp_path.iterdir()) == []


@FORKS
def test_cancel_kills_a_child_still_working():
    """Ctrl-C or a failure of the parent: the child still preparing is killed and reaped, not left behind."""
    worker = ForkedWorker("plots", prepare=lambda: signal.pause())
    pid = worker.pid
    assert pid is not None, threading.enumerate()
    worker.cancel()
    with pytest.raises(ChildProcessError):
        os.waitpid(pid, 0)
    assert worker.pid is None


@FORKS
def test_a_child_never_handed_work_leaves_on_its_own():
    """A run without plots to draw (or one that failed before drawing) closes the pipe: the child ends."""
    worker = ForkedWorker("plots", prepare=lambda: None)
    worker.wait()
    assert worker.pid is None


@FORKS
def test_ctrl_c_while_the_trace_is_written_kills_the_plotting_child_and_writes_nothing(tmp_path, monkeypatch):
    """Interrupted after the simulation, with the child drawing: the child is killed and reaped (none is left
    drawing into a folder that is about to go), and no result folder or partial one remains."""
    children = []
    submit = ForkedWorker.submit

    def recorded(worker, *args):
        submit(worker, *args)
        children.append(worker.pid)

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(ForkedWorker, "submit", recorded)
    monkeypatch.setattr("vmsim.trace.write_trace", interrupted)
    with pytest.raises(KeyboardInterrupt):
        vmsim.run(SCENARIO, set=SMALL, out=tmp_path / "result")
    assert children and children[0] is not None
    with pytest.raises(ChildProcessError):
        os.waitpid(children[0], os.WNOHANG)
    assert list(tmp_path.iterdir()) == []
