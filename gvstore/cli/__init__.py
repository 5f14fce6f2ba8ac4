"""The command line: ``app`` (the Typer app and its error handling), ``options`` (the
shared options) and one module per command group. Nothing below ``gvstore.cli`` imports it."""
