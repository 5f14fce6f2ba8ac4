"""The options every command group shares, and the store a command reads.

One option set, one short-flag scheme: a command that filters by task takes ``--task``/``-t``,
whatever its group (``-g`` generator, ``-v`` verifier, ``-r`` round, ``-u`` utility). Use them as
parameter types::

    def my_cmd(ctx: typer.Context, task: TaskOpt = None, store: StoreOpt = None,
               as_json: JsonOpt = False) -> None:
        proj = Projections(get_store(ctx, store))

``--store`` after a command's name overrides the one before it (``gvstore --store X gap`` and
``gvstore gap --store X`` read the same store); only the root option reads ``$GVSTORE_STORE``.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from gvstore.backends.base import names as backend_names
from gvstore.errors import GvstoreError
from gvstore.store import Store, default_root

if TYPE_CHECKING:
    from gvstore.analysis.frames import Filters

BACKEND_HELP = ("The back end: " + ", ".join(backend_names()[:-1]) + " or "
                + backend_names()[-1] + " (docs/backends.md).")
JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON instead of tables.")]
QuietOpt = Annotated[bool, typer.Option("--quiet", "-q", help="No progress bar.")]
StoreOpt = Annotated[Path | None, typer.Option(
    "--store", help="Store root folder (overrides the root --store).", show_default=False)]

DataPathOpt = Annotated[Path | None, typer.Option(
    "--path", help="A data folder laid out like data/raw (or one data file).")]

TaskOpt = Annotated[list[str] | None, typer.Option(
    "--task", "-t", help="Only this task (repeatable).", show_default=False)]
GeneratorOpt = Annotated[list[str] | None, typer.Option(
    "--generator", "-g", help="Only this generator model (repeatable).", show_default=False)]
VerifierOpt = Annotated[list[str] | None, typer.Option(
    "--verifier", "-v", help="Only this verifier model (repeatable).", show_default=False)]
RoundOpt = Annotated[list[int] | None, typer.Option(
    "--round", "-r", help="Only this self-improvement round (repeatable).",
    show_default=False)]
MethodOpt = Annotated[list[str] | None, typer.Option(
    "--method", help="Only this verification method (repeatable).", show_default=False)]
UtilityOpt = Annotated[str, typer.Option(
    "--utility", "-u", help="Ground truth: strict or flexible answer match.")]


def grader_option(help: str = "Use this grader's grades (needed only if several graded).") -> Any:
    """``--grader``: whose grades count (the wording differs between command groups)."""
    return typer.Option("--grader", help=help, show_default=False)


def plot_option(help: str = "Also write a PNG plot here.", name: str = "--plot") -> Any:
    """An optional PNG path (``--plot``, or another name such as ``--heatmap``)."""
    return typer.Option(name, help=help, show_default=False)


GraderOpt = Annotated[str | None, grader_option()]
PlotOpt = Annotated[Path | None, plot_option()]


def make_filters(task: list[str] | None = None, generator: list[str] | None = None,
                 verifier: list[str] | None = None, rnd: list[int] | None = None,
                 method: list[str] | None = None) -> Filters:
    """The analysis filters from the repeatable filter options (none given: everything), in
    the options' order: task, generator, verifier, round, method."""
    from gvstore.analysis.frames import Filters

    return Filters(tasks=tuple(task or ()), generators=tuple(generator or ()),
                   verifiers=tuple(verifier or ()), rounds=tuple(rnd or ()),
                   methods=tuple(method or ()))


def get_store(ctx: typer.Context, store: Path | None = None, *,
              must_exist: bool = True) -> Store:
    """The store named by the command's ``--store``, else the root's ``--store`` /
    ``$GVSTORE_STORE`` / the default.

    With ``must_exist`` (commands that read a store) a missing folder is a one-line error;
    commands that may create the store pass ``must_exist=False``.
    """
    obj = ctx.find_root().obj or {}
    root = store if store is not None else (obj.get("store") or default_root())
    if obj.get("skip_damaged"):
        from gvstore.cli.console import error_line

        def warn(exc: Exception) -> None:
            error_line("warning", f"skipped {exc}")

        found = Store(root, skip_damaged=True, on_skip=warn)
    else:
        found = Store(root)
    if must_exist and not found.root.exists():
        raise GvstoreError(f"no store at {found.root} (set --store or GVSTORE_STORE)")
    return found
