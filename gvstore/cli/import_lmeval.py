"""``gvstore import lm-eval``: lm-eval `--log_samples` files (docs/import-lmeval.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any

import typer

from gvstore.cli.console import emit
from gvstore.cli.importing import import_app
from gvstore.cli.options import JsonOpt, StoreOpt, get_store
from gvstore.output import table


@import_app.command("lm-eval")
def lmeval_cmd(
    ctx: typer.Context,
    path: Annotated[Path, typer.Argument(
        help="A samples_<task>_<date>.jsonl file, or a folder of lm-eval output (every "
        "samples file in it, one task each).")],
    strict: Annotated[str, typer.Option(
        "--strict", help="FILTER[:METRIC] whose metric is the strict grade (default: "
        "strict-match:exact_match, or the file's only filter).", show_default=False)] = "",
    flexible: Annotated[str, typer.Option(
        "--flexible", help="FILTER[:METRIC] whose metric is the flexible grade (default: "
        "flexible-extract:exact_match, else the strict one).", show_default=False)] = "",
    task: Annotated[str | None, typer.Option(
        "--task", help="Task name of the prompts (default: from the file name); a task "
        "gvstore knows (gsm8k) lets `gvstore grade` grade them too.",
        show_default=False)] = None,
    generator: Annotated[str | None, typer.Option(
        "--generator", help="Generator (model) name (default: the model of the "
        "results_<date>.json beside the file).", show_default=False)] = None,
    no_grades: Annotated[bool, typer.Option(
        "--no-grades", help="Import the generations without lm-eval's grades.")] = False,
    skip_bad: Annotated[bool, typer.Option(
        "--skip-bad", help="Leave bad lines (and their docs) out, and count them, instead "
        "of stopping.")] = False,
    store: StoreOpt = None,
    as_json: JsonOpt = False,
) -> None:
    """Import lm-eval samples: each doc a prompt, each repeat a sample, filters as grades."""
    from gvstore.importers.lmeval import Choice, Options, choice_option, import_lmeval

    opts = Options(strict=choice_option(strict) if strict else Choice(),
                   flexible=choice_option(flexible) if flexible else Choice(),
                   task=task, generator=generator, grades=not no_grades, skip_bad=skip_bad)
    done = import_lmeval(get_store(ctx, store, must_exist=False), path, opts)
    dicts = [{**summary.as_dict(), **info} for summary, info in done]
    data: dict[str, Any] = dicts[0] if path.is_file() else {"imports": dicts}
    emit(data, as_json, *(_summary_table(d) for d in dicts))


def _summary_table(d: dict[str, Any]) -> Any:
    rows = [["source", d["source"]], ["sha256", d["sha256"]], ["store folder", d["folder"]],
            ["task", d["task"]], ["generator", d["generator"]],
            ["strict grade", d["strict"] or "none"], ["flexible grade", d["flexible"] or "none"],
            ["lines read", d["rows"]], ["bad lines skipped", d["skipped"]],
            ["prompts (docs)", d["prompts"]], ["samples", d["samples"]],
            ["repeats per doc", ", ".join(str(k) for k in d["repeats"])],
            ["records", d["records"]], ["records added", d["written"]],
            ["already in the store", d["already"]]]
    rows += [[f"  {k}s added", v] for k, v in sorted(d["added"].items())]
    return table("import lm-eval", ["", "value"], rows)
