"""The `vmsim` command line.

Each sub-command imports its heavy dependencies inside its body so that `vmsim codec ...`
starts in a fraction of a second. Every user error (a `VmsimError`, a bad option) is
printed on one line and exits with status 2; no traceback reaches the user.
"""

from __future__ import annotations

import sys

import click
import typer

from vmsim.codec_cli import app as codec_app
from vmsim.errors import VmsimError

app = typer.Typer(
    help="Discrete-event simulator of virtio-msg topologies.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
)
app.add_typer(codec_app, name="codec")


def fail(message: str) -> None:
    """Print a one-line user error and exit 2."""
    one_line = " ".join(str(message).split())
    print(f"vmsim: error: {one_line}", file=sys.stderr)
    raise SystemExit(2)


def main(argv: list[str] | None = None) -> None:
    """Entry point: run the typer app, turning user errors into one line and exit status 2."""
    command = typer.main.get_command(app)
    try:
        result = command.main(args=argv, prog_name="vmsim", standalone_mode=False)
    except VmsimError as exc:
        fail(str(exc))
    except click.exceptions.Abort:
        print("vmsim: interrupted", file=sys.stderr)
        raise SystemExit(130) from None
    except click.exceptions.ClickException as exc:
        fail(exc.format_message())
    if isinstance(result, int) and result:
        raise SystemExit(result)


if __name__ == "__main__":
    main()
