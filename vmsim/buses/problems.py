"""How the topology checks word a problem: (key path, message), with the names a typo was close to."""

from __future__ import annotations

import difflib
from collections.abc import Iterable

Problem = tuple[tuple, str]


def unknown(what: str, name: str, defined: dict, platform: str) -> str:
    """The message for a name the platform does not define, with the closest one it does."""
    close = difflib.get_close_matches(name, list(defined), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return f"platform {platform!r} has no {what} {name!r} ({hint}it has: {', '.join(defined) or 'none'})"


def hint(name: str, choices: Iterable[str]) -> str:
    """` (did you mean 'x'?)` when one of `choices` is close to `name`, else nothing."""
    close = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean {close[0]!r}?)" if close else ""


def share_layout(bus) -> Iterable[Problem]:
    """A bus that announces shared regions with vmsim-share messages must speak that layout."""
    if bus.layout != "vmsim-share":
        yield (), (f"bus {bus.name!r} speaks {bus.layout}, which has no share messages: give it "
                   "`layout: vmsim-share` (v1 plus vmsim's own SHM_SHARE / SHM_UNSHARE / SHM_RELEASE)")
