"""Mutants of the shipped scenarios, and what vmsim makes of each: a run, a user error, or a bug.

A mutant is a shipped scenario changed in one to three places, chosen by a seeded generator: a key
deleted, a value of another type, an extreme number, a bad unit, unusual text, a reference to a
component that does not exist, an emptied list, a duplicated item, an unknown key, another
`kind:`/`dist:`/`layout:`. Half of the mutants carry their platform profile inline, so that the
profile's numbers are mutated too; one in ten replays a trace file of damaged CSV. Every tenth mutant
is written to a file and given to `vmsim validate` instead, its text damaged (cut, a byte changed, a
line doubled or dropped, a cycle, a deep nest, an alias bomb).

vmsim's promise is that each mutant either runs or is refused with a `VmsimError` (exit status 2 on
the command line); anything else is a bug. Shared by tests/test_scenario_fuzz.py (a few hundred
mutants) and benchmarks/fuzz_scenarios.py (thousands).
"""

from __future__ import annotations

import contextlib
import copy
import io
import math
import random
import signal
import tempfile
import traceback
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from vmsim import pipeline
from vmsim.cli import main as cli_main
from vmsim.errors import VmsimError
from vmsim.scenario import load_dict
from vmsim.scenario.locations import Locations, Origin, read_yaml
from vmsim.scenario.platform import resolve_platform

ROOT = Path(__file__).resolve().parents[1]
SCENARIOS = sorted(
    path for path in (ROOT / "scenarios").rglob("*.yaml")
    if "parameters" not in (yaml.safe_load(path.read_text(encoding="utf-8")) or {})  # a sweep file
)
RUN_CAP = ["duration=5 ms", "warmup=0 ns"]  # every mutant that loads runs this briefly
BACKLOG_CAP = 2_000  # limits.backlog while fuzzing: an overloaded mutant stops quickly
WALL_SECONDS = 20.0  # a mutant still running after this is counted as slow, not failed

ODD_VALUES = ["text", "", 7, -3, 1.5, True, False, None, [], {}, [1, 2], {"a": 1}, ["x"], "7", "true"]
EXTREMES = [
    0, -1, 1, 1e308, -1e308, 2**31, 2**32, 2**40, 2**60, 2**63, 2**64, 2**70, 10**400,
    math.nan, math.inf, -math.inf, 1e-300,
    "0 ns", "1 ns", "1e308 s", "1e300 s", "-1 us", "nan us", "inf ns", "1152921504606846976 ns", "1e18 ns",
    "1e-30 Hz", "1e-9 Hz", "1e30 Hz", "1e12 GHz", "1099511627776 B", "4294967296 B", "4 GiB", "65536 B", "0 B",
]
UNITS = ["ns", "us", "µs", "ms", "s", "B", "KiB", "GiB", "Hz", "kHz", "GB/s", "parsec", "", "/s", "μs", "US"]
NUMBERS = ["５", "1e400", "nan", "-0", "0x10", "1_000", "１.５", "٣", "+7", ".", "1e", "--1", "1,5"]
TEXTS = [
    "dév☃", "名前", "\u202eevil", "a" * 200, " ", "\x00", "\t", "emoji😀", "null", "~", "0", "-", "a.b", "a[0]",
    "ПРИВЕТ", "x" * 65, "_", "\ufeffbom",
]
REFERENCES = {"driver", "bus", "device", "memory", "doorbell", "doorbell_to_driver", "notification", "partition",
              "hypervisor", "frontend", "backend", "cpu", "profile", "file"}
LITERALS = {
    "kind": ["amp", "xen", "ffa", "poisson", "constant", "trace", "closed", "generic", "net", "block", "i2c",
             "vsock", "dom0", "domu", "ipi", "mailbox", "ideal", "optee", "hafnium", "vm"],
    "dist": ["constant", "exponential", "lognormal", "uniform", "empirical"],
    "layout": ["v1", "draft-6b", "fixed40", "linux-2026", "vmsim-share", "ffa-2026", "ffa-2025"],
    "queue_format": ["amp-2026", "spsc-2025", "spsc-2024"],
    "method": ["direct", "indirect", "fifo"],
    "events": ["notif", "poll", "indirect"],
    "policy": ["on-first-use", "at-allocation", "pool"],
    "release": ["eager", "lazy", "device", "driver"],
    "notify": ["in-band", "out-of-band"],
    "grants": ["map-unmap", "persistent", "copy", "directory"],
    "discovery": ["bus", "platform"],
    "sharing": ["probe", "per-buffer"],
}
UNKNOWN_KEYS = ["colour", "ключ", "queue_element", "k" * 300, "0", "dist ", "Name"]


@dataclass
class Mutant:
    path: Path  # the shipped scenario it comes from
    data: object  # the changed scenario, as YAML data
    changes: list[str] = field(default_factory=list)
    text: str | None = None  # set for a mutant given to `vmsim validate` as a file
    by_requests: bool = False  # run to 20 requests per workload rather than for 5 ms
    trace: str | None = None  # CSV text of the trace file that a workload's `file: TRACE` stands for

    def __str__(self) -> str:
        return f"{self.path.relative_to(ROOT)}: {'; '.join(self.changes)}"


@dataclass
class Outcome:
    kind: str  # "ok", "user error", "slow" or "traceback"
    detail: str = ""


class _TooSlow(BaseException):
    """Raised by the wall-clock alarm; a BaseException so that no `except Exception` in vmsim eats it."""


def mutants(seed: int, count: int, scenarios: list[Path] = SCENARIOS) -> Iterator[Mutant]:
    """`count` mutants, taking the scenarios in turn; the same seed gives the same mutants."""
    rng = random.Random(seed)
    originals = {path: read_yaml(path, str(path))[0] for path in scenarios}
    for index in range(count):
        path = scenarios[index % len(scenarios)]
        data = copy.deepcopy(originals[path])
        mutant = Mutant(path, data, by_requests=rng.random() < 0.25)
        if rng.random() < 0.5:
            data["platform"] = _inline_platform(data["platform"], path)
            mutant.changes.append("platform inline")
        if rng.random() < 0.1:
            _replay_a_trace(mutant, rng, damaged=rng.random() < 0.5)
        else:
            for _ in range(rng.choice((1, 1, 1, 2, 3))):
                mutant.changes.append(_mutate(data, rng))
        if index % 10 == 9:
            mutant.text = _damage(yaml.safe_dump(data, allow_unicode=True, sort_keys=False), rng, mutant.changes)
        yield mutant


def outcome(mutant: Mutant) -> Outcome:
    """Load the mutant and, when it loads, run it briefly: `ok`, `user error`, `slow`, or `traceback`."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, WALL_SECONDS)
    folder = tempfile.TemporaryDirectory()
    try:
        if mutant.trace is not None:
            trace = Path(folder.name) / "trace.csv"
            trace.write_text(mutant.trace, encoding="utf-8")
            mutant = Mutant(mutant.path, _with_trace(mutant.data, str(trace)), mutant.changes, mutant.text,
                            mutant.by_requests)
        if mutant.text is not None:
            return _validate_file(mutant)
        load_dict(mutant.data, source=str(mutant.path), base_dir=mutant.path.parent)
        capped, overrides = _capped(mutant)
        pipeline.run(capped, overrides, name=str(mutant.path), base_dir=mutant.path.parent)  # as vmsim.run does
        return Outcome("ok")
    except VmsimError as exc:
        return Outcome("user error", str(exc).splitlines()[0] if str(exc) else "")
    except _TooSlow:
        return Outcome("slow", f"still running after {WALL_SECONDS:.0f} s of wall time")
    except Exception:  # noqa: BLE001 - the fuzzer's whole point: anything else is a bug to report
        return Outcome("traceback", traceback.format_exc())
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)
        folder.cleanup()


def _capped(mutant: Mutant) -> tuple[dict, list[str]]:
    """The mutant made brief: 5 ms of simulated time, or (one in four, so that a run also ends the other
    way) 20 requests per workload and no duration; a small backlog limit either way."""
    capped = copy.deepcopy(mutant.data)
    if isinstance(capped.get("limits"), dict):
        capped["limits"]["backlog"] = BACKLOG_CAP
    elif "limits" not in capped:
        capped["limits"] = {"backlog": BACKLOG_CAP}
    workloads = capped.get("workloads")
    if not (mutant.by_requests and isinstance(workloads, list) and workloads
            and all(isinstance(workload, dict) for workload in workloads)):
        return capped, RUN_CAP
    for workload in workloads:
        workload["requests"] = 20
    capped.pop("duration", None)
    return capped, ["warmup=0 ns"]


def _alarm(_signum, _frame):
    raise _TooSlow


def _validate_file(mutant: Mutant) -> Outcome:
    """`vmsim validate FILE` in this process: exit 0, or exit 2 with every line a `vmsim: error:`."""
    with tempfile.TemporaryDirectory() as folder:
        scenario = Path(folder) / mutant.path.name
        scenario.write_text(mutant.text, encoding="utf-8")
        stdout, stderr = io.StringIO(), io.StringIO()
        try:
            with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
                cli_main(["validate", str(scenario)])
            status = 0
        except SystemExit as exc:
            status = exc.code
    lines = stderr.getvalue().splitlines()
    if status == 0 and not lines:
        return Outcome("ok")
    if status == 2 and lines and all(line.startswith("vmsim: error: ") and line[14:].strip() for line in lines):
        return Outcome("user error", lines[0])
    return Outcome("traceback", f"vmsim validate exited {status}:\n{stderr.getvalue()}")


# --- mutations ---------------------------------------------------------------------------------


def _inline_platform(platform: object, path: Path) -> object:
    """The profile (and the scenario's changes to it) as one plain mapping, numbers uncited."""
    try:
        resolved = resolve_platform(platform, path.parent, Locations(Origin(str(path))), str(path))
    except VmsimError:
        return platform
    resolved.pop("provenance", None)
    return resolved


def _slots(tree: object, where: tuple = ()) -> list[tuple]:
    """Every (container, key, path) in the tree: the places a mutation can act."""
    found = []
    items = tree.items() if isinstance(tree, dict) else enumerate(tree) if isinstance(tree, list) else ()
    for key, value in items:
        found.append((tree, key, where + (key,)))
        found.extend(_slots(value, where + (key,)))
    return found


def _mutate(data: dict, rng: random.Random) -> str:
    """One change at a random place; most are to a number, the kind of change a run survives."""
    slots = _slots(data)
    if not slots:
        data["name"] = "emptied"
        return "everything deleted"
    numbers = [slot for slot in slots if _is_quantity(slot[0][slot[1]])]
    operator = rng.choice(("plausible", "plausible", "plausible", "scale", "scale", "extreme", "extreme", "unit",
                           "delete", "retype", "text", "reference", "empty", "duplicate", "unknown", "literal",
                           "literal"))
    container, key, where = rng.choice(numbers if numbers and operator in ("plausible", "scale") else slots)
    value = container[key]
    shown = ".".join(map(str, where))
    if operator == "plausible":
        new = _plausible(value, rng)
        container[key] = new
        return f"{shown} = {_short(new)}"
    if operator == "reference":
        references = [slot for slot in slots if slot[1] in REFERENCES]
        if references:
            container, key, where = rng.choice(references)
            new = rng.choice(["nowhere", "", *_names(data)])
            container[key] = new
            return f"{'.'.join(map(str, where))} = {new!r} (reference)"
    if operator == "literal":
        literals = [slot for slot in slots if slot[1] in LITERALS]
        if literals:
            container, key, where = rng.choice(literals)
            container[key] = new = rng.choice(LITERALS[key])
            return f"{'.'.join(map(str, where))} = {new!r}"
    if operator == "delete":
        del container[key]
        return f"deleted {shown}"
    if operator == "empty" and isinstance(value, (list, dict)):
        container[key] = type(value)()
        return f"{shown} emptied"
    if operator == "duplicate" and isinstance(value, list) and value:
        value.append(copy.deepcopy(rng.choice(value)))
        return f"{shown}: an item doubled"
    if operator == "unknown":
        target = value if isinstance(value, dict) else data
        name = rng.choice(UNKNOWN_KEYS)
        target[name] = 1
        return f"unknown key {name[:20]!r} added"
    if operator == "unit" and isinstance(value, str):
        new = _bad_unit(value, rng)
    elif operator == "scale" and isinstance(value, (int, float)) and not isinstance(value, bool):
        new = rng.choice((value * 1000, value // 1000 if isinstance(value, int) else value / 1000, value + 1,
                          value - 1, -value, value * 2**20))
    elif operator == "text":
        new = rng.choice(TEXTS)
    elif operator == "retype":
        new = copy.deepcopy(rng.choice(ODD_VALUES))
    else:
        new = rng.choice(EXTREMES)
    container[key] = new
    return f"{shown} = {_short(new)}"


def _is_quantity(value: object) -> bool:
    return (isinstance(value, (int, float)) and not isinstance(value, bool)) or (
        isinstance(value, str) and value[:1].isdigit() and value.isascii())


def _plausible(value: object, rng: random.Random) -> object:
    """A value of the same kind as `value`, anywhere in the range the schema accepts or just past it."""
    unit = value.partition(" ")[2] if isinstance(value, str) else ""
    if unit in ("ns", "us", "µs", "ms", "s"):
        return rng.choice(("0 ns", "1 ns", "3 ns", "1 us", "1 ms", "1 s", "1000 s", "1152921504606846976 ns",
                           "1152921504606846977 ns", "1e17 ns"))
    if unit in ("B", "KiB", "MiB", "GiB", "KB", "MB", "GB", "kB"):
        return rng.choice(("0 B", "1 B", "3 B", "40 B", "63 B", "4096 B", "4097 B", "1 MiB", "1 GiB", "4 GiB",
                           "1099511627776 B", "1099511627777 B"))
    if unit in ("Hz", "kHz", "MHz", "GHz", "/s"):
        return rng.choice(("1e-9 Hz", "8e-10 Hz", "1 Hz", "1 MHz", "1 GHz", "1e12 Hz", "1e15 Hz", "1e300 Hz"))
    if isinstance(value, float):
        return rng.choice((0.0, 1e-9, 0.5, 0.999999, 1.0, 5.0, 1e6))
    return rng.choice((0, 1, 2, 3, 31, 32, 63, 64, 255, 256, 4096, 4097, 65535, 65536, 2**31, 2**32, 2**62))


def _bad_unit(text: str, rng: random.Random) -> str:
    number, _, unit = text.partition(" ")
    if rng.random() < 0.5:
        return f"{number} {rng.choice(UNITS)}".strip()
    return f"{rng.choice(NUMBERS)} {unit}".strip()


def _names(data: dict) -> list[str]:
    """The names of the scenario's components, to be used where a name of another kind is wanted."""
    names = []
    for section in ("drivers", "buses", "devices", "workloads", "domains"):
        items = data.get(section)
        if isinstance(items, list):
            names.extend(item["name"] for item in items if isinstance(item, dict) and isinstance(item.get("name"), str))
    return names


def _replay_a_trace(mutant: Mutant, rng: random.Random, damaged: bool) -> None:
    """One workload replays a trace file: a valid one, or one with its own kinds of damage."""
    workloads = mutant.data.get("workloads")
    if not (isinstance(workloads, list) and workloads and all(isinstance(w, dict) for w in workloads)):
        return
    rng.choice(workloads)["arrivals"] = {"kind": "trace", "file": "TRACE"}
    header = rng.choice(("time,size", "time"))
    if damaged:
        header = rng.choice(("time,size", "time", "size,time", "tim", "", "time,size,extra", "\ufefftime"))
    rows = []
    at = 0
    for _ in range(rng.randrange(0, 30)):
        at += rng.choice((0, 1, 1000, 10**6, 10**9, 2**58))
        time, size = rng.choice((str(at), f"{at} ns", f"{at / 1000} us")), rng.choice(("64", "1 KiB", "0", "4 GiB"))
        if damaged and rng.random() < 0.2:
            time = rng.choice(("", "５ us", "1e300 s", "nan", "x", "-5", "0"))
            size = rng.choice(("", "-1", "1099511627777", "1.5", "1 us"))
        rows.append(f"{time},{size}" if "size" in header else time)
        if damaged and rng.random() < 0.1:
            rows[-1] = rng.choice(("", f"{time},{size},1", f'"{time}",{size}', "\x00"))
    mutant.trace = "\n".join([header, *rows]) + (rng.choice(("\n", "", "\n\n", '"')) if damaged else "\n")
    mutant.changes.append(f"{'damaged ' if damaged else ''}trace: {header!r}, {len(rows)} rows")


def _with_trace(data: object, path: str) -> object:
    data = copy.deepcopy(data)
    for workload in data.get("workloads") or []:
        if isinstance(workload, dict) and workload.get("arrivals") == {"kind": "trace", "file": "TRACE"}:
            workload["arrivals"]["file"] = path
    return data


def _damage(text: str, rng: random.Random, changes: list[str]) -> str:
    """The mutant's YAML text, damaged once more the way files get damaged."""
    lines = text.splitlines(keepends=True)
    how = rng.choice(("cut", "byte", "double", "drop", "tab", "digits", "cycle", "deep", "bomb", "none"))
    if how == "cut":
        text = text[: rng.randrange(len(text) + 1)]
    elif how == "byte":
        at = rng.randrange(len(text))
        text = text[:at] + rng.choice(("\x00", ":", "[", "{", "&a", "*a", "\ufffd", "'", "- ")) + text[at + 1:]
    elif how == "double" and lines:
        at = rng.randrange(len(lines))
        text = "".join(lines[: at + 1] + lines[at:])
    elif how == "drop" and lines:
        at = rng.randrange(len(lines))
        text = "".join(lines[:at] + lines[at + 1:])
    elif how == "tab":
        text = text.replace("  ", "\t", 1)
    elif how == "cycle":
        text += "description: &cycle [1, *cycle]\n"
    elif how == "deep":
        text += "description: " + "[" * 100 + "]" * 100 + "\n"
    elif how == "bomb":
        text += "".join(f"b{n}: &b{n} [{', '.join([f'*b{n - 1}'] * 9)}]\n" for n in range(1, 8)).replace("*b0", "0")
    elif how == "digits":
        text = text.translate(str.maketrans("0123456789", "０１２３４５６７８９"))
    changes.append(f"text: {how}")
    return text


def _short(value: object) -> str:
    if isinstance(value, int) and value.bit_length() > 64:
        return f"<{value.bit_length()}-bit int>"
    text = repr(value)
    return text if len(text) <= 40 else text[:37] + "..."
