"""`python -m ttservice`: the `ttservice` command."""

from .interfaces.cli import main

main()
