"""The sweep folder and the records in it: what lets a killed sweep resume without trusting damage.

Every (point, replication) is written to `<out>/points/<point>-<replication>.json` the moment it
finishes (temporary file, fsync, rename), by the process that drives the sweep. Killing the sweep loses
at most the runs in flight: the same command run again skips every run whose record is there, intact (its
checksum holds) and of an unchanged fully resolved scenario (seed included); a damaged record is reported
and its run done again. vmsim deletes nothing it did not write.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
from collections.abc import Mapping
from pathlib import Path

from vmsim.errors import VmsimError
from vmsim.files import TEMPORARY_FILE_GLOB, write_file_atomically
from vmsim.summary import json_ready
from vmsim.sweeps.spec import Sweep, Task, record_file_name

MARKER_FILE = "sweep.json"
POINTS_FOLDER = "points"
RECORD_FIELDS = frozenset({"point", "replication", "seed", "key", "parameters", "status", "error", "metrics",
                           "wall_seconds", "checksum"})
MAX_RECORD_BYTES = 16 * 2**20  # far above any record (a few kB); a larger file is not one
STALE = "stale"  # what `record_problem` says of a record of another scenario, seed or vmsim


def run_record(task: Task, metrics: dict, error: str | None, wall_seconds: float | None) -> dict:
    """What `points/<point>-<replication>.json` holds; strict JSON (NaN written as null).

    A record names the run it stands for (point, replication, seed and the key of its resolved scenario)
    and carries a checksum of all that and its results, so a resumed sweep trusts only what it wrote.
    """
    record = json_ready({"point": task.point, "replication": task.replication, "seed": task.seed, "key": task.key,
                         "parameters": task.parameters, "status": "ok" if error is None else "error",
                         "error": error, "metrics": metrics,
                         "wall_seconds": None if wall_seconds is None else round(wall_seconds, 4)})
    return {**record, "checksum": record_checksum(record)}


def record_checksum(record: Mapping) -> str:
    """sha256 of the record's canonical JSON (sorted keys, no spaces), its checksum left out."""
    content = {key: value for key, value in record.items() if key != "checksum"}
    text = json.dumps(content, sort_keys=True, separators=(",", ":"), allow_nan=False)
    return hashlib.sha256(text.encode()).hexdigest()


def record_problem(record: object, task: Task) -> str | None:
    """Why a record read back from disk cannot stand for `task`'s run, or None when it can.

    The shape is checked first (so nothing below trips over a list or a missing field), then the checksum
    (an edited metric is caught), then that the record is the run its file name says. A record of
    another scenario or seed (the sweep changed since), or from before records had a checksum, is
    `STALE`: expected, not damage.
    """
    if not isinstance(record, dict):
        kind = {list: "list", str: "string", bool: "boolean", type(None): "null"}.get(type(record), "number")
        return f"holds a JSON {kind}, not a record"
    if set(record) == RECORD_FIELDS - {"checksum"}:
        return STALE  # written before records carried checksums: run again, as after an upgrade
    if set(record) != RECORD_FIELDS:
        missing, unknown = sorted(RECORD_FIELDS - set(record)), sorted(set(record) - RECORD_FIELDS)
        return "; ".join([*([f"lacks {', '.join(missing)}"] if missing else []),
                          *([f"has unknown fields {', '.join(unknown)}"] if unknown else [])])
    if record["checksum"] != record_checksum(record):
        return "its checksum does not match its content (edited or damaged)"
    shape = _shape_problem(record)
    if shape is not None:
        return shape
    if (record["point"], record["replication"]) != (task.point, task.replication):
        return (f"holds point {record['point']} replication {record['replication']}, "
                f"not point {task.point} replication {task.replication} as its name says")
    if (record["key"], record["seed"]) != (task.key, task.seed):
        return STALE
    return None


def _shape_problem(record: dict) -> str | None:
    def integer(value) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    def number(value) -> bool:
        return value is None or isinstance(value, (int, float)) and not isinstance(value, bool)

    if not (integer(record["point"]) and integer(record["replication"]) and integer(record["seed"])):
        return "point, replication and seed must be integers"
    if not isinstance(record["key"], str) or record["status"] not in ("ok", "error"):
        return "key must be a string and status ok or error"
    if not (record["error"] is None or isinstance(record["error"], str)) or not number(record["wall_seconds"]):
        return "error must be a string or null and wall_seconds a number"
    metrics = record["metrics"]
    if not isinstance(metrics, dict) or not all(number(value) for value in metrics.values()):
        return "metrics must map names to numbers"
    return None


def one_line(exc: BaseException) -> str:
    """An exception as one line (its type named): a failed run's `error`, a warning, a CLI message."""
    return f"{type(exc).__name__}: {' '.join(str(exc).split())}"


class SweepFolder:
    """`<out>/`: the marker `sweep.json`, one record file per finished run, and the tables built from them."""

    def __init__(self, folder: Path):
        """Refuse, before anything runs, a folder that holds something other than a sweep, and a sweep
        whose `points` is not a folder: vmsim deletes nothing it did not write."""
        if folder.exists() and (not folder.is_dir() or (any(folder.iterdir())
                                                        and not (folder / MARKER_FILE).is_file())):
            raise VmsimError(f"{folder}: exists and is not a vmsim sweep folder (no {MARKER_FILE}); "
                             "choose another --out or remove it")
        self.folder = folder
        self.points = folder / POINTS_FOLDER
        if os.path.lexists(self.points) and not self.points.is_dir():
            raise VmsimError(f"{self.points}: is not a folder, where the sweep keeps one record per run; "
                             "move it away or choose another --out")

    def open(self, sweep: Sweep) -> None:
        """Create the folder (once the executor is up, so a failed start writes nothing) and its marker."""
        self.points.mkdir(parents=True, exist_ok=True)
        for leftover in self.points.glob(TEMPORARY_FILE_GLOB):
            leftover.unlink(missing_ok=True)
        self.write_json(self.folder / MARKER_FILE, sweep.describe())

    def finished(self, tasks: list[Task]) -> dict[tuple[int, int], dict]:
        """Records of runs already done, each checked (`record_problem`): same run, same scenario and seed,
        checksum intact, no error. A damaged record is named in a warning and its run done again; records
        of an earlier version of the sweep are counted in one line."""
        done, stale = {}, 0
        for task in tasks:
            path = self.points / task.file_name
            if not os.path.lexists(path):
                continue
            if not path.is_file():
                raise VmsimError(f"{path}: is not a regular file, where the sweep keeps a run's record; "
                                 "move it away")
            record, problem = _read_record(path, task)
            if problem == STALE:
                stale += 1
            elif problem is not None:
                _warn(f"{path}: {problem}; not trusted: the run is done again")
            elif record["status"] == "ok":
                done[task.point, task.replication] = record
        if stale:
            _warn(f"{stale} record{'s' if stale > 1 else ''} in {self.points} written for another scenario, "
                  "seed or vmsim version: running them again")
        return done

    def save(self, record: dict) -> None:
        """Write a run's record as it finishes (temporary file, fsync, rename)."""
        self.write_json(self.points / record_file_name(record["point"], record["replication"]), record)

    @staticmethod
    def write_json(path: Path, data: dict) -> None:
        write_file_atomically(path, lambda temporary: temporary.write_text(json.dumps(data, indent=1) + "\n"))


def _read_record(path: Path, task: Task) -> tuple[dict | None, str | None]:
    """The record at `path` and why it cannot stand for `task`'s run (None when it can)."""
    try:
        with open(path, "rb") as stream:
            data = stream.read(MAX_RECORD_BYTES + 1)
    except OSError as exc:
        return None, f"unreadable ({exc.strerror or exc})"
    if len(data) > MAX_RECORD_BYTES:
        return None, f"larger than any record (over {MAX_RECORD_BYTES // 2**20} MiB)"
    try:
        record = json.loads(data, parse_constant=_not_json)
        return record, record_problem(record, task)
    except (ValueError, RecursionError) as exc:  # RecursionError: nested too deep to read or to hash
        return None, f"not a JSON record ({one_line(exc)})"


def _not_json(constant: str) -> None:
    raise ValueError(f"{constant} is not strict JSON")


def _warn(message: str) -> None:
    """A problem vmsim works around, on one line of stderr."""
    print(f"vmsim: warning: {' '.join(message.split())}", file=sys.stderr)
