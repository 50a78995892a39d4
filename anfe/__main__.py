"""``python -m anfe`` runs the CLI."""

from .cli import main

main()
