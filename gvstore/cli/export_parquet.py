"""``gvstore export parquet DIR``: the projections as Hive-partitioned Parquet, incrementally
(docs/scale.md, "Parquet export and warehouse queries"). Registered on ``export_app`` when
``gvstore.cli.analysis`` is imported; polars is imported only when the command runs."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.analysis import export_app
from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt, StoreOpt, get_store
from gvstore.output import table


@export_app.command("parquet")
def export_parquet_cmd(
    ctx: typer.Context,
    folder: Annotated[Path, typer.Argument(
        help="Export folder (created if needed; a new one must be empty).")],
    texts: Annotated[bool, typer.Option(
        "--texts", help="Also the texts: prompt and generation text, verifier raw output.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """The projections as Parquet under FOLDER/kind=<frame>/task=<task>/model=<model>/;
    only segments not yet exported are read, parts of segments gone from the store removed."""
    from gvstore.analysis.parquet_export import export_parquet

    summary = export_parquet(get_store(ctx, store), folder, texts=texts)
    d = summary.as_dict()
    emit(d, as_json, _table(d))


def _table(d: dict[str, Any]) -> Any:
    rows: list[list[Any]] = [
        ["store segments", d["segments"]], ["segments exported", d["exported"]],
        ["already exported", d["skipped"]], ["removed (gone from the store)", d["removed"]],
        ["re-exported (orphans)", d["retried"]]]
    rows += [[f"  {k} rows written / in export", f"{d['rows'][k]} / {d['total_rows'][k]}"]
             for k in d["rows"]]
    rows += [["parts written", d["parts_written"]],
             ["bytes written / in export", f"{d['bytes_written']} / {d['total_bytes']}"],
             ["seconds", f"{d['seconds']:.2f}"]]
    return table(f"export parquet {d['folder']}" + (" (with texts)" if d["texts"] else ""),
                 ["", "value"], rows)
