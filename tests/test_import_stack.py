"""vmsim is a one-way stack: each module imports only its own layer or those below it, and no imports close
a circle. The layer table lives here, once; docs/architecture.md shows it (a test keeps the two equal).

Every import counts, including the ones inside functions (lazy imports of heavy libraries still tie a module
to what it imports). A plug-in reached by name through `importlib` is data, not an import, and is not seen.
"""

from __future__ import annotations

import ast
from pathlib import Path

import vmsim

PACKAGE = Path(vmsim.__file__).parent
ARCHITECTURE = PACKAGE.parent / "docs" / "architecture.md"

# Bottom to top. A module belongs to the layer of its longest listed prefix.
LAYERS: list[tuple[str, tuple[str, ...], str]] = [
    ("base", ("vmsim.errors", "vmsim.units", "vmsim._version", "vmsim.files"),
     "errors, unit strings, version, atomic writes (standard library)"),
    ("wire", ("vmsim.wire",), "byte-exact codecs, protocol constants (standard library)"),
    ("sim", ("vmsim.sim",), "SimPy parts every bus shares: driver, device, queues, logs"),
    ("schema", ("vmsim.schema",), "the scenario files' vocabulary: unit-typed fields"),
    ("buses", ("vmsim.buses",), "one folder per bus kind, and the registry of kinds"),
    ("scenario", ("vmsim.scenario", "vmsim.topology", "vmsim.profiles"),
     "YAML -> checked Scenario: profiles, traces, graph checks"),
    ("pipeline", ("vmsim.pipeline",), "scenario -> model -> run -> SimOutput, written once"),
    ("analysis", ("vmsim.analysis", "vmsim.trace"), "reads a run's output: checks, statistics, plots, trace"),
    ("results", ("vmsim.results", "vmsim.result_folder", "vmsim.spill", "vmsim.forked", "vmsim.accounting",
                 "vmsim.tables", "vmsim.summary", "vmsim.summary_report"),
     "tables, summary and its report, result folders, the log spill, forked plotting, RunResult"),
    ("sweeps", ("vmsim.sweeps", "vmsim.calibration", "vmsim.compare"),
     "sweep files, executors, records, capacity tables; the calibration suite; compare"),
    ("interface", ("vmsim.api", "vmsim.cli", "vmsim.codec_cli", "vmsim.__main__", "vmsim"),
     "notebook API and command line"),
]


def layer_of(module: str) -> int:
    """The index in `LAYERS` of a vmsim module; a module no layer names is an error."""
    best = None
    for index, (_name, prefixes, _role) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and (best is None or len(prefix) > best[1]):
                best = (index, len(prefix))
    if best is None:
        raise AssertionError(f"{module} belongs to no layer: add it to LAYERS in {Path(__file__).name}")
    return best[0]


def layer_diagram() -> str:
    """The stack as docs/architecture.md draws it, top layer first."""
    modules = {name: ", ".join(prefix.removeprefix("vmsim.") for prefix in prefixes) for name, prefixes, _ in LAYERS}
    width = max(map(len, modules.values()))
    lines = [f"{name:<10} {modules[name]:<{width}}  {role}" for name, _, role in reversed(LAYERS)]
    return "\n".join(line.rstrip() for line in lines)


def module_name(path: Path, root: Path) -> str:
    parts = list(path.relative_to(root.parent).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def is_module(name: str, root: Path) -> bool:
    relative = Path(*name.split(".")[1:]) if "." in name else Path()
    return (root / relative).with_suffix(".py").is_file() or (root / relative / "__init__.py").is_file()


def imports_of(source: str, module: str, is_package: bool, root: Path) -> set[str]:
    """The vmsim modules `source` imports anywhere in its body; `from a import b` counts as `a.b` when b is
    a module, else as `a`. Imports under `if TYPE_CHECKING:` never run and are left out."""
    found = set()
    for node in _run_time_nodes(ast.parse(source)):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = module.split(".")
                anchor = anchor[:len(anchor) - node.level + (1 if is_package else 0)]
                base = ".".join(anchor + ([base] if base else []))
            for alias in node.names:
                candidate = f"{base}.{alias.name}"
                found.add(candidate if is_module(candidate, root) else base)
    return {name for name in found if name == "vmsim" or name.startswith("vmsim.")}


def _run_time_nodes(node: ast.AST):
    yield node
    for child in ast.iter_child_nodes(node):
        if isinstance(child, ast.If) and ast.unparse(child.test) in ("TYPE_CHECKING", "typing.TYPE_CHECKING"):
            for other in child.orelse:
                yield from _run_time_nodes(other)
        else:
            yield from _run_time_nodes(child)


def import_graph(root: Path = PACKAGE) -> dict[str, set[str]]:
    graph = {}
    for path in sorted(root.rglob("*.py")):
        name = module_name(path, root)
        graph[name] = imports_of(path.read_text(), name, path.name == "__init__.py", root) - {name}
    return graph


def upward_imports(graph: dict[str, set[str]]) -> list[str]:
    return sorted(f"{module} ({LAYERS[layer_of(module)][0]}) imports {target} ({LAYERS[layer_of(target)][0]})"
                  for module, targets in graph.items() for target in targets
                  if layer_of(target) > layer_of(module))


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Every set of modules that import each other round (strongly connected, Tarjan), as a sorted list."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    found = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in graph.get(module, ()):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = []
            while True:
                member = stack.pop()
                component.append(member)
                if member == module:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return sorted(found)


def test_every_import_points_down_the_stack():
    """Lower layers never know the higher ones, so each can be read, tested and reused without them."""
    assert upward_imports(import_graph()) == []


def test_no_modules_import_each_other_round():
    """A circle makes the import order matter and the layers meaningless, even within one layer."""
    assert circles(import_graph()) == []


def test_every_module_has_a_layer():
    assert all(layer_of(module) >= 0 for module in import_graph())


def test_the_checker_catches_a_lazy_import_up_the_stack_and_a_circle(tmp_path):
    """The walk sees imports inside functions and relative ones; it would not pass a stack that is wrong."""
    root = tmp_path / "vmsim"
    (root / "sim").mkdir(parents=True)
    (root / "__init__.py").write_text("")
    (root / "results.py").write_text("from vmsim.sim import log\n")
    (root / "sim" / "__init__.py").write_text("")
    (root / "sim" / "log.py").write_text("from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    import vmsim.api\n"
                                         "def table():\n    from .. import results\n    return results\n")
    graph = import_graph(root)
    assert graph["vmsim.sim.log"] == {"vmsim.results"}
    assert upward_imports(graph) == ["vmsim.sim.log (sim) imports vmsim.results (results)"]
    assert circles(graph) == [["vmsim.results", "vmsim.sim.log"]]


def test_the_architecture_document_shows_this_stack():
    """docs/architecture.md draws the layers from this table; when a layer changes, paste the new drawing."""
    assert layer_diagram() in ARCHITECTURE.read_text(), "docs/architecture.md should hold:\n" + layer_diagram()
