"""``gvstore import inspect``: Inspect AI eval logs (docs/import-inspect.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.console import emit
from gvstore.cli.importing import import_app
from gvstore.cli.options import JsonOpt, StoreOpt, get_store
from gvstore.output import table


@import_app.command("inspect")
def inspect_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        help="An Inspect log (.eval or .json), or a folder of them (every log in it).")],
    grade: Annotated[str | None, typer.Option(
        "--grade", help="The scorer whose values are the grades (default: the first scorer "
        "named match, exact, includes, choice, pattern or answer, else the first scorer).",
        show_default=False)] = None,
    verify: Annotated[list[str] | None, typer.Option(
        "--verify", help="SCORER[=METHOD]: scorer SCORER's values become a verifier's scores "
        "under METHOD (default: cot_binary for C/I values, else mc). Repeatable; default: "
        "every scorer but the grade.", show_default=False)] = None,
    no_verify: Annotated[bool, typer.Option(
        "--no-verify", help="Import grades only: no scorer becomes a verifier.")] = False,
    task: Annotated[str | None, typer.Option(
        "--task", help="Task name of the prompts (default: the log's task).",
        show_default=False)] = None,
    generator: Annotated[str | None, typer.Option(
        "--generator", help="Generator (model) name (default: the log's model, '/' as '-').",
        show_default=False)] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Leave bad samples out, and count them, instead of stopping.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import Inspect logs: each sample a prompt, each epoch a sample, scorers as grades
    and verifiers."""
    from gvstore.errors import GvstoreError
    from gvstore.importers.inspect_log import Options, import_inspect, verify_option

    if no_verify and verify:
        raise GvstoreError("--no-verify and --verify exclude each other")
    chosen = () if no_verify else None if verify is None else tuple(
        verify_option(v) for v in verify)
    opts = Options(grade=grade, verify=chosen, task=task, generator=generator,
                   skip_bad=skip_bad)
    done = import_inspect(get_store(ctx, store, must_exist=False), path, opts)
    dicts = [{**summary.as_dict(), **info} for summary, info in done]
    data: dict[str, Any] = dicts[0] if path.is_file() else {"imports": dicts}
    emit(data, as_json, *(_summary_table(d) for d in dicts))


def _summary_table(d: dict[str, Any]) -> Any:
    verifiers = ", ".join(f"{k} ({v})" for k, v in d["verifiers"].items()) or "none"
    rows = [["source", d["source"]], ["sha256", d["sha256"]], ["log status", d["log_status"]],
            ["store folder", d["folder"]], ["task", d["task"]], ["generator", d["generator"]],
            ["grade scorer", d["grade"]], ["verifiers", verifiers],
            ["samples in the log", d["rows"]],
            ["  with an error (skipped)", d["errored"]],
            ["  not graded (skipped)", d["unscored"]],
            ["  bad (skipped)", d["bad"]],
            ["prompts", d["prompts"]], ["samples", d["samples"]],
            ["  without output (imported empty)", d["no_output"]],
            ["epochs", ", ".join(str(e) for e in d["epochs"])],
            ["records", d["records"]], ["records added", d["written"]],
            ["already in the store", d["already"]]]
    rows += [[f"  {k}s added", v] for k, v in sorted(d["added"].items())]
    return table("import inspect", ["", "value"], rows)
