"""``fluxcompose recipes``: list the built-in recipes, or show one as TOML or JSON."""

from __future__ import annotations

import json

import click

from ..recipes import list_recipes, load_recipe
from ._common import json_option

__all__ = ["recipes"]


@click.group("recipes", invoke_without_command=True)
@json_option("Print JSON instead of text.")
@click.pass_context
def recipes(ctx: click.Context, as_json: bool) -> None:
    """List the built-in recipes.

    \b
    Examples:
      fluxcompose recipes
      fluxcompose recipes show pattern-transfer
      fluxcompose recipes show ./my-recipe.toml --json
    """
    if ctx.invoked_subcommand is not None:
        return
    found = list_recipes()
    if as_json:
        rows = [
            {
                "name": r.name,
                "description": r.description,
                "sources": list(r.sources),
                "path": str(r.path) if r.path else None,
            }
            for r in found
        ]
        click.echo(json.dumps(rows, indent=2, ensure_ascii=False))
        return
    width = max((len(r.name) for r in found), default=0)
    for r in found:
        click.echo(f"{r.name:<{width}}  {r.description}".rstrip())


@recipes.command("show")
@click.argument("recipe", metavar="NAME|PATH")
@json_option("Print JSON instead of TOML.")
def show(recipe: str, as_json: bool) -> None:
    """Print one recipe (a built-in name or a .toml path) as TOML.

    The output is a valid recipe file: save it, edit it and pass its path to
    ``--recipe``.
    """
    loaded = load_recipe(recipe)
    if as_json:
        click.echo(json.dumps(loaded.to_dict(), indent=2, ensure_ascii=False))
    else:
        click.echo(loaded.to_toml(), nl=False)
