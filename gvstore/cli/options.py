"""Options and helpers shared by every command group."""

from __future__ import annotations

from typing import Annotated

import typer

from gvstore.store import Store, default_root

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]


def get_store(ctx: typer.Context) -> Store:
    """The store named by ``--store`` / ``$GVSTORE_STORE`` / the default."""
    obj = ctx.find_root().obj or {}
    if not obj.get("skip_damaged"):
        return Store(obj.get("store") or default_root())
    from gvstore.output import error_line

    def warn(exc: Exception) -> None:
        error_line("warning", f"skipped {exc}")

    return Store(obj.get("store") or default_root(), skip_damaged=True, on_skip=warn)
