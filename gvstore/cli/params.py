"""``gvstore params validate``: check a params file without running anything."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated

import typer

from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt

params_app = typer.Typer(help="Check study parameter files.", no_args_is_help=True)


@params_app.command("validate")
def validate_cmd(
    files: Annotated[list[Path] | None, typer.Argument(
        help="Params files to check (default: params.yaml).", show_default=False)] = None,
    no_data: Annotated[bool, typer.Option(
        "--no-data", help="Skip the check that each task's data file is present.")] = False,
    as_json: JsonOpt = False,
) -> None:
    """Types, names, methods, filter specs, model table and task data: no model is loaded."""
    from gvstore.errors import GvstoreError
    from gvstore.params import load, validate

    results = []
    lines = []
    for f in files or [Path("params.yaml")]:
        params = load(f)  # its errors name the file
        try:
            notes = validate(params, check_data=not no_data)
        except GvstoreError as exc:
            raise GvstoreError(f"{f}: {exc}") from None
        stages = stage_count(params)
        results.append({"file": str(f), "ok": True, "notes": notes, "stages": stages})
        lines.append(f"{f}: ok ({stages} stages; " + "; ".join(notes) + ")")
    emit({"results": results}, as_json, *lines)


def stage_count(params: object) -> int:
    """How many stages ``dvc.yaml`` expands to for these params (tests check it against dvc)."""
    from gvstore.params import Params

    assert isinstance(params, Params)
    st = params.study
    rounds = (3 if params.rounds.enabled else 0) + 5 * len(params.rounds.steps)
    return (len(st.models) + 2 * len(st.tasks) + len(st.methods) * len(st.tasks) + 2
            + rounds)
