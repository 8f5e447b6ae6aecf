"""The ``fluxcompose`` command line: parse, call the library, print. Nothing else.

Errors become one line on stderr and an exit code (2 for bad usage or input,
1 for a failed generation or failed checks); ``--debug`` shows the traceback.
"""

from __future__ import annotations

import os
import sys
from typing import Any

import click

from ..errors import FluxComposeError
from . import ab_cmd, batch_cmd, compare_cmd, cost_cmd, recipes_cmd, review_cmd, run_cmds
from .compose_cmds import compose_cmd, size_cmd
from .locate_cmd import locate_cmd

__all__ = ["cli", "main"]


def _debug_requested() -> bool:
    return os.environ.get("FLUXCOMPOSE_DEBUG", "") not in ("", "0")


class FluxGroup(click.Group):
    """A click group that owns error reporting for every command."""

    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        argv = list(sys.argv[1:] if args is None else args)
        if "--debug" in argv:  # accepted anywhere on the line, not only before the command
            argv.remove("--debug")
            os.environ["FLUXCOMPOSE_DEBUG"] = "1"
        code = 0
        try:
            rv = super().main(
                argv, prog_name or "fluxcompose", complete_var, standalone_mode=False, **extra
            )
            code = rv if isinstance(rv, int) else 0
        except FluxComposeError as exc:
            if _debug_requested():
                raise
            _error(str(exc))
            code = exc.exit_code
        except click.exceptions.Abort:
            _error("interrupted")
            code = 130
        except click.UsageError as exc:
            _error(exc.format_message().replace("\n", " "))
            code = 2
        except click.ClickException as exc:
            _error(exc.format_message().replace("\n", " "))
            code = exc.exit_code
        except KeyboardInterrupt:
            _error("interrupted")
            code = 130
        except BrokenPipeError:
            code = 1
        except Exception as exc:  # the last line of defence: still one line, no traceback
            if _debug_requested():
                raise
            _error(
                f"internal error: {exc.__class__.__name__}: {_first_line(exc)} (rerun with --debug for details)"
            )
            code = 1
        if standalone_mode:
            sys.exit(code)
        return code


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()
    return text[0] if text else ""


def _error(message: str) -> None:
    # One line whatever the message holds: server texts can span lines.
    click.echo(f"fluxcompose: error: {' '.join(message.split())}", err=True)


@click.group(cls=FluxGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="fluxcompose")
def cli() -> None:
    """Two-image edits with FLUX.1 Kontext: compose sources into one canvas, send it
    with a recipe prompt, download the result at once, and check it.

    Add --debug anywhere to see a traceback instead of a one-line error.
    """


cli.add_command(size_cmd)
cli.add_command(compose_cmd)
cli.add_command(locate_cmd)
cli.add_command(ab_cmd.ab_cmd)


for _command in (
    run_cmds.run_cmd,
    batch_cmd.batch,
    compare_cmd.compare,
    recipes_cmd.recipes,
    cost_cmd.cost_cmd,
    review_cmd.review_cmd,
):
    cli.add_command(_command)

main = cli
