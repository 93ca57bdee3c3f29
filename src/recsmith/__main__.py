"""``python -m recsmith``: the CLI."""

from recsmith.cli.main import main

main()
