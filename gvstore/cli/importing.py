"""``gvstore import table``: samples made elsewhere, as ordinary records (docs/import.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.console import emit
from gvstore.cli.options import JsonOpt, StoreOpt, get_store
from gvstore.output import table

import_app = typer.Typer(help="Import samples made elsewhere (docs/import.md).",
                         no_args_is_help=True)


@import_app.command("table")
def table_cmd(  # Long because each column of the mapping is one option
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(help="A .jsonl, .csv or .parquet file.")],
    mapping: Annotated[Path | None, typer.Option(
        "--map", help="A YAML column mapping (options below override it).",
        show_default=False)] = None,
    prompt_id: Annotated[str | None, typer.Option(
        "--prompt-id", help="Column of the prompt id (default: prompt_id).",
        show_default=False)] = None,
    prompt: Annotated[str | None, typer.Option(
        "--prompt", help="Column of the prompt text.", show_default=False)] = None,
    reference: Annotated[str | None, typer.Option(
        "--reference", help="Column of the reference answer.", show_default=False)] = None,
    sample: Annotated[str | None, typer.Option(
        "--sample", help="Column of the sample text, or of a list of them (default: "
        "sample).", show_default=False)] = None,
    sample_index: Annotated[str | None, typer.Option(
        "--sample-index", help="Column of the sample index (one row per sample).",
        show_default=False)] = None,
    correct: Annotated[str | None, typer.Option(
        "--correct", help="Column of the correctness (0/1, true/false, or in [0, 1]).",
        show_default=False)] = None,
    flexible: Annotated[str | None, typer.Option(
        "--flexible", help="Column of the flexible grade (default: the correctness).",
        show_default=False)] = None,
    extracted: Annotated[str | None, typer.Option(
        "--extracted", help="Column of the extracted answer.", show_default=False)] = None,
    score: Annotated[list[str] | None, typer.Option(
        "--score", help="NAME=COL: verifier NAME's scores are column COL (COL alone: "
        "verifier COL). Repeatable; replaces the mapping file's scores.",
        show_default=False)] = None,
    method: Annotated[str, typer.Option(
        "--method", help="The verification method --score columns are recorded under.")
    ] = "mc",
    task: Annotated[str | None, typer.Option(
        "--task", help="Task name of the prompts (default: imported).",
        show_default=False)] = None,
    generator: Annotated[str | None, typer.Option(
        "--generator", help="Generator (model) name of the samples (default: imported).",
        show_default=False)] = None,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Leave bad rows out (and count them) instead of stopping.")
    ] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import a table of samples: one row per sample, or one row per prompt with lists."""
    from gvstore.importers.table import (
        Mapping,
        import_table,
        mapping_from_yaml,
        merge,
        score_option,
    )

    base = mapping_from_yaml(mapping) if mapping is not None else Mapping()
    scores = None if score is None else tuple(score_option(s, method) for s in score)
    m = merge(base, prompt_id=prompt_id, prompt=prompt, reference=reference, sample=sample,
              sample_index=sample_index, correct=correct, flexible=flexible,
              extracted=extracted, scores=scores, task=task, generator=generator)
    summary = import_table(get_store(ctx, store, must_exist=False), path, m,
                           skip_bad=skip_bad)
    d = summary.as_dict()
    emit(d, as_json, _summary_table(d))


def _summary_table(d: dict[str, Any]) -> Any:
    rows = [["source", d["source"]], ["sha256", d["sha256"]], ["store folder", d["folder"]],
            ["rows read", d["rows"]], ["bad rows skipped", d["skipped"]],
            ["prompts", d["prompts"]], ["samples", d["samples"]], ["records", d["records"]],
            ["records added", d["written"]], ["already in the store", d["already"]]]
    rows += [[f"  {k}s added", v] for k, v in sorted(d["added"].items())]
    return table("import table", ["", "value"], rows)


# The other importers' commands register themselves on import_app (one module each).
from gvstore.cli import import_inspect, import_lmeval  # noqa: E402,F401
