"""``gvstore data list | fetch``: find, check and download task data."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from gvstore.cli.console import emit, note, print_json
from gvstore.cli.options import DataPathOpt, JsonOpt
from gvstore.output import table

if TYPE_CHECKING:
    from gvstore.tasks import data

data_app = typer.Typer(help="Find, check and download task data.", no_args_is_help=True)


@data_app.command("list")
def data_list_cmd(path: DataPathOpt = None, as_json: JsonOpt = False) -> None:
    """Every known data file: where it is found and whether its SHA-256 is right."""
    from gvstore.tasks import data

    rows = data.status(path)
    payload = [
        {"dataset": r.name, "file": r.rel, "path": r.path, "ok": r.ok, "problem": r.problem}
        for r in rows
    ]
    emit(payload, as_json, table(
        "data files (looked for in: " + ", ".join(str(p) for p in data.search_roots(path)) + ")",
        ["dataset", "file", "found at", "digest"],
        [[r.name, r.rel, r.path or "-", "ok" if r.ok else (r.problem or "bad")] for r in rows],
    ))


@data_app.command("fetch")
def data_fetch_cmd(
    name: Annotated[str, typer.Argument(help="Dataset name (see `gvstore data list`).")],
    dest: Annotated[Path, typer.Option(help="Folder to place <name>/<file> in.")] = Path(
        "data/raw"
    ),
    mirror: Annotated[
        str | None,
        typer.Option(help="Base URL laid out like data/raw, instead of the official sources."),
    ] = None,
    timeout: Annotated[float, typer.Option(help="Seconds per download.")] = 60.0,
    as_json: JsonOpt = False,
) -> None:
    """Download a dataset from its official source, check its digests, place it atomically."""
    from gvstore.tasks import data

    def fetched(f: data.Fetched) -> None:
        if not as_json:
            note(f"{f.action}: {f.path}")

    got = data.fetch(name, dest, mirror=mirror, timeout=timeout, on_file=fetched)
    if as_json:
        print_json([{"file": f.rel, "path": f.path, "action": f.action, "url": f.url}
                    for f in got])
