"""Mutants of every shipped scenario either run or are refused with one line, never a traceback.

vmsim promises that no scenario a user can write ends in a traceback: it runs, or it is a
`VmsimError` naming the file and key (exit status 2 on the command line). Twelve seeded mutants per
shipped scenario (keys deleted, types swapped, extreme numbers, bad units, unusual text, references
to nothing, emptied lists; tests/scenario_mutants.py) hold it to that; each that loads runs for 5 ms of
simulated time or 20 requests. benchmarks/fuzz_scenarios.py runs thousands of them.
"""

import zlib

import pytest
from scenario_mutants import SCENARIOS, Mutant, mutants, outcome

MUTANTS_PER_SCENARIO = 12


def test_the_fuzzer_takes_every_shipped_scenario():
    """A scenario added to scenarios/ (any depth) is fuzzed without anyone listing it."""
    names = {path.name for path in SCENARIOS}
    assert {"mm1.yaml", "pcie-x86-arm-net.yaml", "xen-many-domus.yaml", "amp-closed-loop.yaml"} <= names


def test_the_same_seed_gives_the_same_mutants():
    """A failure found by the fuzzer can be replayed from its seed."""
    first = [str(mutant) for mutant in mutants(5, 30)]
    assert first == [str(mutant) for mutant in mutants(5, 30)]
    assert len(set(first)) > 20


def test_a_mutant_that_crashes_is_told_apart_from_one_that_is_refused():
    """The fuzzer would be blind if a crash counted as a user error: a mutant whose data is not even a
    mapping is a user error; one whose loading raises something else is a traceback."""
    path = SCENARIOS[0]
    assert outcome(Mutant(path, ["not", "a", "mapping"])).kind == "user error"
    assert outcome(Mutant(path, {"name": "x"}, text="name: [unclosed")).kind == "user error"
    crash = outcome(Mutant(path, {"name": _Uncopyable()}))
    assert crash.kind == "traceback" and "RuntimeError: cannot be copied" in crash.detail


class _Uncopyable:
    def __deepcopy__(self, memo):
        raise RuntimeError("cannot be copied")


@pytest.mark.parametrize("path", SCENARIOS, ids=lambda path: path.stem)
def test_every_mutant_runs_or_is_a_one_line_user_error(path):
    """A mutant slower than the wall-time cap is counted as slow, not failed: the backlog and
    simulated-time limits, not this test, are what keep runs short."""
    failures = []
    for mutant in mutants(zlib.crc32(path.name.encode()), MUTANTS_PER_SCENARIO, scenarios=[path]):
        result = outcome(mutant)
        if result.kind == "traceback":
            failures.append(f"{mutant}\n{result.detail}")
    assert not failures, "\n\n".join(failures)
