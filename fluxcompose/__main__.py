"""``python -m fluxcompose``: the same as the ``fluxcompose`` command."""

from .cli import main

main()
