"""Every third-party package vmsim imports is declared in pyproject.toml.

A new release of typer stopped pulling in click, which vmsim imported without declaring it, and the
Quickstart broke for every new user. These tests read the imports from the source (not from what
happens to be installed), map each to the distribution that provides it, and compare with the
declarations: core dependencies for the package, core or an extra for lazy imports, core or `test`
for the tests.
"""

from __future__ import annotations

import ast
import re
import sys
import tomllib
from importlib.metadata import packages_distributions
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]


def normalise(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def declared(requirements: list[str]) -> set[str]:
    """Distribution names of requirement strings. An extra (dask[distributed]) is not a declaration of what it
    pulls in: a package vmsim imports is named itself."""
    return {normalise(re.match(r"\s*([A-Za-z0-9._-]+)", requirement).group(1)) for requirement in requirements}


CORE = declared(PROJECT["dependencies"])
EXTRAS = {extra: declared(reqs) for extra, reqs in PROJECT["optional-dependencies"].items()}


def third_party_imports(folder: Path) -> dict[str, list[tuple[Path, int, bool]]]:
    """Top-level module name -> where it is imported (file, line, at module level?)."""
    found: dict[str, list[tuple[Path, int, bool]]] = {}
    local = {"vmsim"} | {path.stem for top in ("tests", "benchmarks") for path in (ROOT / top).rglob("*.py")}
    for path in sorted(folder.rglob("*.py")):
        tree = ast.parse(path.read_text(), filename=str(path))
        top_level = {id(node) for node in tree.body}
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                modules = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                modules = [node.module]
            else:
                continue
            for module in modules:
                root = module.split(".")[0]
                if root in sys.stdlib_module_names or root in local:
                    continue
                found.setdefault(root, []).append((path, node.lineno, id(node) in top_level))
    return found


def distributions_of(module: str) -> set[str]:
    providers = packages_distributions().get(module)
    assert providers, f"{module} is imported but no installed distribution provides it"
    return {normalise(name) for name in providers}


def test_every_module_level_import_of_vmsim_is_a_core_dependency():
    """`pip install .` alone must be enough to import every module of vmsim."""
    undeclared = [f"{path.relative_to(ROOT)}:{line}: {module}"
                  for module, places in third_party_imports(ROOT / "vmsim").items()
                  for path, line, module_level in places
                  if module_level and not distributions_of(module) & CORE]
    assert undeclared == []


def test_every_lazy_import_of_vmsim_is_declared_in_core_or_an_extra():
    """An optional feature (Dask sweeps) may import a package its extra declares, inside a function."""
    anywhere = CORE.union(*EXTRAS.values())
    undeclared = [f"{path.relative_to(ROOT)}:{line}: {module}"
                  for module, places in third_party_imports(ROOT / "vmsim").items()
                  for path, line, _ in places
                  if not distributions_of(module) & anywhere]
    assert undeclared == []


def test_every_import_of_the_tests_and_benchmarks_is_declared_for_the_test_extra():
    allowed = CORE | EXTRAS["test"]
    undeclared = [f"{path.relative_to(ROOT)}:{line}: {module}"
                  for folder in ("tests", "benchmarks")
                  for module, places in third_party_imports(ROOT / folder).items()
                  for path, line, _ in places
                  if not distributions_of(module) & allowed]
    assert undeclared == []


def test_click_is_not_imported_because_typer_no_longer_installs_it():
    """typer >= 0.25 vendors click; importing click would work only where something else installed it."""
    assert "click" not in third_party_imports(ROOT / "vmsim")
