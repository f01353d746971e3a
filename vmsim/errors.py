"""The one exception family a user can cause.

Lives at the floor (standard library only) so that even `vmsim.wire`, which imports
nothing else of vmsim, can raise a `VmsimError`. The CLI prints any of these on one line
and exits with status 2; anything else escaping is a bug and may traceback.
"""


class VmsimError(Exception):
    """Base of every error caused by user input (scenario, CLI argument, bytes to decode)."""


class DecodeError(VmsimError):
    """Bytes that do not form a valid structure; the message names the field and byte offset."""


class EncodeError(VmsimError):
    """A value that cannot be encoded (out of range, wrong type, unknown message)."""


class ScenarioError(VmsimError):
    """A scenario, profile or override that is invalid; the message names file, line and key.

    One error may carry several problems (all found in one pass, so users fix them in one go):
    the message has one self-contained line per problem, also listed in `problems`.
    """

    def __init__(self, *problems: str):
        super().__init__(*problems)  # args == problems, so the error pickles whole (process pools)
        self.problems = list(problems)

    def __str__(self) -> str:
        return "\n".join(self.problems)


class OverloadError(VmsimError):
    """A run whose offered load outgrew what the model carries, past a limit the scenario can raise.

    An open-loop workload offered faster than its device serves piles up requests without bound: the
    run would take minutes and gigabytes to say only "saturated". It stops early and says so instead.
    """


class StalledError(VmsimError):
    """A run that can go no further: nothing is left to happen, yet what ends it has not come (its requests
    cannot complete: a device removed, frames dropped after every retry, costs so large that retries give up).
    """
