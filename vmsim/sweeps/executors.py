"""Where the runs of a sweep happen: `inline` (this process, for debugging), `process` (a local pool, one
worker per core, the default; its workers die with the sweep, even one killed with -9) and `dask` (a local
Dask cluster, or an existing one given its scheduler address).

An executor is a function from tasks to records in completion order. A run is a pure function of its
task, so every executor gives the same numbers.
"""

from __future__ import annotations

import asyncio
import ctypes
import os
import re
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator

from vmsim.errors import VmsimError
from vmsim.sweeps.records import one_line, run_record
from vmsim.sweeps.simulate import run_point
from vmsim.sweeps.spec import Task

EXECUTORS = ("inline", "process", "dask")
SCHEDULER_TIMEOUT_S = 20.0  # a Dask scheduler that has not answered by then is reported, not waited for
_SCHEDULER_ADDRESS = re.compile(
    r"(?:(?:tcp|tls|ws|wss|ucx)://)?"
    r"(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*)"
    r":(?P<port>[0-9]{1,5})")
_PR_SET_PDEATHSIG = 1  # linux/prctl.h


def choose_executor(name: str, workers: int | None, scheduler: str | None) -> Callable[[list[Task]], Iterator[dict]]:
    """The executor as a function from tasks to records in completion order; checked before anything runs."""
    if scheduler is not None and name == "process":
        name = "dask"  # a scheduler address only means something to Dask
    if name not in EXECUTORS:
        raise VmsimError(f"unknown executor {name!r} (use one of {', '.join(EXECUTORS)})")
    if scheduler is not None and name != "dask":
        raise VmsimError(f"--scheduler needs --executor dask, not {name}")
    if workers is not None and workers < 1:
        raise VmsimError(f"--workers must be at least 1, not {workers}")
    if scheduler is not None:
        check_scheduler_address(scheduler)
    count = workers or os.cpu_count() or 1
    if name == "inline":
        return lambda tasks: map(run_point, tasks)
    if name == "process":
        return lambda tasks: _on_process_pool(tasks, min(count, max(len(tasks), 1)))
    return lambda tasks: _on_dask(tasks, count, scheduler)


def check_scheduler_address(address: str) -> None:
    """A Dask scheduler address is `[tcp|tls|ws|wss|ucx://]HOST:PORT`; anything else is refused up front."""
    match = _SCHEDULER_ADDRESS.fullmatch(address)
    if match is None or not 1 <= int(match["port"]) <= 65535:
        raise VmsimError(f"--scheduler {address!r} is not a Dask scheduler address "
                         "(write tcp://HOST:PORT, e.g. tcp://10.0.0.5:8786)")


def _start_worker(parent_pid: int) -> None:
    """A pool worker leaves Ctrl-C to the sweep, which stops it (else each prints its own traceback), and
    dies with the sweep: a sweep killed with -9 cannot stop its workers, which would sleep on forever."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    die_with_parent(parent_pid)


def die_with_parent(parent_pid: int, poll_seconds: float = 0.2) -> None:
    """End this process when the process `parent_pid` that started it ends, however it ends.

    On Linux the kernel sends SIGKILL at the parent's death (prctl PR_SET_PDEATHSIG); everywhere a daemon
    thread also watches for this process being handed to another parent, and exits. A parent that died
    before this call is noticed at once. With the `forkserver` start method the parent is the fork
    server, which itself ends with the sweep.
    """
    if sys.platform.startswith("linux"):
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
        except (OSError, AttributeError):
            pass  # no prctl (an unusual libc): the watching thread alone ends the worker
    import multiprocessing

    if multiprocessing.get_start_method() == "forkserver":
        parent_pid = os.getppid()
    if os.getppid() != parent_pid:
        os._exit(1)

    def watch() -> None:
        while os.getppid() == parent_pid:
            time.sleep(poll_seconds)
        os._exit(1)

    threading.Thread(target=watch, name="vmsim-watch-parent", daemon=True).start()


def _on_process_pool(tasks: list[Task], workers: int) -> Iterator[dict]:
    from concurrent.futures import ProcessPoolExecutor

    # Started before the caller opens its progress bar, whose monitor thread a forked worker need not copy.
    pool = ProcessPoolExecutor(max_workers=workers, initializer=_start_worker, initargs=(os.getpid(),))
    return _pool_results(pool, [pool.submit(run_point, task) for task in tasks])


def _pool_results(pool, futures: list) -> Iterator[dict]:
    from concurrent.futures import as_completed
    from concurrent.futures.process import BrokenProcessPool

    try:
        for future in as_completed(futures):
            try:
                record = future.result()
            except BrokenProcessPool:
                raise VmsimError("a worker process died (killed, or out of memory); the finished runs are kept: "
                                 "run the same command again to resume") from None
            yield record
    except BaseException:
        # Interrupted: runs in flight are abandoned, not awaited; the next invocation redoes them.
        for process in list((pool._processes or {}).values()):  # Python 3.14: pool.terminate_workers()
            process.terminate()
        pool.shutdown(wait=False, cancel_futures=True)
        raise
    pool.shutdown()


def _on_dask(tasks: list[Task], workers: int, scheduler: str | None) -> Iterator[dict]:
    try:
        from distributed import Client, LocalCluster
    except ImportError:
        raise VmsimError("--executor dask needs Dask: pip install 'vmsim[dask]'") from None
    import logging

    if scheduler is not None:
        client, cluster = connect_scheduler(scheduler), None
    else:
        cluster = LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                               dashboard_address=None, silence_logs=logging.ERROR)
        try:
            client = Client(cluster, timeout=SCHEDULER_TIMEOUT_S)
        except BaseException:
            cluster.close()
            raise
    return _dask_results(client, cluster, {client.submit(run_point, task, pure=False): task for task in tasks})


def connect_scheduler(address: str, timeout_s: float | None = None):
    """A Dask client of the scheduler at `address`, or a one-line `VmsimError` once `timeout_s` seconds
    (default `SCHEDULER_TIMEOUT_S`) have passed without a Dask answer.

    Dask bounds the TCP connect but not the handshake after it, so a port that accepts and never speaks
    (not a scheduler, or a hung one) would hold `Client()` for good: the handshake is tried first, in a
    thread of its own (a notebook's event loop may be running in this one) and under a deadline.
    """
    from concurrent.futures import ThreadPoolExecutor

    from distributed import Client
    from distributed.comm import connect

    timeout_s = SCHEDULER_TIMEOUT_S if timeout_s is None else timeout_s

    async def handshake() -> None:
        comm = await asyncio.wait_for(connect(address, timeout=timeout_s), timeout_s)
        await comm.close()

    try:
        with ThreadPoolExecutor(1, thread_name_prefix="vmsim-scheduler-handshake") as probe:
            probe.submit(asyncio.run, handshake()).result()
        return Client(address, timeout=timeout_s)
    except TimeoutError:
        raise VmsimError(f"the Dask scheduler at {address} did not answer within {timeout_s:g} s "
                         "(is a Dask scheduler listening there?)") from None
    except Exception as exc:  # noqa: BLE001 - whatever a wrong address gives back, it is the user's to fix
        raise VmsimError(f"cannot reach the Dask scheduler at {address}: {one_line(exc)}") from None


def _dask_results(client, cluster, futures: dict) -> Iterator[dict]:
    from distributed import as_completed

    try:
        for future in as_completed(list(futures)):
            try:
                record = future.result()
            except Exception as exc:  # noqa: BLE001 - e.g. KilledWorker: this run kept taking its worker down
                record = run_record(futures[future], {}, one_line(exc), None)
            yield record
    finally:
        client.cancel(list(futures))
        client.close()
        if cluster is not None:
            cluster.close()
