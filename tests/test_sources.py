"""Every source code cited in vmsim (comments, profiles, scenarios, docs, tests) has its line in docs/sources.md."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
LEGEND = ROOT / "docs" / "sources.md"
CODE = re.compile(r"\b[SLQOXV]-[A-Za-z0-9]+(?:-[A-Za-z0-9]+)*\b")
LOOK_ALIKES = {"S-EL1", "S-EL2", "X-Gene"}  # Arm's secure exception levels, a processor: not sources
SEARCHED = ("vmsim", "docs", "scenarios", "tests", "notebooks", "benchmarks", "studies", "README.md")


def cited_codes(roots=SEARCHED) -> dict[str, Path]:
    """Each code cited anywhere in the project, with one file that cites it."""
    found = {}
    for root in roots:
        base = ROOT / root
        for path in [base] if base.is_file() else sorted(base.rglob("*")):
            if path.suffix in (".py", ".md", ".yaml", ".ipynb") and path != LEGEND:
                for code in CODE.findall(path.read_text(encoding="utf-8")):
                    found.setdefault(code, path)
    return {code: path for code, path in found.items() if code not in LOOK_ALIKES}


def legend_codes() -> set[str]:
    return set(re.findall(r"^\| `([SLQOXV]-[A-Za-z0-9-]+)` \|", LEGEND.read_text(), flags=re.MULTILINE))


def test_every_cited_source_code_is_in_the_legend():
    missing = {code: str(path.relative_to(ROOT)) for code, path in cited_codes().items()
               if code not in legend_codes()}
    assert missing == {}, "add these codes to docs/sources.md"


def test_the_legend_lists_only_codes_in_use():
    """A code nothing cites any more is dead weight in the legend."""
    assert legend_codes() - set(cited_codes()) == set()
