"""Option types and small helpers shared by the commands."""

from __future__ import annotations

import json
import sys
from typing import Any

import click

from .. import geometry
from ..errors import InputError, RatioError


class RatioType(click.ParamType):
    """A ``W:H`` ratio inside 3:7..7:3, parsed at the edge into a :class:`geometry.Ratio`."""

    name = "RATIO"

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> Any:
        if isinstance(value, geometry.Ratio):
            return value
        try:
            return geometry.parse_ratio(str(value))
        except RatioError as exc:
            raise InputError(str(exc)) from None


def print_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, default=str))


def notice(message: str) -> None:
    """A line for the user on stderr (stdout stays clean for --json)."""
    click.echo(message, err=True)


def is_tty_stderr() -> bool:
    return sys.stderr.isatty()
