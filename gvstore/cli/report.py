"""``gvstore report``: the study's report (what the `report` stage writes), shown or rebuilt."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt, StoreOpt, get_store
from gvstore.errors import GvstoreError


def report_cmd(
    ctx: typer.Context,
    params_file: Annotated[Path, typer.Option(
        "--params", help="The study's params file.")] = Path("params.yaml"),
    build: Annotated[bool, typer.Option(
        "--build", help="Recompute from the store (as the report stage does) first.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Show the study report: gap table with each spec's unparsed share, parse failures,
    threshold choices, pass@k, verifier correlations (the report stage's report.json)."""
    from gvstore.params import load, validate
    from gvstore.report import FULL, views
    from gvstore.report import build as build_report
    from gvstore.store import Store

    params = load(params_file)
    out = Path(params.base.reports)
    if build:
        validate(params, check_data=False)
        # --store after the command's name; else the study's store (params base.store)
        source = get_store(ctx, store) if store is not None else Store(params.base.store)
        metrics = build_report(source, params, out).metrics
    else:
        path = out / FULL
        if not path.is_file():
            raise GvstoreError(f"no report at {path}: run `dvc repro` (or `gvstore report "
                               "--build`) first")
        metrics = json.loads(path.read_text())
    emit(metrics, as_json, *views(metrics))
