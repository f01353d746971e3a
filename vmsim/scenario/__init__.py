"""Scenarios: YAML files (or dicts) in, validated `Scenario` models out.

`load` and `load_dict` return only scenarios that passed the schema and the topology checks;
every user mistake raises one `ScenarioError` with a `file:line: key: message` line per problem.
"""

from vmsim.scenario.loader import load, load_dict, load_platform, resolved_dict
from vmsim.scenario.models import Platform, Scenario
from vmsim.scenario.trace import Trace, read_trace

__all__ = [
    "Platform",
    "Scenario",
    "Trace",
    "load",
    "load_dict",
    "load_platform",
    "read_trace",
    "resolved_dict",
]
