"""Shipped platform profiles: YAML data files of costs, every number with its source.

A scenario names one (`platform: stm32mp1`) or points at its own profile file; the loader in
`vmsim.scenario.platform` reads them. Keeping costs in data files, not in code, lets a user see and
cite every number a result depends on.
"""

from __future__ import annotations

from pathlib import Path

PROFILE_DIR = Path(__file__).resolve().parent


def profile_names() -> list[str]:
    """Names of the shipped profiles (file stems), sorted."""
    return sorted(path.stem for path in PROFILE_DIR.glob("*.yaml"))


def profile_path(name: str) -> Path | None:
    """The shipped profile file called `name`, or None."""
    path = PROFILE_DIR / f"{name}.yaml"
    return path if name in profile_names() else None
