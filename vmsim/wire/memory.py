"""The page every bus shares memory in, 4 KiB: a Xen grant, an FF-A memory granule, a vmsim-share page.

One definition, so that the scenario checks and the simulated buses count the same pages.
"""

PAGE_SHIFT = 12
PAGE = 1 << PAGE_SHIFT


def pages(nbytes: int) -> int:
    """4 KiB pages a buffer of `nbytes` spans (at least one)."""
    return max(1, -(-nbytes // PAGE))
